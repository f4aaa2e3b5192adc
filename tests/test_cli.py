"""The CLI through typer's CliRunner, on real workspaces (every README command is exercised)."""

from __future__ import annotations

import json
import subprocess
import sys

import pyoxigraph as ox
import pytest
from typer.testing import CliRunner

from oneedit.cli import app
from tests.conftest import write_world

runner = CliRunner()


def run(*args, ok=True):
    res = runner.invoke(app, [str(a) for a in args])
    if ok:
        assert res.exit_code == 0, res.output
    return res


def run_json(*args, ok=True):
    res = run(*args, "--json", ok=ok)
    return json.loads(res.stdout)


@pytest.fixture
def ws(tmp_path):
    data = write_world(tmp_path / "data")
    root = tmp_path / "ws"
    out = run_json("init", "--workspace", root, "--data", data, "--no-model")
    assert out["created"] is True and out["revision"] == 1
    return root


def test_init_twice_is_safe(ws, tmp_path):
    again = run_json("init", "--workspace", ws, "--data", tmp_path / "data", "--no-model")
    assert again["created"] is False and again["revision"] == 1


def test_workspace_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("ONEEDIT_HOME", str(tmp_path / "home"))
    run_json("init", "--data", write_world(tmp_path / "d"), "--no-model")
    assert run_json("kg", "stats")["revision"] == 1
    assert (tmp_path / "home" / "ledger.sqlite").is_file()


def test_missing_workspace_is_a_clear_error(tmp_path):
    res = run("kg", "stats", "--workspace", tmp_path / "nope", ok=False)
    assert res.exit_code == 1 and "oneedit init" in res.output
    err = run_json("kg", "stats", "--workspace", tmp_path / "nope", ok=False)
    assert err["error"] == "WorkspaceError" and "oneedit init" in err["hint"]


def test_stats_query_show(ws):
    s = run_json("kg", "stats", "-w", ws)
    assert s["entities"] == 18 and "capital" in s["relation_ids"]
    q = run_json("kg", "query", "-w", ws, "--subject", "french republic", "--relation", "capital")
    assert q["facts"] == [{"subject": {"id": "france", "label": "France"}, "relation": "capital",
                           "object": {"id": "paris", "label": "Paris"}}]
    q = run_json("kg", "query", "-w", ws, "-s", "Einstein", "-r", "birth_country")
    assert q["facts"][0]["object"]["id"] == "germany"
    show = run_json("kg", "show", "-w", ws, "Einstein")
    assert show["id"] == "albert_einstein"
    assert {d["relation"] for d in show["derived"]} == {"birth_country", "birth_continent"}
    assert "ulm" in show["neighbourhood"]["nodes"]
    assert "Albert Einstein" in run("kg", "show", "-w", ws, "einstein").stdout
    assert "France" in run("kg", "query", "-w", ws, "-s", "france").stdout


def test_add_remove_log_revert_restore(ws):
    rem = run_json("kg", "remove", "-w", ws, "France", "capital", "Paris")
    assert sorted(map(tuple, rem["removed"])) == [("france", "capital", "paris"), ("paris", "capital_of", "france")]
    add = run_json("kg", "add", "-w", ws, "France", "capital", "Lyon", "-m", "move it")
    assert add["revision"]["message"] == "move it" and add["revision"]["id"] == 3
    log = run_json("kg", "log", "-w", ws)
    assert [r["id"] for r in log["revisions"]] == [3, 2, 1]
    refused = run_json("kg", "revert", "-w", ws, "2", ok=False)
    assert refused["error"] == "ConstraintViolation"
    rev = run_json("kg", "revert", "-w", ws, "r3")
    assert rev["revision"]["id"] == 4
    run_json("kg", "revert", "-w", ws, "2")
    assert run_json("kg", "query", "-w", ws, "-s", "france", "-r", "capital")["facts"][0]["object"]["id"] == "paris"
    run_json("kg", "restore", "-w", ws, "3")
    assert run_json("kg", "query", "-w", ws, "-s", "france", "-r", "capital")["facts"][0]["object"]["id"] == "lyon"
    assert run_json("kg", "validate", "-w", ws)["ok"] is True
    assert "r3" in run("kg", "log", "-w", ws).stdout


def test_bad_change_changes_nothing(ws):
    err = run_json("kg", "add", "-w", ws, "France", "capital", "Atlantis", ok=False)
    assert err["error"] == "UnknownEntityError"
    err = run_json("kg", "add", "-w", ws, "France", "capitol", "Lyon", ok=False)
    assert err["error"] == "UnknownRelationError" and "capital" in err["hint"]
    res = run("kg", "add", "-w", ws, "France", "capital", "Lyon", ok=False)
    assert res.exit_code == 1 and "functional" in res.output
    res = run("kg", "revert", "-w", ws, "banana", ok=False)
    assert "not a revision id" in res.output
    assert run_json("kg", "stats", "-w", ws)["revision"] == 1


def test_export_import_validate_synth(ws, tmp_path):
    out = tmp_path / "kg.nt"
    assert run_json("kg", "export", "-w", ws, "--format", "nt", "--out", out)["triples"] > 50
    ttl = run("kg", "export", "-w", ws, "-f", "ttl").stdout
    assert "@prefix e: <urn:oneedit:e:> ." in ttl  # compact names, and valid Turtle holding the KG's facts
    triples = {q.triple for q in ox.parse(ttl.encode(), format=ox.RdfFormat.TURTLE)}
    assert ox.Triple(ox.NamedNode("urn:oneedit:e:france"), ox.NamedNode("urn:oneedit:r:capital"),
                     ox.NamedNode("urn:oneedit:e:paris")) in triples
    edits = tmp_path / "e.csv"
    edits.write_text("subject,relation,object,op\nFrance,capital,Paris,remove\nFrance,capital,Lyon,add\n")
    imp = run_json("kg", "import", "-w", ws, edits)
    assert imp["added"] == 2 and imp["removed"] == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("France,capital\n")
    err = run_json("kg", "import", "-w", ws, bad, ok=False)
    assert err["error"] == "ImportFormatError" and err["details"]["line"] == 1
    syn = tmp_path / "syn.nt"
    s = run_json("kg", "synth", "--triples", 2000, "--out", syn)
    assert s["triples"] >= 2000 and syn.stat().st_size > 0
    fresh = tmp_path / "fresh"
    run_json("init", "-w", fresh, "--data", tmp_path / "data", "--no-model")
    run_json("kg", "restore", "-w", fresh, "0")
    assert run_json("kg", "import", "-w", fresh, syn)["added"] == s["triples"]
    assert run_json("kg", "validate", "-w", fresh)["ok"] is True


def test_validate_data_dir_reports_and_fails(tmp_path):
    data = write_world(tmp_path / "d", {"x.csv": ["id,type,label,aliases,description,located_in",
                                                  "ghost,City,Ghost,,,atlantis"]})
    out = run_json("kg", "validate", "--data", data, ok=False)
    assert out["ok"] is False and out["violations_by_kind"] == {"undefined_entity": 1}
    assert out["violations"][0]["where"] == "x.csv:2"


def test_help_imports_no_heavy_modules():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom oneedit.cli import app\n"
            "r = CliRunner().invoke(app, ['--help'])\nassert r.exit_code == 0\n"
            "heavy = [m for m in ('rdflib', 'pyoxigraph', 'torch', 'transformers', 'networkx', 'rapidfuzz')"
            " if m in sys.modules]\nprint(heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "oneedit", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "kg" in out.stdout


def test_demo_on_the_shipped_kg(tmp_path):
    out = run_json("demo", "-w", tmp_path / "demo", "--no-model")
    assert out["created"] is True and out["valid"] is True and out["entities"] > 1500
    got = {(s["subject"], s["relation"], s["object"]) for s in out["samples"]}
    assert got == {("France", "capital", "Paris"), ("Albert Einstein", "birth_country", "Germany"),
                   ("Apple", "ceo", "Tim Cook"), ("United Kingdom", "head_of_state_spouse", "Queen Camilla")}
    human = run("demo", "-w", tmp_path / "demo", "--no-model").stdout
    assert "Using existing workspace" in human and "Schema validation: passed" in human


def test_path_between_entities(ws):
    out = run_json("kg", "path", "-w", ws, "Albert Einstein", "Europe")
    assert out["paths"][0] == [["albert_einstein", "citizen_of", "germany"], ["germany", "continent", "europe"]]
    assert [["albert_einstein", "born_in", "ulm"], ["ulm", "located_in", "germany"],
            ["germany", "continent", "europe"]] in out["paths"]
    assert "No path" in run("kg", "path", "-w", ws, "Europe", "Einstein", "--max-hops", "1").stdout
