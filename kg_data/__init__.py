"""The shipped world KG: ``schema.yaml`` and the entity tables in ``world/``.

See ``README.md`` in this folder for what is in it, the snapshot date and the format.
"""

from __future__ import annotations

from pathlib import Path


def path() -> Path:
    """The directory holding the shipped schema and data files."""
    return Path(__file__).resolve().parent


def schema_path() -> Path:
    return path() / "schema.yaml"
