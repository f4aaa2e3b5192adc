"""KG neighbours of a model batch and self-repair, through the real facade on the test model."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from oneedit import models
from oneedit.cli import app
from oneedit.core import Triple
from oneedit.neighbours import keep_prompts, neighbour_facts
from oneedit.system import OneEdit
from oneedit.workspace import Workspace

runner = CliRunner()


def test_neighbours_share_a_subject_or_relation_and_are_bounded(copy_ws):
    with Workspace.open(copy_ws) as ws:
        kg = ws.kg
        ge = kg.resolve_entity("Germany").id
        edit = [Triple(ge, "capital", kg.resolve_entity("Hamburg").id)]
        near = neighbour_facts(kg, edit, limit=20)
        assert 0 < len(near) <= 20
        assert all((t.subject, t.relation) != (ge, "capital") for t in near)
        assert all(t.subject == ge or t.relation == "capital" for t in near)
        # the same subject's other facts come first
        own = [t for t in near if t.subject == ge]
        assert own and len(own) == len({t for t in neighbour_facts(kg, edit, limit=1000) if t.subject == ge})
        assert neighbour_facts(kg, edit, limit=20, seed=1) == neighbour_facts(kg, edit, limit=20, seed=1)
        prompts = keep_prompts(kg, edit, limit=20)
        assert len(prompts) == len(near) and all(p.text and p.target.startswith(" ") for p in prompts)


def test_a_drifted_fact_is_detected_and_written_back_with_the_next_edit(copy_ws):
    with OneEdit(Workspace.open(copy_ws)) as oe:
        em = oe.model
        kg = oe.kg
        fr, paris = kg.resolve_entity("France").id, kg.resolve_entity("Paris").id
        truth = Triple(fr, "capital", paris)
        assert oe.repairs.probe(em, [truth]) == [True]
        # knock the fact over in the model only (the KG still says Paris)
        models.edit_fact(oe.ws, em, "France", "capital", "Lyon")
        assert oe.repairs.probe(em, [truth]) == [False]
        assert truth in oe.repairs.neighbours([Triple(fr, "continent", "europe")])
        oe.repairs.note([truth])
        out = oe.submit("The capital of Germany is Hamburg", method="memit")
        assert out.status == "applied"
        rec = oe.ledger.get(out.edit).record["model_edit"]
        assert [fr, "capital", paris] in rec["repaired"]
        assert oe.repairs.probe(em, [truth]) == [True]  # one fact written back with all its prompts
        repairs = oe.ledger.list(status="repair", limit=None, ascending=True)
        # the first is this one; the edit may also have knocked over neighbours of its own, which a
        # second repair batch (written right after, as nothing follows) puts back
        assert "France capital Paris" in repairs[0].text and repairs[0].record["model_edit"]["id"] == rec["id"]
        for later in repairs[1:]:
            assert later.record["model_edit"]["id"].startswith("r")
            assert all(oe.repairs._holds(Triple(*f)) for f in later.record["model_edit"]["own_facts"])
    res = runner.invoke(app, ["history", "-w", str(copy_ws), "--json"])
    assert res.exit_code == 0, res.output
    assert any(e["status"] == "repair" for e in json.loads(res.stdout))


def test_the_queue_skips_what_the_kg_no_longer_holds_and_is_bounded(copy_ws):
    with OneEdit(Workspace.open(copy_ws)) as oe:
        kg = oe.kg
        facts = [t for t in kg.store.triples(None, "capital", None)][:12]
        gone = Triple(facts[0].subject, "capital", kg.resolve_entity("Hamburg").id)  # not in the KG
        oe.repairs.limit = 8
        oe.repairs.note([gone])
        oe.repairs.note(facts)  # facts[0] replaces ``gone`` in its slot
        taken = oe.repairs.take([facts[1]])
        assert gone not in taken and facts[0] in taken and facts[1] not in taken
        assert len(taken) == 8 and len(oe.repairs.queue) == 12 - 1 - 8


def test_a_v3_ledger_is_migrated_to_accept_repairs(tmp_path):
    import sqlite3

    from oneedit.ledger import Ledger

    path = tmp_path / "ledger.sqlite"
    db = sqlite3.connect(path)
    db.execute("""CREATE TABLE edits (id INTEGER PRIMARY KEY, created TEXT NOT NULL, updated TEXT NOT NULL,
                  author TEXT NOT NULL, text TEXT NOT NULL DEFAULT '', status TEXT NOT NULL CHECK (status IN
                  ('queued','pending','applied','rejected','needs_review','unchanged','rolled_back','failed')),
                  kg_revision INTEGER, record TEXT NOT NULL DEFAULT '{}', request_key TEXT)""")
    db.execute("INSERT INTO edits VALUES (7, 't', 't', 'ann', 'old edit', 'applied', 3, '{}', 'k')")
    db.commit()
    db.close()
    led = Ledger(path)
    assert led.get(7).text == "old edit" and led.get(7).status == "applied"
    new = led.create("oneedit", "Repair: x", {"kind": "repair"}, "repair")
    assert new == 8 and led.get(new).status == "repair"
    led.close()
