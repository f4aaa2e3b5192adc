"""The revision log: every committed KG transaction with its author, time, message and exact diff.

SQLite (WAL) on disk. A revision is written as ``pending`` *before* the store is touched and
marked ``committed`` after, so the log doubles as an undo journal: on open, a store rolls back
every revision still pending (a crash mid-commit) and marks it ``aborted``.
Diffs are stored as zlib-compressed JSON lines, streamed so a million-triple load never needs
the whole diff in memory at once.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from oneedit.core import Diff, Revision, RevisionError, Triple
from oneedit.core.sqlite import LockedConnection

_SCHEMA = """
CREATE TABLE IF NOT EXISTS revisions (
    id        INTEGER PRIMARY KEY,
    author    TEXT NOT NULL,
    time      TEXT NOT NULL,
    message   TEXT NOT NULL,
    state     TEXT NOT NULL CHECK (state IN ('pending', 'committed', 'aborted')),
    n_added   INTEGER NOT NULL,
    n_removed INTEGER NOT NULL,
    diff      BLOB NOT NULL,
    encoding  TEXT NOT NULL DEFAULT 'jsonl'  -- 'jsonl' (op, s, p, o lines) or 'nt+'/'ttl+' (an RDF file of adds)
);
CREATE INDEX IF NOT EXISTS revisions_state ON revisions(state);
"""


def encode_changes(changes: Iterable[tuple[str, Triple]]) -> tuple[bytes, int, int]:
    """Compress ``(op, triple)`` pairs; returns the blob and the add/remove counts."""
    comp = zlib.compressobj(level=1)
    parts: list[bytes] = []
    n_add = n_rem = 0
    dumps = json.dumps
    buf: list[str] = []
    for op, t in changes:
        buf.append(dumps((op, t.subject, t.relation, t.object), ensure_ascii=False))
        if op == "+":
            n_add += 1
        else:
            n_rem += 1
        if len(buf) >= 20000:
            parts.append(comp.compress(("\n".join(buf) + "\n").encode()))
            buf.clear()
    if buf:
        parts.append(comp.compress(("\n".join(buf) + "\n").encode()))
    parts.append(comp.flush())
    return b"".join(parts), n_add, n_rem


def decode_changes(blob: bytes) -> Iterator[tuple[str, Triple]]:
    decomp = zlib.decompressobj()
    tail = b""
    step = 1 << 20
    for i in range(0, len(blob), step):
        data = tail + decomp.decompress(blob[i:i + step])
        *lines, tail = data.split(b"\n")
        for line in lines:
            op, s, p, o = json.loads(line)
            yield op, Triple(s, p, o)
    data = tail + decomp.flush()
    for line in data.split(b"\n"):
        if line:
            op, s, p, o = json.loads(line)
            yield op, Triple(s, p, o)


def diff_from_changes(changes: Iterable[tuple[str, Triple]]) -> Diff:
    added, removed = [], []
    for op, t in changes:
        (added if op == "+" else removed).append(t)
    return Diff(tuple(added), tuple(removed))


class SQLiteRevisionLog:
    """Revision storage for stores that keep their history beside them on disk."""

    def __init__(self, path: str | Path, *, rdf_decoder=None):
        self.path = Path(path)
        #: ``(bytes, encoding) -> Iterator[Triple]`` for revisions stored as RDF files (bulk loads).
        self._rdf_decoder = rdf_decoder
        self._db = LockedConnection(self.path)  # the service reads it from request threads
        self._lock = self._db.lock
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- writing ---------------------------------------------------------------------------
    def begin(self, author: str, message: str, changes: Iterable[tuple[str, Triple]]) -> int:
        blob, n_add, n_rem = encode_changes(changes)
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO revisions (author, time, message, state, n_added, n_removed, diff)"
                " VALUES (?, ?, ?, 'pending', ?, ?, ?)",
                (author, datetime.now(UTC).isoformat(timespec="milliseconds"), message,
                 n_add, n_rem, blob),
            )
            return int(cur.lastrowid)

    def begin_encoded(self, author: str, message: str, blob: bytes, encoding: str,
                      n_added: int, n_removed: int) -> int:
        """A pending revision whose diff is already encoded (``encoding`` 'nt+' or 'ttl+')."""
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO revisions (author, time, message, state, n_added, n_removed, diff, encoding)"
                " VALUES (?, ?, ?, 'pending', ?, ?, ?, ?)",
                (author, datetime.now(UTC).isoformat(timespec="milliseconds"), message,
                 n_added, n_removed, blob, encoding))
            return int(cur.lastrowid)

    def set_state(self, rev_id: int, state: str) -> None:
        with self._lock:
            self._db.execute("UPDATE revisions SET state = ? WHERE id = ?", (state, rev_id))

    # -- reading ---------------------------------------------------------------------------
    def head(self) -> int:
        row = self._db.execute("SELECT MAX(id) FROM revisions WHERE state = 'committed'").fetchone()
        return int(row[0] or 0)

    def pending(self) -> list[int]:
        return [r[0] for r in self._db.execute(
            "SELECT id FROM revisions WHERE state = 'pending' ORDER BY id DESC")]

    def get(self, rev_id: int, *, with_diff: bool = False) -> Revision:
        row = self._db.execute(
            "SELECT id, author, time, message, n_added, n_removed, state"
            + (", diff, encoding" if with_diff else "") + " FROM revisions WHERE id = ?", (rev_id,)).fetchone()
        if row is None:
            raise RevisionError(f"No revision r{rev_id}.", hint="Run `oneedit kg log` to list revisions.")
        return self._row(row, with_diff)

    def changes(self, rev_id: int) -> Iterator[tuple[str, Triple]]:
        row = self._db.execute("SELECT diff, encoding FROM revisions WHERE id = ?", (rev_id,)).fetchone()
        if row is None:
            raise RevisionError(f"No revision r{rev_id}.", hint="Run `oneedit kg log` to list revisions.")
        return self._decode(row[0], row[1])

    def _decode(self, blob: bytes, encoding: str) -> Iterator[tuple[str, Triple]]:
        if encoding == "jsonl":
            return decode_changes(blob)
        if self._rdf_decoder is None:
            raise RevisionError(f"This store cannot read revisions encoded as {encoding!r}.")
        return (("+", t) for t in self._rdf_decoder(zlib.decompress(blob), encoding))

    def list(self, *, limit: int = 50, offset: int = 0, include_aborted: bool = False,
             after: int = 0, descending: bool = True) -> list[Revision]:
        where = "id > ?" + ("" if include_aborted else " AND state = 'committed'")
        order = "DESC" if descending else "ASC"
        rows = self._db.execute(
            "SELECT id, author, time, message, n_added, n_removed, state FROM revisions"
            f" WHERE {where} ORDER BY id {order} LIMIT ? OFFSET ?", (after, limit, offset))
        return [self._row(r, False) for r in rows]

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM revisions WHERE state='committed'").fetchone()[0])

    def _row(self, row: tuple, with_diff: bool) -> Revision:
        diff = diff_from_changes(self._decode(row[7], row[8])) if with_diff else None
        return Revision(id=row[0], author=row[1], time=datetime.fromisoformat(row[2]), message=row[3],
                        n_added=row[4], n_removed=row[5], state=row[6], diff=diff)
