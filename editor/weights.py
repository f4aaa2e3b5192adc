"""fp32 master copies of the weights the editor changes, and the base weights they started from.

MEMIT deltas are small next to the weights they are added to. On bf16/fp16 weights, adding each
delta in half precision would round most of it away, and sequential edits would drift. The editor
therefore keeps an fp32 master of every projection it edits, accumulates deltas there, and writes
``master.to(dtype)`` into the model. For fp32 models the master *is* the parameter (no copy).

The first time a projection is edited its base value is kept (on the CPU, in the parameter's
dtype), so :meth:`MasterWeights.base` can show the unedited model exactly — what MEMIT's key
statistics must be computed on, whatever edits the model carries.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch

from editor import arch


class MasterWeights:
    def __init__(self, model):
        self.model = model
        self.spec = arch.arch_of(model)
        self._masters: dict[int, torch.Tensor] = {}
        self._base: dict[int, torch.Tensor] = {}

    def param(self, layer: int) -> torch.nn.Parameter:
        return self.model.get_submodule(self.spec.mlp_out_path(layer)).weight

    def master(self, layer: int) -> torch.Tensor:
        got = self._masters.get(layer)
        if got is None:
            p = self.param(layer)
            self._base.setdefault(layer, p.detach().to("cpu", copy=True))
            got = p.data if p.dtype == torch.float32 else p.detach().to(torch.float32).clone()
            self._masters[layer] = got
        return got

    @torch.no_grad()
    def add(self, layer: int, delta, sign: float = 1.0) -> None:
        """Add ``sign · u vᵀ`` (a :class:`editor.memit.LayerDelta`) to the layer's projection."""
        m = self.master(layer)
        dense = delta.dense(torch.float32, m.device)
        if self.spec.conv1d:
            dense = dense.T
        m.add_(dense, alpha=sign)
        p = self.param(layer)
        if p.data is not m:
            p.data.copy_(m.to(p.dtype))

    def edited_layers(self) -> list[int]:
        return sorted(self._base)

    @contextmanager
    def base(self) -> Iterator[None]:
        """The model with every edited projection at its base value (bit for bit) inside."""
        with self.scratch(self._base):
            with torch.no_grad():
                for layer, value in self._base.items():
                    self.param(layer).data.copy_(value)
            yield

    @contextmanager
    def scratch(self, layers: Iterable[int]) -> Iterator[None]:
        """Changes made inside are undone exactly (bit for bit) on exit."""
        layers = list(layers)
        saved = {}
        for layer in layers:
            p = self.param(layer)
            m = self._masters.get(layer)
            saved[layer] = (p.data.clone(), None if m is None or m is p.data else m.clone(), m is None)
        try:
            yield
        finally:
            with torch.no_grad():
                for layer, (pdata, mdata, fresh) in saved.items():
                    p = self.param(layer)
                    p.data.copy_(pdata)
                    if fresh:
                        self._masters.pop(layer, None)
                        self._base.pop(layer, None)
                    elif mdata is not None:
                        self._masters[layer].copy_(mdata)
