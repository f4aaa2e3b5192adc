"""The knowledge model shipped for the shipped KG (oneedit/shipped.py, kg_data/model/)."""

from __future__ import annotations

import json

import pytest

from oneedit import shipped
from tests.process_support import cli


@pytest.fixture(scope="module")
def shipped_card():
    c = shipped.card()
    assert c is not None, "kg_data/model/ has no shipped model: python -m oneedit.shipped build"
    return c


def test_the_shipped_model_is_the_shipped_kgs(tmp_path, shipped_card):
    """Fails when kg_data (facts, templates) or the recipe changed without a rebuild."""
    from editor.knowledge import TrainConfig, content_hash
    from oneedit.models import training_facts
    from oneedit.workspace import Workspace

    ws, _ = Workspace.init(tmp_path / "ws")
    with ws:
        facts, verb = training_facts(ws)
    key = content_hash(facts, verb, TrainConfig.from_key(shipped_card["train_config"]))
    assert key == shipped_card["content_hash"], "rebuild the shipped model: python -m oneedit.shipped build"
    assert shipped.for_facts(facts, verb) == key
    # as shipped: float16 weights that pass the gate as rounded, and a card that says how it was made
    q = shipped_card["quality"]
    assert shipped_card["dtype"] == "float16" and q["passed"]
    assert q["train"]["exact_match"] >= 0.97 and q["heldout"]["exact_match"] >= 0.85
    assert shipped.recipe().key() == shipped_card["train_config"] and shipped_card["facts"] == len(facts)
    size = sum(p.stat().st_size for p in shipped.home().iterdir())
    assert size < 20 * 2**20, f"the shipped model is {size / 2**20:.1f} MiB"


def test_init_on_the_shipped_kg_installs_it_instead_of_training(tmp_path, monkeypatch, shipped_card):
    import torch
    from safetensors.torch import load_file

    monkeypatch.setenv("ONEEDIT_CACHE", str(tmp_path / "empty-cache"))  # the child sees an empty cache
    run = cli(tmp_path / "ws", "init")
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    assert out["model"]["cache"] == "shipped" and out["model"]["content_hash"] == shipped_card["content_hash"]
    base = tmp_path / "ws" / "model" / "base"
    got = load_file(str(base / "model.safetensors"))
    want = load_file(str(shipped.home() / "model.safetensors"))
    assert got.keys() == want.keys()
    assert all(got[k].dtype == torch.float32 and torch.equal(got[k], want[k].float()) for k in got)
    assert (base / "facts.jsonl").is_file()


def test_a_different_kg_is_not_given_the_shipped_model(tmp_path, shipped_card):
    from editor.knowledge import content_hash
    from oneedit.models import shipped_matches, training_facts
    from oneedit.workspace import Workspace

    ws, _ = Workspace.init(tmp_path / "ws")
    with ws:
        with ws.kg.store.transaction("test", "France's capital is another city") as tx:
            tx.remove_all(list(ws.kg.store.triples("france", "capital", None)))
        facts, verb = training_facts(ws)
    key = content_hash(facts, verb, shipped.recipe())
    assert key != shipped_card["content_hash"] and not shipped_matches(key) and shipped.for_facts(facts, verb) is None


def test_the_kept_test_model_is_the_one_the_suite_asks_for(copy_ws):
    """tests/data/knowledge_model is the Europe subset's model from TEST_TRAIN (see conftest)."""
    from editor.knowledge import TrainConfig, content_hash, read_card
    from oneedit.models import training_facts
    from oneedit.workspace import Workspace
    from tests.conftest import KEPT_MODEL, TEST_TRAIN

    with Workspace.open(copy_ws) as ws:
        facts, verb = training_facts(ws)
    kept = read_card(KEPT_MODEL)
    assert kept["content_hash"] == content_hash(facts, verb, TrainConfig(**TEST_TRAIN)), \
        "refresh tests/data/knowledge_model (see tests/conftest.py, KEPT_MODEL)"
    assert kept["quality"]["train"]["exact_match"] >= 0.97
