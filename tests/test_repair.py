"""KG neighbours of a model batch and self-repair, through the real facade on the test model."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from oneedit import models
from oneedit.cli import app
from oneedit.core import Triple
from oneedit.neighbours import keep_prompts, neighbour_facts
from oneedit.repair import Repairs
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
        # the drift probes: every fact of the edited entities, a bounded draw of the relation's others
        ents = {ge, edit[0].object}
        probes = Repairs(kg, per_relation=5).neighbours(edit)
        every = Repairs(kg, per_relation=0).neighbours(edit)
        assert {t for t in every if t.subject in ents or t.object in ents} <= set(probes)
        others = [t for t in probes if not {t.subject, t.object} & ents]
        assert 0 < len(others) <= 5 and all(t.relation == "capital" for t in others)
        assert len(every) > len(probes)


def test_a_drifted_fact_is_detected_and_written_back_with_the_next_edit(copy_ws):
    with OneEdit(Workspace.open(copy_ws)) as oe:
        em = oe.model
        kg = oe.kg
        fr, paris = kg.resolve_entity("France").id, kg.resolve_entity("Paris").id
        truth = Triple(fr, "capital", paris)
        assert oe.sync.repairs.probe(em, [truth]) == [True]
        # knock the fact over in the model only (the KG still says Paris)
        models.edit_fact(oe.ws, em, "France", "capital", "Lyon")
        assert oe.sync.repairs.probe(em, [truth]) == [False]
        assert truth in oe.sync.repairs.neighbours([Triple(fr, "continent", "europe")])
        oe.sync.repairs.note([truth])
        out = oe.submit("The capital of Germany is Hamburg", method="memit")
        assert out.status == "applied"
        rec = oe.ledger.get(out.edit).record.model_edit
        assert (fr, "capital", paris) in rec.repaired
        assert oe.sync.repairs.probe(em, [truth]) == [True]  # one fact written back with all its prompts
        repairs = oe.ledger.repairs()[::-1]  # oldest first
        # the first is this one; the edit may also have knocked over neighbours of its own, which a
        # second repair batch (written right after, as nothing follows) puts back
        assert repairs[0]["facts"] == [[fr, "capital", paris]] and repairs[0]["model_edit"] == rec.id
        for later in repairs[1:]:
            assert later["model_edit"].startswith("r") and later["caused_by"] == [rec.id]
            assert all(oe.sync.repairs._holds(Triple(*f)) for f in later["facts"])
        n_edits = oe.ledger.count()
        # rolling the edit back undoes the repair batches it caused; the edit numbering is the users'
        oe.rollback(out.edit)
        assert all(r["undone"] for r in oe.ledger.repairs()[:-1] if r["model_edit"].startswith("r"))
        assert not set(oe.model.edit_ids()) & {r["model_edit"] for r in repairs[1:]}
        assert oe.ledger.count() == n_edits == 1
    res = runner.invoke(app, ["history", "-w", str(copy_ws), "--repairs", "--json"])
    assert res.exit_code == 0, res.output
    assert [r["facts"] for r in json.loads(res.stdout)][-1] == [[fr, "capital", paris]]
    human = runner.invoke(app, ["history", "-w", str(copy_ws)])
    assert human.exit_code == 0 and "oneedit history --repairs" in human.output


def test_the_queue_skips_what_the_kg_no_longer_holds_and_is_bounded(copy_ws):
    with OneEdit(Workspace.open(copy_ws)) as oe:
        kg = oe.kg
        facts = [t for t in kg.store.triples(None, "capital", None)][:12]
        gone = Triple(facts[0].subject, "capital", kg.resolve_entity("Hamburg").id)  # not in the KG
        oe.sync.repairs.limit = 8
        oe.sync.repairs.note([gone])
        oe.sync.repairs.note(facts)  # facts[0] replaces ``gone`` in its slot
        taken = oe.sync.repairs.take([facts[1]])
        assert gone not in taken and facts[0] in taken and facts[1] not in taken
        assert len(taken) == 8 and len(oe.sync.repairs.queue) == 12 - 1 - 8


def test_an_older_ledger_gains_the_repairs_table(tmp_path):
    import sqlite3

    from oneedit.ledger import Ledger

    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE repairs")
    db.execute("INSERT INTO edits (id, created, updated, author, status) VALUES (7, 't', 't', 'ann', 'applied')")
    db.commit()
    db.close()
    led = Ledger(path)
    assert led.get(7).author == "ann" and led.repairs() == []
    rid = led.add_repair("r1", [["a", "capital", "b"]], ["e7"])
    led.repair_undone("r1")
    assert led.repairs() == [{"id": rid, "created": led.repairs()[0]["created"], "model_edit": "r1",
                              "facts": [["a", "capital", "b"]], "caused_by": ["e7"], "undone": True}]
    assert led.repairs(live=True) == []
    led.close()


def test_rolling_back_an_edit_keeps_a_later_edit_that_carried_its_repairs(copy_ws):
    with OneEdit(Workspace.open(copy_ws)) as oe:
        kg = oe.kg
        first = oe.submit("The capital of Germany is Hamburg", method="memit")
        first_id = oe.ledger.get(first.edit).record.model_edit.id
        fr, paris = kg.resolve_entity("France").id, kg.resolve_entity("Paris").id
        oe.sync.repairs.note([Triple(fr, "capital", paris)], cause=first_id)  # as if the first knocked it over
        second = oe.submit("The capital of Spain is Barcelona", method="memit")
        second_id = oe.ledger.get(second.edit).record.model_edit.id
        carried = [r for r in oe.ledger.repairs() if r["model_edit"] == second_id]
        assert carried and carried[0]["caused_by"] == [first_id]
        oe.rollback(first.edit)
        # the second edit's batch (which also carried a repair the first caused) stays in the model
        assert second_id in oe.model.edit_ids() and first_id not in oe.model.edit_ids()
        assert [r["undone"] for r in oe.ledger.repairs() if r["model_edit"] == second_id] == [False]
