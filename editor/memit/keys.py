"""Locating MEMIT's keys: which rows and token positions carry a fact's δ and key columns.

A key is the input of a layer's MLP output projection at the key position: the subject's last
token (``subject_last``, right for pretrained LLMs that recall at the subject) or the prompt's
last token (``last``, right for small from-scratch models that retrieve at the final token).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from editor.encoding import Encoded, TextCodec
from editor.hooks import prompts_end_at
from editor.memit.config import MemitHparams
from editor.request import Request
from editor.verbalize import Prompt


@dataclass
class Rows:
    """The encoded prompts and the positions where a δ is added (one *entry* per row and slot).

    Slot 0 of a fact is its key position. With ``z_span="answer"``, slot ``j ≥ 1`` is the position
    of the answer's ``j``-th token (the one that predicts token ``j + 1``): a small model carries
    the rest of a multi-token answer from there, not from the key position alone. Every prompt of
    a fact shares the fact's δ for each slot; each (prompt, slot) is its own key column.
    """

    enc: Encoded
    fact_of_row: torch.Tensor  # (rows,)
    entry_row: torch.Tensor    # (entries,)
    entry_pos: torch.Tensor    # (entries,)
    entry_param: torch.Tensor  # (entries,) index of the δ row the entry uses
    param_fact: torch.Tensor   # (params,) fact of each δ row
    key_param: torch.Tensor    # (facts,) the δ row at each fact's key position (slot 0)


def locate(codec: TextCodec, requests: Sequence[Request], hp: MemitHparams, device) -> Rows:
    prompts, targets, owner = [], [], []
    for i, r in enumerate(requests):
        for p in r.prompts:
            prompts.append(p)
            targets.append(r.target)
            owner.append(i)
    enc = codec.encode(prompts, targets, device, need_subject=hp.key_position == "subject_last")
    key_pos = (enc.subject_last if hp.key_position == "subject_last" else enc.prompt_last).tolist()
    last = enc.prompt_last.tolist()
    lengths = enc.target_lengths.tolist()
    slots = [1 if hp.z_span == "key" else max(int(n), 1) for n in lengths]
    first_param, param_fact = {}, []
    for row, f in enumerate(owner):
        if f not in first_param:
            first_param[f] = len(param_fact)
            param_fact.extend([f] * slots[row])
    e_row, e_pos, e_param = [], [], []
    for row, f in enumerate(owner):
        for j in range(slots[row]):
            e_row.append(row)
            e_pos.append(key_pos[row] if j == 0 else last[row] + j)
            e_param.append(first_param[f] + j)

    def t(x):
        return torch.tensor(x, dtype=torch.long, device=device)
    return Rows(enc, t(owner), t(e_row), t(e_pos), t(e_param), t(param_fact),
                 t([first_param[f] for f in range(len(requests))]))


def subset(r: Rows, keep_row: torch.Tensor) -> Rows:
    """The rows where ``keep_row`` is true, with entries renumbered (δ rows keep their indices)."""
    idx = keep_row.nonzero()[:, 0]
    new_index = torch.cumsum(keep_row.long(), 0) - 1
    e = keep_row[r.entry_row]
    return Rows(r.enc.rows(idx), r.fact_of_row[idx], new_index[r.entry_row[e]], r.entry_pos[e], r.entry_param[e],
                 r.param_fact, r.key_param)


def kl_rows(codec: TextCodec, requests: Sequence[Request], key_param: torch.Tensor, hp: MemitHparams,
            device) -> Rows:
    """MEMIT's 'essence' prompts ("{subject} is a"): their next-token distribution should not move.
    Their δ sits at the same key position as the edit prompts' (the subject's last token, or the
    prompt's last token)."""
    prompts = [Prompt(f"{r.subject} is a", "", r.subject) for r in requests]
    subject = hp.key_position == "subject_last"
    enc = codec.encode(prompts, None, device, need_subject=subject)
    idx = torch.arange(len(requests), device=device)
    return Rows(enc, idx, idx, enc.subject_last if subject else enc.prompt_last, key_param, idx, key_param)


def run(model, enc: Encoded):
    """One teacher-forced pass over ``enc``, with its prompt ends told to prompt-aware hooks."""
    with prompts_end_at(model, enc.prompt_last):
        return model(input_ids=enc.input_ids, attention_mask=enc.attention_mask)
