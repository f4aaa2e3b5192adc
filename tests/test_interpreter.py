"""The rule parser and entity linking on the shipped KG: forms, linking, bad input, no state change."""

from __future__ import annotations

import json

import pytest

from interpreter import Interpreter, LinkConfig
from oneedit.core import TypeClashError, EditIntent, InputError, ParseError, UnknownRelationError
from oneedit.workspace import Workspace
from tests.interpreter_support import kg_state




def one(interp, text) -> EditIntent:
    res = interp.parse(text)
    assert len(res.intents) == 1, [i.to_dict() for i in res.intents]
    return res.intents[0]


def key(intent: EditIntent) -> tuple:
    return intent.key()


# -- the issue's own examples ------------------------------------------------------------------------
def test_lyon_and_marseille_gives_what_the_schema_can_express_and_a_note(interp):
    res = interp.parse("Lyon is the capital of France and Marseille is its largest port")
    assert [i.op for i in res.intents] == ["assert"]
    i = res.intents[0]
    assert (i.subject.id, i.relation) == ("france", "capital")
    assert i.object.status == "new" and i.object.text == "Lyon" and i.object.new_type == "City"
    assert len(res.notes) == 1 and "no relation for 'largest port'" in res.notes[0]
    assert "closest:" in res.notes[0]


def test_inverse_phrasing_is_expressed_in_the_stored_direction(interp):
    forms = ["Tim Cook is the CEO of Apple", "Apple's CEO is Tim Cook", "Tim Cook runs Apple",
             "The CEO of Apple is Tim Cook", "Apple is run by Tim Cook", "Tim Cook is Apple's CEO"]
    keys = {key(one(interp, f)) for f in forms}
    assert keys == {("assert", "apple", "ceo", "tim_cook", None, 1, None)}


def test_unknown_name_becomes_a_new_entity_typed_from_the_relation(interp):
    i = one(interp, "Jane Doe is the CEO of Apple")
    assert (i.op, i.subject.id, i.relation) == ("assert", "apple", "ceo")
    assert i.object.status == "new" and i.object.to_dict() == {"new": "Jane Doe", "type": "Person"}
    # A relation with two range types: the name's own words pick one, else the first.
    assert one(interp, "Alice Martin works for Acme University").object.new_type == "University"
    assert one(interp, "Bob Stone works for Globex").object.new_type == "Organization"
    # The subject side is typed from the domain.
    assert one(interp, "Initech is headquartered in Austin").subject.new_type == "Organization"


def test_unknown_relation_is_a_clear_error_with_the_closest_relations(interp, shipped_ws):
    before = kg_state(shipped_ws)
    with pytest.raises(UnknownRelationError) as err:
        interp.parse("France's favourite colour is blue")
    e = err.value
    assert e.message.startswith("No relation for 'favourite colour'; closest: ")
    assert len(e.details["closest"]) == 3 and all(r in shipped_ws.kg.schema.relations for r in e.details["closest"])
    assert "schema" in e.hint
    assert kg_state(shipped_ws) == before


# -- entity linking --------------------------------------------------------------------------------
def test_linking_scores_exact_alias_and_typo(interp):
    assert one(interp, "The capital of France is Paris").subject.confidence == 1.0
    alias = one(interp, "The capital of the USA is Washington, D.C.").subject
    assert (alias.id, alias.confidence) == ("united_states", 0.97)
    typo = one(interp, "What is the capital of Frnace?").subject
    assert typo.id == "france" and 0.8 <= typo.confidence < 0.97
    partial = one(interp, "Where was Einstein born?").subject
    assert partial.id == "albert_einstein" and 0.8 <= partial.confidence < 0.95


def test_shared_labels_come_back_as_candidates_with_descriptions(interp):
    i = one(interp, "Portland is located in the United States")
    m = i.subject
    assert m.status == "ambiguous" and m.entity is None and i.triple is None and i.needs_choice
    by_id = {c.entity.id: c for c in m.candidates}
    assert {"portland", "portland_maine"} <= set(by_id)
    assert by_id["portland"].entity.description == "city in Oregon"
    d = i.to_dict()
    assert d["subject"] == {"ambiguous": "Portland", "type": "City"}
    assert {c["id"] for c in d["candidates"]["subject"]} >= {"portland", "portland_maine"}


def test_never_links_below_the_threshold(shipped_ws):
    strict = Interpreter.from_kg(shipped_ws.kg, link=LinkConfig(link=0.99, candidate=0.7))
    m = one(strict, "What is the capital of Frnace?").subject
    assert m.status == "ambiguous" and m.candidates[0].entity.id == "france"
    assert m.candidates[0].score < 0.99
    with pytest.raises(ValueError):
        LinkConfig(link=0.5, candidate=0.7)


def test_unrelated_names_are_not_linked_by_shared_words(interp):
    # "Acme University" shares a word with dozens of universities, "Elbonian" is two edits from
    # "Albanian": neither may be guessed.
    assert one(interp, "Priya Raman studied at Acme University").object.status == "new"
    m = one(interp, "Elbonian is an official language of France").object
    assert m.status == "new" and m.new_type == "Language"


def test_type_clash_is_refused_at_parse_time_with_the_reason(interp):
    i = one(interp, "The capital of Lyon is Paris")
    assert i.subject.status == "new"  # no country is called Lyon; a new name takes the type asked for
    cases = {
        "The capital of Paris is Berlin": "'Paris' is a City, but 'capital' is said of a Country",
        "Tim Cook is the capital of France": "'Tim Cook' is a Person, but 'capital' must name a City",
        "Apple was born in Microsoft": "'Apple' is an Organization, but 'born in' is said of a Person",
        "The currency of Japan is English": "'English' is a Language, but 'currency' must name a Currency",
        "What is the capital of Tim Cook?": "'Tim Cook' is a Person",
    }
    for text, reason in cases.items():
        with pytest.raises(TypeClashError) as exc:
            interp.parse(text)
        assert reason in exc.value.message, (text, exc.value.message)
        assert exc.value.hint and exc.value.details["reasons"]


# -- forms -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [
    ("Lyon is now the capital of France", "replace"),
    ("Actually, the capital of Australia is Canberra", "replace"),
    ("Apple's new CEO is Jane Doe", "replace"),
    ("Sam Altman became the CEO of Microsoft", "replace"),
    ("Set the capital of France to Marseille", "replace"),
    ("Tim Cook is no longer the CEO of Apple", "retract"),
    ("Tim Cook isn't the CEO of Apple anymore", "retract"),
    ("Tim Cook doesn't run Apple any more", "retract"),
    ("Remove the fact that Paris is the capital of France", "retract"),
    ("It's not true that Paris is the capital of France", "retract"),
    ("Is Paris the capital of France?", "query"),
    ("paris is the capital of france?", "query"),
    ("Paris is the capital of France", "assert"),
])
def test_operation_words(interp, text, expected):
    assert one(interp, text).op == expected


def test_replace_of_a_many_valued_relation_is_an_addition_with_a_note(interp):
    i = one(interp, "Japan now uses the euro as its currency")
    assert (i.op, i.relation, i.object.id) == ("assert", "currency", "euro")
    assert any("several values" in n for n in i.notes)


def test_derived_relations_are_noted(interp):
    i = one(interp, "Alan Turing's birth country is the United Kingdom")
    assert i.relation == "birth_country" and any("born_in -> located_in" in n for n in i.notes)


def test_retract_without_object_means_every_value(interp):
    i = one(interp, "Apple no longer has a CEO")
    assert (i.op, i.subject.id, i.relation, i.object) == ("retract", "apple", "ceo", None)


def test_questions_mark_the_unknown_with_none(interp):
    assert key(one(interp, "Who founded Microsoft?"))[1:4] == ("microsoft", "founded_by", None)
    i = one(interp, "Which country has Tokyo as its capital?")
    assert (i.op, i.subject, i.relation, i.object.id) == ("query", None, "capital", "tokyo")
    about = one(interp, "Who is Tim Cook?")
    assert (about.subject.id, about.relation, about.object) == ("tim_cook", None, None)


def test_pronouns_refer_back_across_clauses(interp):
    res = interp.parse("Einstein was born in Ulm and he studied at ETH Zurich. His job is physicist.")
    assert [key(i)[1:4] for i in res.intents] == [
        ("albert_einstein", "born_in", "ulm"), ("albert_einstein", "educated_at", "eth_zurich"),
        ("albert_einstein", "occupation", "physicist")]


def test_coordinated_names_give_one_intent_each(interp):
    res = interp.parse("The official languages of Belgium are French, German and Dutch")
    assert [i.object.id for i in res.intents] == ["french", "german", "dutch"]


def test_quoted_names_are_taken_whole(interp):
    i = one(interp, "The CEO of 'Acme and Sons' is Tim Cook")
    assert i.subject.to_dict() == {"new": "Acme and Sons", "type": "Organization"}
    # Unquoted, the same words are not one new name.
    res = interp.parse("The CEO of Acme and Sons is Tim Cook")
    assert not any(i.subject and i.subject.text == "Acme and Sons" for i in res.intents)


def test_case_whitespace_punctuation_and_typos_do_not_matter(interp):
    base = key(one(interp, "The capital of Germany is Berlin"))
    for variant in ["THE CAPITAL OF GERMANY IS BERLIN!!!", "  the   capital of\tgermany is berlin .  ",
                    "the capital of germany is berlin...", "The captial of Germany is Berlin",
                    "The capital of Germny is Berlin", "Germany's capital is Berlin"]:
        assert key(one(interp, variant)) == base, variant
    typo = one(interp, "The captial of Germany is Berlin")
    assert typo.confidence < 1.0  # a corrected relation word lowers the confidence


def test_undo_and_explain(interp):
    assert one(interp, "undo my last edit").to_dict() | {"confidence": 1} == {
        "op": "undo", "edit": None, "count": 1, "confidence": 1, "candidates": {}, "text": "undo my last edit"}
    assert (one(interp, "revert edit 42").edit, one(interp, "undo the last 3 edits").count) == (42, 3)
    e = one(interp, "Why does the model say the capital of France is Rome?")
    assert (e.op, e.about, e.triple.as_tuple()) == ("explain", "model", ("france", "capital", "rome"))
    h = one(interp, "show the history of France")
    assert (h.about, h.subject.id, h.relation) == ("history", "france", None)
    assert one(interp, "explain edit 7").to_dict()["edit"] == 7


def test_intent_json_shape(interp):
    res = interp.parse("Jane Doe is now the CEO of Apple")
    d = json.loads(json.dumps(res.to_dict()))
    i = d["intents"][0]
    assert set(i) >= {"op", "subject", "relation", "object", "confidence", "candidates"}
    assert i["subject"] == {"id": "apple", "label": "Apple"}
    assert i["object"] == {"new": "Jane Doe", "type": "Person"}
    assert 0 < i["confidence"] <= 1 and i["candidates"] == {}


# -- bad input: a clear error, no state change -----------------------------------------------------
@pytest.mark.parametrize("text,fragment", [
    ("", "empty"),
    ("   \n\t ", "empty"),
    ("x" * 10_001, "10,001 characters"),
    ("Paris is the capital of France\x07", "U+0007"),
    ("Paris\x00 is the capital of France", "NUL"),
    ("Paris is the capital of \ufffdFrance", "replacement character"),
])
def test_bad_input_is_refused_with_what_to_do(interp, shipped_ws, text, fragment):
    before = kg_state(shipped_ws)
    with pytest.raises(InputError) as err:
        interp.parse(text)
    assert fragment in err.value.message and err.value.hint
    assert kg_state(shipped_ws) == before


def test_size_limit_is_inclusive_and_configurable(interp, shipped_ws):
    text = "Paris is the capital of France. " + " " * (10_000 - 32)
    assert len(text) == 10_000 and one(interp, text).relation == "capital"
    small = Interpreter.from_kg(shipped_ws.kg, max_chars=20)
    with pytest.raises(InputError, match="limit is 20"):
        small.parse("Paris is the capital of France")
    with pytest.raises(InputError):
        interp.parse(b"Paris is the capital of France")  # type: ignore[arg-type]


def test_unreadable_text_is_a_parse_error_with_examples(interp):
    with pytest.raises(ParseError) as err:
        interp.parse("colorless green ideas sleep furiously")
    assert "Lyon is the capital of France" in err.value.hint


@pytest.mark.parametrize("text", [
    "SELECT ?s WHERE { ?s <urn:oneedit:r:capital> ?o }",
    "DELETE WHERE { ?s ?p ?o }",
    "MATCH (n) DETACH DELETE n",
    "Paris'; DROP TABLE facts; --",
    "INSERT DATA { <urn:oneedit:e:france> <urn:oneedit:r:capital> <urn:oneedit:e:lyon> }",
])
def test_query_injection_is_refused_and_changes_nothing(interp, shipped_ws, text):
    before = kg_state(shipped_ws)
    with pytest.raises(ParseError):
        interp.parse(text)
    assert kg_state(shipped_ws) == before


def test_injection_in_a_quoted_name_stays_inert_data_down_to_the_store(interp, shipped_ws, tmp_path):
    from controller.stores.embedded import EmbeddedStore
    from oneedit.core import Entity, slugify

    before = kg_state(shipped_ws)
    evil = "Robert'); DROP TABLE facts;-- } DELETE WHERE { ?s ?p ?o } MATCH (n) DETACH DELETE n"
    i = one(interp, f'"{evil}" is headquartered in Cupertino')
    assert i.subject.status == "new" and i.subject.text == evil
    assert kg_state(shipped_ws) == before
    # Written to a real store as the new entity's label, it is a literal: read back unchanged,
    # and nothing else in the store moved.
    store = EmbeddedStore(tmp_path / "kg")
    try:
        eid = slugify(i.subject.text)[:40]
        store.bulk_load(Entity("cupertino", "City", "Cupertino").triples(), "test", "seed")
        n = store.count()
        e = Entity(eid, i.subject.new_type, i.subject.text)
        with store.transaction("test", "add new entity") as txn:
            txn.add_all(e.triples())
        assert store.entity(eid).label == evil
        assert store.count() == n + 2 and store.entity("cupertino").label == "Cupertino"
        hits = list(store.graph.query("SELECT (COUNT(*) AS ?n) WHERE { ?s ?p ?o }"))
        assert int(hits[0][0]) == n + 2
    finally:
        store.close()


def test_parsing_changes_no_file_of_the_workspace(interp, shipped_ws):
    files = {p: p.stat().st_mtime_ns for p in shipped_ws.root.rglob("*") if p.is_file()}
    for text in ["Tim Cook is no longer the CEO of Apple", "undo my last edit", "Jane Doe is the CEO of Apple",
                 "Remove the capital of France", "show the history of France"]:
        interp.parse(text)
    after = {p: p.stat().st_mtime_ns for p in shipped_ws.root.rglob("*") if p.is_file()}
    changed = [str(p.relative_to(shipped_ws.root)) for p in files if after.get(p) != files[p]]
    # RocksDB may rotate its own info log on open; no data file may change.
    assert not [c for c in changed if not c.rsplit("/", 1)[-1].startswith(("LOG", "LOCK"))], changed


# -- driven by the schema ------------------------------------------------------------------------------
def test_a_relation_added_to_the_schema_is_understood_without_code(tmp_path):
    from tests.conftest import write_world

    data = write_world(tmp_path / "data")
    schema = (data / "schema.yaml").read_text()
    schema = schema.replace("relations:\n", """relations:
  twin_city:
    label: twin city
    phrases: [twinned with, twin city, sister city]
    cardinality: many
    symmetric: true
    domain: [City]
    range: [City]
    templates:
      train: ["{subject} is twinned with {object}", "A twin city of {subject} is {object}"]
      heldout: ["{subject} and {object} are twin cities"]
""", 1)
    (data / "schema.yaml").write_text(schema)
    ws, _ = Workspace.init(tmp_path / "ws", data=data)
    with ws:
        interp = Interpreter.from_kg(ws.kg)
        for text in ["Paris is twinned with Berlin", "Berlin is a sister city of Paris",
                     "Paris's twin city is Berlin", "Is Paris twinned with Berlin?"]:
            i = one(interp, text)
            assert i.relation == "twin_city" and {i.subject.id, i.object.id} == {"paris", "berlin"}, text
        with pytest.raises(UnknownRelationError):
            interp.parse("Paris's favourite colour is blue")


@pytest.mark.parametrize("text", ["What is Alphabet Inc.'s CEO?", "WHAT IS ALPHABET INC.'S CEO?",
                                  "what is alphabet inc.'s ceo"])
def test_a_possessive_after_an_abbreviation_in_any_case(interp, text):
    """"Inc.'s" is a possessive, not a sentence end, and "'S" in capitals is one too (found by the
    property test's random case on a fresh machine)."""
    res = interp.parse(text)
    assert [(i.op, i.subject.id, i.relation) for i in res.intents] == [("query", "alphabet_inc", "ceo")]
    loud = interp.parse("THE COUNTRY OF ALPHABET INC.'S HEAD OFFICE IS UNITED STATES").intents
    assert [i.triple.as_tuple() for i in loud] == [("alphabet_inc", "headquarters_country", "united_states")]
