"""The service's model worker: one thread owns the model and makes every change, in arrival order.

Requests from all users are rows of the ledger (``queued``) and items of one in-memory queue, in
the same order (both are written under one lock). The worker takes them one by one: each is
planned against the KG as the requests before it left it (so of two users editing the same
functional fact, the second sees the first as a conflict), and its KG change is committed at once.
MEMIT requests that arrive within ``window`` seconds of the first one are *staged* and written to
the model together as one MEMIT batch (at most ``max_batch``); a GRACE request first flushes the
batch, then is applied on its own, so GRACE edits reach the model in arrival order too.

Questions, rollbacks and reviews are *jobs* run by the same thread (the model is never read while
it is being written). Every status change is published to an :class:`EventHub` for the HTTP
streams.

Stopping finishes the batch in flight; requests still queued stay ``queued`` in the ledger and the
next start resumes them. A crash mid-batch is undone by the facade's recovery on the next start
and the interrupted requests are queued again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from oneedit.core import OneEditError

log = logging.getLogger(__name__)


class ServiceStopping(OneEditError):
    """The service is shutting down and takes no more work."""

    exit_code = 75


@dataclass
class WorkerStats:
    taken: int = 0
    applied: int = 0
    batches: int = 0            # MEMIT batches written to the model
    batched_edits: int = 0      # edits those batches carried
    singles: int = 0            # edits applied on their own (GRACE, or a model-less workspace)
    jobs: int = 0
    batch_sizes: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"taken": self.taken, "applied": self.applied, "memit_batches": self.batches,
                "batched_edits": self.batched_edits,
                "avg_batch_size": round(self.batched_edits / self.batches, 2) if self.batches else 0.0,
                "max_batch_size": max(self.batch_sizes, default=0), "single_edits": self.singles, "jobs": self.jobs}


class EventHub:
    """Fan-out of status events from the worker thread to the HTTP streams (asyncio queues)."""

    def __init__(self):
        self._subs: dict[int, tuple[object, object]] = {}
        self._lock = threading.Lock()
        self._next = 0
        self.closed = False

    def subscribe(self, loop, q) -> int:
        with self._lock:
            self._next += 1
            self._subs[self._next] = (loop, q)
            return self._next

    def unsubscribe(self, token: int) -> None:
        with self._lock:
            self._subs.pop(token, None)

    def publish(self, event: dict) -> None:
        with self._lock:
            subs = list(self._subs.values())
        for loop, q in subs:
            try:
                loop.call_soon_threadsafe(q.put_nowait, event)
            except RuntimeError:  # the stream's loop has closed
                pass

    def close(self) -> None:
        self.closed = True
        self.publish({"type": "shutdown"})


class Worker:
    def __init__(self, system, *, window: float = 0.25, max_batch: int = 32, probe: bool = True,
                 hub: EventHub | None = None, consolidate_below: float | None = None):
        if window < 0 or max_batch < 1:
            raise OneEditError(f"Bad batching settings: window {window} s, max batch {max_batch}.",
                               hint="The window is ≥ 0 seconds and the batch holds at least 1 edit.")
        self.sys = system
        self.window = window
        self.max_batch = max_batch
        self.probe = probe
        self.hub = hub or EventHub()
        self.stats = WorkerStats()
        self._q: queue.Queue = queue.Queue()
        self._order = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.busy_since: float | None = None
        cc = system.ws.config.consistency
        below = cc.consolidate_below if consolidate_below is None else consolidate_below
        self.sleep = None  # background consolidation (oneedit.consolidation.Background), when configured
        if below > 0:
            from oneedit.consolidation import Background

            self.sleep = Background(system, below=below, every=cc.audit_every, sample=cc.audit_sample or None,
                                    on_event=self.hub.publish)

    # -- life --------------------------------------------------------------------------------------
    def start(self, warmup: Callable | None = None) -> list[int]:
        """Start the thread, first queueing what an earlier run left ``queued``; their ids.
        ``warmup(system)`` (loading the model) runs on the thread before anything else."""
        resumed = [e.id for e in self.sys.ledger.list(status="queued", limit=None, ascending=True)]
        for edit_id in resumed:
            self._q.put(("edit", edit_id))
        self._thread = threading.Thread(target=self._run, args=(warmup,), name="oneedit-model-worker",
                                        daemon=True)
        self._thread.start()
        return resumed

    def stop(self, timeout: float | None = 120.0) -> None:
        """Finish the batch in flight and stop; queued requests stay queued for the next start."""
        self._stopping.set()
        self._q.put(("stop",))
        if self._thread is not None:
            self._thread.join(timeout)
        if self.sleep is not None:
            self.sleep.stop()
        # jobs nobody will run: tell their callers
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                break
            if item[0] == "job" and not item[3].done():
                item[3].set_exception(ServiceStopping("The service is shutting down.", hint="Try again after it restarts."))
        self.hub.close()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def depth(self) -> int:
        return self._q.qsize()

    # -- what the HTTP side calls ----------------------------------------------------------------
    def submit(self, text: str = "", *, triples=None, user: str, method: str | None = None,
               request_key: str | None = None) -> dict:
        """Queue an edit; returns its ledger row at once (status ``queued``)."""
        if self._stopping.is_set():
            raise ServiceStopping("The service is shutting down and takes no new edits.",
                                  hint="Send it again once the service is back.")
        with self._order:  # ledger id order == queue order == arrival order
            if request_key:  # a retried request: the first one's row (checked under the same lock)
                seen = self.sys.ledger.find_key(request_key, status=None)
                if seen is not None:
                    return seen.to_dict() | {"duplicate": True}
            edit_id = self.sys.queue.enqueue(self.sys.actor(user), text, triples=triples, method=method,
                                             request_key=request_key)
            self._q.put(("edit", edit_id))
        entry = self.sys.ledger.get(edit_id)
        self._publish(entry)
        return entry.to_dict()

    def call(self, fn: Callable, *args, timeout: float | None = 300.0, **kwargs):
        """Run ``fn(system, *args, **kwargs)`` on the worker thread and return its result."""
        if self._stopping.is_set() or not self.alive:
            raise ServiceStopping("The service is shutting down.", hint="Try again after it restarts.")
        fut: Future = Future()
        self._q.put(("job", fn, (args, kwargs), fut))
        return fut.result(timeout)

    # -- the thread ---------------------------------------------------------------------------------
    def _run(self, warmup: Callable | None = None) -> None:
        if warmup is not None:
            try:
                warmup(self.sys)
            except Exception:
                log.exception("warming up the worker failed; edits will try again to load the model")
        held = None
        while True:
            if held is None and self.sleep is not None and self.sleep.running:
                try:  # idle while a consolidation trains: look every second whether it can swap in
                    held = self._q.get(timeout=1.0)
                except queue.Empty:
                    self._after_model_edits(0)
                    continue
            item = held if held is not None else self._q.get()
            held = None
            kind = item[0]
            if kind == "stop" or self._stopping.is_set() and kind == "edit":
                break
            try:
                self.busy_since = time.monotonic()
                if kind == "job":
                    self._job(item)
                else:
                    held = self._edits(item[1])
            finally:
                self.busy_since = None
            if held is not None and held[0] == "stop":
                break

    def _job(self, item) -> None:
        _, fn, (args, kwargs), fut = item
        if not fut.set_running_or_notify_cancel():
            return
        self.stats.jobs += 1
        try:
            fut.set_result(fn(self.sys, *args, **kwargs))
        except BaseException as exc:  # handed to the caller, who turns it into an HTTP error
            fut.set_exception(exc)

    def _edits(self, first: int):
        """Take ``first`` and whatever edits follow within the window; returns a non-edit item
        that ended the window (to run next), or None."""
        batch: list = []
        held = None
        self._take(first, batch)
        deadline = time.monotonic() + self.window
        while batch and len(batch) < self.max_batch and not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                item = self._q.get(timeout=remaining)
            except queue.Empty:
                break
            if item[0] != "edit":
                held = item
                break
            self._take(item[1], batch)
        self._flush(batch)
        return held

    def _take(self, edit_id: int, batch: list) -> None:
        sys_ = self.sys
        entry = sys_.ledger.get(edit_id)
        if entry is None or entry.status != "queued":  # resumed twice, or handled already
            return
        self.stats.taken += 1
        try:
            plan = sys_.queue.take(edit_id)
            entry = sys_.ledger.get(edit_id)
            self._publish(entry)
            if plan is None or entry.status != "pending":
                return
            method = entry.record.method
            if method == "memit" and sys_.has_model():
                sys_.queue.stage(edit_id, plan, batch)
                return
            self._flush(batch)  # GRACE (or no model): the batch before it goes first
            sys_.queue.apply_taken(edit_id, plan)
            self.stats.singles += 1
            self.stats.applied += 1
            self._publish(sys_.ledger.get(edit_id))
            self._after_model_edits(1)
        except Exception as exc:
            log.exception("edit #%s failed in the worker", edit_id)
            self._fail(batch + [(edit_id, None, None)], exc)
            batch.clear()

    def _flush(self, batch: list) -> None:
        if not batch:
            return
        ids = [b[0] for b in batch]
        try:
            self.sys.queue.finish_batch(batch, probe=self.probe)
        except Exception as exc:
            log.exception("MEMIT batch of edits %s failed", ids)
            self._fail([(i, None, None) for i in ids], exc)
            batch.clear()
            return
        self.stats.batches += 1
        self.stats.batched_edits += len(ids)
        self.stats.batch_sizes.append(len(ids))
        self.stats.applied += len(ids)
        for i in ids:
            self._publish(self.sys.ledger.get(i), batch_size=len(ids))
        self._after_model_edits(len(ids))

    def _after_model_edits(self, n: int) -> None:
        """Audit, start or swap in a background consolidation when due (see ``self.sleep``)."""
        if self.sleep is None or not self.sys.has_model():
            return
        try:
            self.sleep.after_batch(n)
        except Exception as exc:  # the edits are applied; consolidation waits for the next batch
            log.exception("background consolidation failed")
            self.hub.publish({"type": "consolidation", "status": "failed", "error": f"{type(exc).__name__}: {exc}"})

    def _fail(self, items: list, exc: Exception) -> None:
        """An unexpected error: undo every in-flight edit (the crash recovery's path) and mark
        them failed with the error, so the KG and the model stay as they were."""
        sys_ = self.sys
        try:
            sys_.transaction.abort([edit_id for edit_id, *_ in items], exc)
        except Exception:
            log.exception("recovery after a worker error failed")
        for edit_id, *_ in items:
            entry = sys_.ledger.get(edit_id)
            if entry is not None:
                self._publish(entry)

    def _publish(self, entry, **extra) -> None:
        if entry is None:
            return
        self.hub.publish(event_of(entry) | extra)


def event_of(entry) -> dict:
    """The status event of a ledger row (what the streams carry)."""
    rec = entry.record
    ev = {"type": "status", "edit": entry.id, "status": entry.status, "author": entry.author, "text": entry.text,
          "updated": entry.updated}
    if rec.plan is not None and rec.plan.reasons:
        ev["reasons"] = list(rec.plan.reasons)
    if rec.error:
        ev["error"] = rec.error.get("error")
    if entry.status == "applied" and rec.model_edit is not None:
        ev["model_edit"] = rec.model_edit.id
    return ev
