"""Second-moment statistics of MLP keys, computed once per (model, layer, corpus, samples).

MEMIT protects what a layer already stores with ``C = E[k kᵀ]``, the uncentred second moment of
the inputs to the edited projection over a text corpus. The published code downloads 18 GB of
Wikipedia statistics or spends hours computing them; here they come from a corpus the user names
(for the default model, the verbalised KG), in one pass over all edited layers, and land in a disk
cache keyed by the model's fingerprint, the layer, the corpus hash and the sample count.

Each batch of edits then needs ``(λC + KKᵀ)⁻¹K``. With the Cholesky factor of ``λC`` cached, that is
``A⁻¹K (I + KᵀA⁻¹K)⁻¹`` (push-through identity): two triangular solves and one small (edits ×
edits) system, all in float64.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

import torch

from editor import arch
from editor.hooks import capture_input

log = logging.getLogger(__name__)


def cache_root() -> Path:
    env = os.environ.get("ONEEDIT_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "oneedit"


def corpus_hash(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x1e")
    return h.hexdigest()[:16]


class CovarianceCache:
    """Layer statistics on disk, Cholesky factors of ``λC`` in memory."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else cache_root() / "stats"
        self._moments: dict[tuple, torch.Tensor] = {}
        self._factors: dict[tuple, torch.Tensor] = {}
        self._projectors: dict[tuple, torch.Tensor] = {}
        self._keys: dict[int, tuple] = {}  # id of a cached moment -> its cache key

    def _file(self, fingerprint: str, layer: int, chash: str, samples: int) -> Path:
        return self.root / fingerprint / f"layer{layer}-{chash}-{samples}.pt"

    def moments(self, model, codec, fingerprint: str, layers: Sequence[int], texts: Sequence[str],
                *, samples: int, batch_size: int = 64,
                progress: Callable[[int, int], None] | None = None) -> dict[int, torch.Tensor]:
        """``E[k kᵀ]`` (float64) at each layer's edited projection, from up to ``samples`` texts."""
        texts = list(texts)[:samples]
        chash = corpus_hash(texts)
        out: dict[int, torch.Tensor] = {}
        todo = []
        for layer in layers:
            key = (fingerprint, layer, chash, len(texts))
            if key in self._moments:
                out[layer] = self._moments[key]
                continue
            f = self._file(fingerprint, layer, chash, len(texts))
            if f.is_file():
                out[layer] = self._remember(key, torch.load(f, map_location="cpu", weights_only=True))
            else:
                todo.append(layer)
        if todo:
            computed = compute_moments(model, codec, todo, texts, batch_size=batch_size, progress=progress)
            for layer, mom in computed.items():
                f = self._file(fingerprint, layer, chash, len(texts))
                f.parent.mkdir(parents=True, exist_ok=True)
                tmp = f.with_suffix(f".tmp{os.getpid()}")  # another process may write the same entry
                torch.save(mom, tmp)
                os.replace(tmp, f)
                (f.parent / "model.json").write_text(json.dumps({"fingerprint": fingerprint}))
                out[layer] = self._remember((fingerprint, layer, chash, len(texts)), mom)
        return out

    def _remember(self, key: tuple, moment: torch.Tensor) -> torch.Tensor:
        self._moments[key] = moment
        self._keys[id(moment)] = key
        return moment

    def key_of(self, moment: torch.Tensor) -> tuple:
        """The cache key a moment was loaded under (what identifies its factor)."""
        return self._keys.get(id(moment), ("unnamed", id(moment)))

    def factor(self, moment: torch.Tensor, weight: float, key: tuple, device=None) -> torch.Tensor:
        """Lower Cholesky factor of ``weight · C`` (plus a tiny ridge that keeps it positive definite),
        on ``device``: the statistics move to the device once, and the factor stays there."""
        device = torch.device(device) if device is not None else moment.device
        got = self._factors.get((key, weight, str(device)))
        if got is None:
            a = weight * moment.to(device=device, dtype=torch.float64)
            ridge = 1e-6 * float(torch.diagonal(a).mean()) + 1e-12
            a.diagonal().add_(ridge)
            got = self._factors[(key, weight, str(device))] = torch.linalg.cholesky(a)
        return got


    def null_projector(self, moment: torch.Tensor, share: float, key: tuple, device=None) -> torch.Tensor:
        """AlphaEdit's projector onto the eigenvectors of ``C`` whose eigenvalues are below
        ``share`` × the largest: the key directions the corpus leaves (almost) unused."""
        device = torch.device(device) if device is not None else moment.device
        got = self._projectors.get((key, share, str(device)))
        if got is None:
            vals, vecs = torch.linalg.eigh(moment.to(device=device, dtype=torch.float64))
            free = vecs[:, vals < share * float(vals.max())]
            got = self._projectors[(key, share, str(device))] = free @ free.T
        return got


@torch.no_grad()
def compute_moments(model, codec, layers: Sequence[int], texts: Sequence[str], *, batch_size: int = 64,
                    progress: Callable[[int, int], None] | None = None) -> dict[int, torch.Tensor]:
    spec = arch.arch_of(model)
    device = next(model.parameters()).device
    mods = {layer: model.get_submodule(spec.mlp_out_path(layer)) for layer in layers}
    sums: dict[int, torch.Tensor] = {}
    count = 0
    max_len = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", 512)
    max_len = min(int(max_len), 256)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths pad less
    for start in range(0, len(order), batch_size):
        chunk = [texts[i] for i in order[start: start + batch_size]]
        rows = [codec.ids(t)[:max_len] or [codec.pad_id] for t in chunk]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), codec.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        ids, mask = ids.to(device), mask.to(device)
        stores = {layer: [] for layer in layers}
        with ExitStack() as stack:
            for layer in layers:
                stack.enter_context(capture_input(mods[layer], stores[layer]))
            model(input_ids=ids, attention_mask=mask)
        keep = mask.bool()
        for layer in layers:
            got = stores[layer][0]
            k = got[keep.to(got.device)].to(torch.float64)
            s = k.T @ k
            sums[layer] = s if layer not in sums else sums[layer] + s
        count += int(keep.sum())
        if progress:
            progress(min(start + batch_size, len(order)), len(order))
    return {layer: (s / max(count, 1)).cpu() for layer, s in sums.items()}


def solve_adjusted_keys(factor: torch.Tensor, keys: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
    """``(sA + KKᵀ)⁻¹ K`` for ``A = L Lᵀ`` (``factor`` = L), ``keys`` = K of shape (d_in, n), s = ``scale``;
    float64."""
    k = keys.to(torch.float64)
    a_inv_k = torch.cholesky_solve(k, factor)
    if scale != 1.0:
        a_inv_k = a_inv_k / scale
    small = torch.eye(k.shape[1], dtype=torch.float64, device=k.device) + k.T @ a_inv_k
    return torch.linalg.solve(small, a_inv_k.T).T
