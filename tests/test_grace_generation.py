"""GRACE decides once per prompt, at the prompt's end, in every kind of pass: generation with and
without the KV cache, beam search, passes through the base model, teacher-forced passes; and no
decision outlives the call it was made in."""

from __future__ import annotations

import gc
import inspect

import pytest
import torch

from editor.probe import greedy, teacher_forced
from editor.request import Request
from editor.verbalize import Prompt
from tests import tiny_models as tm

# GRACE writes one value for the whole continuation: a random model can be made to start an
# answer with it, not to spell a long one (the trained model's test in test_editing.py does);
# generation runs on for several tokens, all of which the decision covers
EDIT = Prompt("The capital of France is", " Oslo", "France")
STEPS = 4
OTHER = Prompt("The capital of Poland is", " Warsaw", "Poland")


@pytest.fixture(scope="module", params=[("gpt2", "bytebpe", "last"), ("llama", "sentencepiece", "last"),
                                        ("qwen2", "bytebpe", "subject_last")], ids="-".join)
def edited(request):
    name, kind, key_position = request.param
    em = tm.editable(name, kind, key_position=key_position)
    before = _generate(em, [OTHER], use_cache=True)
    em.edit("g1", [Request.of([EDIT])], "grace")
    return em, before


def _generate(em, prompts, **kw):
    ids, mask = em.codec.encode_prompts_left(prompts)
    with torch.no_grad():
        out = em.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=STEPS, do_sample=False,
                                pad_token_id=em.codec.pad_id, **kw)
    return out[:, ids.shape[1]:]


def test_the_edit_decides_from_the_prompt_on(edited):
    em, before = edited
    first = em.codec.pair(EDIT).target[0]
    assert int(_generate(em, [EDIT], use_cache=True)[0, 0]) == first
    assert int(before[0, 0]) != first


def test_with_and_without_the_kv_cache_alike(edited):
    em, _ = edited
    cached = _generate(em, [EDIT, OTHER], use_cache=True)
    uncached = _generate(em, [EDIT, OTHER], use_cache=False)
    assert torch.equal(cached, uncached)


def test_beam_search_keeps_the_decision(edited):
    em, _ = edited
    beams = _generate(em, [EDIT, OTHER], num_beams=3, use_cache=True)
    assert torch.equal(beams, _generate(em, [EDIT, OTHER], num_beams=3, use_cache=False))
    em.grace.enabled = False
    try:
        plain = _generate(em, [EDIT, OTHER], num_beams=3, use_cache=True)
    finally:
        em.grace.enabled = True
    assert not torch.equal(beams[0], plain[0]) and torch.equal(beams[1], plain[1])


def test_unedited_prompts_are_untouched(edited):
    em, before = edited
    assert torch.equal(_generate(em, [OTHER], use_cache=True), before)


def test_a_decoding_loop_through_the_base_model(edited):
    """A caller that runs the base model with its own cache, token by token, gets the edit."""
    em, _ = edited
    from transformers import DynamicCache

    base = em.model.base_model
    head = em.model.get_output_embeddings()
    ids = torch.tensor([em.codec.ids(EDIT.text)])
    name = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
    cache = DynamicCache(config=em.model.config)
    got = []
    with torch.no_grad():
        out = base(input_ids=ids, use_cache=True, **{name: cache})
        for _ in range(STEPS):
            nxt = int(head(out.last_hidden_state[:, -1]).argmax(-1))
            got.append(nxt)
            pos = torch.tensor([[ids.shape[1] + len(got) - 1]])
            out = base(input_ids=torch.tensor([[nxt]]), position_ids=pos, use_cache=True, **{name: cache})
    assert got == _generate(em, [EDIT], use_cache=True)[0].tolist()
    assert got[0] == em.codec.pair(EDIT).target[0]


def test_teacher_forced_and_generated_agree(edited):
    em, _ = edited
    exact: list[bool] = []
    teacher_forced(em.model, em.codec, [EDIT, OTHER], all_correct=exact)
    assert exact == greedy(em.model, em.codec, [EDIT, OTHER])[0]


def test_no_state_survives_a_call(edited):
    em, before = edited
    _generate(em, [EDIT], use_cache=True)
    _generate(em, [EDIT], use_cache=False)
    adapter = em.grace
    gc.collect()
    assert adapter._stack("passes") == [] and adapter._stack("generations") == [] and adapter._stack("marks") == []
    assert len(adapter._by_cache) == 0
    # the next call, on another prompt, is decided afresh
    assert torch.equal(_generate(em, [OTHER], use_cache=False), before)


def test_detach_restores_the_model():
    em = tm.editable("gpt2")
    em.edit("g1", [Request.of([EDIT])], "grace")
    assert "generate" in em.model.__dict__
    em.grace.detach()
    assert "generate" not in em.model.__dict__
    assert not em.model.base_model._forward_pre_hooks and not em.grace.module._forward_hooks
    assert greedy(em.model, em.codec, [EDIT])[0] == [False]
