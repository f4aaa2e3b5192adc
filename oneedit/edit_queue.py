"""The service's queue: requests accepted now, planned and applied by the worker in arrival order.

:meth:`EditQueue.enqueue` checks what can be checked at once (permission, method, readable
request, names, rate limit) so a bad request leaves no row, and writes it ``queued``. The worker
(:mod:`oneedit.service.worker`) then :meth:`take`\\ s each one — plans it against the KG as the
earlier requests left it — and applies it alone (:meth:`apply_taken`, GRACE) or stages it into a
MEMIT batch (:meth:`stage`, :meth:`finish_batch`), all through the transaction.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from controller.users import require
from oneedit.core import OneEditError
from oneedit.core.edit_record import EditRecord
from oneedit.core.plan import EditPlan
from oneedit.core.safe_text import check_text
from oneedit.rollback import entry_in
from oneedit.transaction import STATUS_OF, Staged, plan_entities


class EditQueue:
    def __init__(self, system):
        self.sys = system

    def enqueue(self, actor, text: str = "", *, triples: Sequence[dict] | None = None, method: str | None = None,
                request_key: str | None = None) -> int:
        """Accept a request for the service's worker; returns its ledger id (status ``queued``)."""
        from controller.planner import require_choices

        s = self.sys
        require(actor, "edit")
        method = method or s.ws.config.policy.method
        if method not in ("memit", "grace"):
            raise OneEditError(f"Unknown editing method {method!r}.", hint="Use memit or grace.")
        check_text(text, "request", newlines=True)
        if triples:
            intents = s.intake.from_triples(triples)
            request = {"triples": [dict(t) for t in triples]}
            text = text or "; ".join(f"{t.get('op') or 'assert'} ({t['subject']}, {t['relation']}, "
                                     f"{t.get('object') or '*'})" for t in triples)
        else:
            if not text.strip():
                raise OneEditError("The request is empty.", hint='Send {"text": "The capital of France is Lyon"}.')
            intents = s.intake.edit_intents(text)
            request = {"text": text}
        for i in intents:
            require_choices(i)
        s.users.check_rate(actor.name, actor.role, s.ledger.recent_count(actor.name), s.rate_limit)
        record = EditRecord(request=request, method=method, via="queue", queued_at=time.time())
        return s.ledger.create(actor.name, text, record, "queued", request_key=request_key)

    def take(self, edit_id: int) -> EditPlan | None:
        """Plan a queued request against today's KG. Its row becomes ``pending`` (to be applied by
        :meth:`apply_taken` or :meth:`stage`), or ``rejected`` / ``needs_review`` / ``unchanged``.
        Returns the plan, or None when the request could not be planned (rejected, with the error)."""
        s = self.sys
        entry = entry_in(s.ledger, edit_id, "queued")
        record = entry.record.but(taken_at=time.time())
        request = record.request or {}
        try:
            actor = s.actor(entry.author)
            intents = (s.intake.from_triples(request["triples"]) if request.get("triples")
                       else s.intake.edit_intents(request.get("text", "")))
            plan = s.controller.decide(intents, actor, entry.text)
        except OneEditError as exc:
            s.ledger.update(edit_id, status="rejected", record=record.but(error=exc.to_dict()))
            return None
        status = STATUS_OF[plan.decision]
        s.ledger.set_entities(edit_id, plan_entities(plan))
        s.ledger.update(edit_id, status=status, record=record.but(plan=plan))
        if status == "rejected":
            s.users.adjust_trust(entry.author, "rejected")
        return plan

    def apply_taken(self, edit_id: int, plan: EditPlan) -> dict | None:
        """Apply a taken (``pending``) request on its own: KG, then the model (GRACE, or a MEMIT
        batch of one); the answers before and after are kept in its record."""
        s = self.sys
        entry = entry_in(s.ledger, edit_id, "pending")
        model = s.transaction.apply(edit_id, entry.text, plan, entry.author, entry.record.method,
                                    record=entry.record)
        if model is not None and model.get("answers"):
            done = s.ledger.get(edit_id).record
            if done.model_edit is not None:
                s.ledger.update(edit_id, record=done.but(model_edit=done.model_edit.but(
                    answers=tuple(model["answers"]))))
        s.users.adjust_trust(entry.author, "accepted")
        return model

    def stage(self, edit_id: int, plan: EditPlan, batch: list[Staged]) -> None:
        """Commit a taken request's KG change now and add it to ``batch``, whose model edit
        :meth:`finish_batch` makes (one MEMIT batch for all of them)."""
        entry = entry_in(self.sys.ledger, edit_id, "pending")
        self.sys.transaction.stage(edit_id, entry.text, plan, entry.author, entry.record, batch)

    def finish_batch(self, batch: list[Staged], *, probe: bool = False) -> dict:
        """The model edit of a staged batch; every row of it becomes ``applied``."""
        summary = {"applied": 0, "model_batches": 0}
        if batch:
            self.sys.transaction.finish(batch, batch[0].record.method, summary, probe=probe)
        return summary
