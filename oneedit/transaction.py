"""The edit transaction: one request applied to the ledger, the KG and the model, or to none.

Every path that applies an edit — ``oneedit edit``, ``import``, the chat, review approval, the
service's worker and the LangChain tools — goes through :class:`Transaction`:

1. the ledger row exists (``pending``) with its :class:`~oneedit.core.edit_record.EditRecord`;
2. its journal says ``kg``; the model side is checked writable; the KG diff is committed as one
   revision tagged ``edit #N`` (against the head it was planned on);
3. the journal says ``model``; the model edit is written (``eN``, or a batch's ``bN``);
4. the row becomes ``applied`` and the journal is dropped.

The journal is the list of compensations: what a stage wrote, recovery undoes (the tagged KG
revision reverted, the model edit and the repairs it set off discarded). On any error inside the
transaction it runs at once in process (:meth:`Transaction.compensating`); after a crash it runs
on the next open (:meth:`Transaction.recover`). So the ledger, the KG and the model agree: the edit
happened entirely or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

from oneedit.core import OneEditError, Triple
from oneedit.core.edit_record import EditRecord, Journal, ModelEditRef
from oneedit.core.faults import fault
from oneedit.core.plan import EditPlan

KG_TAG = "edit #{id}: "
MAX_ATTEMPTS = 3  # a queued request interrupted this often is marked failed, not retried again
#: the ledger status a Controller decision leads to
STATUS_OF = {"apply": "pending", "reject": "rejected", "needs_review": "needs_review", "noop": "unchanged"}


@dataclass
class Outcome:
    """What happened to one request."""

    edit: int | None
    status: str                    # applied | rejected | needs_review | noop | planned | cancelled
    plan: EditPlan | None
    text: str = ""
    model: dict | None = None      # the model edit and answers before/after
    seconds: float = 0.0
    author: str = ""

    def to_dict(self) -> dict:
        return {"edit": self.edit, "status": self.status, "text": self.text, "author": self.author,
                "plan": self.plan.to_dict() if self.plan else None, "model": self.model,
                "seconds": round(self.seconds, 3)}


class Staged(NamedTuple):
    """An edit whose KG change is committed and whose model edit waits for its batch."""

    edit_id: int
    plan: EditPlan
    record: EditRecord


def short(text: str, n: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def plan_entities(plan: EditPlan) -> set[str]:
    """The entities a plan touches (the ledger indexes them for ``history --entity``)."""
    out = set()
    for t in (*plan.diff.added, *plan.diff.removed):
        out.add(t.subject)
        if not t.is_meta:
            out.add(t.object)
    return out


def model_ref(model: dict | None, **extra) -> ModelEditRef | None:
    """The ledger's reference to a model edit :meth:`ModelSync.edit` made (its answers left out)."""
    if model is None:
        return None
    return ModelEditRef.from_dict({k: v for k, v in model.items() if k != "answers"} | extra)


class Transaction:
    def __init__(self, system):
        self.sys = system

    # -- one edit ----------------------------------------------------------------------------------
    def apply(self, edit_id: int, text: str, plan: EditPlan, author: str, method: str, *,
              probe: bool = True, record: EditRecord | None = None) -> dict | None:
        """Apply a ``pending`` edit on its own: the KG, then its model edit ``e<id>``. Returns the
        model edit (with the answers before and after when ``probe``)."""
        ledger, store = self.sys.ledger, self.sys.kg.store
        record = record if record is not None else ledger.get(edit_id).record
        head = store.head()
        record = record.but(journal=Journal("kg", head))
        ledger.update(edit_id, record=record)
        with self.compensating([edit_id]):
            self.sys.sync.check_writable()
            rev = self._commit_kg(edit_id, text, plan, author)
            record = record.but(journal=Journal("model", head, kg_revision=rev))
            ledger.update(edit_id, kg_revision=rev, record=record)
            model = self.sys.sync.edit(f"e{edit_id}", plan.model_facts, method, probe=probe)
        fault("model")
        ledger.update(edit_id, status="applied", record=record.but(journal=None, model_edit=model_ref(model)))
        fault("applied")
        return model

    def _commit_kg(self, edit_id: int, text: str, plan: EditPlan, author: str) -> int | None:
        rev = self.sys.kg.store.commit(plan.diff, author, KG_TAG.format(id=edit_id) + short(text),
                                       expect_head=plan.base_revision)
        fault("kg")
        return rev.id if rev else None

    # -- a batch: KG now, one model edit for all ---------------------------------------------------
    def stage(self, edit_id: int, text: str, plan: EditPlan, author: str, record: EditRecord,
              batch: list[Staged]) -> None:
        """Commit a ``pending`` edit's KG change now and add it to ``batch``, whose model edit
        :meth:`finish` writes."""
        ledger = self.sys.ledger
        head = self.sys.kg.store.head()
        model_id = f"b{batch[0].edit_id if batch else edit_id}"
        record = record.but(journal=Journal("kg", head, model_id=model_id))
        ledger.update(edit_id, record=record)
        with self.compensating([edit_id]):
            self.sys.sync.check_writable()
            rev = self._commit_kg(edit_id, text, plan, author)
        record = record.but(journal=Journal("model", head, model_id=model_id, kg_revision=rev))
        ledger.update(edit_id, kg_revision=rev, record=record)
        batch.append(Staged(edit_id, plan, record))

    def finish(self, batch: list[Staged], method: str, summary: dict, *, probe: bool = False,
               flush: bool = True) -> None:
        """Write a staged batch's model edit (one MEMIT batch); every row of it becomes ``applied``."""
        if not batch:
            return
        from oneedit.knowledge import holds

        kg, ledger = self.sys.kg, self.sys.ledger
        ids = [b.edit_id for b in batch]
        model_id = f"b{ids[0]}"
        # the facts each edit wants that still hold after the whole batch (a later one may undo one)
        own: dict[int, list[Triple]] = {}
        facts: dict[tuple[str, str], Triple] = {}
        for b in batch:
            own[b.edit_id] = [t for t in b.plan.model_facts if holds(kg, t)]
            for t in own[b.edit_id]:
                facts[(t.subject, t.relation)] = t
        with self.compensating(ids):
            model = self.sys.sync.edit(model_id, list(facts.values()), method, probe=probe, flush=flush) if facts else None
        if model is not None:
            summary["model_batches"] += 1
            summary["repaired"] = summary.get("repaired", 0) + len(model.get("repaired", []))
            summary["drifted"] = summary.get("drifted", 0) + model.get("drifted", 0)
        fault("model")
        records = {}
        for b in batch:
            ref = None
            if model is not None:
                mine = {t.as_tuple() for t in own[b.edit_id]}
                ref = model_ref({k: v for k, v in model.items() if k != "facts"},
                                own_facts=[list(t.as_tuple()) for t in own[b.edit_id]],
                                shared_with=ids,
                                answers=[a for a in model.get("answers", []) if tuple(a["fact"]) in mine])
            records[b.edit_id] = b.record.but(journal=None, model_edit=ref)
        ledger.update_many(ids, status="applied", records=records)
        summary["applied"] += len(ids)
        for b in batch:
            self.sys.users.adjust_trust(ledger.get(b.edit_id).author, "accepted")
        batch.clear()

    # -- compensation ------------------------------------------------------------------------------
    @contextmanager
    def compensating(self, edit_ids: Sequence[int]) -> Iterator[None]:
        """Run a step of the edits ``edit_ids`` (pending, journaled); on any error undo them as crash
        recovery would — the KG revisions reverted, the model edits discarded, the rows ``failed``
        with the error — and raise a :class:`OneEditError` saying so."""
        try:
            yield
        except BaseException as exc:
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt, SystemExit: the journal undoes it on the next start
            self.abort(edit_ids, exc)
            ids = ", ".join(f"#{i}" for i in edit_ids)
            what = exc.message if isinstance(exc, OneEditError) else f"{type(exc).__name__}: {exc}"
            raise OneEditError(f"Edit {ids} failed ({what}); the KG and the model were put back as they were.",
                               hint=(exc.hint if isinstance(exc, OneEditError) and exc.hint else
                                     "Check the workspace (permissions, free disk space) and try again."),
                               details={"edits": list(edit_ids)}) from exc

    def abort(self, edit_ids: Sequence[int], exc: BaseException) -> None:
        """Undo the pending edits ``edit_ids`` after ``exc`` (recovery's path) and mark them failed."""
        ledger = self.sys.ledger
        for edit_id in edit_ids:
            entry = ledger.get(edit_id)
            if entry is not None and entry.status == "pending":
                ledger.update(edit_id, record=entry.record.but(
                    attempts=99, error={"error": f"{type(exc).__name__}: {exc}"}))
        self.recover(only=edit_ids)

    def recover(self, only: Sequence[int] | None = None) -> list[dict]:
        """Undo every edit a crash (or an error) left ``pending``: its tagged KG revisions reverted,
        its model edit and the repairs it set off discarded. A request of the service's queue goes
        back to ``queued`` (at most :data:`MAX_ATTEMPTS` times); anything else becomes ``failed``.
        ``only``: just these edits (an error in process; other edits in flight are not touched)."""
        ledger, store = self.sys.ledger, self.sys.kg.store
        out = []
        for entry in ledger.list(status="pending", limit=None):
            if only is not None and entry.id not in only:
                continue
            record = entry.record
            journal = record.journal or Journal("kg", 0)
            reverted = []
            tag = KG_TAG.format(id=entry.id)
            for r in store.log.list(limit=200, after=journal.head):
                if r.message.startswith(tag):
                    diff, _ = store.plan_revert(r.id)
                    store.commit(diff, entry.author, f"recovery: undo interrupted edit #{entry.id}")
                    reverted.append(r.id)
            discarded = self.sys.sync.discard(journal.model_id or f"e{entry.id}")
            stage = record.journal.stage if record.journal else "ledger"
            failure = {"stage": stage, "reverted_kg": reverted, "model_discarded": discarded,
                       "reason": "interrupted before it completed; undone on restart"}
            attempts = record.attempts + 1
            if record.via == "queue" and attempts < MAX_ATTEMPTS:
                # a request of the service's queue: undone, then queued again for the next start
                ledger.update(entry.id, status="queued", record=record.but(
                    journal=None, plan=None, taken_at=None, attempts=attempts,
                    interrupted=(*record.interrupted, failure)))
                out.append({"edit": entry.id, "undone": True, "requeued": True, **failure})
                continue
            ledger.update(entry.id, status="failed", record=record.but(journal=None, failure=failure))
            out.append({"edit": entry.id, "undone": True, **failure})
        return out
