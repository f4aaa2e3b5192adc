"""Workspaces and the ledger on disk: init is safe to repeat, bad data leaves nothing behind."""

from __future__ import annotations

import sqlite3

import pytest

from oneedit.core import WorkspaceError
from oneedit.core.edit_record import EditRecord, Journal
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
    eid = led.create("alice", "Lyon is the capital of France", EditRecord(source={"file": "a.txt", "line": 3}))
    led.update(eid, status="applied", kg_revision=7)
    e = led.get(eid)
    assert (e.author, e.status, e.kg_revision, e.record.source["line"]) == ("alice", "applied", 7, 3)
    assert led.count() == 1 and led.count("applied") == 1 and led.get(99) is None
    with pytest.raises(ValueError):
        led.update(eid, status="done")
    with pytest.raises(TypeError):  # one schema: a free dict is not a record
        led.update(eid, record={"source": "x"})
    led.close()
    mode = sqlite3.connect(tmp_path / "ledger.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_ledger_records_are_typed_and_migrated_in_place(tmp_path):
    """A v4 ledger (records as free JSON) is rewritten through the record schema on open, keeping
    every row, id and key (an unknown key is kept aside, not dropped)."""
    import json

    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    db = sqlite3.connect(path)
    old = {"plan": None, "method": "grace", "journal": {"stage": "model", "head": 4, "model_id": "b2"},
           "model_edit": {"id": "b2", "method": "memit", "own_facts": [["a", "r", "b"]], "shared_with": [2, 3],
                          "seconds": 0.5, "repaired": [], "drifted": 1}, "legacy": {"x": 1}}
    db.execute("INSERT INTO edits (id, created, updated, author, text, status, record) VALUES "
               "(3, 't', 't', 'bob', 'x', 'pending', ?)", (json.dumps(old),))
    db.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    led = Ledger(path)
    rec = led.get(3).record
    assert rec.method == "grace" and rec.journal == Journal("model", 4, model_id="b2")
    assert rec.model_edit.shared_with == (2, 3) and rec.model_edit.written == (("a", "r", "b"),)
    assert rec.extra == {"legacy": {"x": 1}} and rec.in_flight
    stored = json.loads(sqlite3.connect(path).execute("SELECT record FROM edits WHERE id = 3").fetchone()[0])
    assert stored == rec.to_dict() and stored["legacy"] == {"x": 1}
    assert sqlite3.connect(path).execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "5"
    # a frozen record changes by copy
    with pytest.raises(AttributeError):
        rec.method = "memit"  # type: ignore[misc]
    assert rec.but(journal=None).in_flight is False and rec.in_flight
    led.close()


def test_consolidation_training_options_come_from_the_config(tmp_path):
    from oneedit.config import WorkspaceConfig
    from oneedit.consolidation import _refresh_config
    from oneedit.core import OneEditError

    cfg = WorkspaceConfig()
    ws = Workspace(tmp_path, cfg)
    assert _refresh_config(ws).min_rehearsal == 4096  # empty: the measured defaults
    cfg.consistency.refresh = {"min_rehearsal": 256, "neighbours": True}
    got = _refresh_config(ws)
    assert (got.min_rehearsal, got.neighbours, got.lr) == (256, True, 5e-4)
    cfg.consistency.refresh = {"epochs": 3}
    with pytest.raises(OneEditError, match="epochs"):
        _refresh_config(ws)
