"""What the bench scripts share (run as ``python bench/NAME.py``: this folder is on the path)."""

from __future__ import annotations

import shutil
from pathlib import Path


def workspace(src: str | None, dest: Path) -> Path:
    """A private workspace with its knowledge model at ``dest``: a copy of ``src``, or a fresh one
    over the shipped KG (its model from the cache, or trained once)."""
    if src:
        shutil.copytree(src, dest)
        return dest
    from oneedit.models import train_default
    from oneedit.workspace import Workspace

    ws, _ = Workspace.init(dest)
    with ws:
        train_default(ws)
    return dest
