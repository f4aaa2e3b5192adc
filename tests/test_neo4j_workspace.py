"""A workspace whose KG lives in a graph database: `oneedit init --store neo4j`, edits and
rollbacks through the facade, and `oneedit kg migrate --to neo4j` with the whole history.
Runs against the session's Bolt server (FalkorDB on loopback, or Neo4j at $ONEEDIT_NEO4J_URI)."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from oneedit.cli import app
from oneedit.workspace import Workspace

runner = CliRunner()
PASSWORD_ENV = "ONEEDIT_TEST_BOLT_PASSWORD"


def cli_json(ws, *args, code: int = 0):
    res = runner.invoke(app, [*map(str, args), "--workspace", str(ws), "--json"])
    assert res.exit_code == code, (res.exit_code, res.output, res.exception)
    return json.loads(res.stdout)


def empty_graph(bolt) -> None:
    from controller.stores.neo4j import Neo4jStore

    with Neo4jStore(**bolt.options()) as st:
        st.wipe()


def capital(ws, country: str) -> list[str]:
    return [f["object"]["id"] for f in cli_json(ws, "kg", "query", "-s", country, "-r", "capital")["facts"]]


def bolt_args(bolt) -> list[str]:
    return ["--uri", bolt.uri, "--user", bolt.user, "--password-env", PASSWORD_ENV]


def test_init_on_neo4j_then_edit_and_roll_back(bolt, tmp_path, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, bolt.password)
    empty_graph(bolt)
    ws = tmp_path / "ws"
    out = cli_json(ws, "init", "--store", "neo4j", *bolt_args(bolt), "--no-model")
    assert out["created"] and out["store"] == "neo4j" and out["revision"] == 1
    # the password is never written down: only the variable's name
    cfg = yaml.safe_load((ws / "config.yaml").read_text())
    assert cfg["store"] == {"backend": "neo4j", "options": {"uri": bolt.uri, "user": bolt.user,
                                                           "password_env": PASSWORD_ENV}}
    assert not (ws / "kg").exists()
    with Workspace.open(ws) as w:
        assert w.kg.store.objects("france", "capital") == ["paris"]
        triples = w.kg.store.count()
    # an edit through the whole pipeline, then its rollback
    done = cli_json(ws, "edit", "The capital of France is Lyon", "--yes")
    assert done["status"] == "applied"
    assert capital(ws, "France") == ["lyon"]
    cli_json(ws, "rollback", str(done["edit"]))
    with Workspace.open(ws) as w:
        assert w.kg.store.objects("france", "capital") == ["paris"] and w.kg.store.count() == triples
        assert [r.message.split(":")[0] for r in w.kg.store.history(limit=2)] == [
            f"rollback of edit #{done['edit']}", f"edit #{done['edit']}"]
    # a second workspace on the same database uses the KG as it is (a team sharing one server)
    ws2 = tmp_path / "ws2"
    out2 = cli_json(ws2, "init", "--store", "neo4j", *bolt_args(bolt), "--no-model")
    assert out2["revision"] == 3 and out2["triples"] == out["triples"]


def test_missing_password_variable_is_a_clear_error(bolt, tmp_path, monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    res = runner.invoke(app, ["init", "--store", "neo4j", *bolt_args(bolt), "--no-model",
                              "--workspace", str(tmp_path / "ws"), "--json"])
    assert res.exit_code != 0 and PASSWORD_ENV in res.output
    assert not (tmp_path / "ws").exists()


def test_migrate_copies_the_history_and_the_workspace_keeps_working(bolt, tmp_path, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, bolt.password)
    ws = tmp_path / "ws"
    cli_json(ws, "init", "--no-model")
    first = cli_json(ws, "edit", "The capital of Italy is Milan", "--yes")
    cli_json(ws, "kg", "add", "Spain", "capital", "Barcelona", code=1)  # refused: Madrid holds (no revision)
    second = cli_json(ws, "edit", "The capital of Spain is Barcelona", "--yes")
    with Workspace.open(ws) as w:
        before = set(w.kg.store.triples())
        log_before = [(r.id, r.author, r.message, r.time) for r in w.kg.store.history(limit=20)]
    out = cli_json(ws, "kg", "migrate", "--to", "neo4j", *bolt_args(bolt), "--replace")
    assert out["revisions"] == len(log_before) and out["head"] == log_before[0][0]
    assert yaml.safe_load((ws / "config.yaml").read_text())["store"]["backend"] == "neo4j"
    with Workspace.open(ws) as w:
        assert set(w.kg.store.triples()) == before
        assert [(r.id, r.author, r.message, r.time) for r in w.kg.store.history(limit=20)] == log_before
    # the ledger's revisions still mean the same: roll the first edit back on the new store
    cli_json(ws, "rollback", str(first["edit"]))
    assert capital(ws, "Italy") == ["rome"] and capital(ws, "Spain") == ["barcelona"]
    assert second["status"] == "applied"
    # migrating again is refused: the workspace is already there
    res = runner.invoke(app, ["kg", "migrate", "--to", "neo4j", *bolt_args(bolt), "--workspace", str(ws), "--json"])
    assert res.exit_code != 0 and "already" in res.output
