"""GRACE in the forward pass: where the codebook decides, and where its value replaces the layer.

The decision is made **once per prompt**, at the end of the prompt, and then holds for every token
that follows it in the same sequence:

* ``key_position: last`` — the key is the projection's input at the prompt's last token;
* ``key_position: subject_last`` — the edit was written at the subject's last token, which a
  generating model cannot locate, so every prompt token is looked up and the first one inside an
  entry's radius decides (the subject's last token, for an edited prompt).

From the deciding token on, the layer's output is the entry's value. Where the prompt ends:

* in a pass over a fresh sequence (no cache, or an empty one), it is the last real token, unless
  the caller said otherwise (:func:`editor.hooks.prompts_end_at`, which every teacher-forced pass
  of the editor uses: MEMIT, evaluation, the value optimisation);
* in a pass that extends a KV cache, the prompt was seen in the pass that filled the cache: its
  decision is kept per cache object (weakly, so it goes with the cache) and applies to every new
  token. Beam search reorders cache rows only among the beams of one prompt, which share the
  decision;
* inside ``model.generate`` (wrapped while the adapter is attached), the first pass is the prompt
  and later passes reuse its decision with or without the KV cache, so ``use_cache=False`` gives
  the same tokens as ``use_cache=True``.

The hooks sit on the module that owns the blocks, so passes that go through the base model
directly are handled like passes through the LM head. Nothing outlives the call it was made for.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from editor import arch
from editor.grace.codebook import Codebook
from editor.grace.config import GraceHparams
from editor.hooks import hidden_of, with_hidden

_MISSING = object()


@dataclass
class Decision:
    entries: torch.Tensor   # (rows,) codebook entry per row, -1: none
    at: torch.Tensor        # (rows,) position of the deciding token in the prompt pass


@dataclass
class _Pass:
    decision: Decision | None      # known before the pass (a continued sequence)
    continuing: bool               # the pass's tokens all follow the prompt (KV cache)
    prompt_last: torch.Tensor | None
    mask: torch.Tensor | None      # (rows, length) attention mask of a fresh pass
    sinks: list                    # where a decision made in this pass is kept


class _Generation:
    """One ``generate`` call: the decision made on its first pass."""

    decision: Decision | None = None


def _seq_length(cache) -> int:
    if cache is None:
        return 0
    try:
        return int(cache.get_seq_length())
    except (AttributeError, TypeError):
        return 0


class GraceAdapter:
    """Hooks the codebook into a model at one layer. ``attach`` once; edits can come and go."""

    def __init__(self, model, hp: GraceHparams, codebook: Codebook | None = None):
        self.model = model
        self.hp = hp
        self.layer = hp.resolve_layer(arch.num_layers(model))
        self.module = model.get_submodule(arch.arch_of(model).mlp_out_path(self.layer))
        self.base = arch.base_model_of(model)
        self.codebook = codebook or Codebook(hp.distance)
        self.enabled = True
        self._local = threading.local()
        self._by_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._override: tuple[torch.Tensor, torch.Tensor] | None = None  # (values per row, start per row)
        self._handles: list = []
        self._saved_generate = _MISSING
        self._device_cache: tuple | None = None

    # -- wiring ----------------------------------------------------------------------------------
    def attach(self) -> GraceAdapter:
        if self._handles:
            return self
        self._handles = [
            self.base.register_forward_pre_hook(self._enter, with_kwargs=True),
            self.base.register_forward_hook(self._leave, always_call=True),
            self.module.register_forward_hook(self._replace),
        ]
        self._saved_generate = self.model.__dict__.get("generate", _MISSING)
        inner = self.model.generate

        @functools.wraps(inner)
        def generate(*args, **kwargs):
            with self._generation():
                return inner(*args, **kwargs)

        self.model.generate = generate
        return self

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        if self._saved_generate is _MISSING:
            self.model.__dict__.pop("generate", None)
        else:
            self.model.generate = self._saved_generate
        self._saved_generate = _MISSING

    def _stack(self, name: str) -> list:
        got = getattr(self._local, name, None)
        if got is None:
            got = []
            setattr(self._local, name, got)
        return got

    @contextmanager
    def _generation(self) -> Iterator[None]:
        stack = self._stack("generations")
        stack.append(_Generation())
        try:
            yield
        finally:
            stack.pop()

    @contextmanager
    def prompts_end_at(self, positions: torch.Tensor) -> Iterator[None]:
        """Passes inside are over prompt + continuation; ``positions`` are the prompts' last tokens."""
        stack = self._stack("marks")
        stack.append(positions)
        try:
            yield
        finally:
            stack.pop()

    # -- per pass ----------------------------------------------------------------------------------
    def _enter(self, module, args, kwargs):
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        generations = self._stack("generations")
        gen = generations[-1] if generations else None
        if _seq_length(cache) > 0:
            decision = gen.decision if gen is not None and gen.decision is not None else self._by_cache.get(cache)
            p = _Pass(decision, True, None, None, [])
        elif gen is not None and gen.decision is not None:
            p = _Pass(gen.decision, False, None, None, [])   # generate without a cache: a longer sequence
        else:
            marks = self._stack("marks")
            sinks = [x for x in (gen, cache) if x is not None]
            mask = kwargs.get("attention_mask")
            p = _Pass(None, False, marks[-1] if marks else None,
                      mask if isinstance(mask, torch.Tensor) and mask.ndim == 2 else None, sinks)
        self._stack("passes").append(p)
        return None

    def _leave(self, module, args, output):
        passes = self._stack("passes")
        if passes:
            passes.pop()
        return None

    # -- the codebook on the model's device ----------------------------------------------------------
    def _tensors(self, device, dtype):
        book = self.codebook
        key = (id(book), book.version, str(device), dtype)
        if self._device_cache is None or self._device_cache[0] != key:
            self._device_cache = (key, book.keys.to(device), book.radii.to(device),
                                  book.entry_values().to(device=device, dtype=dtype))
        return self._device_cache[1:]

    def invalidate(self) -> None:
        self._device_cache = None

    def lookup(self, query: torch.Tensor) -> torch.Tensor:
        """Entry index per query row, or -1 where no entry's radius covers it."""
        keys, radii, _ = self._tensors(query.device, query.dtype)
        return self.codebook.lookup(query, keys, radii)

    def _decide(self, x: torch.Tensor, p: _Pass | None) -> Decision:
        b, t = x.shape[0], x.shape[1]
        dev = x.device
        if p is not None and p.prompt_last is not None and len(p.prompt_last) == b:
            last = p.prompt_last.to(dev)
        elif p is not None and p.mask is not None and p.mask.shape == (b, t):
            # the last real token (right padding); left padding ends every row at t - 1
            m = p.mask.to(dev).long()
            last = torch.where(m[:, -1] > 0, torch.full((b,), t - 1, device=dev),
                               m.sum(1) - 1).clamp(min=0)
        else:
            last = torch.full((b,), t - 1, device=dev)
        rows = torch.arange(b, device=dev)
        if self.hp.key_position == "last":
            return Decision(self.lookup(x[rows, last]), last)
        # subject_last: the first prompt token whose key falls inside an entry
        hits = self.lookup(x.reshape(b * t, -1)).reshape(b, t)
        pos = torch.arange(t, device=dev)[None, :]
        valid = pos <= last[:, None]
        if p is not None and p.mask is not None and p.mask.shape == (b, t):
            valid &= p.mask.to(dev).bool()
        hit = (hits >= 0) & valid
        first = torch.where(hit, pos, torch.full_like(pos, t)).min(dim=1).values
        found = first < t
        entries = torch.where(found, hits[rows, first.clamp(max=t - 1)], torch.full_like(first, -1))
        return Decision(entries, torch.where(found, first, last))

    def _replace(self, module, args, output):
        if not self.enabled:
            return None
        hidden = hidden_of(output)
        b, t = hidden.shape[0], hidden.shape[1]
        dev = hidden.device
        if self._override is not None:           # optimising values: every row, from its key position
            vals, start = self._override
            apply = torch.ones(b, dtype=torch.bool, device=dev)
        else:
            if not len(self.codebook):
                return None
            passes = self._stack("passes")
            p = passes[-1] if passes else None
            if p is not None and p.continuing and p.decision is None:
                return None  # a cache this adapter never saw the prompt of: no decision to keep
            if p is not None and p.decision is not None and len(p.decision.entries) == b:
                decision = p.decision
                start = torch.zeros(b, dtype=torch.long, device=dev) if p.continuing else decision.at.to(dev)
            else:
                decision = self._decide(args[0], p)
                start = decision.at
                for sink in (p.sinks if p is not None else ()):
                    if isinstance(sink, _Generation):
                        sink.decision = decision
                    else:
                        try:
                            self._by_cache[sink] = decision
                        except TypeError:  # a cache type that cannot be weakly referenced
                            pass
            entries = decision.entries.to(dev)
            apply = entries >= 0
            if not bool(apply.any()):
                return None
            _, _, values = self._tensors(dev, hidden.dtype)
            vals = values[entries.clamp(min=0)]
        span = torch.arange(t, device=dev)[None, :] >= start.to(dev)[:, None]
        mask = (span & apply[:, None])[:, :, None]
        return with_hidden(output, torch.where(mask, vals[:, None, :].to(hidden.dtype), hidden))

    @contextmanager
    def overriding(self, values: torch.Tensor, start: torch.Tensor) -> Iterator[None]:
        """Replace the layer's output by ``values[row]`` from ``start[row]`` on, in every row."""
        old = self._override
        self._override = (values, start)
        try:
            yield
        finally:
            self._override = old
