"""Review and curation: edits the Controller held (``needs_review``) wait for a curator, who approves or rejects.

Approval plans the edit again against today's KG (it may have changed since the request) with the
curator's approval standing in for the trust check, and applies it through the transaction if
nothing now refuses it; rejection records the curator and the reason and lowers the author's trust.
Curators also protect facts: only a curator may then change them (the Controller checks).
"""

from __future__ import annotations

import time

from controller.users import require
from oneedit.core import OneEditError, Triple
from oneedit.rollback import entry_in
from oneedit.transaction import Outcome


class Review:
    def __init__(self, system):
        self.sys = system

    def queue(self) -> list[dict]:
        return [e.to_dict() for e in self.sys.ledger.list(status="needs_review", limit=None, ascending=True)]

    def approve(self, edit_id: int, actor, *, method: str | None = None):
        """A curator approves an edit waiting for review: it is re-planned against today's KG (which
        may have changed since) and applied if nothing now refuses it."""
        require(actor, "review")
        ledger = self.sys.ledger
        entry = entry_in(ledger, edit_id, "needs_review")
        started = time.perf_counter()
        plan = self.sys.controller.reconsider(entry.record.plan, actor)
        record = entry.record.but(plan=plan, reviewed_by=actor.name)
        if plan.decision != "apply":
            ledger.update(edit_id, status="rejected", record=record.but(
                review_note="re-planned at approval and refused: " + "; ".join(plan.reasons)))
            return Outcome(edit_id, "rejected", plan, entry.text, seconds=time.perf_counter() - started,
                           author=entry.author)
        self.sys.sync.check_writable()  # the edit stays waiting for review if the model cannot take it
        ledger.update(edit_id, status="pending", record=record)
        model = self.sys.transaction.apply(edit_id, entry.text, plan, entry.author, method or record.method,
                                           record=record)
        self.sys.users.adjust_trust(entry.author, "accepted")
        return Outcome(edit_id, "applied", plan, entry.text, model, time.perf_counter() - started, entry.author)

    def reject(self, edit_id: int, actor, *, reason: str = "") -> dict:
        require(actor, "review")
        ledger = self.sys.ledger
        entry = entry_in(ledger, edit_id, "needs_review")
        record = entry.record
        plan = record.plan.but(refused_by="review", reasons=(reason or f"rejected by {actor.name}",))
        ledger.update(edit_id, status="rejected", record=record.but(
            plan=plan, reviewed_by=actor.name, review_note=reason or "rejected in review"))
        self.sys.users.adjust_trust(entry.author, "rejected")
        return ledger.get(edit_id).to_dict()

    def protect(self, subject: str, relation: str, obj: str, actor, *, reason: str = "",
                remove: bool = False) -> Triple:
        """Protect the fact (subject, relation, obj), or lift its protection (``remove``)."""
        require(actor, "protect")
        kg = self.sys.kg
        t = Triple(kg.resolve_entity(subject).id, kg.resolve_relation(relation).id, kg.resolve_entity(obj).id)
        if remove:
            self.sys.protected.unprotect(t)
        elif not kg.store.contains(t):
            raise OneEditError(f"{t} is not in the KG, so it cannot be protected.")
        else:
            self.sys.protected.protect(t, actor.name, reason)
        return t
