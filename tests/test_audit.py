"""The model audit against the KG: groups, disagreements, sampling, incremental refresh.

On the test knowledge model (a small GPT-2 trained on the Europe subset of the shipped KG), through
the real facade and CLI.
"""

from __future__ import annotations

import json

from typer.testing import CliRunner

from oneedit.audit import AuditLog, audit, edited_facts, wilson
from oneedit.cli import app
from oneedit.core import Triple
from oneedit.system import OneEdit
from oneedit.workspace import Workspace
from tests.repair_support import own_model_edits

runner = CliRunner()


def audit_json(ws_root, *extra) -> dict:
    res = runner.invoke(app, ["model", "audit", "-w", str(ws_root), "--json", *map(str, extra)])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_unedited_model_agrees_with_the_kg_it_learned(copy_ws):
    out = audit_json(copy_ws)
    assert out["edits"] == 0
    assert out["edited"]["facts"] == 0 and out["edited"]["agreement"] is None
    assert out["unedited"]["facts"] == out["all"]["facts"] > 50
    # the fixture trains until ≥ 0.97 of training prompts are recalled (the audit reads the same prompts)
    assert out["all"]["agreement"] >= 0.95
    assert 0 < out["all"]["heldout_prompts"] and out["all"]["heldout_agreement"] is not None
    # every disagreement is a real one: what the model said differs from the KG
    for d in out["disagreements"]:
        assert set(d) == {"subject", "relation", "expected", "said", "prompt"}
        assert not d["said"].startswith(d["expected"])
    assert len(out["disagreements"]) == round(out["all"]["facts"] * (1 - out["all"]["facts_agreeing"]))


def test_an_applied_edit_is_audited_as_edited_and_a_kg_only_change_shows_as_disagreement(copy_ws):
    with OneEdit(Workspace.open(copy_ws)) as oe:
        out = oe.submit("The capital of Germany is Hamburg", method="memit")
        assert out.status == "applied"
        ge = oe.kg.resolve_entity("Germany").id
        assert (ge, "capital") in edited_facts(oe.ledger, oe.model.edit_ids())
        report = audit(oe.ws, oe.model).to_dict()
        assert report["edited"]["facts"] >= 1
        assert report["edits"] == len(oe.model.edit_ids()) and own_model_edits(oe) == ["e1"]  # and any repair batch
        edited_said = [d for d in report["disagreements"] if d["subject"] == ge and d["relation"] == "capital"]
        assert not edited_said, edited_said  # the edit holds on its training prompts
        # change the KG behind the model's back: the audit finds the fact the model now gets wrong
        fr = oe.kg.resolve_entity("France").id
        old = next(iter(oe.kg.store.triples(fr, "capital", None)))
        lyon = oe.kg.resolve_entity("Lyon").id
        diff_add = Triple(fr, "capital", lyon)
        oe.kg.store.commit(_diff(oe, added=[diff_add], removed=[old]), "test", "behind the model's back")
        again = audit(oe.ws, oe.model).to_dict()
        found = [d for d in again["disagreements"] if d["subject"] == fr and d["relation"] == "capital"]
        assert found and found[0]["expected"] == "Lyon" and found[0]["said"].startswith("Paris")
        assert again["unedited"]["agreement"] < report["unedited"]["agreement"]


def _diff(oe, *, added, removed):
    from oneedit.core.types import Diff

    return Diff(tuple(added), tuple(removed))


def test_sample_is_seeded_and_carries_an_interval(copy_ws):
    a = audit_json(copy_ws, "--sample", 20, "--seed", 3)
    b = audit_json(copy_ws, "--sample", 20, "--seed", 3)
    assert a["sample"] == 20 and a["all"]["facts"] == 20
    assert a["all"] == b["all"]
    lo, hi = a["all"]["facts_agreeing_ci95"]
    assert 0 <= lo <= a["all"]["facts_agreeing"] <= hi <= 1 and hi - lo > 0.05  # 20 facts: a wide interval


def test_human_output_is_a_table(copy_ws):
    res = runner.invoke(app, ["model", "audit", "-w", str(copy_ws), "--sample", "10"])
    assert res.exit_code == 0, res.output
    assert "unedited" in res.output and "95% interval" in res.output


def test_refresh_reprobes_only_what_a_change_touched(copy_ws):
    with OneEdit(Workspace.open(copy_ws)) as oe:
        em = oe.model
        log = AuditLog(oe.kg, em.model, em.codec)
        full = log.run(set())
        ge = oe.kg.resolve_entity("Germany").id
        touched = [t for t in oe.kg.store.triples(ge, "capital", None)]
        part = log.refresh(touched, {(ge, "capital")})
        assert 0 < len(part) < len(full)
        assert all(r.triple.subject == ge or r.triple.object == ge or r.triple.relation == "capital"
                   or r.triple.object in {t.object for t in touched} or r.triple.subject in {t.object for t in touched}
                   for r in part)
        assert log.results[(ge, "capital")].edited is True
        assert len(log.results) == len(full)


def test_wilson_interval():
    assert wilson(0, 0) == (0.0, 1.0)
    lo, hi = wilson(50, 100)
    assert lo < 0.5 < hi and abs((0.5 - lo) - (hi - 0.5)) < 1e-3
    lo, hi = wilson(10, 10)
    assert hi == 1.0 and 0.65 < lo < 0.75  # 0.722 for n=10, all successes
