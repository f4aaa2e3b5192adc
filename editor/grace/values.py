"""GRACE's edit: read each prompt's key, and optimise one value per edit that makes every prompt
of the edit continue with its answer when the value replaces the layer from the key on."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from editor.encoding import TextCodec
from editor.grace.codebook import GraceEdit
from editor.grace.router import GraceAdapter
from editor.hooks import at_positions, capture_input, capture_output
from editor.memit.keys import run
from editor.placement import input_device
from editor.probe import fact_nll_at_targets, step_active
from editor.verbalize import Prompt


def compute(adapter: GraceAdapter, codec: TextCodec, edits: Sequence[tuple[str, Sequence[Prompt], str]], *,
            progress: Callable[[int, int], None] | None = None) -> tuple[list[GraceEdit], dict]:
    """Keys and optimised values for ``(edit_id, prompts, target)`` items; the codebook and the
    model are unchanged."""
    started = time.perf_counter()
    model, hp = adapter.model, adapter.hp
    device = input_device(model)
    prompts, targets, owner = [], [], []
    for i, (_, ps, target) in enumerate(edits):
        for p in ps:
            prompts.append(p)
            targets.append(target)
            owner.append(i)
    subject = hp.key_position == "subject_last"
    enc = codec.encode(prompts, targets, device, need_subject=subject)
    n = len(edits)
    pos = enc.subject_last if subject else enc.prompt_last
    was = adapter.enabled
    adapter.enabled = False   # keys and the starting value come from the layer without the codebook
    try:
        with torch.no_grad():
            keys_in: list[torch.Tensor] = []
            outs: list[torch.Tensor] = []
            with capture_input(adapter.module, keys_in), capture_output(adapter.module, outs):
                run(model, enc)
            keys = at_positions(keys_in[0], pos).float()
            base = at_positions(outs[0], pos).float()
    finally:
        adapter.enabled = was
    vdev = base.device
    owner_t = torch.tensor(owner, device=vdev)
    counts = torch.bincount(owner_t, minlength=n).clamp(min=1).float()[:, None]
    init = torch.zeros(n, base.shape[1], device=vdev).index_add_(0, owner_t, base) / counts
    values = init.clone().requires_grad_(True)
    opt = torch.optim.Adam([values], lr=hp.value_lr)
    requires = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    active = torch.ones(n, dtype=torch.bool, device=vdev)
    nll_seen = torch.full((n,), float("inf"), device=vdev)
    steps = 0
    try:
        for step in range(hp.value_steps):
            steps = step + 1
            with adapter.overriding(values[owner_t], pos.to(vdev)):
                nll = fact_nll_at_targets(model, enc, owner_t, n).to(vdev)
            with torch.no_grad():
                nll_seen = nll.detach()
                active &= nll_seen > hp.stop_loss
            if progress:
                progress(step + 1, hp.value_steps)
            if not bool(active.any()):
                break
            step_active(opt, values, nll, active)
    finally:
        for p, r in zip(model.parameters(), requires, strict=True):
            p.requires_grad_(r)
    out = []
    keys_cpu, owner_cpu = keys.detach().cpu(), owner_t.cpu()
    for i, (edit_id, _, target) in enumerate(edits):
        out.append(GraceEdit(edit_id, keys_cpu[owner_cpu == i], values[i].detach().float().cpu(), target, hp.epsilon))
    return out, {"value_steps": steps, "unconverged": int(active.sum()),
                 "unconverged_ids": [edits[i][0] for i in range(n) if bool(active[i])],
                 "final_nll": [round(float(x), 5) for x in nll_seen.tolist()],
                 "seconds": round(time.perf_counter() - started, 3)}
