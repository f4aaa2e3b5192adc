"""Review (curators): the queue of edits waiting for a curator, approving and rejecting them,
and protected facts."""

from __future__ import annotations

from fastapi import APIRouter

from oneedit.service.api import Svc, get_entry, on_worker
from oneedit.service.auth import Curator, Viewer
from oneedit.service.schemas import ApproveIn, ProtectIn, RejectIn
from oneedit.service.worker import event_of

router = APIRouter(tags=["review"])


@router.get("/api/review")
def review_queue(user: Curator, svc: Svc):
    """Edits waiting for a curator, oldest first."""
    return {"edits": svc.system.review.queue()}


@router.post("/api/review/{edit_id}/approve")
async def approve(edit_id: int, user: Curator, svc: Svc, body: ApproveIn | None = None):
    get_entry(svc, user, edit_id)
    method = body.method if body else None
    out = await on_worker(svc, lambda s: s.approve(edit_id, user=user.name, method=method).to_dict())
    svc.hub.publish(event_of(svc.system.ledger.get(edit_id)))
    return out


@router.post("/api/review/{edit_id}/reject")
async def reject(edit_id: int, user: Curator, svc: Svc, body: RejectIn | None = None):
    get_entry(svc, user, edit_id)
    reason = body.reason if body else ""
    out = await on_worker(svc, lambda s: s.reject(edit_id, user=user.name, reason=reason))
    svc.hub.publish(event_of(svc.system.ledger.get(edit_id)))
    return out


@router.post("/api/protect")
async def protect(body: ProtectIn, user: Curator, svc: Svc):
    """Protect a fact (only curators may then change it), or lift the protection."""
    t = await on_worker(svc, lambda s: s.protect(body.subject, body.relation, body.object, user=user.name,
                                                 reason=body.reason, remove=body.remove))
    return {"fact": list(t.as_tuple()), "protected": not body.remove}


@router.get("/api/protect")
def protected(user: Viewer, svc: Svc):
    return {"facts": svc.system.protected.list()}
