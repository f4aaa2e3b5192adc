"""The KG on a graph database over Bolt: Neo4j (and FalkorDB's Bolt endpoint, used by the tests).

Graph model:

* an entity is a node ``(:Entity:<Type> {id, type, label, aliases, description})`` — ``id`` is
  indexed (unique on Neo4j), the type is both a property and a node label;
* a fact ``(s, r, o)`` is a relationship ``(s)-[:r]->(o)`` typed by the relation id;
* each revision is a node ``(:OneEditRevision {id, author, time, message, state, n_added,
  n_removed, diff})`` (the diff compressed, base64), ids drawn from ``(:OneEditMeta
  {key: 'revisions'})``; so the history lives, and survives, with the data.

Every value is a query parameter. Relationship types and node labels cannot be parameters in
Cypher, so the only names written into query text are relation ids and type names, and each is
checked against ``[A-Za-z_][A-Za-z0-9_]*`` (and backtick-quoted) first: a label full of quotes,
braces, backticks or Cypher keywords is only ever a parameter.

The Cypher is the subset Neo4j 5 and FalkorDB share (MATCH/MERGE/SET/DELETE/UNWIND, explicit
transactions). Every call runs with a timeout (``timeout`` seconds, on a worker thread: a hung
server cannot hang OneEdit); a lost connection or a timeout raises :class:`StoreError` that says
what to do. A commit is journaled like the embedded store's: the revision is written ``pending``
first, so a commit cut off half way is rolled back (``recover``) the next time the store opens.
"""

from __future__ import annotations

import atexit
import dataclasses
import base64
import json
import logging
import queue
import os
import re
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime

from controller.stores.base import KGStore
from controller.stores.revisions import decode_changes, diff_from_changes, encode_changes
from oneedit.core import Diff, Revision, RevisionError, StoreError, Triple
from oneedit.core.safe_text import check_triple

log = logging.getLogger(__name__)

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
BATCH = 2000  # rows per UNWIND


def _name(kind: str, value: str) -> str:
    """A relation id or type name, checked, backtick-quoted for query text."""
    if not isinstance(value, str) or not IDENT.match(value):
        raise StoreError(f"{kind} {value!r} cannot be stored in a graph database: names of relations and types "
                         "must be letters, digits and underscores.",
                         hint="Rename it in the schema (e.g. `head_of_state`).")
    return f"`{value}`"


def _chunks_of(rows: list, n: int = BATCH, budget: int | None = None) -> Iterator[list]:
    """Rows in batches of at most ``n``, and at most ``budget`` bytes of JSON when given."""
    if budget is None:
        for i in range(0, len(rows), n):
            yield rows[i:i + n]
        return
    batch: list = []
    size = 0
    for row in rows:
        cost = len(json.dumps(row, ensure_ascii=False).encode()) + 8
        if batch and (size + cost > budget or len(batch) >= n):
            yield batch
            batch, size = [], 0
        if cost > budget:
            raise StoreError(f"A value of {cost:,} bytes is too long for this graph server (at most {budget:,}).",
                             hint="Shorten the label or description, or use Neo4j, which has no such limit.")
        batch.append(row)
        size += cost
    if batch:
        yield batch


#: seconds the first query of a new connection may take before it is retried on a fresh one
FIRST_QUERY_TIMEOUT = 5.0


class BoltClient:
    """The driver, a session per call, a timeout on every call."""

    def __init__(self, uri: str, *, user: str = "neo4j", password: str = "", database: str | None = None,
                 timeout: float = 30.0):
        try:
            import neo4j
        except ImportError:  # pragma: no cover - a declared dependency
            raise StoreError("The neo4j backend needs the `neo4j` driver.", hint="pip install neo4j") from None
        self._neo4j = neo4j
        self.uri = uri
        self.database = database
        self.timeout = timeout
        self._auth = (user, password)
        self._driver = self._connect()
        self._pool = _Worker()
        self._lock = threading.Lock()
        self.escape = False
        self.escape = self._needs_escaping()
        #: most bytes of parameters one statement may carry (FalkorDB's Bolt endpoint crashes when
        #: the query it splices them into passes ~8 KB); None: no limit (Neo4j)
        self.param_budget: int | None = 3000 if self.escape else None

    def _needs_escaping(self) -> bool:
        """Whether the server mis-reads quotes and backslashes in string parameters.

        FalkorDB's Bolt endpoint splices parameters into its query text, so a value with an
        apostrophe ("Côte d'Ivoire") fails and a backslash is lost; escaped, both arrive intact.
        Neo4j reads parameters as values and needs nothing. One probe tells them apart: the
        escaped form comes back unescaped from the first kind and verbatim from the second (the
        raw form is never sent: it can wedge FalkorDB's connection)."""
        probe = "it's a \\ test"
        # FalkorDB's endpoint can stall the first query of a new connection after another one
        # said goodbye (until that connection drops): a stalled probe is retried on a fresh one
        tries = max(1, int(self.timeout // FIRST_QUERY_TIMEOUT))
        for attempt in range(tries):
            try:
                got = self.read("RETURN $p", "checking how the server reads parameters", p=_escaped(probe),
                                timeout=min(self.timeout, FIRST_QUERY_TIMEOUT))
                break
            except StoreError:
                if attempt == tries - 1:
                    raise
        if got == [(_escaped(probe),)]:
            return False
        if got == [(probe,)]:
            log.info("%s mis-reads quotes in parameters: string parameters are escaped for it", self.uri)
            return True
        raise StoreError(f"The server at {self.uri} does not read string parameters back intact.",
                         hint="Use Neo4j 5 (or a FalkorDB whose Bolt endpoint passes the conformance suite).")

    def _connect(self, fresh: bool = False):
        """The process's driver for this server and user (drivers are meant to be long-lived and
        shared; FalkorDB's Bolt endpoint also stalls the first query of a second driver after the
        first one closed). ``fresh`` replaces a driver that timed out."""
        key = (self.uri, self._auth, self.timeout)
        with _DRIVERS_LOCK:
            driver = _DRIVERS.get(key)
            if driver is None or fresh:
                driver = self._neo4j.GraphDatabase.driver(
                    self.uri, auth=self._auth, connection_timeout=min(self.timeout, 15.0),
                    connection_acquisition_timeout=self.timeout, max_connection_lifetime=3600)
                _DRIVERS[key] = driver
            return driver

    def _fail(self, what: str, exc: BaseException) -> StoreError:
        return StoreError(f"The graph database at {self.uri} failed while {what}: {exc}",
                          hint="Check that it is running and reachable (`oneedit kg stats` retries); an edit cut "
                               "off half way is rolled back the next time the store opens.")

    def call(self, fn, what: str, *, timeout: float | None = None):
        """Run ``fn(session)`` on the worker thread within the timeout."""
        with self._lock:
            fut = self._pool.submit(self._in_session, fn)
            try:
                return fut.result(timeout or self.timeout)
            except FutureTimeout:
                # the call may be stuck on a socket: drop this driver (closing it in the
                # background) and a fresh thread and driver serve the next call
                old_driver, old_pool = self._driver, self._pool
                self._pool = _Worker()
                self._driver = self._connect(fresh=True)
                threading.Thread(target=_close_quietly, args=(old_driver, old_pool), daemon=True).start()
                raise StoreError(f"The graph database at {self.uri} did not answer within {timeout or self.timeout:g} s "
                                 f"while {what}.",
                                 hint="It may be overloaded or unreachable; try again, or raise the store's "
                                      "`timeout` option. An edit cut off half way is rolled back the next time "
                                      "the store opens.") from None
            except self._neo4j.exceptions.Neo4jError as exc:
                raise self._fail(what, exc) from exc
            except self._neo4j.exceptions.DriverError as exc:
                raise self._fail(what, exc) from exc
            except OSError as exc:
                raise self._fail(what, exc) from exc

    def _in_session(self, fn):
        with self._driver.session(database=self.database) as session:
            return fn(session)

    def _params(self, params: dict) -> dict:
        return _escaped(params) if self.escape else params

    def read(self, query: str, what: str, *, timeout: float | None = None, **params) -> list[tuple]:
        params = self._params(params)

        def run(session):
            return [tuple(r.values()) for r in session.run(query, params)]
        return self.call(run, what, timeout=timeout)

    def write_many(self, statements: list[tuple[str, dict]], what: str) -> None:
        """Run statements in one explicit transaction."""
        statements = [(q, self._params(p)) for q, p in statements]

        def run(session):
            tx = session.begin_transaction()
            try:
                for q, p in statements:
                    tx.run(q, p).consume()
                tx.commit()
            except BaseException:
                if not tx.closed():
                    tx.rollback()
                raise
        if statements:
            self.call(run, what)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)  # the driver stays for the next store


_DRIVERS: dict[tuple, object] = {}
_DRIVERS_LOCK = threading.Lock()


@atexit.register
def _close_drivers() -> None:
    with _DRIVERS_LOCK:
        for d in _DRIVERS.values():
            try:
                d.close()
            except Exception:  # noqa: BLE001 - closing at exit
                pass
        _DRIVERS.clear()


def _escaped(value):
    """String parameters with ``\\`` and ``'`` backslash-escaped, in nested lists and maps too."""
    if isinstance(value, str):
        return value.replace("\\", "\\\\").replace("'", "\\'")
    if isinstance(value, dict):
        return {k: _escaped(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_escaped(v) for v in value]
    return value


class _Worker:
    """One daemon thread that runs a client's calls in order (a thread pool's threads would be
    joined at exit, so a call stuck on a dead socket would hold the process open)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._run, name="oneedit-bolt", daemon=True).start()

    def submit(self, fn, *args) -> Future:
        fut: Future = Future()
        self._jobs.put((fut, fn, args))
        return fut

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            fut, fn, args = job
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                fut.set_exception(exc)

    def shutdown(self, wait: bool = False, cancel_futures: bool = True) -> None:
        self._jobs.put(None)


def _close_quietly(driver, pool) -> None:
    try:
        driver.close()
    except Exception:  # noqa: BLE001 - closing a broken connection
        pass
    pool.shutdown(wait=False, cancel_futures=True)


class GraphRevisionLog:
    """The revision log as nodes of the same database (same interface as ``SQLiteRevisionLog``)."""

    def __init__(self, db: BoltClient):
        self.db = db

    def close(self) -> None:
        pass

    def begin(self, author: str, message: str, changes: Iterable[tuple[str, Triple]], *,
              time: datetime | None = None) -> int:
        """A pending revision: its node, then its diff in parts (each small enough for the server).
        A crash before the parts are all written leaves a pending revision whose changes were
        never applied; undoing them on open changes nothing."""
        blob, n_add, n_rem = encode_changes(changes)
        text = base64.b64encode(blob).decode("ascii")
        size = (self.db.param_budget or len(text) + 1) - 200
        parts = [text[i:i + size] for i in range(0, len(text), size)] or [""]
        rows = self.db.read(
            "MERGE (m:OneEditMeta {key: 'revisions'}) ON CREATE SET m.next = 0 "
            "SET m.next = m.next + 1 "
            "WITH m CREATE (r:OneEditRevision {id: m.next, author: $author, time: $time, message: $message, "
            "state: 'pending', n_added: $n_add, n_removed: $n_rem, parts: $n_parts}) RETURN r.id",
            "recording a revision", author=author,
            time=(time or datetime.now(UTC)).isoformat(timespec="milliseconds"),
            message=message[:1000], n_add=n_add, n_rem=n_rem, n_parts=len(parts))
        rev_id = int(rows[0][0])
        for seq, part in enumerate(parts):
            self.db.read("CREATE (p:OneEditRevisionPart {rev: $rev, seq: $seq, data: $data}) RETURN p.seq",
                         "recording a revision", rev=rev_id, seq=seq, data=part)
        return rev_id

    def _diff(self, rev_id: int) -> bytes:
        rows = self.db.read("MATCH (p:OneEditRevisionPart {rev: $rev}) RETURN p.seq, p.data ORDER BY p.seq",
                            "reading a revision", rev=rev_id)
        return base64.b64decode("".join(r[1] for r in rows))

    def set_state(self, rev_id: int, state: str) -> None:
        self.db.read("MATCH (r:OneEditRevision {id: $id}) SET r.state = $state RETURN r.id",
                     "updating a revision", id=rev_id, state=state)

    def head(self) -> int:
        rows = self.db.read("MATCH (r:OneEditRevision) WHERE r.state = 'committed' RETURN max(r.id)",
                            "reading the head revision")
        return int(rows[0][0] or 0) if rows else 0

    def pending(self) -> list[int]:
        rows = self.db.read("MATCH (r:OneEditRevision) WHERE r.state = 'pending' RETURN r.id ORDER BY r.id DESC",
                            "looking for interrupted commits")
        return [int(r[0]) for r in rows]

    _FIELDS = "r.id, r.author, r.time, r.message, r.n_added, r.n_removed, r.state"

    def get(self, rev_id: int, *, with_diff: bool = False) -> Revision:
        rows = self.db.read(f"MATCH (r:OneEditRevision {{id: $id}}) RETURN {self._FIELDS}",
                            "reading a revision", id=rev_id)
        if not rows:
            raise RevisionError(f"No revision r{rev_id}.", hint="Run `oneedit kg log` to list revisions.")
        rev = self._row(rows[0])
        return dataclasses.replace(rev, diff=diff_from_changes(self.changes(rev_id))) if with_diff else rev

    def changes(self, rev_id: int) -> Iterator[tuple[str, Triple]]:
        if not self.db.read("MATCH (r:OneEditRevision {id: $id}) RETURN r.id", "reading a revision", id=rev_id):
            raise RevisionError(f"No revision r{rev_id}.", hint="Run `oneedit kg log` to list revisions.")
        return decode_changes(self._diff(rev_id))

    def list(self, *, limit: int = 50, offset: int = 0, include_aborted: bool = False,
             after: int = 0, descending: bool = True) -> list[Revision]:
        where = "r.id > $after" + ("" if include_aborted else " AND r.state = 'committed'")
        order = "DESC" if descending else "ASC"
        rows = self.db.read(f"MATCH (r:OneEditRevision) WHERE {where} RETURN {self._FIELDS} "
                            f"ORDER BY r.id {order} SKIP $offset LIMIT $limit", "listing revisions",
                            after=after, offset=offset, limit=limit)
        return [self._row(r) for r in rows]

    def count(self) -> int:
        rows = self.db.read("MATCH (r:OneEditRevision) WHERE r.state = 'committed' RETURN count(r)",
                            "counting revisions")
        return int(rows[0][0])

    @staticmethod
    def _row(row: tuple) -> Revision:
        return Revision(id=int(row[0]), author=row[1], time=datetime.fromisoformat(row[2]), message=row[3],
                        n_added=int(row[4]), n_removed=int(row[5]), state=row[6])


class Neo4jStore(KGStore):
    """A KG store in Neo4j (or any Bolt server that speaks the same Cypher)."""

    name = "neo4j"
    capabilities = frozenset({"persistent", "bulk_load", "revisions", "remote"})

    def __init__(self, uri: str, *, user: str = "neo4j", password: str | None = None,
                 password_env: str | None = None, database: str | None = None, timeout: float = 30.0,
                 lease_ttl: float | None = None, **_ignored):
        super().__init__()
        if lease_ttl is not None:
            self.LEASE_TTL = float(lease_ttl)  # seconds the writer's lease outlives its last renewal
        if password is None and password_env:
            password = os.environ.get(password_env)
            if password is None:
                raise StoreError(f"The neo4j store's password is read from ${password_env}, which is not set.",
                                 hint=f"export {password_env}=… before running OneEdit.")
        self.uri = uri
        self.db = BoltClient(uri, user=user, password=password or "", database=database, timeout=timeout)
        self._log = GraphRevisionLog(self.db)
        try:
            self._setup()
            self.recover()
        except BaseException:
            self.db.close()
            raise

    def _setup(self) -> None:
        """Indexes (and on Neo4j the unique id constraint), created idempotently."""
        for q in ("CREATE CONSTRAINT oneedit_entity_id IF NOT EXISTS FOR (n:Entity) REQUIRE n.id IS UNIQUE",
                  "CREATE INDEX FOR (n:Entity) ON (n.id)",
                  "CREATE INDEX FOR (r:OneEditRevision) ON (r.id)",
                  "CREATE INDEX FOR (p:OneEditRevisionPart) ON (p.rev)",
                  "CREATE INDEX FOR (m:OneEditMeta) ON (m.key)"):
            try:
                self.db.write_many([(q, {})], "creating indexes")
            except StoreError as exc:
                # already there (both), or a form this server does not speak (FalkorDB has no
                # CONSTRAINT clause; Neo4j refuses an index the constraint already gives)
                log.debug("index statement skipped: %s", exc)

    @property
    def log(self) -> GraphRevisionLog:
        return self._log

    def close(self) -> None:
        if getattr(self, "_renewer", None) is not None:
            self.release_lease()
        if self.db is not None:
            self.db.close()
            self.db = None  # type: ignore[assignment]

    # -- reading ---------------------------------------------------------------------------
    def triples(self, subject=None, relation=None, object=None) -> Iterator[Triple]:
        if relation in ("type", "label", "alias", "description") or (relation is None and object is None):
            yield from self._meta(subject, relation, object)
        if relation is not None and relation in ("type", "label", "alias", "description"):
            return
        yield from self._facts(subject, relation, object)

    def _meta(self, subject, relation, object) -> Iterator[Triple]:
        match = "MATCH (n:Entity {id: $s})" if subject is not None else "MATCH (n:Entity)"
        rows = self.db.read(f"{match} RETURN n.id, n.type, n.label, n.aliases, n.description", "reading entities",
                            s=subject)
        for eid, etype, label, aliases, desc in rows:
            for rel, values in (("type", [etype]), ("label", [label]), ("alias", aliases or []),
                                ("description", [desc])):
                if relation is not None and rel != relation:
                    continue
                for v in values:
                    if v is not None and (object is None or v == object):
                        yield Triple(eid, rel, v)

    def _facts(self, subject, relation, object) -> Iterator[Triple]:
        a = "(a:Entity {id: $s})" if subject is not None else "(a:Entity)"
        b = "(b:Entity {id: $o})" if object is not None else "(b:Entity)"
        if relation is not None:
            q = f"MATCH {a}-[:{_name('relation', relation)}]->{b} RETURN a.id, b.id"
            for s, o in self.db.read(q, "matching facts", s=subject, o=object):
                yield Triple(s, relation, o)
            return
        q = f"MATCH {a}-[x]->{b} RETURN a.id, type(x), b.id"
        for s, r, o in self.db.read(q, "matching facts", s=subject, o=object):
            yield Triple(s, r, o)

    def contains(self, triple: Triple) -> bool:
        return any(True for _ in self.triples(*triple.as_tuple()))

    def count(self, subject=None, relation=None, object=None) -> int:
        if subject is None and relation is None and object is None:
            facts = self.db.read("MATCH (:Entity)-[x]->(:Entity) RETURN count(x)", "counting facts")[0][0]
            meta = self.db.read(
                "MATCH (n:Entity) RETURN count(n.type) + count(n.label) + count(n.description)"
                " + sum(size(coalesce(n.aliases, [])))", "counting entities")[0][0]
            return int(facts) + int(meta or 0)
        return super().count(subject, relation, object)

    def _present(self, triples: Iterable[Triple]) -> set[Triple]:
        """Which of ``triples`` the database holds, in a few batched queries (not one per triple)."""
        triples = list(triples)
        facts = [t for t in triples if not t.is_meta]
        subjects = sorted({t.subject for t in triples if t.is_meta})
        have: set[Triple] = set()
        budget = self.db.param_budget
        for chunk in _chunks_of(subjects, BATCH, budget):
            rows = self.db.read("UNWIND $ids AS i MATCH (n:Entity {id: i}) "
                                "RETURN n.id, n.type, n.label, n.aliases, n.description", "reading entities", ids=chunk)
            for eid, etype, label, aliases, desc in rows:
                have |= {Triple(eid, "type", etype), Triple(eid, "label", label), Triple(eid, "description", desc)}
                have |= {Triple(eid, "alias", a) for a in aliases or []}
        rows = [{"s": t.subject, "p": t.relation, "o": t.object} for t in facts]
        for chunk in _chunks_of(rows, BATCH, budget):
            found = self.db.read("UNWIND $rows AS r MATCH (a:Entity {id: r.s})-[x]->(b:Entity {id: r.o}) "
                                 "WHERE type(x) = r.p RETURN r.s, r.p, r.o", "matching facts", rows=chunk)
            have |= {Triple(*f) for f in found}
        return {t for t in triples if t in have}

    def exact_diff(self, want: dict[Triple, bool]) -> Diff:
        for t, on in want.items():
            if on:
                check_triple(t)
        present = self._present(want)
        added = tuple(t for t, on in want.items() if on and t not in present)
        removed = tuple(t for t, on in want.items() if not on and t in present)
        return Diff(added, removed)

    def bulk_load(self, triples: Iterable[Triple], author: str, message: str) -> Revision | None:
        """One revision of the triples not already present, written in batched UNWIND statements."""
        want = dict.fromkeys(triples, True)
        return self.commit(self.exact_diff(want), author, message)

    def _scan_entities(self):
        from oneedit.core import Entity

        rows = self.db.read("MATCH (n:Entity) WHERE n.type IS NOT NULL AND n.label IS NOT NULL "
                            "RETURN n.id, n.type, n.label, n.aliases, n.description ORDER BY n.id", "reading entities")
        for eid, etype, label, aliases, desc in rows:
            yield Entity(eid, etype, label, tuple(aliases or ()), desc or "")

    # -- writing ---------------------------------------------------------------------------
    def _apply(self, diff: Diff) -> None:
        self.db.write_many(self._statements(diff), "writing a revision")

    def _statements(self, diff: Diff) -> list[tuple[str, dict]]:
        out: list[tuple[str, dict]] = []
        budget = self.db.param_budget

        def _chunks(rows):  # batches within this server's limits
            return _chunks_of(rows, BATCH, budget)

        add_facts: dict[str, list] = defaultdict(list)
        del_facts: dict[str, list] = defaultdict(list)
        add_meta: dict[str, list] = defaultdict(list)
        del_meta: dict[str, list] = defaultdict(list)
        add_alias: dict[str, list] = defaultdict(list)
        del_alias: dict[str, list] = defaultdict(list)
        touched: set[str] = set()
        for t in diff.removed:
            touched.add(t.subject)
            if t.relation == "alias":
                del_alias[t.subject].append(t.object)
            elif t.is_meta:
                del_meta[t.relation].append({"s": t.subject, "o": t.object})
            else:
                touched.add(t.object)
                del_facts[t.relation].append({"s": t.subject, "o": t.object})
        for t in diff.added:
            if t.relation == "alias":
                add_alias[t.subject].append(t.object)
            elif t.is_meta:
                add_meta[t.relation].append({"s": t.subject, "o": t.object})
            else:
                add_facts[t.relation].append({"s": t.subject, "o": t.object})
        for rel, rows in del_facts.items():
            q = (f"UNWIND $rows AS r MATCH (a:Entity {{id: r.s}})-[x:{_name('relation', rel)}]->"
                 "(b:Entity {id: r.o}) DELETE x")
            out += [(q, {"rows": c}) for c in _chunks(rows)]
        # names first removed, then set: a label or type that changes is one of each
        out += self._meta_statements(
            del_meta, "UNWIND $rows AS r MATCH (a:Entity {{id: r.s}}) WHERE a.type = r.o "
                      "SET a.type = null REMOVE a:{label}",
            "UNWIND $rows AS r MATCH (a:Entity {{id: r.s}}) WHERE a.{prop} = r.o SET a.{prop} = null")
        if del_alias:
            rows = [{"s": s, "v": v} for s, v in del_alias.items()]
            q = ("UNWIND $rows AS r MATCH (a:Entity {id: r.s}) "
                 "SET a.aliases = [x IN coalesce(a.aliases, []) WHERE NOT x IN r.v]")
            out += [(q, {"rows": c}) for c in _chunks(rows)]
        out += self._meta_statements(
            add_meta, "UNWIND $rows AS r MERGE (a:Entity {{id: r.s}}) SET a.type = r.o, a:{label}",
            "UNWIND $rows AS r MERGE (a:Entity {{id: r.s}}) SET a.{prop} = r.o")
        if add_alias:
            rows = [{"s": s, "v": v} for s, v in add_alias.items()]
            q = ("UNWIND $rows AS r MERGE (a:Entity {id: r.s}) "
                 "SET a.aliases = [x IN coalesce(a.aliases, []) WHERE NOT x IN r.v] + r.v")
            out += [(q, {"rows": c}) for c in _chunks(rows)]
        for rel, rows in add_facts.items():
            q = (f"UNWIND $rows AS r MERGE (a:Entity {{id: r.s}}) MERGE (b:Entity {{id: r.o}}) "
                 f"MERGE (a)-[:{_name('relation', rel)}]->(b)")
            out += [(q, {"rows": c}) for c in _chunks(rows)]
        if touched:
            # nodes left with nothing (no names, no facts) go, so removed entities leave no trace
            q = ("UNWIND $ids AS i MATCH (a:Entity {id: i}) WHERE a.type IS NULL AND a.label IS NULL "
                 "AND a.description IS NULL AND size(coalesce(a.aliases, [])) = 0 "
                 "OPTIONAL MATCH (a)-[x]-() WITH a, count(x) AS degree WHERE degree = 0 DELETE a")
            out += [(q, {"ids": c}) for c in _chunks(sorted(touched))]
        return out

    def _meta_statements(self, by_relation: dict[str, list], type_query: str, prop_query: str) -> list:
        """Statements for type/label/description rows: the type query once per type (a node
        label cannot be a parameter), the property query once per property."""
        out = []
        for rel, rows in by_relation.items():
            if rel == "type":
                for etype, group in _by_object(rows).items():
                    q = type_query.format(label=_name("type", etype))
                    out += [(q, {"rows": c}) for c in _chunks_of(group, BATCH, self.db.param_budget)]
            else:
                q = prop_query.format(prop=rel)  # label or description: a fixed set
                out += [(q, {"rows": c}) for c in _chunks_of(rows, BATCH, self.db.param_budget)]
        return out

    # -- the writer's lease ---------------------------------------------------------------------------
    LEASE_TTL = 30.0

    def acquire_lease(self, info: dict, ttl: float | None = None) -> dict | None:
        """Take (or renew) the database's writer lease: one node every OneEdit process on this
        database sees. Returns None when this store holds it now, else what the live holder wrote
        (with ``expires_in``, seconds). A holder renews it every ``ttl``/3 s on a background thread;
        one that dies stops renewing, and the lease is free ``ttl`` s later."""
        import json
        import time as _time
        import uuid

        ttl = ttl or self.LEASE_TTL
        if getattr(self, "_lease_id", None) is None:
            self._lease_id = uuid.uuid4().hex
            self._lease_info = json.dumps(info)
        now = _time.time()
        # the first SET takes the node's write lock, so the test after it sees no concurrent change
        rows = self.db.read(
            "MERGE (l:OneEditLease {key: 'writer'}) ON CREATE SET l.holder = '', l.expires = 0.0 "
            "SET l.touch = coalesce(l.touch, 0) + 1 "
            "WITH l, (l.holder = '' OR l.holder = $holder OR l.expires < $now) AS free "
            "SET l.holder = CASE WHEN free THEN $holder ELSE l.holder END, "
            "l.expires = CASE WHEN free THEN $expires ELSE l.expires END, "
            "l.info = CASE WHEN free THEN $info ELSE l.info END "
            "RETURN free, l.info, l.expires", "taking the writer's lease",
            holder=self._lease_id, now=now, expires=now + ttl, info=self._lease_info)
        free, info_text, expires = rows[0]
        if not free:
            try:
                other = json.loads(info_text or "{}")
            except ValueError:
                other = {}
            return other | {"expires_in": max(0, round(float(expires) - now))}
        if getattr(self, "_renewer", None) is None:
            import threading

            stop = threading.Event()

            def renew() -> None:
                while not stop.wait(ttl / 3):
                    try:
                        self.acquire_lease(info, ttl)
                    except Exception:  # the next renewal tries again; a commit checks the head anyway
                        log.warning("could not renew the writer's lease on %s", self.db.uri, exc_info=True)
            self._renewer = (stop, threading.Thread(target=renew, name="oneedit-lease", daemon=True))
            self._renewer[1].start()
        return None

    def release_lease(self) -> None:
        """Give the lease back (on close)."""
        renewer = getattr(self, "_renewer", None)
        if renewer is not None:
            renewer[0].set()
            self._renewer = None
        if getattr(self, "_lease_id", None) is None:
            return
        try:
            self.db.read("MATCH (l:OneEditLease {key: 'writer'}) WHERE l.holder = $holder "
                         "SET l.holder = '', l.expires = 0.0 RETURN l.key", "giving the writer's lease back",
                         holder=self._lease_id)
        finally:
            self._lease_id = None

    def wipe(self) -> None:
        """Delete every entity and revision of this database (tests, ``kg migrate --replace``)."""
        self.db.write_many([("MATCH (n:Entity) DETACH DELETE n", {}),
                            ("MATCH (n:OneEditRevision) DELETE n", {}),
                            ("MATCH (n:OneEditRevisionPart) DELETE n", {}),
                            ("MATCH (n:OneEditMeta) DELETE n", {})], "wiping the graph")
        self._names = None


def _by_object(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        out[r["o"]].append(r)
    return out


def copy_history(src: KGStore, dst: KGStore, progress=None) -> dict:
    """Copy a store's KG with its whole history into an empty one: every revision in order, with
    its id, author, time, message and state, so the ledger's references (``kg_revision``) and
    ``revert``/``restore`` keep working. Returns what was copied, checked triple for triple."""
    if dst.head() != 0 or dst.count() != 0 or dst.log.list(limit=1, include_aborted=True):
        raise StoreError("The target graph database is not empty.",
                         hint="Point at an empty database, or pass --replace to wipe it first.")
    revs = []
    offset = 0
    while True:
        batch = src.log.list(limit=500, offset=offset, include_aborted=True, descending=False)
        if not batch:
            break
        revs += batch
        offset += len(batch)
    copied = 0
    for n, rev in enumerate(revs, 1):
        changes = list(src.log.changes(rev.id))
        rev_id = dst.log.begin(rev.author, rev.message, changes, time=rev.time)
        if rev_id != rev.id:
            raise StoreError(f"Revision ids diverged while copying (r{rev.id} became r{rev_id}).",
                             hint="Wipe the target (--replace) and copy again.")
        if rev.state == "committed":
            dst._apply(diff_from_changes(changes))
            copied += len(changes)
        dst.log.set_state(rev_id, rev.state)
        if progress:
            progress(n, len(revs))
    dst._names = None
    src_triples, dst_triples = set(src.triples()), set(dst.triples())
    if src_triples != dst_triples:
        raise StoreError(f"The copy differs from the source: {len(src_triples - dst_triples)} triples missing, "
                         f"{len(dst_triples - src_triples)} extra.", hint="Wipe the target (--replace) and copy again.")
    return {"revisions": len(revs), "head": dst.head(), "changes_applied": copied, "triples": len(dst_triples)}
