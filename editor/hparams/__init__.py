"""Editing hyperparameters, one YAML file per architecture (and one for the default model).

``editor/hparams/<name>.yaml`` holds a ``memit`` and a ``grace`` section. ``<name>`` is the model's
``config.model_type`` (``gpt2``, ``gptj``, ``gpt_neox``, ``llama``, ``mistral``, ``qwen2``), or
``oneedit-knowledge`` for the default knowledge model. Layer lists are written for the depth named
by ``reference_depth``; on a model of another depth they are scaled proportionally (so the GPT-J
file also serves a 2-layer test config). Every value is checked on load: a wrong one names the
field, the value and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from editor.grace.config import GraceHparams
from editor.memit.config import KeyPosition, MemitHparams, ZSpan
from editor.validation import HparamsError, coerce, fail
from oneedit.core import OneEditError

__all__ = ["GraceHparams", "Hparams", "HparamsError", "KeyPosition", "MemitHparams", "ZSpan", "available", "load"]

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Hparams:
    name: str
    memit: MemitHparams
    grace: GraceHparams
    notes: str = ""

    def check_depth(self, depth: int) -> None:
        """GRACE's keys must not move when MEMIT edits: the codebook's layer may not lie above
        MEMIT's first edited layer. (A key is the input of the layer's MLP projection: it depends
        on the blocks below and on the layer's own first MLP matrix, never on the projection MEMIT
        rewrites, so ``grace.layer <= min(memit.layers)`` keeps every key where it was written.)"""
        g = self.grace.resolve_layer(depth)
        first = min(self.memit.resolve_layers(depth))
        if g > first:
            raise fail("grace", "layer", self.grace.layer,
                       f"a layer at or below MEMIT's first edited layer ({first} on this {depth}-block "
                       f"model; GRACE resolves to {g}): MEMIT's edits below it would move the keys "
                       "the codebook was written with")


def available() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.yaml"))


def load(name: str, path: str | Path | None = None) -> Hparams:
    f = Path(path) if path else HERE / f"{name}.yaml"
    if not f.is_file():
        raise OneEditError(f"No editing hyperparameters for {name!r}.",
                           hint=f"Known: {', '.join(available())}. Write {f.name} next to them "
                                "(copy the closest architecture's file).")
    raw = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise HparamsError(f"{f}: expected sections memit: and grace:, got {type(raw).__name__}.")
    unknown = set(raw) - {"memit", "grace", "notes"}
    if unknown:
        raise fail("file", sorted(unknown)[0], raw[sorted(unknown)[0]], "a section memit, grace or notes")
    try:
        memit = MemitHparams(**coerce(MemitHparams, raw.get("memit") or {}, "memit"))
        grace = GraceHparams(**coerce(GraceHparams, raw.get("grace") or {}, "grace"))
    except HparamsError as exc:
        raise HparamsError(f"{f}: {exc.message}", hint=exc.hint, details=exc.details) from None
    return Hparams(name, memit, grace, str(raw.get("notes", "")))
