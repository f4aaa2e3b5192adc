"""Editing methods as the editable model sees them, and the registry that names them.

A method computes an edit without touching the model (``compute``), writes it (``apply``), takes
it back (``remove``), and keeps its state in the model's state folder (``save``/``load``). Every
registered method runs the same conformance suite (``tests/method_conformance.py``); a new
method is one class here and one subclass of that suite.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from editor.request import Request
from editor.verbalize import Prompt
from oneedit.core import OneEditError

if TYPE_CHECKING:
    from editor.session import EditableModel


class EditMethod(ABC):
    name: ClassVar[str]

    def __init__(self, session: EditableModel):
        self.session = session

    @abstractmethod
    def compute(self, edit_id: str, requests: Sequence[Request], *, keep: Sequence[Prompt] = (),
                progress: Callable | None = None) -> Any:
        """What writing ``requests`` would change; the model is left bit for bit as it was."""

    @abstractmethod
    def apply(self, edit_id: str, payload: Any) -> dict:
        """Write a computed edit; returns its statistics."""

    @abstractmethod
    def remove(self, edit_id: str) -> bool:
        """Take an edit out (whatever of it is there); returns whether anything was."""

    @abstractmethod
    def save(self, state_dir: Path, edit_id: str) -> None:
        """Persist what changed for ``edit_id`` (after apply or remove)."""

    @abstractmethod
    def load(self, state_dir: Path, edit_ids: Sequence[str]) -> None:
        """Re-apply the saved edits (in manifest order) to a freshly loaded base model."""


def registry() -> dict[str, type[EditMethod]]:
    from editor.grace.method import GraceMethod
    from editor.memit.method import MemitMethod

    return {m.name: m for m in (MemitMethod, GraceMethod)}


def method_class(name: str) -> type[EditMethod]:
    known = registry()
    try:
        return known[name]
    except KeyError:
        raise OneEditError(f"Unknown editing method {name!r}.", hint="Use " + " or ".join(sorted(known)) + ".") from None
