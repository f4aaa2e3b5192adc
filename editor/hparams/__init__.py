"""Editing hyperparameters, one YAML file per architecture (and one for the default model).

``editor/hparams/<name>.yaml`` holds a ``memit`` and a ``grace`` section. ``<name>`` is the model's
``config.model_type`` (``gpt2``, ``gptj``, ``gpt_neox``, ``llama``, ``mistral``, ``qwen2``), or
``oneedit-knowledge`` for the default knowledge model. Layer lists are written for the depth named
by ``reference_depth``; on a model of another depth they are scaled proportionally (so the GPT-J
file also serves a 2-layer test config).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from oneedit.core import OneEditError

HERE = Path(__file__).parent
KeyPosition = Literal["subject_last", "last"]
ZSpan = Literal["key", "answer"]


def _scale_layers(layers: list[int], reference: int, depth: int) -> list[int]:
    if depth == reference and all(0 <= x < depth for x in layers):
        return sorted(layers)
    scaled = sorted({min(depth - 1, max(0, round(x * depth / reference))) for x in layers})
    return scaled


@dataclass(frozen=True)
class MemitHparams:
    layers: list[int] = field(default_factory=lambda: [1, 2])
    reference_depth: int = 4
    key_position: KeyPosition = "last"
    mom2_weight: float = 1.0e4      # λ: how strongly C protects what the layer already stores
    cov_samples: int = 100_000      # corpus texts read for C
    z_steps: int = 25
    z_lr: float = 0.5
    z_stop_loss: float = 0.05       # a fact's δ stops once its mean target NLL is below this
    kl_factor: float = 0.0625
    clamp_norm_factor: float = 4.0  # |δ| ≤ factor · |h|, per fact
    weight_decay: float = 0.5
    z_batch: int = 0                # 0: all facts in one optimisation; 1: the published per-fact loop
    z_span: ZSpan = "key"           # key: one δ per fact at the key position (published);
    #                                 answer: also one at each answer token that predicts the next

    def resolve_layers(self, depth: int) -> list[int]:
        return _scale_layers(list(self.layers), self.reference_depth, depth)

    def replace(self, **kw) -> MemitHparams:
        return dataclasses.replace(self, **kw)


@dataclass(frozen=True)
class GraceHparams:
    layer: int = 2
    reference_depth: int = 4
    key_position: KeyPosition = "last"
    epsilon: float = 1.0            # initial radius of a new codebook entry (distance in key space)
    value_steps: int = 100
    value_lr: float = 1.0
    stop_loss: float = 0.01
    distance: Literal["euclidean", "cosine"] = "euclidean"

    def resolve_layer(self, depth: int) -> int:
        return _scale_layers([self.layer], self.reference_depth, depth)[0]

    def replace(self, **kw) -> GraceHparams:
        return dataclasses.replace(self, **kw)


@dataclass(frozen=True)
class Hparams:
    name: str
    memit: MemitHparams
    grace: GraceHparams
    notes: str = ""


def _coerce(cls, values: dict) -> dict:
    """YAML reads ``1.5e4`` (no sign in the exponent) as a string: convert numbers by field type."""
    kinds = {f.name: f.type for f in dataclasses.fields(cls)}
    out = dict(values)
    for k, v in values.items():
        kind = kinds.get(k)
        if isinstance(v, str) and kind in ("float", "int"):
            try:
                out[k] = float(v) if kind == "float" else int(float(v))
            except ValueError:
                raise OneEditError(f"Hyperparameter {k}={v!r} is not a number.") from None
        elif isinstance(v, int) and kind == "float":
            out[k] = float(v)
    return out


def available() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.yaml"))


def load(name: str, path: str | Path | None = None) -> Hparams:
    f = Path(path) if path else HERE / f"{name}.yaml"
    if not f.is_file():
        raise OneEditError(f"No editing hyperparameters for {name!r}.",
                           hint=f"Known: {', '.join(available())}. Write {f.name} next to them "
                                "(copy the closest architecture's file).")
    raw = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
    try:
        memit = MemitHparams(**_coerce(MemitHparams, raw.get("memit") or {}))
        grace = GraceHparams(**_coerce(GraceHparams, raw.get("grace") or {}))
    except TypeError as exc:
        raise OneEditError(f"{f}: {exc}", hint="Compare with the fields of MemitHparams/GraceHparams "
                                               "in editor/hparams/__init__.py.") from None
    return Hparams(name, memit, grace, str(raw.get("notes", "")))
