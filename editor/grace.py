"""GRACE: lifelong editing with a codebook at one layer; the model's weights are never touched.

(Hartvigsen et al., 2023.) At the chosen layer's MLP output projection, a codebook of
``(key, value, radius)`` entries sits beside the weights. When a prompt's key — the projection's
input at the prompt's last token — lies within an entry's radius of that entry's key, the
projection's output is replaced by the entry's value from that token on; otherwise the layer runs
as before. New edits add entries; an edit whose key falls inside an entry with the same answer
*grows* that entry's radius, one with a different answer *splits* the two (both radii halve to the
distance between them), as in the paper.

What differs from EasyEdit's GRACE:

* the key is read **once, at the prompt's last token**, and the decision is kept for every token
  generated after it — with the KV cache on, later forward passes see one new token each, and
  reading a key from each of those (what EasyEdit does) applies or drops the edit at random;
* lookup is one vectorised distance computation over the whole codebook;
* every entry is tagged with its edit id. The codebook is a deterministic function of the ordered
  list of edits (keys, value, answer per edit), so removing an edit replays the others and the
  result is exactly the codebook that edit never touched;
* an edit writes one key per prompt it is given (the relation's training templates), sharing one
  value, so a paraphrase lands inside some entry far more often than with the single key of the
  paper — see the generality numbers in the editor docs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

#: keys closer than this (relative to the key's norm) are the same prompt read again
SAME_KEY = 1e-6

from editor import arch
from editor.hparams import GraceHparams
from editor.hooks import PROMPT_LAST, at_positions, capture_input
from editor.probe import TextCodec, fact_nll_at_targets, step_active
from editor.verbalize import Prompt

#: keys closer than this (relative to the key's norm) are the same prompt read again
SAME_KEY = 1e-6


@dataclass
class GraceEdit:
    """What one edit contributes: its keys (one per prompt), one value, the answer it writes."""

    edit_id: str
    keys: torch.Tensor    # (n_keys, d_in) float32, CPU
    value: torch.Tensor   # (d_out,) float32, CPU
    target: str
    epsilon: float


class Codebook:
    """Entries derived from an ordered edit log by GRACE's add / grow / split rules."""

    def __init__(self, distance: str = "euclidean"):
        self.distance = distance
        self.log: list[GraceEdit] = []
        self.keys = torch.empty(0, 0)
        self.values = torch.empty(0, 0)
        self.radii = torch.empty(0)
        self.owner: list[str] = []      # edit id per entry
        self.answer: list[str] = []     # target per entry
        self.value_index: list[int] = []

    def __len__(self) -> int:
        return len(self.owner)

    def edit_ids(self) -> list[str]:
        return [e.edit_id for e in self.log]

    def dist(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        if self.distance == "cosine":
            q = torch.nn.functional.normalize(query.float(), dim=-1)
            k = torch.nn.functional.normalize(keys.float(), dim=-1)
            return 1.0 - q @ k.T
        return torch.cdist(query.float(), keys.float())

    def add(self, edit: GraceEdit) -> dict:
        self.log.append(edit)
        return self._insert(edit)

    def remove(self, edit_id: str) -> int:
        """Drop an edit and rebuild from the others; returns how many entries went."""
        before = len(self)
        kept = [e for e in self.log if e.edit_id != edit_id]
        if len(kept) == len(self.log):
            return 0
        self.rebuild(kept)
        return before - len(self)

    def rebuild(self, log: Sequence[GraceEdit]) -> None:
        self.log = []
        self.keys = torch.empty(0, 0)
        self.values = torch.empty(0, 0)
        self.radii = torch.empty(0)
        self.owner, self.answer, self.value_index = [], [], []
        for e in log:
            self.add(e)

    def _insert(self, edit: GraceEdit) -> dict:
        added = grown = split = superseded = 0
        vrow = len(self.log) - 1
        for key in edit.keys:
            if len(self):
                d = self.dist(key[None], self.keys)[0]
                i = int(d.argmin())
                di = float(d[i])
                if di < float(self.radii[i]) + edit.epsilon:
                    if self.answer[i] != edit.target and di <= SAME_KEY * max(1.0, float(key.norm())):
                        # the very prompt of an earlier edit, now with another answer: the later edit
                        # wins (a fact edited twice), where the paper's split would leave both radii
                        # at zero and the prompt to the unedited model
                        self.owner[i], self.answer[i], self.value_index[i] = edit.edit_id, edit.target, vrow
                        superseded += 1
                        continue
                    if self.answer[i] == edit.target:
                        self.radii[i] = max(float(self.radii[i]), di)  # grow: the entry now covers the key
                        grown += 1
                        continue
                    half = di / 2  # split: two entries with different answers stop overlapping
                    self.radii[i] = min(float(self.radii[i]), half)
                    self._append(key, edit, half, vrow)
                    split += 1
                    continue
            self._append(key, edit, edit.epsilon, vrow)
            added += 1
        if superseded and not (added or split):
            self.values = torch.stack([e.value.float() for e in self.log])
        return {"added": added, "grown": grown, "split": split, "superseded": superseded}

    def _append(self, key: torch.Tensor, edit: GraceEdit, radius: float, vrow: int) -> None:
        key = key.float()[None]
        self.keys = key if self.keys.numel() == 0 else torch.cat([self.keys, key])
        self.radii = torch.cat([self.radii, torch.tensor([radius])])
        self.owner.append(edit.edit_id)
        self.answer.append(edit.target)
        self.value_index.append(vrow)
        self.values = torch.stack([e.value.float() for e in self.log])

    def entry_values(self) -> torch.Tensor:
        return self.values[torch.tensor(self.value_index, dtype=torch.long)]

    # -- persistence -------------------------------------------------------------------------
    def tensors(self) -> tuple[dict[str, torch.Tensor], dict]:
        tensors, meta = {}, {"distance": self.distance, "edits": []}
        for i, e in enumerate(self.log):
            tensors[f"e{i}.keys"] = e.keys.contiguous()
            tensors[f"e{i}.value"] = e.value.contiguous()
            meta["edits"].append({"edit_id": e.edit_id, "target": e.target, "epsilon": e.epsilon})
        return tensors, meta

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], meta: dict) -> Codebook:
        book = cls(meta.get("distance", "euclidean"))
        book.rebuild([GraceEdit(m["edit_id"], tensors[f"e{i}.keys"], tensors[f"e{i}.value"],
                                m["target"], float(m["epsilon"]))
                      for i, m in enumerate(meta["edits"])])
        return book


class GraceAdapter:
    """Hooks the codebook into a model at one layer. ``attach`` once; edits can come and go."""

    def __init__(self, model, hp: GraceHparams, codebook: Codebook | None = None):
        self.model = model
        self.hp = hp
        self.layer = hp.resolve_layer(arch.num_layers(model))
        self.module = model.get_submodule(arch.arch_of(model).mlp_out_path(self.layer))
        self.codebook = codebook or Codebook(hp.distance)
        self.enabled = True
        self._positions: torch.Tensor | None = None   # explicit key positions (teacher forcing)
        self._continuing = False                       # this pass extends a KV cache
        self._rows: torch.Tensor | None = None         # entry per row chosen at the prompt (-1: none)
        self._override: tuple[torch.Tensor, torch.Tensor] | None = None  # (row values, row mask) while optimising
        self._handles: list = []
        self._device_cache: tuple | None = None

    # -- wiring ------------------------------------------------------------------------------
    def attach(self) -> GraceAdapter:
        if not self._handles:
            self._handles.append(self.model.register_forward_pre_hook(self._model_pre, with_kwargs=True))
            self._handles.append(self.module.register_forward_hook(self._hook))
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def _model_pre(self, module, args, kwargs):
        cache = kwargs.get("past_key_values")
        length = 0
        if cache is not None:
            try:
                length = int(cache.get_seq_length())
            except (AttributeError, TypeError):
                length = 0
        self._continuing = length > 0
        return None

    @contextmanager
    def reading_at(self, positions: torch.Tensor) -> Iterator[None]:
        """Read keys at these per-row positions (a teacher-forced pass over prompt + target)."""
        old = self._positions
        self._positions = positions
        try:
            yield
        finally:
            self._positions = old

    def _tensors(self, device, dtype):
        if self._device_cache is None or self._device_cache[0] != (len(self.codebook), device, dtype, id(self.codebook.keys)):
            book = self.codebook
            self._device_cache = ((len(book), device, dtype, id(book.keys)), book.keys.to(device),
                                  book.radii.to(device), book.entry_values().to(device=device, dtype=dtype))
        return self._device_cache[1:]

    def invalidate(self) -> None:
        self._device_cache = None

    def lookup(self, query: torch.Tensor) -> torch.Tensor:
        """Entry index per query row, or -1 where no entry's radius covers it."""
        if not len(self.codebook):
            return torch.full((query.shape[0],), -1, dtype=torch.long, device=query.device)
        keys, radii, _ = self._tensors(query.device, query.dtype)
        d = self.codebook.dist(query, keys)
        best, idx = d.min(dim=1)
        return torch.where(best <= radii[idx], idx, torch.full_like(idx, -1))

    def _hook(self, module, args, output):
        if not self.enabled or (not len(self.codebook) and self._override is None):
            return None
        hidden = output[0] if isinstance(output, tuple) else output
        x = args[0]
        b, t = hidden.shape[0], hidden.shape[1]
        dev = hidden.device
        if self._continuing and self._rows is not None and self._positions is None:
            start = torch.zeros(b, dtype=torch.long, device=dev)   # every new token follows the prompt
            rows = self._rows
        else:
            pos = self._positions if self._positions is not None else PROMPT_LAST.get()
            if pos is None or len(pos) != b:
                pos = torch.full((b,), t - 1, device=dev)
            pos = pos.to(dev)
            start = pos
            rows = self.lookup(at_positions(x, pos)) if len(self.codebook) else torch.full((b,), -1, device=dev)
            self._rows = rows
        if self._override is not None:
            vals, on = self._override
            apply = on
        else:
            apply = rows >= 0
            if not bool(apply.any()):
                return None
            _, _, entry_values = self._tensors(dev, hidden.dtype)
            vals = entry_values[rows.clamp(min=0)]
        span = torch.arange(t, device=dev)[None, :] >= start[:, None]
        mask = (span & apply[:, None])[:, :, None]
        new = torch.where(mask, vals[:, None, :].to(hidden.dtype), hidden)
        return (new, *output[1:]) if isinstance(output, tuple) else new

    # -- editing -----------------------------------------------------------------------------
    def compute(self, codec: TextCodec, edits: Sequence[tuple[str, Sequence[Prompt], str]], *,
                progress: Callable[[int, int], None] | None = None) -> tuple[list[GraceEdit], dict]:
        """Keys and optimised values for ``(edit_id, prompts, target)`` items; the codebook is unchanged."""
        started = time.perf_counter()
        device = next(self.model.parameters()).device
        prompts, targets, owner = [], [], []
        for i, (_, ps, target) in enumerate(edits):
            for p in ps:
                prompts.append(p)
                targets.append(target)
                owner.append(i)
        enc = codec.encode(prompts, targets, device)
        owner_t = torch.tensor(owner, device=device)
        n = len(edits)
        pos = enc.subject_last if self.hp.key_position == "subject_last" else enc.prompt_last
        was = self.enabled
        self.enabled = False
        try:
            with torch.no_grad():
                keys_in: list[torch.Tensor] = []
                outs: list[torch.Tensor] = []
                h = self.module.register_forward_hook(lambda m, a, o: outs.append(o[0] if isinstance(o, tuple) else o))
                try:
                    with capture_input(self.module, keys_in):
                        self.model(input_ids=enc.input_ids, attention_mask=enc.attention_mask)
                finally:
                    h.remove()
                keys = at_positions(keys_in[0], pos).float()
                base = at_positions(outs[0], pos).float()
            counts = torch.bincount(owner_t, minlength=n).clamp(min=1).float()[:, None]
            init = torch.zeros(n, base.shape[1], device=device).index_add_(0, owner_t, base) / counts
            values = init.clone().requires_grad_(True)
            opt = torch.optim.Adam([values], lr=self.hp.value_lr)
            requires = [p.requires_grad for p in self.model.parameters()]
            for p in self.model.parameters():
                p.requires_grad_(False)
            self.enabled = True
            saved_book = self.codebook
            self.codebook = Codebook(self.hp.distance)  # optimise against the unedited layer
            active = torch.ones(n, dtype=torch.bool, device=device)
            steps = 0
            try:
                for step in range(self.hp.value_steps):
                    steps = step + 1
                    self._override = (values[owner_t], torch.ones(len(prompts), dtype=torch.bool, device=device))
                    with self.reading_at(pos):
                        nll = fact_nll_at_targets(self.model, enc, owner_t, n)
                    with torch.no_grad():
                        active &= nll.detach() > self.hp.stop_loss
                    if progress:
                        progress(step + 1, self.hp.value_steps)
                    if not bool(active.any()):
                        break
                    step_active(opt, values, nll, active)
            finally:
                self._override = None
                self.codebook = saved_book
                self.invalidate()
                for p, r in zip(self.model.parameters(), requires, strict=True):
                    p.requires_grad_(r)
        finally:
            self.enabled = was
        out = []
        for i, (edit_id, _, target) in enumerate(edits):
            sel = owner_t == i
            out.append(GraceEdit(edit_id, keys[sel].detach().cpu(), values[i].detach().float().cpu(),
                                 target, self.hp.epsilon))
        return out, {"value_steps": steps, "unconverged": int(active.sum()),
                     "seconds": round(time.perf_counter() - started, 3)}

    def apply(self, edits: Sequence[GraceEdit]) -> dict:
        totals = {"added": 0, "grown": 0, "split": 0, "superseded": 0}
        for e in edits:
            for k, v in self.codebook.add(e).items():
                totals[k] += v
        self.invalidate()
        return totals

    def remove(self, edit_id: str) -> int:
        n = self.codebook.remove(edit_id)
        self.invalidate()
        return n
