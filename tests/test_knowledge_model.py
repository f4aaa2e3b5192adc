"""The default knowledge model: trained from the KG, a standard HF directory, cached, gated."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from editor.knowledge import TrainConfig, read_card, train
from oneedit.knowledge import kg_facts, verbalizer
from oneedit.models import GATE, base_dir, gate_passed, measure_quality_loaded, model_cache, train_default
from oneedit.workspace import Workspace
from tests.conftest import TEST_TRAIN


def test_trained_model_is_a_standard_hf_directory_with_a_card(knowledge_ws):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = base_dir(Workspace.open(knowledge_ws))
    model = AutoModelForCausalLM.from_pretrained(path)
    tok = AutoTokenizer.from_pretrained(path)
    assert model.config.model_type == "gpt2" and model.config.n_layer == 4
    assert tok.eos_token == "<|endoftext|>"
    card = read_card(path)
    assert card["name"] == "oneedit-knowledge"
    assert card["kg"]["revision"] >= 1 and card["kg"]["facts"] == card["facts"] > 100
    assert len(card["content_hash"]) == 16
    q = card["quality"]
    assert {"train", "heldout"} <= set(q)
    assert q["train"]["exact_match"] >= GATE["train"]  # knowledge_ws trains until it learned its facts
    # `passed` is the gate applied to the card's own numbers, not a flag set independently of them
    assert isinstance(q["passed"], bool)
    assert q["passed"] == gate_passed(q)
    assert q["passed"] == all(q[split]["exact_match"] >= bar for split, bar in GATE.items())
    for split, bar in GATE.items():  # and the gate does fail a model under either bar
        assert not gate_passed({**q, split: {**q[split], "exact_match": bar - 0.01}})
    assert card["train_seconds"] > 0 and card["epochs"] >= 1


def test_quality_is_measured_not_copied(knowledge_ws):
    """`check` re-measures: the numbers come from running the model on the KG's prompts."""
    with Workspace.open(knowledge_ws) as ws:
        from oneedit.models import open_model, training_facts

        em = open_model(ws)
        facts, _ = training_facts(ws)  # the KG's facts and the gaps it was taught
        q = measure_quality_loaded(em.model, em.codec, facts, verbalizer(ws.kg.schema),
                                   share=card_share(em))
        card = read_card(base_dir(ws))
    assert q["train"]["prompts"] == card["quality"]["train"]["prompts"]
    assert q["train"]["exact_match"] == pytest.approx(card["quality"]["train"]["exact_match"], abs=1e-9)
    assert set(q["train"]["by_relation"]) == set(card["relations"])


def test_cached_by_content_hash(knowledge_ws, tmp_path):
    """A second workspace over the same KG copies the model from the cache instead of training."""
    import shutil

    dest = tmp_path / "ws"
    shutil.copytree(knowledge_ws, dest)
    shutil.rmtree(dest / "model")
    with Workspace.open(knowledge_ws) as ws:
        kept = read_card(base_dir(ws))["train_config"]  # TEST_TRAIN's recipe, perhaps with more epochs
    recipe = TrainConfig.from_key(kept)  # a card leaves out the parts that were off
    assert replace(recipe, max_epochs=0) == replace(TrainConfig(**TEST_TRAIN), max_epochs=0)
    with Workspace.open(dest) as ws:
        card = train_default(ws, config=recipe)
    assert card["cache"] == "hit"
    assert (base_dir(Workspace.open(dest)) / "model.safetensors").is_file()
    assert any(p.name == card["content_hash"] for p in model_cache().iterdir())


def test_training_is_deterministic(knowledge_ws, tmp_path):
    with Workspace.open(knowledge_ws) as ws:
        facts = kg_facts(ws.kg)[:40]
        verb = verbalizer(ws.kg.schema)
    cfg = TrainConfig(n_layer=2, n_embd=64, n_head=2, vocab_size=512, max_epochs=3, stop_at=1.0)
    a = train(facts, verb, tmp_path / "a", config=cfg)
    b = train(facts, verb, tmp_path / "b", config=cfg)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    assert json.loads((tmp_path / "a" / "tokenizer.json").read_text()) == \
        json.loads((tmp_path / "b" / "tokenizer.json").read_text())


def test_train_refuses_no_facts(tmp_path):
    with pytest.raises(ValueError):
        train([], verbalizer_of({}), tmp_path / "m")


def verbalizer_of(templates):
    from editor.verbalize import Verbalizer

    return Verbalizer(templates)


def card_share(em) -> float:
    return em.loaded.card["train_config"]["phrasing_share"]


def test_learned_prompts_train_less_and_the_gate_stops_training(knowledge_ws, tmp_path):
    """``skip_easy``: after the first epoch, prompts already learned train only with probability
    ``easy_share``; ``until``: training stops at the first epoch whose check passes."""
    with Workspace.open(knowledge_ws) as ws:
        facts = kg_facts(ws.kg)[:40]
        verb = verbalizer(ws.kg.schema)
    # a loose "learned" (answer loss below 1.0) so that a tiny model skips some within a few epochs
    cfg = TrainConfig(n_layer=2, n_embd=64, n_head=2, vocab_size=512, max_epochs=20, lr=5e-3, batch_size=8,
                      stop_at=1.1, skip_easy=1.0, easy_share=0.2, gate_stop=True, check_from=0.2)
    checks = []

    def until(model, codec):
        checks.append(model.training)
        return {"passed": len(checks) >= 2}

    got = train(facts, verb, tmp_path / "m", config=cfg, until=until)
    trained = [h["trained"] for h in got.history]
    n = got.card["training_prompts"]
    assert trained[0] == n and min(trained) < n  # learned prompts were skipped
    assert checks == [False, False]  # the check sees the model in eval mode ...
    assert got.history[-1]["check"]["passed"] and len(got.history) < cfg.max_epochs  # ... and stops it
    assert all("check" in h for h in got.history if h["recall"] >= cfg.check_from)
    # off, the same recipe trains every prompt every epoch and never checks
    plain = train(facts, verb, tmp_path / "p", config=replace(cfg, skip_easy=0.0, gate_stop=False, max_epochs=3),
                  until=until)
    assert [h["trained"] for h in plain.history] == [n] * 3 and len(checks) == 2
