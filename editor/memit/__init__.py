"""MEMIT, split the way the published code is: ``config`` (hyperparameters), ``keys`` (where keys
and δs sit), ``targets`` (the target residuals z), ``main`` (the least-squares delta, apply/undo),
``method`` (the method as the editable model and the conformance suite see it)."""

from editor.memit.config import MemitHparams
from editor.memit.main import LayerDelta, MemitDelta, apply, compute
from editor.memit.targets import compute_targets
from editor.request import Request

__all__ = ["LayerDelta", "MemitDelta", "MemitHparams", "Request", "apply", "compute", "compute_targets"]
