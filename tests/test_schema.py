"""The shipped schema: every relation complete, composite rules well-typed; bad schemas refused."""

from __future__ import annotations

import copy

import pytest
import yaml

import kg_data
from controller.schema import Schema
from oneedit.core import SchemaError

REQUIRED = {
    "capital": ("one", "capital_of", False), "located_in": ("one", None, False),
    "continent": ("one", None, False), "currency": ("many", None, False),
    "official_language": ("many", None, False), "head_of_state": ("one", None, False),
    "head_of_government": ("one", None, False), "born_in": ("one", None, False),
    "citizen_of": ("many", None, False), "occupation": ("many", None, False),
    "spouse": ("one", None, True), "parent": ("many", "child", False),
    "educated_at": ("many", None, False), "employer": ("many", None, False),
    "ceo": ("one", "ceo_of", False), "founded_by": ("many", "founder_of", False),
    "headquarters": ("one", None, False), "industry": ("many", None, False),
}


def test_required_relations_have_the_asked_shape(schema):
    for rid, (card, inverse, symmetric) in REQUIRED.items():
        r = schema.relations[rid]
        assert (r.cardinality, r.inverse, r.symmetric) == (card, inverse, symmetric), rid
    assert schema.relations["capital"].domain == ("Country",) and schema.relations["capital"].range == ("City",)
    assert set(schema.relations["located_in"].domain) == {"City", "University"}


def test_every_relation_has_phrases_and_train_and_heldout_templates(schema):
    for r in schema.relations.values():
        assert r.label and r.phrases, r.id
        assert len(r.templates.train) >= 3 and len(r.templates.heldout) >= 2, r.id
        assert any(t.startswith("Q:") or "?" in t for t in r.templates.all()), f"{r.id}: no question form"
        assert any(t.index("{object}") < t.index("{subject}") for t in r.templates.all()), \
            f"{r.id}: no object-first form"
        assert not set(r.templates.train) & set(r.templates.heldout), r.id


def test_composites(schema):
    rules = {r.id: r.rule for r in schema.composite_relations()}
    assert rules["birth_country"] == ("born_in", "located_in")
    assert rules["birth_continent"] == ("born_in", "located_in", "continent")
    assert rules["headquarters_country"] == ("headquarters", "located_in")
    assert rules["head_of_state_spouse"] == ("head_of_state", "spouse")
    assert rules["grandparent"] == ("parent", "parent")


def _raw():
    return yaml.safe_load(kg_data.schema_path().read_text())


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["relations"]["capital"].update(inverse="nope"), "unknown inverse"),
    (lambda d: d["relations"]["capital_of"].update(inverse="located_in"), "must name each other"),
    (lambda d: d["relations"]["capital"].update(range=["Planet"]), "unknown type 'Planet'"),
    (lambda d: d["relations"]["capital"].update(cardinality="several"), "cardinality"),
    (lambda d: d["relations"]["birth_country"].update(rule=["born_in", "capital"]), "cannot chain"),
    (lambda d: d["relations"]["capital"]["templates"]["train"].append("no placeholders"), "needs {subject}"),
    (lambda d: d.pop("types"), "expected top-level keys"),
    (lambda d: d["relations"]["employer"].update(events={"hire": ["joined"]}), "events of 'employer' must map"),
    (lambda d: d["relations"]["employer"].update(events={"retract": "quit"}), "events.retract of 'employer'"),
])
def test_malformed_schema_is_refused(mutate, message):
    raw = copy.deepcopy(_raw())
    mutate(raw)
    with pytest.raises(SchemaError, match=message):
        Schema.from_dict(raw)


def test_missing_schema_file(tmp_path):
    with pytest.raises(SchemaError, match="not found"):
        Schema.load(tmp_path / "none.yaml")


def test_event_verbs_are_the_schemas_own(schema):
    """Event verbs carry their operation: joining asserts employment, quitting retracts it."""
    events = dict(schema.relations["employer"].events)
    assert "joined" in events["assert"] and "quit" in events["retract"]
    assert all(op in ("assert", "retract", "replace") for r in schema.relations.values() for op, _ in r.events)
