"""A retraction without a replacement reaches the model: it learns the KG's gap as "unknown"."""

from __future__ import annotations

from editor.verbalize import Prompt
from oneedit.audit import audit
from oneedit.core import GAP, GAP_LABEL, Triple
from oneedit.knowledge import gap_facts, holds, slot_facts, slot_values
from oneedit.models import base_dir, read_learned
from oneedit.system import OneEdit
from oneedit.workspace import Workspace

PROMPT = "The capital of Germany is"


def say(oe: OneEdit, text: str) -> str:
    return oe.sync.answers([("train", Prompt(text, "", ""))])[0]


def test_a_retraction_teaches_the_model_unknown_and_its_rollback_restores_the_value(copy_ws):
    with OneEdit(Workspace.open(copy_ws)) as oe:
        kg = oe.kg
        ge, berlin = kg.resolve_entity("Germany").id, kg.resolve_entity("Berlin").id
        assert say(oe, PROMPT) == "Berlin"
        out = oe.submit("Berlin is no longer the capital of Germany", method="memit")
        assert out.status == "applied", out.to_dict()
        assert not list(kg.store.triples(ge, "capital", None))
        gap = Triple(ge, "capital", GAP)
        ref = oe.ledger.get(out.edit).record.model_edit
        assert gap.as_tuple() in ref.facts
        assert holds(kg, gap) and slot_facts(kg, ge, "capital") == [gap]
        # the model stops asserting the old value, on the training phrasings and the held-out ones
        assert say(oe, PROMPT) == GAP_LABEL
        report = audit(oe.ws, oe.model).to_dict()
        retracted = report["retracted"]
        # the slot and its inverse (Berlin's capital_of); a tiny model's MEMIT batch may leave a
        # prompt of the inverse short, so the group is held to a margin, the slot itself exactly
        assert retracted["facts"] == 2 and retracted["agreement"] >= 0.5
        assert all(oe.sync.repairs.probe(oe.model, [gap]))
        assert report["all"]["facts"] == report["edited"]["facts"] + report["unedited"]["facts"]
        # rollback: the value is back in the KG and in the model, and nothing is retracted any more
        oe.rollback(out.edit)
        assert kg.store.contains(Triple(ge, "capital", berlin)) and not holds(kg, gap)
        assert say(oe, PROMPT) == "Berlin"
        assert audit(oe.ws, oe.model).to_dict()["retracted"]["facts"] == 0


def test_a_replacement_is_not_a_gap_and_retract_off_keeps_the_old_behaviour(copy_ws):
    with OneEdit(Workspace.open(copy_ws)) as oe:
        kg = oe.kg
        ge, berlin = kg.resolve_entity("Germany").id, kg.resolve_entity("Berlin").id
        plan = oe.plan(oe.intake.edit_intents("The capital of Germany is Hamburg"))
        # the replaced slot takes the new value; the slot it empties on the way (Berlin is the
        # capital of nothing now) is a gap
        gaps = [(t.subject, t.relation) for t in plan.model_facts if t.is_gap]
        assert (ge, "capital") not in gaps and gaps == [(berlin, "capital_of")]
        oe.ws.config.consistency.retract = False
        out = oe.submit("Berlin is no longer the capital of Germany", method="memit")
        assert out.status == "applied"
        ref = oe.ledger.get(out.edit).record.model_edit
        assert ref is None or ref.id is None
        assert say(oe, PROMPT) == "Berlin"  # what the model did before retraction reached it


def test_the_default_model_learns_gaps_and_consolidation_keeps_and_adds_them(copy_ws):
    with OneEdit(Workspace.open(copy_ws)) as oe:
        kg = oe.kg
        learned = read_learned(base_dir(oe.ws))
        taught = {(f.subject_id, f.relation) for f in learned if f.object_id == GAP}
        # training taught a sample of the KG's empty slots as "unknown", a few per relation
        assert taught and all(not slot_values(kg, *slot) for slot in taught)
        assert len(taught) < 0.2 * len(learned)
        gap = next(iter(sorted(taught)))
        assert oe.sync.repairs.probe(oe.model, [Triple(*gap, GAP)]) == [True]
        assert {(f.subject_id, f.relation) for f in gap_facts(kg, learned)} == taught
        assert oe.submit("Berlin is no longer the capital of Germany", method="memit").status == "applied"
        ge = kg.resolve_entity("Germany").id
        now = {(f.subject_id, f.relation): f.object for f in gap_facts(kg, learned)}
        assert now.keys() == taught | {(ge, "capital"), (kg.resolve_entity("Berlin").id, "capital_of")}
        assert set(now.values()) == {GAP_LABEL}
