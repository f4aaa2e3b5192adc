"""A workspace: the KG store and its history, the schema it follows, the edit ledger, config.

Layout::

    <root>/config.yaml        which store, which schema, the local user
    <root>/schema.yaml        the schema (copied from kg_data at init, then the workspace's own)
    <root>/kg/                the store (embedded: oxigraph/ + revisions.sqlite)
    <root>/ledger.sqlite      the edit ledger (WAL)
    <root>/writer.lock        held by the one process that changes the workspace (writer.json: who)

One writer: :meth:`Workspace.open` takes the writer lock (:mod:`oneedit.core.wslock`) unless asked
to open for reading; on a graph database, which other machines may reach too, the writer also
holds a lease in the database (:meth:`controller.stores.neo4j.Neo4jStore.acquire_lease`).
"""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

from oneedit.config import CONFIG_FILE, WorkspaceConfig, default_workspace
from oneedit.core import OneEditError, WorkspaceError
from oneedit.core.wslock import WorkspaceBusy, WriterLock, describe

log = logging.getLogger(__name__)


class Workspace:
    def __init__(self, root: Path, config: WorkspaceConfig):
        self.root = root
        self.config = config
        self._kg = None
        self._ledger = None
        self.lock = WriterLock(root)
        self._lease = False

    # -- lifecycle -------------------------------------------------------------------------
    @classmethod
    def open(cls, root: str | Path | None = None, *, write: bool = True) -> Workspace:
        """Open a workspace. ``write``: as its one writer (the writer lock, and on a graph database
        its lease), or refuse naming the process that is; otherwise to read, beside any writer."""
        root = Path(root).expanduser() if root else default_workspace()
        ws = cls(root, WorkspaceConfig.load(root))
        if write:
            ws.lock.acquire()
        return ws

    @property
    def writer(self) -> bool:
        """Whether this process holds the workspace's writer lock (and lease)."""
        return self.lock.held

    def try_write(self) -> bool:
        """Become the writer if no other process is (a reader does, briefly, to recover)."""
        if self.lock.held:
            return True
        if not self.lock.try_acquire():
            return False
        if self._kg is not None and not self._take_lease(self._kg.store, strict=False):
            self.lock.release()
            return False
        return True

    def release_write(self) -> None:
        """Stop being the writer (keep reading)."""
        if self._lease and self._kg is not None:
            self._kg.store.release_lease()
            self._lease = False
        self.lock.release()

    def _take_lease(self, store, *, strict: bool = True) -> bool:
        if not hasattr(store, "acquire_lease") or self._lease:
            return True
        other = store.acquire_lease(self.lock.holder() or {})
        if other is None:
            self._lease = True
            return True
        if not strict:
            return False
        raise WorkspaceBusy(f"The workspace's graph database is being changed by {describe(other)}; one process "
                            f"at a time may change it (its lease runs out {other.get('expires_in', '?')} s after "
                            "it last renewed it).",
                            hint="Stop that process, or wait for its lease to run out if it has died.",
                            details={"holder": other})

    @classmethod
    def exists(cls, root: str | Path | None = None) -> bool:
        root = Path(root).expanduser() if root else default_workspace()
        return (root / CONFIG_FILE).is_file()

    @classmethod
    def init(cls, root: str | Path | None = None, *, data: str | Path | None = None,
             author: str = "admin", progress=None, store=None) -> tuple[Workspace, bool]:
        """Create a workspace from a data directory (default: the shipped ``kg_data``).

        Safe to run twice: an existing workspace is opened, not reloaded. Returns
        ``(workspace, created)``. Invalid data is refused before anything is written to the store.
        """
        import kg_data
        from controller.schema import Schema
        from controller.validate import validate
        from controller.world import read_world

        root = Path(root).expanduser() if root else default_workspace()
        if cls.exists(root):
            return cls.open(root), False
        data_dir = Path(data) if data else kg_data.path()
        schema_src = data_dir / "schema.yaml"
        step = progress or (lambda msg: None)
        step(f"Reading schema and world data from {data_dir}")
        schema = Schema.load(schema_src)
        world = read_world(data_dir, schema)
        triples = world.triples(schema)
        step(f"Validating {len(triples):,} triples against the schema")
        report = validate(triples, schema)
        if not report.ok:
            lines = "\n".join(v.message for v in report.violations[:15])
            raise WorkspaceError(f"The data in {data_dir} does not pass validation "
                                 f"({len(report.violations)} violations):\n{lines}",
                                 hint="Run `oneedit kg validate --data DIR` for the full list.",
                                 details=report.to_dict())
        root.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(schema_src, root / "schema.yaml")
        config = WorkspaceConfig(created=datetime.now(UTC).isoformat(timespec="seconds"),
                                 source=str(data_dir), user=author)
        if store is not None:  # e.g. StoreConfig("neo4j", {"uri": ..., "password_env": ...})
            config.store = store
        ws = cls(root, config)
        ws.lock.acquire()
        kg = ws.kg
        if kg.store.head() == 0:  # an interrupted earlier init may have loaded already
            step(f"Loading {len(triples):,} triples into the {config.store.backend} store")
            kg.load_triples(triples, author=author,
                            message=f"Load world KG from {data_dir.name} (facts as of {schema.snapshot})")
        ledger = ws.ledger  # creates the ledger file
        del ledger
        config.save(root)  # written last: its presence marks a complete workspace
        return ws, True

    def close(self) -> None:
        try:
            if self._kg is not None:
                if self._lease:
                    self._kg.store.release_lease()
                    self._lease = False
                self._kg.store.close()
                self._kg = None
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None
        finally:
            self.lock.release()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- parts -----------------------------------------------------------------------------
    @property
    def schema_path(self) -> Path:
        return self.root / self.config.schema

    @property
    def kg(self):
        """The schema-aware KG (``controller.kg.KnowledgeGraph``), opened on first use."""
        if self._kg is None:
            from controller.kg import KnowledgeGraph
            from controller.schema import Schema
            from controller.stores import open_store

            schema = Schema.load(self.schema_path)
            options = dict(self.config.store.options)
            if self.config.store.backend == "embedded":
                options.setdefault("path", self.root / "kg")
                options.setdefault("namespace", schema.namespace)
            try:
                store = open_store(self.config.store.backend, **options)
            except WorkspaceError as exc:
                holder = None if self.lock.held else self.lock.holder()
                if holder is None:
                    raise
                hint = "Stop it, or wait for it to finish."
                if holder.get("url"):
                    hint = (f"It is the server at {holder['url']}: `oneedit history` and `oneedit ask` are answered "
                            f"by it; for the rest use its API ({holder['url']}/docs) or stop it first.")
                raise WorkspaceBusy(f"The workspace's KG is open in {describe(holder)}; an embedded store admits "
                                    "one process at a time.", hint=hint, details={"holder": holder}) from exc
            try:
                if self.lock.held:
                    self._take_lease(store)
            except BaseException:
                store.close()
                raise
            self._kg = KnowledgeGraph(store, schema)
        return self._kg

    @property
    def ledger(self):
        if self._ledger is None:
            from oneedit.ledger import Ledger

            self._ledger = Ledger(self.root / "ledger.sqlite")
        return self._ledger

    def summary(self) -> dict:
        stats = self.kg.stats()
        return {
            "workspace": str(self.root),
            "store": self.config.store.backend,
            "user": self.config.user,
            "source": self.config.source,
            **stats,
            "ledger_edits": self.ledger.count(),
        }


__all__ = ["OneEditError", "Workspace"]
