"""The edit ledger: one row per edit transaction (who asked, the text, decisions, status).

SQLite in WAL mode so the service's readers never block its writer. Later stages (controller
decisions, model edits, rollback) add their records to the same row through ``update``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SCHEMA_VERSION = 1
STATUSES = ("pending", "applied", "rejected", "needs_review", "rolled_back")

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS edits (
    id          INTEGER PRIMARY KEY,
    created     TEXT NOT NULL,
    updated     TEXT NOT NULL,
    author      TEXT NOT NULL,
    text        TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL CHECK (status IN ('pending','applied','rejected','needs_review','rolled_back')),
    kg_revision INTEGER,
    record      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS edits_author ON edits(author);
CREATE INDEX IF NOT EXISTS edits_status ON edits(status);
"""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    created: str
    updated: str
    author: str
    text: str
    status: str
    kg_revision: int | None
    record: dict


class Ledger:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_DDL)
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def _now() -> str:
        return datetime.now(UTC).isoformat(timespec="milliseconds")

    def create(self, author: str, text: str = "", record: dict | None = None, status: str = "pending") -> int:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        now = self._now()
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO edits (created, updated, author, text, status, record) VALUES (?,?,?,?,?,?)",
                (now, now, author, text, status, json.dumps(record or {})))
            return int(cur.lastrowid)

    def update(self, edit_id: int, *, status: str | None = None, kg_revision: int | None = None,
               record: dict | None = None) -> None:
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        with self._lock:
            self._db.execute(
                "UPDATE edits SET updated = ?, status = COALESCE(?, status),"
                " kg_revision = COALESCE(?, kg_revision), record = COALESCE(?, record) WHERE id = ?",
                (self._now(), status, kg_revision, json.dumps(record) if record is not None else None, edit_id))

    def get(self, edit_id: int) -> LedgerEntry | None:
        row = self._db.execute("SELECT * FROM edits WHERE id = ?", (edit_id,)).fetchone()
        return None if row is None else LedgerEntry(*row[:7], json.loads(row[7]))

    def count(self, status: str | None = None) -> int:
        if status:
            return int(self._db.execute("SELECT COUNT(*) FROM edits WHERE status = ?", (status,)).fetchone()[0])
        return int(self._db.execute("SELECT COUNT(*) FROM edits").fetchone()[0])
