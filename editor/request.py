"""What an editing method is asked to write."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from editor.verbalize import Prompt


@dataclass(frozen=True)
class Request:
    """One fact to write: the prompts that should now continue with ``target``."""

    prompts: tuple[Prompt, ...]
    target: str
    subject: str

    @classmethod
    def of(cls, prompts: Sequence[Prompt], target: str | None = None) -> Request:
        prompts = tuple(prompts)
        return cls(prompts, target if target is not None else prompts[0].target, prompts[0].subject)
