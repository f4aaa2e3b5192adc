"""Workspaces and the ledger on disk: init is safe to repeat, bad data leaves nothing behind."""

from __future__ import annotations

import sqlite3

import pytest

from oneedit.core import WorkspaceError
from oneedit.ledger import Ledger
from oneedit.workspace import Workspace
from tests.conftest import write_world_with


def test_init_creates_everything_and_reopens(tmp_path, small_world):
    ws, created = Workspace.init(tmp_path / "ws", data=small_world)
    assert created
    with ws:
        assert ws.kg.store.head() == 1
        assert {p.name for p in (tmp_path / "ws").iterdir()} >= {"config.yaml", "schema.yaml", "kg", "ledger.sqlite"}
    ws2, created2 = Workspace.init(tmp_path / "ws", data=small_world)
    with ws2:
        assert not created2 and ws2.kg.store.head() == 1 and len(ws2.kg.store.history()) == 1


def test_invalid_data_is_refused_before_anything_is_written(tmp_path):
    data = write_world_with(tmp_path / "bad", "bad.csv",
                            ["id,type,label,aliases,description,capital", "france,Country,France,,,berlin"])
    with pytest.raises(WorkspaceError, match="does not pass validation") as exc:
        Workspace.init(tmp_path / "ws", data=data)
    assert exc.value.details["violations_by_kind"]["functional"] >= 1
    assert not (tmp_path / "ws").exists()


def test_open_errors_say_what_to_do(tmp_path):
    with pytest.raises(WorkspaceError, match="No OneEdit workspace") as exc:
        Workspace.open(tmp_path / "none")
    assert "oneedit init" in exc.value.hint
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.yaml").write_text("version: 99\n")
    with pytest.raises(WorkspaceError, match="config version 99"):
        Workspace.open(tmp_path / "odd")


def test_ledger_is_sqlite_wal_with_checked_statuses(tmp_path):
    led = Ledger(tmp_path / "ledger.sqlite")
    eid = led.create("alice", "Lyon is the capital of France", {"triples": [["france", "capital", "lyon"]]})
    led.update(eid, status="applied", kg_revision=7)
    e = led.get(eid)
    assert (e.author, e.status, e.kg_revision, e.record["triples"][0][2]) == ("alice", "applied", 7, "lyon")
    assert led.count() == 1 and led.count("applied") == 1 and led.get(99) is None
    with pytest.raises(ValueError):
        led.update(eid, status="done")
    led.close()
    mode = sqlite3.connect(tmp_path / "ledger.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
