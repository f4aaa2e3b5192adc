"""``oneedit parse`` through typer's CliRunner on the shipped KG (read-only: nothing changes)."""

from __future__ import annotations

import json

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from typer.testing import CliRunner

from oneedit.cli import app
from tests.interpreter_support import shipped_workspace

runner = CliRunner()


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return shipped_workspace(tmp_path_factory)


def run(ws, *args, ok=True, input=None):
    res = runner.invoke(app, ["parse", *map(str, args), "-w", str(ws)], input=input)
    if ok:
        assert res.exit_code == 0, res.output
    return res


def run_json(ws, *args, ok=True, input=None):
    return json.loads(run(ws, *args, "--json", ok=ok, input=input).stdout)


def revisions(ws) -> list:
    res = runner.invoke(app, ["kg", "log", "--json", "-w", str(ws)])
    return json.loads(res.stdout)["revisions"]


def test_json_has_op_triple_entities_confidence_candidates(ws):
    before = revisions(ws)
    out = run_json(ws, "Tim Cook is no longer the CEO of Apple; Jane Doe is now its CEO")
    assert out["parser"] == "rules" and out["notes"] == []
    a, b = out["intents"]
    assert {k: a[k] for k in ("op", "subject", "relation", "object", "candidates")} == {
        "op": "retract", "subject": {"id": "apple", "label": "Apple"}, "relation": "ceo",
        "object": {"id": "tim_cook", "label": "Tim Cook"}, "candidates": {}}
    assert a["confidence"] == 1.0
    assert (b["op"], b["object"]) == ("replace", {"new": "Jane Doe", "type": "Person"})
    assert revisions(ws) == before


def test_candidates_are_shown_for_ambiguous_names(ws):
    out = run_json(ws, "Curie was born in Warsaw")
    i = out["intents"][0]
    assert i["subject"] == {"ambiguous": "Curie", "type": "Person"}
    ids = [c["id"] for c in i["candidates"]["subject"]]
    assert {"marie_curie", "pierre_curie"} <= set(ids)
    text = run(ws, "Curie was born in Warsaw").stdout
    assert "Choose the subject 'Curie'" in text and "marie_curie" in text and "or a new Person" in text


def test_human_output_is_a_table_with_notes(ws):
    text = run(ws, "Lyon is the capital of France and Marseille is its largest port").stdout
    assert "France (france)" in text and "new City: Lyon" in text
    assert "Not understood" in text and "largest port" in text


def test_errors_exit_1_with_what_to_do(ws):
    res = run(ws, "France's favourite colour is blue", ok=False)
    assert res.exit_code == 1 and "No relation for 'favourite colour'" in res.output and "Hint:" in res.output
    err = run_json(ws, "France's favourite colour is blue", ok=False)
    assert err["error"] == "UnknownRelationError" and len(err["details"]["closest"]) == 3
    assert run_json(ws, "", ok=False)["error"] == "InputError"
    assert run_json(ws, "x" * 10_001, ok=False)["error"] == "InputError"
    assert run_json(ws, "MATCH (n) DETACH DELETE n", ok=False)["error"] == "ParseError"
    res = runner.invoke(app, ["parse", "-w", str(ws)])
    assert res.exit_code == 1 and "Give either a request or --file" in res.output


def test_stdin_and_batch_files(ws, tmp_path):
    out = run_json(ws, "-", input="Who is the CEO of Apple?\n")
    assert out["intents"][0]["op"] == "query"
    f = tmp_path / "edits.csv"
    f.write_text("France,capital,Paris\nApple,ceo,Jane Doe,replace\n", encoding="utf-8")
    out = run_json(ws, "--file", f)
    assert out["requests"] == 2
    assert [(i["source"]["line"], i["op"]) for i in out["intents"]] == [(1, "assert"), (2, "replace")]
    assert "line" in run(ws, "--file", f).stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("France,capital\n", encoding="utf-8")
    err = run_json(ws, "--file", bad, ok=False)
    assert err["error"] == "ImportFormatError" and "line 1" in err["message"]


def test_llm_option(ws, monkeypatch):
    import interpreter.llm as llm

    reply = json.dumps({"intents": [{"op": "query", "subject": "Satya Nadella", "relation": "occupation"}]})
    monkeypatch.setattr(llm, "chat_model_from_spec",
                        lambda spec, **kw: FakeListChatModel(responses=[reply]) if spec == "fake:test" else None)
    out = run_json(ws, "What does Satya Nadella do?", "--llm", "fake:test")
    assert out["parser"] == "llm" and out["intents"][0]["subject"]["id"] == "satya_nadella"
    out = run_json(ws, "Tim Cook is the CEO of Apple", "--llm", "fake:test", "--llm-fallback")
    assert out["parser"] == "rules"
    monkeypatch.undo()
    err = run_json(ws, "x", "--llm", "nosuchprovider:model", ok=False)
    assert err["error"] == "ParseError" and "PROVIDER:MODEL" in err["hint"]
    err = run_json(ws, "x", "--llm-fallback", ok=False)
    assert "--llm" in err["message"]


def test_help_lists_parse():
    res = runner.invoke(app, ["--help"])
    assert "parse" in res.output
    res = runner.invoke(app, ["parse", "--help"])
    assert res.exit_code == 0 and "--llm" in res.output and "--file" in res.output


def test_readme_parse_examples_run(ws):
    """The README's `oneedit parse` examples, as written (tests/test_readme.py runs them too)."""
    import re
    import shlex
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    lines = [ln for ln in re.findall(r"^\$ oneedit (.+)$", readme, re.M) if ln.startswith("parse ")]
    assert len(lines) >= 2
    for line in lines:
        res = runner.invoke(app, shlex.split(line) + ["-w", str(ws)])
        assert res.exit_code == 0, (line, res.output)
        assert "Apple" in res.output or "albert_einstein" in res.output
