"""GRACE's hyperparameters, validated on construction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from editor.memit.config import KeyPosition, scale_layers
from editor.validation import check_fields, field


@dataclass(frozen=True)
class GraceHparams:
    layer: int = field(1, "MLP output projection whose output the codebook replaces", min=0)
    reference_depth: int = field(4, "depth the layer index is written for; scaled to the model's", min=1)
    key_position: KeyPosition = field("last", "last: decide at the prompt's last token; subject_last: "
                                              "at the first prompt token whose key is in the codebook")
    epsilon: float = field(1.0, "initial radius of a new codebook entry (distance in key space)", gt=0)
    value_steps: int = field(100, "gradient steps for an edit's value", min=1)
    value_lr: float = field(1.0, "Adam learning rate for values", gt=0)
    stop_loss: float = field(0.01, "an edit's value stops once its mean target NLL is below this", min=0)
    distance: Literal["euclidean", "cosine"] = field("euclidean", "distance between keys")

    def __post_init__(self):
        check_fields(self, "grace")

    def resolve_layer(self, depth: int) -> int:
        return scale_layers([self.layer], self.reference_depth, depth)[0]

    def replace(self, **kw) -> GraceHparams:
        return dataclasses.replace(self, **kw)
