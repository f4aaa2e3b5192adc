"""The controller's planner on the shipped KG (real embedded store): conflicts found and resolved,
facts derived with provenance, policies per relation and role. Planning never changes the KG."""

from __future__ import annotations

import shutil

import pytest

from controller.planner import AmbiguousRequest, Planner, ResolutionPolicy
from controller.users import ProtectedFacts
from oneedit.core import GAP, EditIntent, Mention, OneEditError, Triple
from oneedit.core.plan import EditPlan
from oneedit.workspace import Workspace
from tests.interpreter_support import shipped_workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A private copy of the shipped workspace (some tests write to its store directly)."""
    src = shipped_workspace(tmp_path_factory)
    dest = tmp_path_factory.mktemp("controller") / "ws"
    shutil.copytree(src, dest)
    with Workspace.open(dest) as w:
        yield w


def m(kg, eid: str) -> Mention:
    return Mention(kg.label(eid), entity=kg.store.entity(eid), confidence=1.0)


def intent(kg, op, s, r, o) -> EditIntent:
    return EditIntent(op, m(kg, s), r, m(kg, o) if o else None)


def kinds(plan: EditPlan) -> list[tuple[str, Triple | None, str]]:
    return [(c.kind, c.fact, c.resolution) for c in plan.conflicts]


def test_functional_conflict_replaces_and_lists_inverse(ws):
    kg = ws.kg
    head = kg.store.head()
    existing = Planner(kg).plan([intent(kg, "assert", "germany", "capital", "munich")])
    new_city = Planner(kg).plan([EditIntent("assert", m(kg, "germany"), "capital", Mention("Neustadt", new_type="City"))])
    for p in (existing, new_city):
        assert ("functional", Triple("germany", "capital", "berlin"), "replace") in kinds(p)
        assert Triple("germany", "capital", "berlin") in p.diff.removed
        assert Triple("berlin", "capital_of", "germany") in p.diff.removed  # the mirror goes too
        assert p.decision == "apply"
    assert Triple("munich", "capital_of", "germany") in existing.diff.added
    assert [(e.id, e.type, e.label) for e in new_city.new_entities] == [("neustadt", "City", "Neustadt")]
    assert {Triple("neustadt", "type", "City"), Triple("neustadt", "label", "Neustadt")} <= set(new_city.diff.added)
    derived = {(d.op, d.triple, d.rule) for d in existing.derived}
    assert ("+", Triple("munich", "capital_of", "germany"), "inverse") in derived
    assert ("-", Triple("berlin", "capital_of", "germany"), "inverse") in derived
    # the model learns the new capital and the city's country, and that Berlin is the capital of
    # nothing now (a gap: the model learns "unknown" there)
    assert set(existing.model_facts) == {Triple("germany", "capital", "munich"), Triple("munich", "capital_of", "germany"),
                                         Triple("berlin", "capital_of", GAP)}
    assert kg.store.head() == head  # planning changed nothing


def test_every_existing_value_conflicts(ws):
    """A functional relation holding two values (bad data) conflicts with both, not the first."""
    kg = ws.kg
    st = kg.store
    extra = [Triple("italy", "capital", "milan"), Triple("milan", "capital_of", "italy")]
    rev = st.commit(st.exact_diff({t: True for t in extra}), "test", "two capitals (bad data)")
    try:
        plan = Planner(kg).plan([EditIntent("assert", m(kg, "italy"), "capital", Mention("Nova Roma", new_type="City"))])
        old = {c.fact for c in plan.conflicts if c.kind == "functional"}
        assert old == {Triple("italy", "capital", "rome"), Triple("italy", "capital", "milan")}
        assert {Triple("italy", "capital", "rome"), Triple("italy", "capital", "milan")} <= set(plan.diff.removed)
    finally:
        st.commit(st.plan_revert(rev.id)[0], "test", "undo bad data")


def test_symmetric_conflicts_are_checked_both_ways(ws):
    """Olaf Scholz marrying Brigitte Macron retracts both old marriages (and their mirrors), and the
    head-of-state-spouse of France stops holding."""
    kg = ws.kg
    plan = Planner(kg).plan([intent(kg, "assert", "olaf_scholz", "spouse", "brigitte_macron")])
    got = kinds(plan)
    assert ("functional", Triple("olaf_scholz", "spouse", "britta_ernst"), "replace") in got
    assert ("inverse_functional", Triple("brigitte_macron", "spouse", "emmanuel_macron"), "replace") in got
    removed = set(plan.diff.removed)
    assert {Triple("olaf_scholz", "spouse", "britta_ernst"), Triple("britta_ernst", "spouse", "olaf_scholz"),
            Triple("brigitte_macron", "spouse", "emmanuel_macron"),
            Triple("emmanuel_macron", "spouse", "brigitte_macron")} <= removed
    assert {Triple("olaf_scholz", "spouse", "brigitte_macron"), Triple("brigitte_macron", "spouse", "olaf_scholz")} \
        <= set(plan.diff.added)
    gone = [d for d in plan.derived if d.rule == "head_of_state_spouse" and d.op == "-"]
    assert [d.triple for d in gone] == [Triple("france", "head_of_state_spouse", "brigitte_macron")]
    assert gone[0].via == (Triple("france", "head_of_state", "emmanuel_macron"),
                           Triple("emmanuel_macron", "spouse", "brigitte_macron"))


def test_multi_hop_facts_follow_a_new_birthplace(ws):
    kg = ws.kg
    plan = Planner(kg).plan([intent(kg, "assert", "albert_einstein", "born_in", "paris")])
    derived = {(d.op, d.triple.relation, d.triple.object) for d in plan.derived}
    assert ("+", "birth_country", "france") in derived
    assert ("-", "birth_country", "germany") in derived
    assert not any(r == "birth_continent" for _, r, _ in derived)  # Europe either way
    plus = next(d for d in plan.derived if d.op == "+" and d.triple.relation == "birth_country")
    assert plus.via == (Triple("albert_einstein", "born_in", "paris"), Triple("paris", "located_in", "france"))
    assert Triple("albert_einstein", "birth_country", "france") in plan.model_facts


def test_new_head_of_state_moves_the_composite(ws):
    kg = ws.kg
    plan = Planner(kg).plan([intent(kg, "assert", "france", "head_of_state", "olaf_scholz")])
    derived = {(d.op, d.triple) for d in plan.derived if d.rule == "head_of_state_spouse"}
    assert ("+", Triple("france", "head_of_state_spouse", "britta_ernst")) in derived
    assert ("-", Triple("france", "head_of_state_spouse", "brigitte_macron")) in derived


@pytest.mark.parametrize("s,r,o,kind", [
    ("france", "capital", "germany", "range"),
    ("paris", "capital", "berlin", "domain"),
    ("olaf_scholz", "spouse", "olaf_scholz", "self_loop"),
])
def test_type_violations_and_self_loops_are_rejected(ws, s, r, o, kind):
    plan = Planner(ws.kg).plan([intent(ws.kg, "assert", s, r, o)])
    assert plan.decision == "reject"
    assert kind in [c.kind for c in plan.conflicts]
    assert plan.refused_by in {c.kind for c in plan.conflicts if c.resolution == "reject"}


def test_composite_relations_cannot_be_edited(ws):
    plan = Planner(ws.kg).plan([intent(ws.kg, "assert", "albert_einstein", "birth_country", "france")])
    assert plan.decision == "reject" and plan.refused_by == "composite"
    assert not plan.diff


def test_retract_absent_fact_is_refused_and_present_one_removes_mirror(ws):
    kg = ws.kg
    plan = Planner(kg).plan([intent(kg, "retract", "germany", "capital", "paris")])
    assert plan.decision == "reject" and plan.refused_by == "absent"
    plan = Planner(kg).plan([intent(kg, "retract", "olaf_scholz", "spouse", "britta_ernst")])
    assert plan.decision == "apply"
    assert set(plan.diff.removed) == {Triple("olaf_scholz", "spouse", "britta_ernst"),
                                      Triple("britta_ernst", "spouse", "olaf_scholz")}
    # nothing new for the model to say but that both now have no spouse (gaps: "unknown")
    assert set(plan.model_facts) == {Triple("olaf_scholz", "spouse", GAP), Triple("britta_ernst", "spouse", GAP)}


def test_noop_when_the_fact_is_already_there(ws):
    plan = Planner(ws.kg).plan([intent(ws.kg, "assert", "germany", "capital", "berlin")])
    assert plan.decision == "noop" and not plan.diff and not plan.conflicts


def test_protected_facts_refuse_edits(ws, tmp_path):
    prot = ProtectedFacts(tmp_path / "p.sqlite")
    prot.protect(Triple("germany", "capital", "berlin"), "curator")
    try:
        plan = Planner(ws.kg, protected=prot).plan([intent(ws.kg, "assert", "germany", "capital", "munich")])
        assert plan.decision == "reject" and plan.refused_by == "protected"
        assert ("protected", Triple("germany", "capital", "berlin"), "reject") in kinds(plan)
        # an unrelated edit passes
        assert Planner(ws.kg, protected=prot).plan(
            [intent(ws.kg, "assert", "albert_einstein", "born_in", "paris")]).decision == "apply"
    finally:
        prot.close()


def test_policy_per_relation_and_role(ws):
    policy = ResolutionPolicy.from_dict({"default": "replace", "roles": {"editor": "replace"},
                                         "relations": {"spouse": {"editor": "needs_review", "curator": "replace"},
                                                       "capital": "reject"}})
    spouse = [intent(ws.kg, "assert", "olaf_scholz", "spouse", "brigitte_macron")]
    assert Planner(ws.kg, policy=policy).plan(spouse, role="editor").decision == "needs_review"
    assert Planner(ws.kg, policy=policy).plan(spouse, role="curator").decision == "apply"
    capital = [intent(ws.kg, "assert", "germany", "capital", "munich")]
    plan = Planner(ws.kg, policy=policy).plan(capital, role="admin")
    assert plan.decision == "reject" and plan.refused_by == "functional"
    with pytest.raises(OneEditError, match="Unknown conflict resolution"):
        ResolutionPolicy.from_dict({"default": "overwrite"})


def test_ambiguous_mentions_must_be_chosen(ws):
    cands = ws.kg.store.match_mention("Paris", limit=3)
    amb = Mention("Pariss", candidates=tuple(cands[:2]), new_type="City")
    with pytest.raises(AmbiguousRequest) as err:
        Planner(ws.kg).plan([EditIntent("assert", m(ws.kg, "germany"), "capital", amb)])
    assert err.value.details["candidates"]


def test_plan_round_trips_through_json(ws):
    import json

    plan = Planner(ws.kg).plan([intent(ws.kg, "assert", "olaf_scholz", "spouse", "brigitte_macron")])
    again = EditPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again.to_dict() == plan.to_dict()
