"""fp32 master copies of the weights the editor changes, and the base weights they started from.

MEMIT deltas are small next to the weights they are added to. On bf16/fp16 weights, adding each
delta in half precision would round most of it away, and sequential edits would drift. The editor
therefore keeps an fp32 master of every projection it edits, accumulates deltas there, and writes
``master.to(dtype)`` into the model. For fp32 models the master *is* the parameter (no copy).

The first time a projection is edited its base value is kept (on the CPU, in the parameter's
dtype), so :meth:`MasterWeights.base` can show the unedited model exactly — what MEMIT's key
statistics must be computed on, whatever edits the model carries.

On a model dispatched by accelerate the tensor edited is the one the next pass reads
(:func:`editor.placement.writable_weight`): the parameter, or for a projection offloaded to CPU
memory its weights-map tensor; a projection offloaded to disk is refused before anything changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch

from editor import arch, placement


class MasterWeights:
    def __init__(self, model):
        self.model = model
        self.spec = arch.arch_of(model)
        self._masters: dict[int, torch.Tensor] = {}
        self._base: dict[int, torch.Tensor] = {}

    def param(self, layer: int) -> torch.nn.Parameter:
        return self.model.get_submodule(self.spec.mlp_out_path(layer)).weight

    def tensor(self, layer: int) -> torch.Tensor:
        """The projection's values as the next pass reads them (see :mod:`editor.placement`)."""
        path = self.spec.mlp_out_path(layer)
        return placement.writable_weight(self.model.get_submodule(path), path)

    def check_writable(self, layers: Iterable[int]) -> None:
        """Raise :class:`editor.placement.OffloadedWeightError` naming every projection of ``layers``
        a device map keeps on disk (before any work is done for an edit that cannot be written)."""
        paths = [self.spec.mlp_out_path(layer) for layer in layers]
        disk = [p for p in paths if placement.storage(self.model.get_submodule(p)) == placement.OFFLOADED_DISK]
        if disk:
            raise placement.offloaded_error(disk)

    def master(self, layer: int) -> torch.Tensor:
        got = self._masters.get(layer)
        if got is None:
            t = self.tensor(layer)
            self._base.setdefault(layer, t.detach().to("cpu", copy=True))
            got = t if t.dtype == torch.float32 else t.detach().to(torch.float32).clone()
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
        t = self.tensor(layer)
        if t.data_ptr() != m.data_ptr():
            t.copy_(m.to(t.dtype))

    def edited_layers(self) -> list[int]:
        return sorted(self._base)

    def by_name(self) -> dict[str, torch.Tensor]:
        """The fp32 master of every edited projection, by its parameter name in ``model.state_dict()``
        (what an export writes instead of the parameter's possibly half-precision copy)."""
        return {f"{self.spec.mlp_out_path(layer)}.weight": m for layer, m in self._masters.items()}

    @torch.no_grad()
    def restore_base(self) -> None:
        """Put every edited projection back to its base value, bit for bit (once no edit is live:
        adding and subtracting a delta in floating point leaves rounding behind)."""
        for layer, value in self._base.items():
            m = self._masters.get(layer)
            t = self.tensor(layer)
            t.copy_(value.to(t.device))
            if m is not None and m.data_ptr() != t.data_ptr():
                m.copy_(value.to(device=m.device, dtype=m.dtype))

    @contextmanager
    def base(self) -> Iterator[None]:
        """The model with every edited projection at its base value (bit for bit) inside."""
        with self.scratch(self._base):
            with torch.no_grad():
                for layer, value in self._base.items():
                    self.tensor(layer).copy_(value)
            yield

    @contextmanager
    def scratch(self, layers: Iterable[int]) -> Iterator[None]:
        """Changes made inside are undone exactly (bit for bit) on exit."""
        layers = list(layers)
        saved = {}
        for layer in layers:
            t = self.tensor(layer)
            m = self._masters.get(layer)
            same = m is not None and m.data_ptr() == t.data_ptr()
            saved[layer] = (t.clone(), None if m is None or same else m.clone(), m is None)
        try:
            yield
        finally:
            with torch.no_grad():
                for layer, (pdata, mdata, fresh) in saved.items():
                    self.tensor(layer).copy_(pdata)
                    if fresh:
                        self._masters.pop(layer, None)
                        self._base.pop(layer, None)
                    elif mdata is not None:
                        self._masters[layer].copy_(mdata)
