"""One SQLite connection shared safely by the service's threads.

``sqlite3`` connections opened with ``check_same_thread=False`` may be used from several threads,
but two threads interleaving statements (or reading a cursor while another writes) on the same
connection fail with "Recursive use of cursors" or read inside each other's transactions.
:class:`LockedConnection` runs every statement under one re-entrant lock and fetches its rows
before releasing it; code that needs several statements in one transaction holds ``lock`` around
them (it is re-entrant, so the statements inside take it again freely).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path


def connect(path: str | Path, *, timeout: float = 10.0) -> sqlite3.Connection:
    """A connection to the SQLite file ``path``, checked to be one: a file that is not a database
    (overwritten, truncated, corrupt) is a :class:`WorkspaceError` naming it, not a traceback later."""
    from oneedit.core.errors import WorkspaceError

    path = Path(path)
    try:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=timeout)
        db.execute("PRAGMA schema_version").fetchone()
        return db
    except sqlite3.DatabaseError as exc:
        raise WorkspaceError(f"{path} is not a readable SQLite database ({exc}).",
                             hint="Restore it from a backup; or move the workspace aside and run `oneedit init` "
                                  "(the KG can be re-imported from an export).") from None


class Rows(list):
    """A statement's rows, fetched, with the cursor's ``rowcount`` and ``lastrowid``."""

    rowcount: int = -1
    lastrowid: int | None = None

    def fetchone(self):
        return self[0] if self else None

    def fetchall(self) -> list:
        return list(self)


class LockedConnection:
    def __init__(self, path: str | Path, *, timeout: float = 10.0):
        self.lock = threading.RLock()
        self._db = connect(path, timeout=timeout)

    def execute(self, sql: str, args=()) -> Rows:
        with self.lock:
            cur = self._db.execute(sql, args)
            rows = Rows(cur.fetchall())
            rows.rowcount, rows.lastrowid = cur.rowcount, cur.lastrowid
            return rows

    def executemany(self, sql: str, seq) -> None:
        with self.lock:
            self._db.executemany(sql, seq)

    def executescript(self, script: str) -> None:
        with self.lock:
            self._db.executescript(script)

    def close(self) -> None:
        with self.lock:
            self._db.close()
