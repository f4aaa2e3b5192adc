"""Prompt + target -> token ids, the way the model will see them when it generates.

One joint tokenisation of ``prompt.text + target`` with character offsets gives every id the
editors and the probes use:

* the tokenizer's own leading special tokens (LLaMA/Mistral's BOS) go first, because the model
  always saw them; a tokenizer that adds none (GPT-2) gets none;
* the target's ids are the tokens that *follow the prompt* in that joint encoding, so a
  SentencePiece tokenizer gives ``▁Paris`` after ``▁is`` rather than the ``▁ ▁Paris`` it gives for
  " Paris" alone, and byte-level BPE gives ``ĠParis`` as it would in running text;
* the subject's last token comes from the subject's character span, and a subject that is not in
  its prompt is an error that names both (never a silent fall back to another position).

Models with an end-of-fact token (the default knowledge model) append it to every target, so
"Paris" and "Paris Saint-Germain" are different answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from editor.verbalize import Prompt
from oneedit.core import OneEditError

_CACHE_LIMIT = 200_000


class SubjectNotInPromptError(OneEditError):
    pass


@dataclass(frozen=True, slots=True)
class Encoded:
    input_ids: torch.Tensor       # (rows, length), right-padded
    attention_mask: torch.Tensor  # (rows, length)
    labels: torch.Tensor          # (rows, length): target ids at the positions that predict them, else -100
    prompt_last: torch.Tensor     # (rows,) index of each prompt's last token
    subject_last: torch.Tensor    # (rows,) index of the subject's last token (prompt_last where not asked for)
    target_lengths: torch.Tensor  # (rows,)

    def rows(self, idx: torch.Tensor) -> Encoded:
        return Encoded(self.input_ids[idx], self.attention_mask[idx], self.labels[idx], self.prompt_last[idx],
                       self.subject_last[idx], self.target_lengths[idx])


@dataclass(frozen=True, slots=True)
class Pair:
    prompt: tuple[int, ...]     # leading special tokens + the prompt's tokens
    target: tuple[int, ...]     # the target's tokens in context (+ end of fact)
    subject_last: int | None    # index into ``prompt`` of the subject's last token; None: no subject given


class TextCodec:
    """Tokenises prompts and targets for one model, caching joint encodings."""

    def __init__(self, tokenizer, *, end_of_fact: bool = False):
        self.tokenizer = tokenizer
        self.end_of_fact = end_of_fact and tokenizer.eos_token_id is not None
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (
            tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0)
        self.prefix = tuple(self._leading_special_ids())
        self._pairs: dict[tuple[str, str, str], Pair] = {}
        self._texts: dict[str, list[int]] = {}

    def _leading_special_ids(self) -> list[int]:
        """The ids the tokenizer puts before any text (BOS for LLaMA-like tokenizers, none for GPT-2)."""
        probe = "Paris"
        plain = self.tokenizer(probe, add_special_tokens=False)["input_ids"]
        full = self.tokenizer(probe, add_special_tokens=True)["input_ids"]
        for start in range(len(full) - len(plain) + 1):
            if full[start: start + len(plain)] == plain:
                return full[:start]
        return []

    # -- single texts ----------------------------------------------------------------------------
    def ids(self, text: str) -> list[int]:
        """A text's tokens as the model reads it: leading special tokens, then the text."""
        got = self._texts.get(text)
        if got is None:
            got = list(self.prefix) + self.tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(self._texts) < _CACHE_LIMIT:
                self._texts[text] = got
        return got

    # -- prompt + target -------------------------------------------------------------------------
    def pair(self, prompt: Prompt, target: str | None = None, *, need_subject: bool = False) -> Pair:
        target = prompt.target if target is None else target
        key = (prompt.text, target, prompt.subject if need_subject else "")
        got = self._pairs.get(key)
        if got is None:
            got = self._encode_pair(prompt, target, need_subject)
            if len(self._pairs) < _CACHE_LIMIT:
                self._pairs[key] = got
        return got

    def _encode_pair(self, prompt: Prompt, target: str, need_subject: bool) -> Pair:
        text = prompt.text
        enc = self.tokenizer(text + target, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        cut = len(text)
        # tokens that end inside the prompt belong to it; a token that straddles the boundary
        # (the prompt's last character merged with the target's first) makes the split ambiguous
        n_prompt = sum(1 for (s, e) in offsets if e <= cut and not (s == e == cut))
        straddles = any(s < cut < e for (s, e) in offsets)
        alone = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if straddles or ids[:n_prompt] != alone:
            # the joint encoding does not start with the prompt's own tokens; generation starts
            # from the prompt alone, so use that and the target's tokens in context after it
            n_prompt = len(alone)
            target_ids = [i for i, (s, e) in zip(ids, offsets, strict=True) if s >= cut and e > s]
            prompt_ids = alone
            prompt_offsets = self.tokenizer(text, add_special_tokens=False,
                                            return_offsets_mapping=True)["offset_mapping"]
        else:
            target_ids = ids[n_prompt:]
            prompt_ids = ids[:n_prompt]
            prompt_offsets = offsets[:n_prompt]
        if not prompt_ids:
            raise OneEditError(f"The prompt {text!r} has no tokens.", hint="Edit prompts need text before the answer.")
        if self.end_of_fact:
            target_ids = [*target_ids, self.tokenizer.eos_token_id]
        subject_last = None
        if need_subject:
            subject_last = len(self.prefix) + self._subject_last(prompt, prompt_offsets)
        return Pair(tuple(self.prefix) + tuple(prompt_ids), tuple(target_ids), subject_last)

    @staticmethod
    def _subject_last(prompt: Prompt, offsets) -> int:
        at = prompt.text.find(prompt.subject) if prompt.subject else -1
        if at < 0:
            raise SubjectNotInPromptError(
                f"The subject {prompt.subject!r} does not occur in the prompt {prompt.text!r}.",
                hint="Keys at the subject's last token (key_position: subject_last) need the subject "
                     "written in every prompt exactly as given; fix the prompt or the subject.",
                details={"prompt": prompt.text, "subject": prompt.subject})
        end = at + len(prompt.subject)
        last = [i for i, (s, e) in enumerate(offsets) if s < end and e > at]
        return last[-1]

    def target_ids(self, target: str, prompt: Prompt | None = None) -> list[int]:
        """The answer's ids after ``prompt`` (default: after a neutral one-word prompt)."""
        context = prompt or Prompt("It is", target, "")
        return list(self.pair(context, target).target)

    # -- batches ---------------------------------------------------------------------------------
    def encode(self, prompts: Sequence[Prompt], targets: Sequence[str] | None = None,
               device: torch.device | str = "cpu", *, need_subject: bool = False) -> Encoded:
        """Right-padded prompt + target rows for teacher-forced passes."""
        rows, labels, plast, slast, tlen = [], [], [], [], []
        for i, p in enumerate(prompts):
            pr = self.pair(p, targets[i] if targets is not None else None, need_subject=need_subject)
            pid, tid = list(pr.prompt), list(pr.target)
            rows.append(pid + tid)
            labels.append([-100] * (len(pid) - 1) + tid + [-100])
            plast.append(len(pid) - 1)
            slast.append(pr.subject_last if pr.subject_last is not None else len(pid) - 1)
            tlen.append(len(tid))
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        lab = torch.full((len(rows), width), -100, dtype=torch.long)
        for i, (r, lb) in enumerate(zip(rows, labels, strict=True)):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
            lab[i, : len(r)] = torch.tensor(lb[: len(r)])
        to = dict(device=device)
        return Encoded(ids.to(**to), mask.to(**to), lab.to(**to), torch.tensor(plast, **to),
                       torch.tensor(slast, **to), torch.tensor(tlen, **to))

    def encode_prompts_left(self, prompts: Sequence[Prompt], device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded prompt ids and mask, for generation."""
        rows = [self.ids(p.text) for p in prompts]
        return self.left_pad(rows, device)

    def left_pad(self, rows: Sequence[Sequence[int]], device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r):] = torch.tensor(list(r), dtype=torch.long)
            mask[i, width - len(r):] = 1
        return ids.to(device), mask.to(device)
