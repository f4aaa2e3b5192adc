"""Consolidation ("sleep") on the test knowledge model: edits folded into new weights, rollback
afterwards, exactness against a model built without the edit, and crash safety (SIGKILL).
"""

from __future__ import annotations

import json
import signal

import pytest
import yaml
import torch

from editor.knowledge import RefreshConfig, refresh
from editor.verbalize import Prompt
from oneedit import models
from oneedit.audit import audit
from oneedit.core import GAP
from oneedit.consolidation import knowledge_facts
from oneedit.knowledge import verbalizer
from oneedit.system import OneEdit
from oneedit.workspace import Workspace
from tests.process_support import cli
from tests.repair_support import own_model_edits

EDITS = ["The capital of Germany is Hamburg", "The capital of Spain is Barcelona"]
PROMPT = "The capital of Germany is"


def say(oe: OneEdit, text: str) -> str:
    return oe.sync.answers([("train", Prompt(text, "", ""))])[0]


def _set_refresh(ws_root, options: dict) -> None:
    cfg = yaml.safe_load((ws_root / "config.yaml").read_text())
    cfg.setdefault("consistency", {})["refresh"] = options
    (ws_root / "config.yaml").write_text(yaml.safe_dump(cfg))


def edited(ws_root) -> None:
    with OneEdit(Workspace.open(ws_root)) as oe:
        for text in EDITS:
            assert oe.submit(text, method="memit").status == "applied"


def test_consolidate_folds_the_edits_into_weights_the_kg_agrees_with(copy_ws):
    edited(copy_ws)
    with Workspace.open(copy_ws) as ws:
        em = models.open_model(ws)
        before = audit(ws, em).to_dict()
    run = cli(copy_ws, "model", "consolidate")
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout)
    # the two edits, and any repair batch they set off
    assert out["edits_before"] >= 2 and out["edits_after"] == 0
    rep = out["consolidation"]
    assert {"e1", "e2"} <= set(rep["folded_edits"]) and len(rep["folded_edits"]) == out["edits_before"]
    assert rep["changed_facts"] >= 2  # capitals and their inverses
    after = out["audit"]
    # the edited facts are learned (the refresh stops once its changed facts are recalled) and the
    # rest is rehearsed: agreement does not fall on either group, within a margin of a few facts
    assert after["edited"]["facts"] >= 2 and after["edited"]["agreement"] >= 0.9
    assert after["unedited"]["agreement"] >= before["unedited"]["agreement"] - 0.03
    with OneEdit(Workspace.open(copy_ws)) as oe:
        assert say(oe, PROMPT) == "Hamburg"
        assert own_model_edits(oe) == []
        assert models.weights_dir(oe.ws).name == "1"
        # a rollback after consolidation reaches the model (the folded edit is re-written)
        assert oe.rollback(1)["rolled_back"] == [1]
        assert say(oe, PROMPT) == "Berlin"
        assert own_model_edits(oe) == ["e1-r1"]


def test_consolidation_is_a_function_of_the_kg_so_rollback_becomes_exact(copy_ws, tmp_path):
    """Consolidating after a rollback gives, bit for bit, the model refreshed from the original
    weights on the KG without that edit."""
    edited(copy_ws)
    with OneEdit(Workspace.open(copy_ws)) as oe:
        oe.rollback(1)
    # bit-for-bit equality does not depend on how well the refresh learns: a short one, the same
    # options for both runs
    cheap = {"min_rehearsal": 256, "rehearsal": 1.0, "max_steps": 40}
    _set_refresh(copy_ws, cheap)
    assert cli(copy_ws, "model", "consolidate").returncode == 0
    with Workspace.open(copy_ws) as ws:
        base = models.base_dir(ws)
        now, changed = knowledge_facts(ws, models.read_learned(base))
        assert {(f.subject, f.relation) for f in changed} >= {("Spain", "capital")}
        assert not any(f.subject == "Germany" for f in changed)
        refresh(base, now, changed, verbalizer(ws.kg.schema), tmp_path / "direct", config=RefreshConfig(**cheap),
                share=models._share(models.default_card(ws)))
        live = models.weights_dir(ws)
    from safetensors.torch import load_file

    a = load_file(str(live / "model.safetensors"))
    b = load_file(str(tmp_path / "direct" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("stage,new_state", [("consolidate_weights", False), ("consolidate_swap", False),
                                             ("consolidated", True)])
def test_a_crash_during_consolidation_leaves_one_whole_state(copy_ws, stage, new_state):
    edited(copy_ws)
    if not new_state:  # the old state is checked: how well the new weights learned does not matter
        _set_refresh(copy_ws, {"min_rehearsal": 256, "rehearsal": 1.0, "max_steps": 40})
    run = cli(copy_ws, "model", "consolidate", crash=stage)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    with OneEdit(Workspace.open(copy_ws)) as oe:
        assert own_model_edits(oe) == ([] if new_state else ["e1", "e2"])
        assert say(oe, PROMPT) == "Hamburg"
    if stage != "consolidate_swap":
        return
    # the next consolidation finishes the job and sweeps what the crash left (the swap stage leaves
    # the most behind: new weights and a new edit folder, neither live)
    assert cli(copy_ws, "model", "consolidate").returncode == 0
    home = copy_ws / "model"
    assert sorted(p.name for p in (home / "consolidated").iterdir()) == [json.loads((home / "active.json").read_text())["weights"].split("/")[1]]
    assert [p.name for p in home.glob("edits*")] == [json.loads((home / "active.json").read_text())["edits"]]


def test_a_background_consolidation_rewrites_what_changed_while_it_trained(copy_ws):
    from oneedit.consolidation import Background

    with OneEdit(Workspace.open(copy_ws)) as oe:
        events = []
        bg = Background(oe, below=1.01, every=1, sample=30, on_event=events.append)
        assert oe.submit(EDITS[0], method="memit").status == "applied"
        started = bg.after_batch(1)  # the audit finds something below 1.01: a consolidation starts
        assert started["status"] == "started" and bg.running
        assert [e["type"] for e in events] == ["audit", "consolidation"]
        # while it trains (on its own thread), the KG and the live model change
        assert oe.submit(EDITS[1], method="memit").status == "applied"
        assert oe.submit("Rome is no longer the capital of Italy", method="memit").status == "applied"
        done = bg.wait(timeout=600)
        assert done["status"] == "done" and done["folded_edits"] >= 3
        # the slots changed after the job was prepared were written onto the new weights
        assert done["rewritten_after"] >= 2
        assert models.weights_dir(oe.ws).name == "1"
        assert say(oe, PROMPT) == "Hamburg"  # learned by the new weights
        # the rewrite batch is recorded as a repair, and no earlier edit is stacked any more
        kg = oe.kg
        rewrite = oe.ledger.repairs()[0]
        assert rewrite["model_edit"] == "c1" and own_model_edits(oe) == []
        spain, italy = kg.resolve_entity("Spain").id, kg.resolve_entity("Italy").id
        assert {(spain, "capital", kg.resolve_entity("Barcelona").id), (italy, "capital", GAP)} <= {
            tuple(f) for f in rewrite["facts"]}
        # one MEMIT batch on a tiny model may leave an answer short of exact; it no longer says
        # what the KG dropped
        assert not say(oe, "The capital of Spain is").startswith("Madrid")
        assert not say(oe, "The capital of Italy is").startswith("Rome")
