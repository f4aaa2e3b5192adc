"""MEMIT: write many facts into the MLP projections of several layers at once.

For a batch of facts, MEMIT (Meng et al., 2023)

1. finds a target residual vector ``z`` per fact at the last edited layer — the hidden state that
   makes the model say the new object (:mod:`editor.memit.targets`);
2. spreads the change ``z − h`` over the edited layers, lowest first: at layer ``l`` the keys
   ``K`` (inputs to the MLP projection at the key positions, :mod:`editor.memit.keys`) and the
   residual share ``R`` give ``ΔW = R Kᵀ (λC + KKᵀ)⁻¹``, where ``C`` is the keys' second moment over
   a corpus on the unedited base model (:mod:`editor.covariance`).

:func:`compute` returns the per-layer factors ``ΔW = U Vᵀ`` and leaves the model exactly as it found
it; :func:`apply` adds them (fp32 accumulation, see :class:`editor.weights.MasterWeights`) and the
same factors are the undo record (:func:`remove`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from editor import arch
from editor.covariance import CovarianceCache
from editor.encoding import TextCodec
from editor.hooks import capture_input, capture_output, prompts_end_at
from editor.memit.config import MemitHparams
from editor.memit.keys import locate, run
from editor.memit.preserve import PreservedKeys, Solver
from editor.memit.targets import compute_targets
from editor.placement import input_device
from editor.probe import gather_target, target_token_ids
from editor.request import Request
from editor.verbalize import Prompt


@dataclass
class LayerDelta:
    """``ΔW = u @ v.T`` in (out_features, in_features) orientation, float32, on CPU; ``keys`` are
    the edit's key columns at this layer (d_in, columns), what later edits preserve."""

    u: torch.Tensor
    v: torch.Tensor
    keys: torch.Tensor | None = None

    def dense(self, dtype=torch.float32, device=None) -> torch.Tensor:
        return self.u.to(device=device, dtype=dtype) @ self.v.to(device=device, dtype=dtype).T


@dataclass
class MemitDelta:
    layers: dict[int, LayerDelta]
    stats: dict = field(default_factory=dict)
    #: the target residuals z of the edit's key columns (in memory only: a diagnostic)
    targets: torch.Tensor | None = field(default=None, repr=False)

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        for layer, d in self.layers.items():
            out[f"layer{layer}.u"] = d.u.contiguous()
            out[f"layer{layer}.v"] = d.v.contiguous()
            if d.keys is not None:
                out[f"layer{layer}.k"] = d.keys.contiguous()
        return out

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], stats: dict | None = None) -> MemitDelta:
        layers: dict[int, LayerDelta] = {}
        for name in tensors:
            if name.endswith(".u"):
                layer = int(name[len("layer"): -2])
                layers[layer] = LayerDelta(tensors[name], tensors[f"layer{layer}.v"], tensors.get(f"layer{layer}.k"))
        return cls(dict(sorted(layers.items())), stats or {})


def compute(model, codec: TextCodec, requests: Sequence[Request], hp: MemitHparams, *,
            weights, stats: CovarianceCache, fingerprint: str,
            moments: Callable[[list[int]], dict[int, torch.Tensor]],
            keep: Sequence[Prompt] = (), preserved: PreservedKeys | None = None,
            progress: Callable[[str, int, int], None] | None = None) -> MemitDelta:
    """The weight change that writes ``requests``; the model is left exactly as it was.

    ``moments(layers)`` gives each layer's key statistics ``C`` (computed on the unedited base
    model by the caller, see :meth:`editor.session.EditableModel.key_statistics`).
    ``weights`` (:class:`editor.weights.MasterWeights`) applies each layer's share temporarily while
    the next layer's keys are read, and restores every touched weight afterwards.

    ``keep`` are prompts whose answers must not move (the caller knows them: for a KG-backed model,
    the edited subjects' other facts and other subjects' facts of the edited relations). Each is a
    key column whose target is the model's present output, so the least-squares solve spends its
    freedom away from them — an explicit version of what ``λC`` does statistically.

    ``preserved``: the live edits' keys, held in place when ``hp.preserve_edits`` is on; with
    ``hp.nullspace`` the update is projected (see :mod:`editor.memit.preserve`).
    """
    if not requests:
        raise ValueError("no edit requests")
    started = time.perf_counter()
    spec = arch.arch_of(model)
    layers = hp.resolve_layers(arch.num_layers(model))
    device = input_device(model)
    cb = (lambda done, total, active: progress("z", done, total)) if progress else None
    z, rows, info = compute_targets(model, codec, requests, hp, layers, progress=cb)
    h0 = _at_last_block(model, spec, layers, rows)
    t_z = time.perf_counter() - started
    moms = moments(layers)
    last_block = model.get_submodule(spec.block_path(layers[-1]))
    groups = [rows]
    if keep:
        kept = locate(codec, [Request.of([p]) for p in keep], hp, device)
        seen: list[torch.Tensor] = []
        with torch.no_grad(), capture_output(last_block, seen):
            run(model, kept.enc)
        zdev = seen[0].device
        z = torch.cat([z, seen[0][kept.entry_row.to(zdev), kept.entry_pos.to(zdev)].float()])
        groups.append(kept)
    n_edit = int(rows.entry_row.shape[0])
    with weights.scratch(layers):
        scale = 1.0
        for attempt in range(hp.lambda_retries + 1):
            solver = Solver(stats, hp, fingerprint, preserved, scale=scale)
            out = _solve(model, spec, layers, groups, z, solver, moms, weights, last_block,
                         progress if attempt == 0 else None)
            held, written = _check(model, rows, last_block, z[:n_edit], h0, hp.min_prob)
            if (bool(held.all()) and written >= hp.min_written) or attempt == hp.lambda_retries:
                break
            for layer, d in out.items():  # take this solve back and write harder
                weights.add(layer, d, sign=-1.0)
            scale /= 2
    # λ used, solves run, the share of the edit's prompts that answer, and how much of z - h the
    # solve wrote on the edit's own key columns (1: all of it)
    info.update({"mom2_weight": hp.mom2_weight * scale, "solves": attempt + 1,
                 "holds": round(float(held.float().mean()), 4), "written": round(written, 4)})
    info.update({"facts": len(requests), "rows": int(rows.enc.input_ids.shape[0]), "layers": layers,
                 "key_columns": int(rows.entry_row.shape[0]), "keep_columns": int(z.shape[0] - rows.entry_row.shape[0]),
                 "z_seconds": round(t_z, 3), "seconds": round(time.perf_counter() - started, 3)})
    return MemitDelta(out, info, z[: int(rows.entry_row.shape[0])].detach().cpu())


def _solve(model, spec, layers, groups, z, solver, moms, weights, last_block, progress) -> dict[int, LayerDelta]:
    """Spread ``z - h`` over ``layers``, lowest first; each layer's share is added to ``weights``
    before the next layer's keys are read. Returns the per-layer factors."""
    out: dict[int, LayerDelta] = {}
    n_edit = int(groups[0].entry_row.shape[0])
    for i, layer in enumerate(layers):
        proj = model.get_submodule(spec.mlp_out_path(layer))
        ks, curs = [], []
        for g in groups:
            keys: list[torch.Tensor] = []
            cur: list[torch.Tensor] = []
            with torch.no_grad(), capture_input(proj, keys), capture_output(last_block, cur):
                run(model, g.enc)
            kdev, cdev = keys[0].device, cur[0].device
            ks.append(keys[0][g.entry_row.to(kdev), g.entry_pos.to(kdev)])
            curs.append(cur[0][g.entry_row.to(cdev), g.entry_pos.to(cdev)])
        k = torch.cat(ks).to(torch.float64).T                                  # (d_in, columns)
        kdev = k.device
        resid = (z - torch.cat(curs).float()).to(device=kdev, dtype=torch.float64).T  # (d_out, columns)
        resid = resid / (len(layers) - i)
        adj = solver.adjusted_keys(layer, moms[layer], k)                         # (d_in, columns)
        d = LayerDelta(resid.float().cpu(), adj.float().cpu(), k[:, :n_edit].float().cpu())
        out[layer] = d
        weights.add(layer, d)
        if progress:
            progress("layers", i + 1, len(layers))
    return out


@torch.no_grad()
def _check(model, rows, last_block, wanted: torch.Tensor, h0: torch.Tensor,
           min_prob: float = 0.0) -> tuple[torch.Tensor, float]:
    """Per prompt of the edit, whether every target token is ranked first (greedy says it) with at
    least ``min_prob`` probability; and the share of ``wanted - h0`` written at the edit's key columns."""
    cur: list[torch.Tensor] = []
    with capture_output(last_block, cur), prompts_end_at(model, rows.enc.prompt_last):
        logits = model(input_ids=rows.enc.input_ids, attention_mask=rows.enc.attention_mask).logits
    logits = gather_target(logits, rows.enc)
    gold = target_token_ids(rows.enc).to(logits.device)
    ok = logits.argmax(-1) == gold
    if min_prob > 0:
        p = torch.softmax(logits.float(), -1).gather(-1, gold.clamp(min=0)[..., None])[..., 0]
        ok = ok & (p >= min_prob)
    held = (ok | (gold == -100)).all(1)
    cdev = cur[0].device
    now = cur[0][rows.entry_row.to(cdev), rows.entry_pos.to(cdev)].float()
    start = float((wanted.to(cdev) - h0.to(cdev)).norm())
    return held, 1.0 - float((wanted.to(cdev) - now).norm()) / max(start, 1e-12)


@torch.no_grad()
def _at_last_block(model, spec, layers, rows) -> torch.Tensor:
    cur: list[torch.Tensor] = []
    with capture_output(model.get_submodule(spec.block_path(layers[-1])), cur):
        run(model, rows.enc)
    cdev = cur[0].device
    return cur[0][rows.entry_row.to(cdev), rows.entry_pos.to(cdev)].float()


def apply(weights, delta: MemitDelta, sign: float = 1.0) -> None:
    """Add (``sign=1``) or take back (``sign=-1``) a delta's factors."""
    for layer, d in delta.layers.items():
        weights.add(layer, d, sign=sign)
