"""Batch requests from CSV, JSONL, Turtle, N-Triples and text files: one intent type, each with
its file and line; malformed files are refused with the line, all or nothing."""

from __future__ import annotations

import json

import pytest

from oneedit.core import ImportFormatError
from tests.interpreter_support import kg_state




def intents(results):
    return [(i.source.line, i.key()[:4]) for r in results for i in r.intents]


def test_csv_with_header_ops_names_and_ids(interp, tmp_path):
    f = tmp_path / "edits.csv"
    f.write_text("subject,relation,object,op\n"
                 "France,capital,Paris\n"
                 "\n"
                 "# a comment line\n"
                 "tim_cook,ceo of,apple,remove\n"
                 "Apple,chief executive officer,Jane Doe,replace\n"
                 "\"Washington, D.C.\",capital_of,USA,add\n"
                 "Japan,capital,,query\n", encoding="utf-8")
    results = interp.parse_file(f)
    assert intents(results) == [
        (2, ("assert", "france", "capital", "paris")),
        (5, ("retract", "apple", "ceo", "tim_cook")),
        (6, ("replace", "apple", "ceo", ("?", "jane doe"))),
        (7, ("assert", "united_states", "capital", "washington_dc")),
        (8, ("query", "japan", "capital", None)),
    ]
    new = results[2].intents[0].object
    assert new.to_dict() == {"new": "Jane Doe", "type": "Person"}
    assert all(i.source.file == str(f) for r in results for i in r.intents)


def test_an_exact_id_is_that_entity_though_its_label_names_several(interp, tmp_path):
    """Ids are unique, labels are not: ``portland`` is Portland, Oregon (``portland_maine`` the
    other), where the label "Portland" alone stays ambiguous."""
    f = tmp_path / "ids.csv"
    f.write_text("subject,relation,object\namsterdam,capital_of,netherlands\nportland,located_in,united_states\n"
                 "portland_maine,located_in,united_states\n", encoding="utf-8")
    got = [[(i.op, i.triple.as_tuple() if i.triple else None) for i in r.intents]
           for r in interp.parse_file(f, None, lenient=True)]
    assert got == [[("assert", ("netherlands", "capital", "amsterdam"))],
                   [("assert", ("portland", "located_in", "united_states"))],
                   [("assert", ("portland_maine", "located_in", "united_states"))]]
    label = interp.parse("Portland is in the United States").intents[0]
    assert label.triple is None and {c.entity.id for c in label.subject.candidates} >= {"portland", "portland_maine"}


def test_jsonl_with_triples_and_text(interp, tmp_path):
    f = tmp_path / "edits.jsonl"
    rows = [{"subject": "Germany", "relation": "capital", "object": "Berlin"},
            {"text": "Tim Cook is no longer the CEO of Apple"},
            {},  # blank line below
            {"subject": "Marie Curie", "relation": "citizen_of", "object": "Poland", "op": "retract"},
            {"text": "undo my last edit"}]
    f.write_text("\n".join("" if not r else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    results = interp.parse_file(f)
    assert intents(results) == [
        (1, ("assert", "germany", "capital", "berlin")),
        (2, ("retract", "apple", "ceo", "tim_cook")),
        (4, ("retract", "marie_curie", "citizen_of", "poland")),
        (5, ("undo", None, None, None)),
    ]


def test_text_file_one_request_per_line(interp, tmp_path):
    f = tmp_path / "requests.txt"
    f.write_text("# requests for the KG\nSydney is now the capital of Australia\n\n"
                 "What is the capital of Japan?\nshow the history of France\n", encoding="utf-8")
    results = interp.parse_file(f)
    assert [(line, k[0]) for line, k in intents(results)] == [(2, "replace"), (4, "query"), (5, "explain")]
    assert results[0].intents[0].text == "Sydney is now the capital of Australia"


def test_turtle_with_our_ids_foreign_iris_labels_and_types(interp, tmp_path):
    f = tmp_path / "facts.ttl"
    f.write_text("""@prefix e: <urn:oneedit:e:> .
@prefix r: <urn:oneedit:r:> .
@prefix ex: <http://example.org/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .

e:france r:capital e:paris ;
    r:currency e:euro ,
        e:swiss_franc .
ex:Tim_Cook ex:ceo_of ex:Apple .
ex:jd a ex:Person ;
    rdfs:label "Jane Doe" .
ex:Apple <http://example.org/employer> ex:jd .
""", encoding="utf-8")
    results = interp.parse_file(f)
    got = intents(results)
    assert got[:4] == [
        (6, ("assert", "france", "capital", "paris")),
        (7, ("assert", "france", "currency", "euro")),
        (8, ("assert", "france", "currency", "swiss_franc")),
        (9, ("assert", "apple", "ceo", "tim_cook")),
    ]
    # "Apple employer Jane Doe" has Apple where a Person goes: the statement is kept as written,
    # the clash is noted, and the new entity takes the type the file declares.
    last = results[-1].intents[0]
    assert got[-1][0] == 12 and last.object.status == "new" and last.object.text == "Jane Doe"
    assert any("is a Organization" in n or "not a Person" in n for n in last.notes)


def test_ntriples(interp, tmp_path):
    f = tmp_path / "facts.nt"
    f.write_text("<urn:oneedit:e:albert_einstein> <urn:oneedit:r:born_in> <urn:oneedit:e:ulm> .\n"
                 "\n"
                 "<urn:oneedit:e:japan> <urn:oneedit:r:capital> <urn:oneedit:e:tokyo> .\n", encoding="utf-8")
    assert intents(interp.parse_file(f)) == [(1, ("assert", "albert_einstein", "born_in", "ulm")),
                                             (3, ("assert", "japan", "capital", "tokyo"))]


def test_every_format_gives_the_same_intent(interp, tmp_path):
    files = {
        "a.csv": "Tim Cook,ceo_of,Apple\n",
        "a.jsonl": json.dumps({"subject": "Apple", "relation": "ceo", "object": "Tim Cook"}) + "\n",
        "b.jsonl": json.dumps({"text": "Tim Cook is the CEO of Apple"}) + "\n",
        "a.txt": "Apple's CEO is Tim Cook\n",
        "a.ttl": "@prefix e: <urn:oneedit:e:> .\n@prefix r: <urn:oneedit:r:> .\ne:apple r:ceo e:tim_cook .\n",
        "a.nt": "<urn:oneedit:e:tim_cook> <urn:oneedit:r:ceo_of> <urn:oneedit:e:apple> .\n",
    }
    keys = set()
    for name, content in files.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
        [result] = interp.parse_file(tmp_path / name)
        [intent] = result.intents
        assert intent.source.file.endswith(name) and intent.source.line >= 1
        keys.add(intent.key())
    assert keys == {("assert", "apple", "ceo", "tim_cook", None, 1, None)}


@pytest.mark.parametrize("name,content,fragment", [
    ("bad.csv", "France,capital\n", "line 1: expected 3 or 4 columns"),
    ("bad2.csv", "France,capital,Paris\nFrance,capital,Paris,maybe\n", "line 2"),
    ("bad.jsonl", '{"subject": "France", "relation": "capital", "object": "Paris"}\n{oops\n', "line 2: invalid JSON"),
    ("bad2.jsonl", '{"subject": "France", "relation": "capital", "object": "Paris", "when": 1}\n', "unknown field(s): when"),
    ("bad3.jsonl", '["France", "capital", "Paris"]\n', "expected a JSON object"),
    ("bad.ttl", "@prefix e: <urn:oneedit:e:> .\ne:france e:capital \n", "syntax error"),
    ("rel.csv", "France,capital,Paris\nFrance,favourite colour,Blue\n", "line 2: No relation for 'favourite colour'"),
    ("text.txt", "Paris is the capital of France\ncolorless green ideas sleep furiously\n", "line 2"),
    ("bin.csv", "France,capital,\x00Paris\n", "NUL bytes"),
    ("notes.docx", "whatever", "Cannot tell the format"),
])
def test_malformed_files_name_the_line_and_change_nothing(interp, shipped_ws, tmp_path, name, content, fragment):
    before = kg_state(shipped_ws)
    f = tmp_path / name
    f.write_text(content, encoding="utf-8")
    with pytest.raises(ImportFormatError) as err:
        interp.parse_file(f)
    assert fragment in str(err.value), str(err.value)
    if name == "notes.docx":  # refused before reading: the hint says how to name the format
        assert "--format" in err.value.hint and "*.csv" in err.value.hint, err.value.hint
    else:
        assert "nothing from this file was used" in err.value.hint, err.value.hint
    assert kg_state(shipped_ws) == before


def test_missing_file_and_bad_encoding(interp, tmp_path):
    with pytest.raises(ImportFormatError, match="File not found"):
        interp.parse_file(tmp_path / "nope.csv")
    f = tmp_path / "latin1.txt"
    f.write_bytes("Paris is the capital of France\nZ\xfcrich is in Switzerland\n".encode("latin-1"))
    with pytest.raises(ImportFormatError, match="line 2: not valid UTF-8"):
        interp.parse_file(f)
