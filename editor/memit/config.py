"""MEMIT's hyperparameters, validated on construction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from editor.validation import check_fields, field

KeyPosition = Literal["subject_last", "last"]
ZSpan = Literal["key", "answer"]


def scale_layers(layers: list[int], reference: int, depth: int) -> list[int]:
    """Layer indices written for a ``reference``-deep model, mapped onto a ``depth``-deep one."""
    if depth == reference and all(0 <= x < depth for x in layers):
        return sorted(layers)
    return sorted({min(depth - 1, max(0, round(x * depth / reference))) for x in layers})


@dataclass(frozen=True)
class MemitHparams:
    layers: list[int] = field([1, 2], "MLP output projections edited, for a model of reference_depth blocks")
    reference_depth: int = field(4, "depth the layer indices are written for; scaled to the model's", min=1)
    key_position: KeyPosition = field("last", "where keys are read: the subject's last token or the prompt's")
    mom2_weight: float = field(1.0e4, "λ: how strongly C protects what the layer already stores", gt=0)
    cov_samples: int = field(10_000, "corpus texts read for the key statistics C (a seeded sample of a larger "
                                     "corpus; docs/editor.md, 'How many texts')", min=1)
    cov_tokens_per_dim: int = field(0, "read only as many of the cov_samples texts as hold this many tokens per "
                                       "key dimension (0: all of them; docs/editor.md, 'How many texts')", min=0)
    z_steps: int = field(25, "gradient steps for the target residuals z", min=1)
    z_lr: float = field(0.5, "Adam learning rate for z", gt=0)
    z_stop_loss: float = field(0.05, "a fact's δ stops once its mean target NLL is below this", min=0)
    kl_factor: float = field(0.0625, "weight of the KL term on '{subject} is a' prompts", min=0)
    clamp_norm_factor: float = field(4.0, "|δ| ≤ factor · |h|, per fact", gt=0)
    weight_decay: float = field(0.5, "penalty on |δ|² relative to |h|²", min=0)
    z_batch: int = field(0, "facts per z optimisation (0: all at once; 1: the published per-fact loop)", min=0)
    z_share: float = field(1.0, "z must make the model answer with only this share of δ added (1: all of it): a "
                                "phrasing the edit did not write receives part of the change (measured: half, at "
                                "an answer token), so a δ that works at part strength generalises", gt=0, max=1)
    z_span: ZSpan = field("key", "key: one δ per fact at the key position; answer: one at each answer token too")
    preserve_edits: bool = field(False, "keep the keys of every live edit in the solve, so later edits do not "
                                        "overwrite earlier ones (AlphaEdit's K_p term)")
    lambda_retries: int = field(0, "when the edit's own prompts do not all answer after the solve, or it wrote "
                                   "less than min_written of z - h, solve again with λ halved, at most this "
                                   "many times (0: one solve)", min=0)
    min_prob: float = field(0.0, "with lambda_retries: every answer token of the edit's own prompts must also have at "
                                 "least this probability after the solve (0: ranked first is enough)", min=0, max=1)
    min_written: float = field(0.0, "the share of z - h a solve must write on the edit's key columns before "
                                    "lambda_retries stop", min=0, max=1)
    nullspace: float = field(0.0, "AlphaEdit: project each update onto the directions where C's eigenvalue is "
                                  "below this share of its largest (0: off)", min=0, max=1)
    nullspace_ridge: float = field(1.0, "AlphaEdit's ‖ΔP‖² weight, in units of C's mean eigenvalue", gt=0)

    def __post_init__(self):
        check_fields(self, "memit")

    def resolve_layers(self, depth: int) -> list[int]:
        return scale_layers(list(self.layers), self.reference_depth, depth)

    def replace(self, **kw) -> MemitHparams:
        return dataclasses.replace(self, **kw)
