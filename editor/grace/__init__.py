"""GRACE (Hartvigsen et al., 2023): lifelong editing with a codebook at one layer; the model's
weights are never touched. Split as ``config`` (hyperparameters), ``codebook`` (entries, radii,
O(entries) add and remove), ``router`` (where the codebook decides in a forward pass and in
generation), ``values`` (keys and optimised values of new edits), ``method`` (the method as the
editable model and the conformance suite see it)."""

from editor.grace.codebook import Codebook, GraceEdit
from editor.grace.config import GraceHparams
from editor.grace.router import GraceAdapter
from editor.grace.values import compute

__all__ = ["Codebook", "GraceAdapter", "GraceEdit", "GraceHparams", "compute"]
