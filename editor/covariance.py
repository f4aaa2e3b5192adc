"""Second-moment statistics of MLP keys, computed once per (model, layer, corpus, samples).

MEMIT protects what a layer already stores with ``C = E[k kᵀ]``, the uncentred second moment of
the inputs to the edited projection over a text corpus. The published code downloads 18 GB of
Wikipedia statistics or spends hours computing them; here they come from a corpus the user names
(for the default model, the verbalised KG), in one pass over all edited layers, and land in a disk
cache keyed by the model's fingerprint, the layer, the corpus hash and the sample count.

The pass is streamed: each batch's keys are folded into a running float64 sum of ``KᵀK`` inside the
hook that reads them, ``chunk_tokens`` rows at a time (the products in float32, as MEMIT's own
statistics are), and the pass stops at the last edited layer — the blocks above it and the LM head
are never run. Memory is one ``d × d`` float64 sum per layer plus one chunk, whatever the corpus
size; :func:`statistics_memory` estimates it with the solve's and :mod:`editor.memory` refuses
before starting when a device cannot hold it.

Each batch of edits then needs ``(λC + KKᵀ)⁻¹K``. With the Cholesky factor of ``λC`` cached, that is
``A⁻¹K (I + KᵀA⁻¹K)⁻¹`` (push-through identity): two triangular solves and one small (edits ×
edits) system, all in float64.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

import torch

from editor import arch, memory, placement

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

    def __init__(self, root: str | Path | None = None, *, memory_budget: int | str | None = None):
        self.root = Path(root) if root else cache_root() / "stats"
        #: caps every device's free memory in the statistics' memory check (default: $ONEEDIT_MEMORY_BUDGET)
        self.memory_budget = memory_budget
        self._moments: dict[tuple, torch.Tensor] = {}
        self._factors: dict[tuple, torch.Tensor] = {}
        self._projectors: dict[tuple, torch.Tensor] = {}
        self._keys: dict[int, tuple] = {}  # id of a cached moment -> its cache key

    def _file(self, fingerprint: str, layer: int, chash: str, samples: int) -> Path:
        return self.root / fingerprint / f"layer{layer}-{chash}-{samples}.pt"

    def moments(self, model, codec, fingerprint: str, layers: Sequence[int], texts: Sequence[str],
                *, samples: int, batch_size: int = 64, tokens_per_dim: int = 0,
                progress: Callable[[int, int], None] | None = None) -> dict[int, torch.Tensor]:
        """``E[k kᵀ]`` (float64) at each layer's edited projection, from up to ``samples`` texts
        (a seeded sample, in corpus order, when the corpus has more) — and, with
        ``tokens_per_dim``, only as many of them (in the sample's seeded order) as hold that many
        tokens per key dimension. ``progress(tokens done, tokens in all)`` while they are computed."""
        texts = sample_texts(texts, samples)
        if tokens_per_dim:
            spec = arch.arch_of(model)
            width = max(key_width(model.get_submodule(spec.mlp_out_path(layer)), spec) for layer in layers)
            texts = enough_texts(texts, codec, tokens_per_dim * width, max_len=_max_len(model))
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
            computed = compute_moments(model, codec, todo, texts, batch_size=batch_size, progress=progress,
                                       memory_budget=self.memory_budget)
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
            got = self._factors[(key, weight, str(device))] = ridged_cholesky(a)
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


def ridged_cholesky(a: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor of ``a`` plus a ridge of 1e-6 × its mean diagonal (changed in place).

    A second moment from few distinct keys is singular, and its float32 products leave rounding of
    either sign in the null space; when the factorisation fails there, the ridge grows tenfold, up
    to 1e-2 × the mean diagonal (logged), before giving up."""
    ridge = 1e-6 * float(torch.diagonal(a).mean()) + 1e-12
    a.diagonal().add_(ridge)
    for _ in range(4):
        factor, info = torch.linalg.cholesky_ex(a)
        if int(info) == 0:
            return factor
        log.info("key statistics not positive definite with a ridge of %.3g; trying %.3g", ridge, 10 * ridge)
        a.diagonal().add_(9 * ridge)
        ridge *= 10
    return torch.linalg.cholesky(a)  # raises, naming the failing minor


def sample_texts(texts: Sequence[str], samples: int) -> list[str]:
    """All of ``texts`` when there are at most ``samples``, else a seeded sample of that many, in
    corpus order (a corpus file is often grouped by topic; its first lines are not a sample)."""
    texts = list(texts)
    if len(texts) <= samples:
        return texts
    keep = sorted(random.Random(0).sample(range(len(texts)), samples))
    return [texts[i] for i in keep]


def enough_texts(texts: Sequence[str], codec, tokens: int, *, max_len: int) -> list[str]:
    """The fewest of ``texts``, taken in a seeded order, that hold ``tokens`` tokens (each text
    counted up to ``max_len``), returned in corpus order; all of them when they hold fewer."""
    texts = list(texts)
    order = list(range(len(texts)))
    random.Random(1).shuffle(order)
    keep, have = [], 0
    for i in order:
        if have >= tokens:
            break
        keep.append(i)
        have += min(len(codec.ids(texts[i])), max_len) or 1
    return [texts[i] for i in sorted(keep)]


def _max_len(model) -> int:
    n = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", 512)
    return min(int(n), 256)


def key_width(module, spec: arch.ArchSpec) -> int:
    """``d_in`` of an edited projection (its keys' width), read from the weight's shape."""
    w = module.weight
    return int(w.shape[0] if spec.conv1d else w.shape[1])


def statistics_memory(layers: dict[int, tuple[torch.device, int]], *, chunk_tokens: int, batch_tokens: int,
                      corpus_tokens: int, input_device: torch.device) -> dict[torch.device, int]:
    """Bytes the key statistics and the solve need per device, beyond the loaded model.

    ``layers``: each edited layer's (device, key width d). On the layer's device: the float64
    running sum ``8 d²`` (freed when done; then the solve's cached Cholesky factor, the same size),
    one factorisation's working copy ``8 d²``, one chunk's float32 product and keys. On the CPU:
    every layer's moment ``8 d²`` (kept for the session) and the corpus's token ids. On the input
    device: one batch's MLP activations (approximate).
    """
    need: dict[torch.device, int] = defaultdict(int)
    widest: dict[torch.device, int] = defaultdict(int)
    for dev, d in layers.values():
        need[dev] += 8 * d * d
        widest[dev] = max(widest[dev], d)
    for dev, d in widest.items():
        need[dev] += 8 * d * d + 4 * d * (d + chunk_tokens)
    need[torch.device("cpu")] += sum(8 * d * d for _, d in layers.values()) + 8 * corpus_tokens
    need[input_device] += 2 * 4 * batch_tokens * max(widest.values(), default=0)
    return dict(need)


#: below this many corpus tokens per key dimension the statistics are called thin (a warning): on the
#: default model the edits' metrics stopped moving between 18 and 35 tokens per dimension (docs/editor.md)
THIN_TOKENS_PER_DIM = 32


class _Enough(Exception):
    """Raised by the hook on the last edited layer: the rest of the pass is not needed."""


@torch.no_grad()
def compute_moments(model, codec, layers: Sequence[int], texts: Sequence[str], *, batch_size: int = 64,
                    chunk_tokens: int = 4096, memory_budget: int | str | None = None,
                    progress: Callable[[int, int], None] | None = None) -> dict[int, torch.Tensor]:
    """``E[k kᵀ]`` (float64, CPU) at each layer's edited projection over ``texts``, streamed (see the
    module's docstring); ``progress(tokens done, tokens in all)`` after each batch."""
    import numpy as np

    spec = arch.arch_of(model)
    device = placement.input_device(model)
    layers = sorted(layers)
    paths = {layer: spec.mlp_out_path(layer) for layer in layers}
    mods = {layer: model.get_submodule(p) for layer, p in paths.items()}
    max_len = _max_len(model)
    rows = [np.asarray(codec.ids(t)[:max_len] or [codec.pad_id], dtype=np.int64) for t in texts]
    total = int(sum(len(r) for r in rows))
    widths = {layer: (placement.execution_device(mods[layer]), key_width(mods[layer], spec)) for layer in layers}
    need = statistics_memory(widths, chunk_tokens=chunk_tokens, batch_tokens=batch_size * max_len,
                             corpus_tokens=total, input_device=device)
    memory.check(need, what=f"MEMIT's key statistics for layers {layers}",
                 why=f"Each edited layer holds a {widths[layers[0]][1]:,}² float64 second moment and its "
                     "Cholesky factor (8 bytes × d² each), on top of the loaded model.",
                 hint="Edit fewer layers (memit.layers in the model's hyperparameter file), read fewer texts "
                      "(--cov-samples; the corpus's token ids are held in memory), free memory or use a machine "
                      f"with more (or spread the model with --device-map auto). {memory.BUDGET_ENV} caps the "
                      "memory this check assumes.", cap=memory_budget)
    widest = max(d for _, d in widths.values())
    if total < THIN_TOKENS_PER_DIM * widest:
        log.warning("Key statistics from %d tokens, %.1f per key dimension (d = %d): the solve's protection of what "
                    "the layers store is estimated thinly; more or longer texts (--cov-samples, a larger "
                    "--corpus) estimate it better (docs/editor.md, 'How many texts').", total, total / widest, widest)
    sums: dict[int, torch.Tensor] = {}
    masks: dict[torch.device, torch.Tensor] = {}
    last = layers[-1]

    def fold(layer: int):
        d = widths[layer][1]

        def hook(module, args):
            x = args[0]
            keep = masks.get(x.device)
            if keep is None:
                keep = masks[x.device] = masks[device].to(x.device)
            k = x[keep]
            s = sums.get(layer)
            if s is None:
                s = sums[layer] = torch.zeros(d, d, dtype=torch.float64, device=x.device)
            for at in range(0, k.shape[0], chunk_tokens):
                part = k[at: at + chunk_tokens].float()
                s += part.T @ part
            if layer == last:
                raise _Enough
        return hook

    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # similar lengths pad less
    done = 0
    with ExitStack() as stack:
        for layer in layers:
            handle = mods[layer].register_forward_pre_hook(fold(layer))
            stack.callback(handle.remove)
        for start in range(0, len(order), batch_size):
            chunk = [rows[i] for i in order[start: start + batch_size]]
            width = max(len(r) for r in chunk)
            ids = torch.full((len(chunk), width), codec.pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, r in enumerate(chunk):
                ids[i, : len(r)] = torch.from_numpy(r)
                mask[i, : len(r)] = 1
            ids, mask = ids.to(device), mask.to(device)
            masks.clear()
            masks[device] = mask.bool()
            try:
                model(input_ids=ids, attention_mask=mask, use_cache=False)
            except _Enough:
                pass
            done += int(sum(len(r) for r in chunk))
            if progress:
                progress(done, total)
    return {layer: s.div_(max(total, 1)).cpu() for layer, s in sums.items()}


def solve_adjusted_keys(factor: torch.Tensor, keys: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
    """``(sA + KKᵀ)⁻¹ K`` for ``A = L Lᵀ`` (``factor`` = L), ``keys`` = K of shape (d_in, n), s = ``scale``;
    float64."""
    k = keys.to(torch.float64)
    a_inv_k = torch.cholesky_solve(k, factor)
    if scale != 1.0:
        a_inv_k = a_inv_k / scale
    small = torch.eye(k.shape[1], dtype=torch.float64, device=k.device) + k.T @ a_inv_k
    return torch.linalg.solve(small, a_inv_k.T).T
