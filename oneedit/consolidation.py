"""Consolidation ("sleep"): fold every live edit into new weights, and swap them in atomically.

Per-edit deltas pile up: each later MEMIT update is solved against a model already carrying the
earlier ones, undo of an older one is only approximate, and unrelated facts drift. Consolidation
rebuilds the model from its original weights with everything the model should now know, and
replaces the stack of edits with one record:

* the **default knowledge model** (learned from the KG) continues training from its original
  weights on the KG as it is now: every fact that changed since it was trained, with rehearsal of
  the unchanged ones (:func:`editor.knowledge.refresh`); a slot the KG emptied since is learned
  as "unknown" (:func:`oneedit.knowledge.gap_facts`). The result is a function of the original
  model and the current KG only — so after a rollback, consolidating again gives exactly the model
  that edit never touched;
* **other models** (a hub id or a local directory): the live MEMIT edits are rewritten from the
  base weights in one batch (later edits of the same prompt win); GRACE's codebook is kept.

The swap: the new weights and an empty edit folder are written under new names, then
``active.json`` — the one file that says which weights and edit folder are live — is replaced
(``os.replace``). A crash before that leaves the previous state in force; a crash after it leaves
the new one; leftovers from either are removed by the next consolidation.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from oneedit.core import OneEditError
from oneedit.core.faults import fault


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def _next_index(home: Path) -> int:
    taken = [int(p.name.split("-")[-1]) for p in home.glob("edits-*") if p.name.split("-")[-1].isdigit()]
    taken += [int(p.name) for p in (home / "consolidated").glob("*") if p.name.isdigit()]
    return max(taken, default=0) + 1


def _sweep(home: Path, live: dict) -> None:
    """Remove consolidation outputs that are not live (superseded, or left by a crash)."""
    keep_edits = live.get("edits", "edits")
    keep_weights = live.get("weights")
    for p in home.glob("edits-*"):
        if p.name != keep_edits:
            shutil.rmtree(p, ignore_errors=True)
    if keep_edits != "edits":
        shutil.rmtree(home / "edits", ignore_errors=True)
    for p in (home / "consolidated").glob("*"):
        if f"consolidated/{p.name}" != keep_weights:
            shutil.rmtree(p, ignore_errors=True)


def changed_facts(learned, now) -> list:
    """The facts of ``now`` the model did not learn: new (subject, relation) slots or new objects."""
    before = {(f.subject_id, f.relation): f.object_id for f in learned}
    return [f for f in now if before.get((f.subject_id, f.relation)) != f.object_id]


def knowledge_facts(ws, learned) -> tuple[list, list]:
    """What a consolidated knowledge model should know, and what of it changed since ``learned``:
    the KG's facts, plus the gaps among the slots it learned (retracted since, or taught as gaps
    in training), answered "unknown"."""
    from oneedit.knowledge import gap_facts, kg_facts

    now = kg_facts(ws.kg)
    if ws.config.consistency.retract:
        now += gap_facts(ws.kg, learned)
    return now, changed_facts(learned, now)


def consolidate(ws, em, *, progress: Callable[[dict], None] | None = None, config=None) -> dict:
    """Fold the live edits of ``em`` (the workspace's open model) into new weights; returns a report.
    ``em`` is stale afterwards: open the model again."""
    from oneedit import models

    name = em.loaded.name
    started = time.perf_counter()
    if name == models.DEFAULT:
        report = _consolidate_knowledge(ws, em, progress=progress, config=config)
    else:
        report = _consolidate_memit(ws, em, progress=progress)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def _consolidate_knowledge(ws, em, *, progress, config) -> dict:
    job = prepare_knowledge(ws, em, config=config)
    job.build(progress)
    return job.commit(ws)


@dataclass
class KnowledgeJob:
    """One consolidation of the default knowledge model, in three steps so a service can run the
    long middle one on a thread of its own: :func:`prepare_knowledge` (reads the KG and the model's
    state: on the thread that owns them), :meth:`build` (trains from the base weights into a folder
    nobody reads yet: anywhere), :meth:`commit` (the atomic swap: on the owning thread again)."""

    home: Path
    base: Path
    n: int
    now: list
    changed: list
    folded: list[str]
    kg_revision: int | None
    card: dict
    verbalizer: object
    config: object
    record: dict = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return self.home / "consolidated" / str(self.n)

    def build(self, progress: Callable[[dict], None] | None = None) -> dict:
        from editor.knowledge import refresh, write_card
        from oneedit import models

        tmp = self.out.with_name(self.out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        summary = refresh(self.base, self.now, self.changed, self.verbalizer, tmp, config=self.config,
                          share=models._share(self.card), progress=progress)
        self.record = {"consolidation": self.n, "created": datetime.now(UTC).isoformat(timespec="seconds"),
                       "kg_revision": self.kg_revision, "folded_edits": self.folded,
                       "changed_facts": len(self.changed), "method": "refresh",
                       **{k: v for k, v in summary.items() if k not in ("history",)}}
        write_card(tmp, {**self.card, "consolidated": self.record})
        models.write_learned(tmp, self.now)
        corpus = self.base / models.CORPUS_FILE
        if corpus.is_file():  # the key statistics' corpus stays the frozen one
            shutil.copy2(corpus, tmp / models.CORPUS_FILE)
        os.replace(tmp, self.out)
        fault("consolidate_weights")
        return self.record

    def commit(self, ws, folded: list[str] | None = None) -> dict:
        """Swap the built weights in; ``folded``: the model edits they replace (default: those live
        when the job was prepared)."""
        if folded is not None:
            self.record["folded_edits"] = folded
        _swap(self.home, self.n, {"weights": f"consolidated/{self.n}"}, self.record)
        return self.record

    def slots_changed_since(self, ws) -> list[tuple[str, str]]:
        """The (subject, relation) slots whose answer the KG changed after the job was prepared:
        what the built weights do not know."""
        from oneedit import models

        now, _ = knowledge_facts(ws, models.read_learned(self.base))
        then = {(f.subject_id, f.relation): f.object_id for f in self.now}
        cur = {(f.subject_id, f.relation): f.object_id for f in now}
        return sorted(k for k in then.keys() | cur.keys() if then.get(k) != cur.get(k))


def _refresh_config(ws):
    """The workspace's ``consistency.refresh`` options as a :class:`RefreshConfig`."""
    import dataclasses

    from editor.knowledge import RefreshConfig

    options = dict(ws.config.consistency.refresh or {})
    known = {f.name for f in dataclasses.fields(RefreshConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise OneEditError(f"config.yaml: consistency.refresh has unknown option(s) {', '.join(unknown)}.",
                           hint="Options: " + ", ".join(sorted(known)) + " (docs/editor.md).")
    return RefreshConfig(**options)


def prepare_knowledge(ws, em, *, config=None) -> KnowledgeJob:
    from editor.knowledge import read_card
    from oneedit import models
    from oneedit.knowledge import verbalizer

    home = models.home(ws, models.DEFAULT)
    base = models.base_dir(ws)
    learned = models.read_learned(base)
    if learned is None:
        raise OneEditError("This knowledge model was trained before OneEdit recorded the facts it learned, "
                           "so what changed since cannot be found.",
                           hint="Retrain it with `oneedit model train --force` (edits made to it are dropped).")
    now, changed = knowledge_facts(ws, learned)
    # edits an earlier consolidation folded stay folded: their facts are in the KG this one learns
    folded = sorted(models.folded_edits(ws, models.DEFAULT)) + list(em.edit_ids())
    live = models.active(ws, models.DEFAULT)
    n = _next_index(home)
    _sweep(home, live)
    return KnowledgeJob(home, base, n, now, changed, folded, ws.kg.store.head(), read_card(base) or {},
                        verbalizer(ws.kg.schema), config or _refresh_config(ws))


def _consolidate_memit(ws, em, *, progress) -> dict:
    """Rewrite the live MEMIT edits from the base weights in one batch (the newest request for a
    prompt wins); GRACE entries are carried over as they are."""
    from editor.session import _requests_dict, _requests_of
    from oneedit import models

    home = models.home(ws, em.loaded.name)
    memit = [m for m in em.manifest if m["method"] == "memit"]
    if not memit:
        raise OneEditError("The model has no MEMIT edits to consolidate.")
    latest: dict[str, object] = {}
    for m in memit:
        for r in _requests_of(m["requests"]):
            latest[r.prompts[0].text] = r
    requests = list(latest.values())
    folded = sorted(models.folded_edits(ws, em.loaded.name)) + [m["id"] for m in memit]
    for edit_id in reversed(folded):
        em.methods["memit"].remove(edit_id)
    delta = em.compute("memit", requests, progress=(lambda what, done, total: progress(
        {"stage": what, "done": done, "total": total})) if progress else None)
    live = models.active(ws, em.loaded.name)
    n = _next_index(home)
    _sweep(home, live)
    new_dir = home / f"edits-{n}"
    tmp = new_dir.with_name(new_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    old_dir = models.state_dir(ws, em.loaded.name)
    if old_dir.is_dir():
        shutil.copytree(old_dir, tmp)
        shutil.rmtree(tmp / "memit", ignore_errors=True)
    tmp.mkdir(parents=True, exist_ok=True)
    edit_id = f"consolidated-{n}"
    em.state_dir = tmp
    em.manifest = [m for m in em.manifest if m["method"] != "memit"]
    em.methods["memit"].apply(edit_id, delta)
    em.methods["memit"].save(tmp, edit_id)
    record = {"consolidation": n, "created": datetime.now(UTC).isoformat(timespec="seconds"),
              "folded_edits": folded, "requests": len(requests), "method": "memit",
              "written": delta.stats.get("written")}
    em.manifest.insert(0, {"id": edit_id, "method": "memit", "created": record["created"],
                           "requests": _requests_dict(requests), "stats": {"consolidated": folded}})
    _write_json(tmp / "edits.json", {"model": em.loaded.name, "fingerprint": em.loaded.fingerprint,
                                     "edits": em.manifest, "consolidated": record})
    os.replace(tmp, new_dir)
    fault("consolidate_weights")
    _swap(home, n, {}, record, edits_ready=True)
    return record


def _swap(home: Path, n: int, weights: dict, record: dict, *, edits_ready: bool = False) -> None:
    """Commit consolidation ``n``: an edit folder for it (empty unless ``edits_ready``), then the
    pointer. Everything before the ``os.replace`` of ``active.json`` is invisible to readers."""
    from oneedit import models

    edits = home / f"edits-{n}"
    if not edits_ready:
        tmp = edits.with_name(edits.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        _write_json(tmp / "edits.json", {"edits": [], "consolidated": record})
        os.replace(tmp, edits)
    fault("consolidate_swap")
    _write_json(home / models.ACTIVE, {**weights, "edits": edits.name, "consolidation": n})
    fault("consolidated")
    _sweep(home, {**weights, "edits": edits.name})


class Cancelled(Exception):
    """A background consolidation was stopped before its swap (the service is shutting down)."""


class Background:
    """Consolidation as a service runs it: audited agreement checked every ``every`` model edits on
    a seeded sample of ``sample`` facts, and when it is below ``below`` the default knowledge
    model is rebuilt on a thread of its own while edits go on.

    The worker thread (which owns the KG, the ledger and the live model) calls :meth:`after_batch`
    after each model batch. Preparing (reading the KG) and the swap run there; the training runs on
    the consolidation thread, into a folder nobody reads. At the swap, the slots the KG changed
    after the job was prepared — edits, rollbacks and retractions made while it trained — are
    written into the new weights as one MEMIT batch, recorded as a repair. So edits wait for at
    most the swap and that batch. Other models (hub ids, local paths) have no base to train from:
    their consolidation (one MEMIT batch of every live edit) runs on the worker thread itself.
    """

    def __init__(self, system, *, below: float, every: int = 64, sample: int | None = 256,
                 on_event: Callable[[dict], None] | None = None):
        self.sys = system
        self.below = below
        self.every = max(1, every)
        self.sample = sample
        self.on_event = on_event or (lambda event: None)
        self.since = 0
        self.audits = 0
        self.history: list[dict] = []
        self._job: KnowledgeJob | None = None
        self._thread = None
        self._error: BaseException | None = None
        self._cancel = False
        self.started: float | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def state(self) -> dict:
        return {"below": self.below, "every": self.every, "running": self.running,
                "edits_since_audit": self.since, "consolidations": self.history[-5:]}

    # -- on the worker thread ------------------------------------------------------------------------
    def after_batch(self, edits: int) -> dict | None:
        """Count ``edits`` model edits; audit, start or finish a consolidation when due."""
        if self._thread is not None:
            return self._finish() if not self._thread.is_alive() else None
        self.since += edits
        if self.below <= 0 or self.since < self.every or self.sys.model is None:
            return None
        self.since = 0
        self.audits += 1
        report = self.sys.sync.audit(sample=self.sample, seed=self.audits)
        agreement = report["all"]["agreement"]
        event = {"type": "audit", "agreement": agreement, "sample": self.sample}
        self.on_event(event)
        if agreement is not None and agreement < self.below:
            return self.start(reason=event)
        return event

    def start(self, reason: dict | None = None) -> dict:
        from oneedit import models

        em = self.sys.model
        if em.loaded.name != models.DEFAULT:
            report = consolidate(self.sys.ws, em)
            self.sys.reload_model()
            return self._done(report, reason)
        import threading

        self._job = prepare_knowledge(self.sys.ws, em)
        self._error = None
        self._cancel = False
        self.started = time.perf_counter()
        self._thread = threading.Thread(target=self._build, name="oneedit-consolidation", daemon=True)
        self._thread.start()
        event = {"type": "consolidation", "status": "started", "because": reason,
                 "consolidation": self._job.n, "changed_facts": len(self._job.changed)}
        self.on_event(event)
        return event

    def wait(self, timeout: float | None = None) -> dict | None:
        """Block until the running consolidation is built, then swap it in (tests, shutdown)."""
        if self._thread is None:
            return None
        self._thread.join(timeout)
        return None if self._thread.is_alive() else self._finish()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Abandon a running consolidation (its folder is swept by the next one)."""
        if self._thread is not None:
            self._cancel = True
            self._thread.join(timeout)
            self._thread = self._job = None

    def _finish(self) -> dict:
        import logging

        from oneedit.knowledge import slot_facts

        job, self._job, self._thread = self._job, None, None
        if self._error is not None:
            logging.getLogger(__name__).error("background consolidation failed: %s", self._error)
            event = {"type": "consolidation", "status": "failed", "error": f"{type(self._error).__name__}: {self._error}"}
            self.history.append(event)
            self.on_event(event)
            return event
        ws = self.sys.ws
        slots = job.slots_changed_since(ws)
        live = [i for i in self.sys.model.edit_ids() if i not in job.folded]
        record = job.commit(ws, folded=job.folded + live)
        self.sys.reload_model()
        facts = [t for s, r in slots for t in slot_facts(self.sys.kg, s, r)
                 if not t.is_gap or ws.config.consistency.retract]
        if facts:
            model_id = f"c{job.n}"
            self.sys.sync.edit(model_id, facts, "memit", probe=False)
            self.sys.ledger.add_repair(model_id, [list(t.as_tuple()) for t in facts], [])
        record = record | {"rewritten_after": len(facts), "seconds": round(time.perf_counter() - self.started, 1)}
        return self._done(record, None)

    def _done(self, record: dict, reason) -> dict:
        event = {"type": "consolidation", "status": "done", "consolidation": record.get("consolidation"),
                 "folded_edits": len(record.get("folded_edits", [])), "seconds": record.get("seconds"),
                 "rewritten_after": record.get("rewritten_after", 0)}
        if reason:
            event["because"] = reason
        self.history.append(event)
        self.on_event(event)
        return event

    # -- on the consolidation thread -------------------------------------------------------------------
    def _build(self) -> None:
        def progress(row: dict) -> None:
            if self._cancel:
                raise Cancelled("stopped before the swap")

        try:
            self._job.build(progress)
        except BaseException as exc:  # handed to the worker thread at the next batch
            self._error = exc
