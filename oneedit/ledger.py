"""The edit ledger: one row per edit transaction (who asked, the text, decisions, status).

SQLite in WAL mode so the service's readers never block its writer. A row's ``record`` holds the
controller's plan (conflicts, KG diff, derived facts, checks), the model edit, the rollback, and
while an edit is in flight its ``journal`` (the stage reached): on restart the facade finishes or
undoes every edit whose journal is still open (see :mod:`oneedit.journal`).

Statuses: ``queued`` (accepted by the service, waiting for the worker) → ``pending`` (in flight) →
``applied`` | ``rejected`` | ``needs_review`` | ``unchanged`` (the KG already said so) | ``failed``
(interrupted and undone); ``applied`` → ``rolled_back``; ``needs_review`` → ``applied`` | ``rejected``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from oneedit.core.edit_record import EditRecord
from oneedit.core.errors import InputError, OneEditError
from oneedit.core.sqlite import connect

SCHEMA_VERSION = 5  # 5: every record written through oneedit.core.edit_record
STATUSES = ("queued", "pending", "applied", "rejected", "needs_review", "unchanged", "rolled_back", "failed")
#: statuses an edit never leaves (except ``applied`` → ``rolled_back``)
FINAL = ("applied", "rejected", "needs_review", "unchanged", "rolled_back", "failed")
#: The largest edit id there can be (SQLite's INTEGER PRIMARY KEY is a signed 64-bit integer).
MAX_ID = 2**63 - 1

_EDITS = """
CREATE TABLE IF NOT EXISTS edits (
    id          INTEGER PRIMARY KEY,
    created     TEXT NOT NULL,
    updated     TEXT NOT NULL,
    author      TEXT NOT NULL,
    text        TEXT NOT NULL DEFAULT '',
    status      TEXT NOT NULL CHECK (status IN ('queued','pending','applied','rejected','needs_review','unchanged',
                                                'rolled_back','failed')),
    kg_revision INTEGER,
    record      TEXT NOT NULL DEFAULT '{}',
    request_key TEXT
);
"""
_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
""" + _EDITS + """
CREATE INDEX IF NOT EXISTS edits_author ON edits(author);
CREATE INDEX IF NOT EXISTS edits_status ON edits(status);
CREATE INDEX IF NOT EXISTS edits_key ON edits(request_key);
CREATE TABLE IF NOT EXISTS edit_entities (edit_id INTEGER NOT NULL, entity TEXT NOT NULL,
                                          PRIMARY KEY (edit_id, entity));
CREATE INDEX IF NOT EXISTS edit_entities_entity ON edit_entities(entity);
CREATE TABLE IF NOT EXISTS repairs (
    id          INTEGER PRIMARY KEY,
    created     TEXT NOT NULL,
    model_edit  TEXT NOT NULL,
    facts       TEXT NOT NULL,
    caused_by   TEXT NOT NULL DEFAULT '[]',
    undone      INTEGER NOT NULL DEFAULT 0
);
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
    record: EditRecord
    request_key: str | None = None

    def to_dict(self) -> dict:
        return {"id": self.id, "created": self.created, "updated": self.updated, "author": self.author,
                "text": self.text, "status": self.status, "kg_revision": self.kg_revision, **self.record.to_dict()}


class Ledger:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.RLock()
        self._db = connect(self.path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._migrate()
        self._db.executescript(_DDL)
        have = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if not have or have[0] != str(SCHEMA_VERSION):  # opening to read writes nothing
            with self._write():
                if have and int(have[0]) < 5:
                    self._rewrite_records()
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _rewrite_records(self) -> None:
        """Ledgers before v5 stored records as free dicts: read each through the record schema and
        write it back in its form (in the open transaction; a row that does not read stops it)."""
        rows = self._db.execute("SELECT id, record FROM edits").fetchall()
        self._db.executemany("UPDATE edits SET record = ? WHERE id = ?",
                             [(json.dumps(self._record(i, raw).to_dict()), i) for i, raw in rows])

    def _record(self, edit_id: int, raw: str) -> EditRecord:
        try:
            return EditRecord.from_dict(json.loads(raw))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise OneEditError(f"Edit #{edit_id} in {self.path} has a record this release cannot read "
                               f"({type(exc).__name__}: {exc}).",
                               hint="Restore the ledger from a backup, or report it with the record.",
                               details={"edit": edit_id}) from None

    def _migrate(self) -> None:
        """Older ledgers lack statuses (v1: ``failed``; v2: ``queued``, ``unchanged``) or the request
        key (v1): rebuild the table, keeping every row and id."""
        row = self._db.execute("SELECT sql FROM sqlite_master WHERE type='table' AND name='edits'").fetchone()
        if not row or "'unchanged'" in row[0]:
            return
        cols = [r[1] for r in self._db.execute("PRAGMA table_info(edits)")]
        keep = "id, created, updated, author, text, status, kg_revision, record" + (
            ", request_key" if "request_key" in cols else "")
        with self._write():
            self._db.execute("ALTER TABLE edits RENAME TO edits_old")
            self._db.execute(_EDITS)
            self._db.execute(f"INSERT INTO edits ({keep}) SELECT {keep} FROM edits_old")
            self._db.execute("DROP TABLE edits_old")

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def _now() -> str:
        return datetime.now(UTC).isoformat(timespec="milliseconds")

    # -- writing -------------------------------------------------------------------------------
    def create(self, author: str, text: str = "", record: EditRecord | None = None, status: str = "pending", *,
               request_key: str | None = None, entities: Iterable[str] = ()) -> int:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        record = _checked(record or EditRecord())
        now = self._now()
        with self._write():
            cur = self._db.execute(
                "INSERT INTO edits (created, updated, author, text, status, record, request_key)"
                " VALUES (?,?,?,?,?,?,?)",
                (now, now, author, text, status, json.dumps(record.to_dict()), request_key))
            edit_id = int(cur.lastrowid)
            self._index(edit_id, entities)
        return edit_id

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One SQLite write transaction under the lock: all of it commits, or none."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _index(self, edit_id: int, entities: Iterable[str]) -> None:
        self._db.executemany("INSERT OR IGNORE INTO edit_entities VALUES (?, ?)",
                             [(edit_id, e) for e in set(entities)])

    def set_entities(self, edit_id: int, entities: Iterable[str]) -> None:
        """Index the entities an edit touches (known once it is planned)."""
        with self._write():
            self._db.execute("DELETE FROM edit_entities WHERE edit_id = ?", (edit_id,))
            self._index(edit_id, entities)

    def update(self, edit_id: int, *, status: str | None = None, kg_revision: int | None = None,
               record: EditRecord | None = None) -> None:
        self.update_many([edit_id], status=status, kg_revision=kg_revision, records={edit_id: record} if record is not None else None)

    def update_many(self, ids: Iterable[int], *, status: str | None = None, kg_revision: int | None = None,
                    records: dict[int, EditRecord] | None = None) -> None:
        """Update several rows in one SQLite transaction (all or none)."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        now = self._now()
        records = {i: _checked(r) for i, r in (records or {}).items()}
        with self._write():
            for edit_id in ids:
                rec = records.get(edit_id)
                self._db.execute(
                    "UPDATE edits SET updated = ?, status = COALESCE(?, status),"
                    " kg_revision = COALESCE(?, kg_revision), record = COALESCE(?, record) WHERE id = ?",
                    (now, status, kg_revision, json.dumps(rec.to_dict()) if rec is not None else None, edit_id))

    # -- reading -------------------------------------------------------------------------------
    def _entry(self, row) -> LedgerEntry:
        return LedgerEntry(*row[:7], self._record(row[0], row[7]), row[8])

    _COLS = "id, created, updated, author, text, status, kg_revision, record, request_key"

    def _rows(self, sql: str, args=()) -> list:
        # one connection shared by the service's threads: reads take the lock so they never run
        # inside another thread's open write transaction
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def get(self, edit_id: int) -> LedgerEntry | None:
        if not 0 < edit_id <= MAX_ID:  # SQLite's integers are 64-bit: a larger id names no edit
            return None
        row = next(iter(self._rows(f"SELECT {self._COLS} FROM edits WHERE id = ?", (edit_id,))), None)
        return None if row is None else self._entry(row)

    def count(self, status: str | None = None) -> int:
        if status:
            return int(self._rows("SELECT COUNT(*) FROM edits WHERE status = ?", (status,))[0][0])
        return int(self._rows("SELECT COUNT(*) FROM edits")[0][0])

    def interrupted(self) -> bool:
        """Whether a crash left work to recover: an edit in flight, or a rollback half done."""
        return bool(self._rows("SELECT 1 FROM edits WHERE status = 'pending' OR "
                               "(status = 'applied' AND record LIKE '%\"rollback_journal\"%') LIMIT 1"))

    def counts(self) -> dict[str, int]:
        """Rows per status."""
        return {s: int(n) for s, n in self._rows("SELECT status, COUNT(*) FROM edits GROUP BY status")}

    def list(self, *, author: str | None = None, entity: str | None = None, status: str | Iterable[str] | None = None,
             after: int | None = None, limit: int | None = 50, ascending: bool = False) -> list[LedgerEntry]:
        where, args = [], []
        if author:
            where.append("author = ?")
            args.append(author)
        if entity:
            where.append("id IN (SELECT edit_id FROM edit_entities WHERE entity = ?)")
            args.append(entity)
        if status:
            sts = [status] if isinstance(status, str) else list(status)
            bad = [x for x in sts if x not in STATUSES]
            if bad:
                raise InputError(f"No edit status {bad[0]!r}.", hint=f"Use one of: {', '.join(STATUSES)}.")
            where.append(f"status IN ({','.join('?' * len(sts))})")
            args += sts
        if after is not None:
            where.append("id > ?")
            args.append(after)
        sql = f"SELECT {self._COLS} FROM edits" + (" WHERE " + " AND ".join(where) if where else "")
        sql += f" ORDER BY id {'ASC' if ascending else 'DESC'}" + (" LIMIT ?" if limit else "")
        if limit:
            args.append(limit)
        return [self._entry(r) for r in self._rows(sql, args)]

    def recent_count(self, author: str, seconds: float = 60.0) -> int:
        since = (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat(timespec="milliseconds")
        return int(self._rows("SELECT COUNT(*) FROM edits WHERE author = ? AND created >= ?", (author, since))[0][0])

    def find_key(self, request_key: str, status: str | None = "applied") -> LedgerEntry | None:
        sql = f"SELECT {self._COLS} FROM edits WHERE request_key = ?" + (" AND status = ?" if status else "")
        row = next(iter(self._rows(sql + " ORDER BY id DESC LIMIT 1",
                                   (request_key, status) if status else (request_key,))), None)
        return None if row is None else self._entry(row)

    # -- self-repair (oneedit.repair): facts the model drifted on, written back; not edits of anyone's
    def add_repair(self, model_edit: str, facts: list, caused_by: list[str]) -> int:
        with self._write():
            cur = self._db.execute("INSERT INTO repairs (created, model_edit, facts, caused_by) VALUES (?, ?, ?, ?)",
                                   (self._now(), model_edit, json.dumps(facts), json.dumps(caused_by)))
            return int(cur.lastrowid)

    def repairs(self, *, live: bool = False, limit: int | None = None) -> list[dict]:
        """Repair batches, newest first (``live``: only those not undone)."""
        sql = "SELECT id, created, model_edit, facts, caused_by, undone FROM repairs"
        sql += " WHERE undone = 0" if live else ""
        sql += " ORDER BY id DESC" + (f" LIMIT {int(limit)}" if limit else "")
        return [{"id": r[0], "created": r[1], "model_edit": r[2], "facts": json.loads(r[3]),
                 "caused_by": json.loads(r[4]), "undone": bool(r[5])} for r in self._rows(sql)]

    def repair_undone(self, model_edit: str) -> None:
        with self._write():
            self._db.execute("UPDATE repairs SET undone = 1 WHERE model_edit = ?", (model_edit,))

    def keys(self, status: str = "applied") -> set[str]:
        return {r[0] for r in self._rows(
            "SELECT request_key FROM edits WHERE status = ? AND request_key IS NOT NULL", (status,))}


def _checked(record) -> EditRecord:
    if not isinstance(record, EditRecord):
        raise TypeError(f"the ledger stores EditRecord, not {type(record).__name__}")
    return record
