"""Schema-aware KG operations on a real embedded store: changes, refusals, import/export, history."""

from __future__ import annotations

import json

import pytest

from oneedit.core import (
    ConstraintViolation,
    ImportFormatError,
    Triple,
    UnknownEntityError,
    UnknownRelationError,
)


def test_add_writes_fact_and_inverse_in_one_revision(small_kg):
    kg = small_kg
    kg.remove_fact("France", "capital", "Paris", author="a")
    rev = kg.add_fact("france", "capital city", "LYON", author="a")
    diff = kg.store.revision(rev.id, with_diff=True).diff
    assert set(diff.added) == {Triple("france", "capital", "lyon"), Triple("lyon", "capital_of", "france")}
    assert kg.query("Lyon", "capital_of") == [Triple("lyon", "capital_of", "france")]


def test_symmetric_relation_is_mirrored_and_removed_together(small_kg):
    kg = small_kg
    kg.remove_fact("Brigitte Macron", "spouse", "Emmanuel Macron", author="a")
    assert kg.query("emmanuel_macron", "spouse") == [] and kg.query("brigitte_macron", "spouse") == []
    kg.add_fact("Einstein", "married to", "Brigitte Macron", author="a")
    assert kg.query("brigitte_macron", "spouse") == [Triple("brigitte_macron", "spouse", "albert_einstein")]


def test_functional_conflict_is_refused_with_the_current_value(small_kg):
    head = small_kg.store.head()
    with pytest.raises(ConstraintViolation) as exc:
        small_kg.add_fact("france", "capital", "lyon", author="a")
    assert "2 values for functional relation 'capital'" in exc.value.message
    assert "Paris" in exc.value.hint and "oneedit kg remove france capital paris" in exc.value.hint
    assert small_kg.store.head() == head  # nothing changed


def test_type_violations_are_refused(small_kg):
    with pytest.raises(ConstraintViolation, match="is a Person, but capital expects City"):
        small_kg.add_fact("germany", "capital", "albert_einstein", author="a")
    with pytest.raises(ConstraintViolation, match="self"):
        small_kg.add_fact("albert_einstein", "parent", "albert_einstein", author="a")
    with pytest.raises(ConstraintViolation, match="derived by the rule"):
        small_kg.add_fact("albert_einstein", "birth_country", "france", author="a")


def test_unknown_names_get_closest_matches(small_kg):
    with pytest.raises(UnknownEntityError) as exc:
        small_kg.add_fact("Frnace", "capital", "paris", author="a")
    assert exc.value.details["closest"][0] == "france"
    with pytest.raises(UnknownRelationError) as exc:
        small_kg.add_fact("france", "capitol", "paris", author="a")
    assert "capital" in exc.value.details["closest"]


def test_ambiguous_names_are_never_guessed(small_kg):
    with small_kg.store.transaction("a", "second Paris") as txn:
        txn.add_all([Triple("paris_texas", "type", "City"), Triple("paris_texas", "label", "Paris"),
                     Triple("paris_texas", "description", "city in Texas")])
    assert small_kg.resolve_entity("paris").id == "paris"  # an exact id wins
    with pytest.raises(UnknownEntityError, match="ambiguous") as exc:
        small_kg.resolve_entity("PARIS ")  # a label two entities share does not
    assert "paris" in str(exc.value.details) and "paris_texas" in str(exc.value.details)


def test_composite_query_is_derived(small_kg):
    assert small_kg.query("Albert Einstein", "birth_country") == [Triple("albert_einstein", "birth_country", "germany")]
    assert small_kg.query("Einstein", "birth_continent") == [Triple("albert_einstein", "birth_continent", "europe")]
    assert small_kg.query("Eduard Einstein", "grandparent") == []
    assert small_kg.query("France", "head_of_state_spouse") == [Triple("france", "head_of_state_spouse", "brigitte_macron")]
    d = small_kg.derived("birth_country", subject="albert_einstein")[0]
    assert d.via == (Triple("albert_einstein", "born_in", "ulm"), Triple("ulm", "located_in", "germany"))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "nt", "ttl"])
def test_export_import_round_trip(small_kg, tmp_path, fmt, schema):
    from controller.kg import KnowledgeGraph
    from controller.stores.embedded import EmbeddedStore

    out = tmp_path / f"kg.{fmt}"
    n = small_kg.export(out, fmt)
    assert n == small_kg.store.count()
    other = KnowledgeGraph(EmbeddedStore(tmp_path / "other"), schema)
    try:
        res = other.import_file(out, author="b")
        assert res.added == n and res.revision.id == 1
        assert set(other.store.triples()) == set(small_kg.store.triples())
    finally:
        other.store.close()


def test_csv_import_resolves_names_adds_mirrors_and_removes(small_kg, tmp_path):
    f = tmp_path / "edits.csv"
    f.write_text("subject,relation,object,op\n"
                 "France,capital,Paris,remove\n"
                 "France,capital,Lyon,add\n"
                 "# a comment\n"
                 "Albert Einstein,citizen of,France\n", encoding="utf-8")
    res = small_kg.import_file(f, author="a")
    assert (res.rows, res.added, res.removed) == (3, 3, 2)  # citizen_of has no mirror
    assert small_kg.query("france", "capital") == [Triple("france", "capital", "lyon")]


def test_jsonl_import_can_define_new_entities(small_kg, tmp_path):
    f = tmp_path / "new.jsonl"
    rows = [{"subject": "marseille", "relation": "type", "object": "City"},
            {"subject": "marseille", "relation": "label", "object": "Marseille"},
            {"subject": "marseille", "relation": "located_in", "object": "France"}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    small_kg.import_file(f, author="a")
    assert small_kg.resolve_entity("MARSEILLE").id == "marseille"
    assert small_kg.query("marseille", "located_in") == [Triple("marseille", "located_in", "france")]


@pytest.mark.parametrize("name, text, line, problem", [
    ("bad.csv", "France,capital,Paris,remove\nFrance,capital\n", 2, "expected 3 or 4 columns"),
    ("bad.csv", "France,capital,Paris,remove\nFrance,capital,Lyon,frob\n", 2, "unknown op"),
    ("bad.jsonl", '{"subject":"france","relation":"capital","object":"lyon"}\n{"subject": "x",\n', 2, "invalid JSON"),
    ("bad.jsonl", '{"subject":"france","relation":"capital"}\n', 1, "missing or empty field(s): object"),
    ("bad.nt", "<urn:oneedit:e:a> <urn:oneedit:r:located_in> <urn:oneedit:e:france> .\n<urn:oneedit:e:a> <x\n", 2, "syntax error"),
    ("bad.nt", "<urn:oneedit:e:a> <http://example.org/p> <urn:oneedit:e:b> .\n", 1, "outside the OneEdit namespace"),
    ("bad.csv", "France,capital,Paris,remove\nFrance,capital,Atlantis\n", 2, "No entity named 'Atlantis'"),
    ("bad.csv", "France,capital,Paris,remove\nFrance,capitol,Lyon\n", 2, "Unknown relation 'capitol'"),
])
def test_malformed_import_names_line_and_changes_nothing(small_kg, tmp_path, name, text, line, problem):
    f = tmp_path / name
    f.write_text(text, encoding="utf-8")
    before, head = set(small_kg.store.triples()), small_kg.store.head()
    with pytest.raises(ImportFormatError) as exc:
        small_kg.import_file(f, author="a")
    assert f"{name}, line {line}" in exc.value.message and problem in exc.value.message
    assert set(small_kg.store.triples()) == before and small_kg.store.head() == head


def test_import_violating_the_schema_names_the_line(small_kg, tmp_path):
    f = tmp_path / "conflict.csv"
    f.write_text("Ulm,located in,France\nFrance,capital,Lyon\n", encoding="utf-8")
    before = set(small_kg.store.triples())
    with pytest.raises(ConstraintViolation) as exc:
        small_kg.import_file(f, author="a")
    assert "line 1: 'ulm' would have 2 values" in exc.value.message
    assert "line 2: 'france' would have 2 values" in exc.value.message
    assert set(small_kg.store.triples()) == before


def test_revert_that_would_break_cardinality_is_refused(small_kg):
    kg = small_kg
    r_remove = kg.remove_fact("france", "capital", "paris", author="a").id
    kg.add_fact("france", "capital", "lyon", author="a")
    with pytest.raises(ConstraintViolation, match="revert them first"):
        kg.revert(r_remove, author="a")
    kg.restore(r_remove - 1, author="a")
    assert kg.query("france", "capital") == [Triple("france", "capital", "paris")]
    assert kg.validate().ok


def test_stats_counts(small_kg):
    s = small_kg.stats()
    assert s["entities"] == 18 and s["revision"] == 1
    assert s["facts_by_relation"]["capital"] == 2 and s["facts_by_relation"]["capital_of"] == 2
    assert s["facts_by_relation"]["spouse"] == 2 and s["derived_facts"] >= 5


def test_import_into_empty_kg_is_checked_in_memory(tmp_path, schema):
    from controller.kg import KnowledgeGraph
    from controller.stores.embedded import EmbeddedStore

    kg = KnowledgeGraph(EmbeddedStore(tmp_path / "empty"), schema)
    try:
        bad = tmp_path / "bad.jsonl"
        rows = [{"subject": "x", "relation": "type", "object": "City"},
                {"subject": "x", "relation": "label", "object": "X"},
                {"subject": "y", "relation": "type", "object": "City"},
                {"subject": "y", "relation": "label", "object": "Y"},
                {"subject": "x", "relation": "capital", "object": "y"}]
        bad.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        with pytest.raises(ConstraintViolation, match="line 5: .*x' is a City, but capital expects Country"):
            kg.import_file(bad, author="a")
        assert kg.store.count() == 0 and kg.store.head() == 0
        good = tmp_path / "good.jsonl"
        rows[0]["object"] = "Country"
        good.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        res = kg.import_file(good, author="a")
        assert res.added == 6 and kg.query("y", "capital_of") == [Triple("y", "capital_of", "x")]
        assert kg.validate().ok
    finally:
        kg.store.close()
