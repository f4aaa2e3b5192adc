"""The KG store interface.

A store holds triples (``oneedit.core.Triple``) and their history. It knows nothing of the schema:
schema checks, inverse materialisation and conflict handling live above it
(``controller.kg.KnowledgeGraph``). Implementations provide pattern matching, an atomic
``_apply`` of an exact diff, and a revision log; this base class turns those into transactions,
revert/restore, entity views and name lookup, so every store behaves the same way (and the
conformance suite in ``tests/test_store_conformance.py`` checks that it does).
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import ClassVar

from oneedit.core.faults import fault
from oneedit.core.safe_text import check_triple
from oneedit.core import (
    Diff,
    Entity,
    EntityMatch,
    Revision,
    RevisionError,
    StoreError,
    Triple,
)

log = logging.getLogger(__name__)


class Transaction:
    """Changes collected inside ``store.transaction(...)``; committed as one revision on exit.

    Adding and then removing the same triple cancels out. The resulting diff is made exact
    against the store when the transaction commits (adding a present triple is a no-op).
    """

    def __init__(self, store: KGStore):
        self._store = store
        self._want: dict[Triple, bool] = {}
        self.revision: Revision | None = None

    def add(self, triple: Triple) -> None:
        self._want[triple] = True

    def remove(self, triple: Triple) -> None:
        self._want[triple] = False

    def add_all(self, triples: Iterable[Triple]) -> None:
        for t in triples:
            self._want[t] = True

    def remove_all(self, triples: Iterable[Triple]) -> None:
        for t in triples:
            self._want[t] = False

    def pending(self) -> dict[Triple, bool]:
        return dict(self._want)

    def __len__(self) -> int:
        return len(self._want)


class KGStore(ABC):
    """Abstract triple store with revisions. Subclasses register in ``controller.stores``."""

    #: Registry name (``embedded``, ``neo4j``, ...).
    name: ClassVar[str] = ""
    #: What the backend supports beyond the interface: ``persistent``, ``bulk_load``, ``sparql``.
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        self._write_lock = threading.RLock()
        self._names = None  # controller.linking.NameIndex, built on first lookup

    # -- to implement ----------------------------------------------------------------------
    @abstractmethod
    def triples(self, subject: str | None = None, relation: str | None = None,
                object: str | None = None) -> Iterator[Triple]:
        """Triples matching a pattern; ``None`` is a wildcard. Without a relation, an object
        pattern matches entity objects only (not labels or aliases)."""

    @abstractmethod
    def _apply(self, diff: Diff) -> None:
        """Write an exact diff. Must be idempotent: re-applying a (partly) applied diff is safe."""

    @property
    @abstractmethod
    def log(self):
        """The revision log (``SQLiteRevisionLog`` or an equivalent)."""

    def close(self) -> None:
        """Release files, connections and locks."""

    # -- reading ---------------------------------------------------------------------------
    def contains(self, triple: Triple) -> bool:
        return next(iter(self.triples(*triple.as_tuple())), None) is not None

    def count(self, subject: str | None = None, relation: str | None = None,
              object: str | None = None) -> int:
        return sum(1 for _ in self.triples(subject, relation, object))

    def objects(self, subject: str, relation: str) -> list[str]:
        return sorted(t.object for t in self.triples(subject, relation, None))

    def subjects(self, relation: str, object: str) -> list[str]:
        return sorted(t.subject for t in self.triples(None, relation, object))

    def entity(self, entity_id: str) -> Entity | None:
        etype = label = desc = None
        aliases: list[str] = []
        for t in self.triples(entity_id, None, None):
            if t.relation == "type":
                etype = t.object
            elif t.relation == "label":
                label = t.object
            elif t.relation == "alias":
                aliases.append(t.object)
            elif t.relation == "description":
                desc = t.object
        if etype is None and label is None:
            return None
        return Entity(entity_id, etype or "", label or entity_id, tuple(sorted(aliases)), desc or "")

    def entities(self, type: str | None = None) -> Iterator[Entity]:
        ids = sorted({t.subject for t in self.triples(None, "type", type)}) if type else \
            sorted({t.subject for t in self.triples(None, "type", None)})
        for eid in ids:
            e = self.entity(eid)
            if e is not None:
                yield e

    def find_entities(self, text: str, *, limit: int = 5, type: str | None = None,
                      fuzzy: bool = True, cutoff: float = 0.6) -> list[EntityMatch]:
        """Entities whose id, label or alias matches ``text`` (case-insensitive, then fuzzy)."""
        with self._write_lock:  # the index changes on commit; readers on other threads wait for it
            return self._name_index().find(text, limit=limit, type=type, fuzzy=fuzzy, cutoff=cutoff)

    def match_mention(self, text: str, *, limit: int = 10, types: Iterable[str] | None = None,
                      cutoff: float = 0.6) -> list[EntityMatch]:
        """Candidate entities for a name written in running text (see ``NameIndex.match_mention``)."""
        with self._write_lock:
            return self._name_index().match_mention(text, limit=limit, types=types, cutoff=cutoff)

    def _name_index(self):
        if self._names is None:
            from controller.linking import NameIndex

            self._names = NameIndex(self._scan_entities())
        return self._names

    def _scan_entities(self) -> Iterator[Entity]:
        """All entities in one pass over the meta triples (faster than per-entity lookups)."""
        info: dict[str, dict] = {}
        for rel in ("type", "label", "alias", "description"):
            for t in self.triples(None, rel, None):
                d = info.setdefault(t.subject, {"aliases": []})
                if rel == "alias":
                    d["aliases"].append(t.object)
                else:
                    d[rel] = t.object
        for eid, d in info.items():
            yield Entity(eid, d.get("type", ""), d.get("label", eid), tuple(sorted(d["aliases"])),
                         d.get("description", ""))

    # -- writing ---------------------------------------------------------------------------
    @contextmanager
    def transaction(self, author: str, message: str) -> Iterator[Transaction]:
        """Collect changes; on normal exit they are committed as one revision (or none if empty)."""
        txn = Transaction(self)
        yield txn
        txn.revision = self.commit(self.exact_diff(txn.pending()), author, message)

    def exact_diff(self, want: dict[Triple, bool]) -> Diff:
        for t, present in want.items():  # before a lookup: an unsafe id is not even a valid IRI
            if present:
                check_triple(t)
        added, removed = [], []
        for t, present in want.items():
            has = self.contains(t)
            if present and not has:
                added.append(t)
            elif not present and has:
                removed.append(t)
        return Diff(tuple(added), tuple(removed))

    def commit(self, diff: Diff, author: str, message: str, *, expect_head: int | None = None) -> Revision | None:
        """Write an exact diff as a new revision. Returns ``None`` when the diff is empty.

        ``expect_head``: the head revision the diff was planned against; if another writer moved
        the head since, nothing is written and :class:`RevisionError` says so (plan again)."""
        if not diff:
            return None
        for t in diff.added:  # every write passes here: requests, structured facts, imports, kg add
            check_triple(t)
        with self._write_lock:
            if expect_head is not None and (now := self.head()) != expect_head:
                raise RevisionError(f"The KG changed since this edit was planned (revision r{expect_head}, now "
                                    f"r{now}); nothing was written.",
                                    hint="Send the request again: it is planned against the KG as it is now.",
                                    details={"planned_at": expect_head, "head": now})
            changes = [("+", t) for t in diff.added] + [("-", t) for t in diff.removed]
            rev_id = self.log.begin(author, message, changes)
            try:
                self._apply(diff)
                fault("kg_apply")
            except BaseException as exc:
                self._undo(rev_id, diff)
                if isinstance(exc, Exception):
                    raise StoreError(f"Writing revision r{rev_id} failed and was rolled back: {exc}",
                                     hint="Check the workspace's disk space and permissions.") from exc
                raise
            self.log.set_state(rev_id, "committed")
            self._after_commit(diff)
            return self.log.get(rev_id)

    def _undo(self, rev_id: int, diff: Diff) -> None:
        try:
            self._apply(diff.inverse())
        finally:
            self.log.set_state(rev_id, "aborted")
            self._names = None

    def recover(self) -> list[int]:
        """Roll back revisions left pending by a crash. Called when a store opens."""
        rolled = []
        for rev_id in self.log.pending():
            from controller.stores.revisions import diff_from_changes

            diff = diff_from_changes(self.log.changes(rev_id))
            log.warning("Rolling back revision r%d left pending by an interrupted commit", rev_id)
            self._undo(rev_id, diff)
            rolled.append(rev_id)
        return rolled

    def _after_commit(self, diff: Diff) -> None:
        if self._names is None:
            return
        touched = {t.subject for t in (*diff.added, *diff.removed) if t.is_meta}
        for eid in touched:
            e = self.entity(eid)
            if e is None:
                self._names.drop(eid)
            else:
                self._names.put(e)

    # -- history ---------------------------------------------------------------------------
    def head(self) -> int:
        return self.log.head()

    def history(self, *, limit: int = 50, offset: int = 0) -> list[Revision]:
        return self.log.list(limit=limit, offset=offset)

    def revision(self, rev_id: int, *, with_diff: bool = False) -> Revision:
        return self.log.get(rev_id, with_diff=with_diff)

    def plan_revert(self, rev_id: int) -> tuple[Diff, list[Triple]]:
        """The diff that undoes revision ``rev_id`` now, and the triples skipped because later
        revisions already changed them back."""
        rev = self.log.get(rev_id)
        if rev.state != "committed":
            raise RevisionError(f"Revision r{rev_id} is {rev.state}; only committed revisions can be reverted.")
        from controller.stores.revisions import diff_from_changes

        diff = diff_from_changes(self.log.changes(rev_id)).inverse()
        want = {t: True for t in diff.added} | {t: False for t in diff.removed}
        exact = self.exact_diff(want)
        changed = set(exact.added) | set(exact.removed)
        skipped = [t for t in want if t not in changed]
        return exact, skipped

    def plan_restore(self, rev_id: int) -> Diff:
        """The diff that returns the store to how it was right after revision ``rev_id``."""
        head = self.head()
        if rev_id < 0 or rev_id > head:
            raise RevisionError(f"Cannot restore r{rev_id}: revisions run from r0 (empty) to r{head}.")
        if rev_id > 0:
            r = self.log.get(rev_id)
            if r.state != "committed":
                raise RevisionError(f"Revision r{rev_id} is {r.state}; choose a committed revision.")
        state: dict[Triple, bool] = {}
        # Walk back from the head: the earliest later revision touching a triple decides its
        # value at ``rev_id``, so later (in the walk) writes overwrite earlier ones.
        offset = 0
        while True:
            batch = self.log.list(limit=200, offset=offset, after=rev_id)
            if not batch:
                break
            for r in batch:
                for op, t in self.log.changes(r.id):
                    state[t] = op == "-"
            offset += len(batch)
        return self.exact_diff(state)

    def revert(self, rev_id: int, author: str, message: str | None = None) -> Revision | None:
        diff, _skipped = self.plan_revert(rev_id)
        return self.commit(diff, author, message or f"Revert r{rev_id}")

    def restore(self, rev_id: int, author: str, message: str | None = None) -> Revision | None:
        return self.commit(self.plan_restore(rev_id), author, message or f"Restore to r{rev_id}")

    # -- bulk ------------------------------------------------------------------------------
    def bulk_load(self, triples: Iterable[Triple], author: str, message: str) -> Revision | None:
        """Load many triples as one revision. Backends with a fast path override this."""
        with self.transaction(author, message) as txn:
            txn.add_all(triples)
        return txn.revision

    def __enter__(self) -> KGStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
