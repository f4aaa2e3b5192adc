"""Edits: reading a request, queueing it (202), the history, one edit's status, their
server-sent events, and rolling one back."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from controller.users import may
from oneedit.core import PermissionDenied, UnknownEntityError
from oneedit.ledger import FINAL
from oneedit.service.api import ApiError, Svc, get_entry, on_worker
from oneedit.service.auth import Editor, Viewer
from oneedit.service.runtime import Service
from oneedit.service.schemas import EditIn, RollbackIn, TextIn
from oneedit.service.worker import event_of

router = APIRouter(tags=["edits"])


@router.post("/api/parse")
def parse(body: TextIn, user: Viewer, svc: Svc):
    """How a request is read: typed intents with linked entities (or candidates). Changes nothing."""
    focus = (body.focus.subject, body.focus.relation) if body.focus else None
    return svc.system.parse(body.text, focus).to_dict()


@router.post("/api/edits", status_code=202)
async def submit(body: EditIn, user: Editor, svc: Svc):
    """Queue an edit (text or triples). Answers 202 at once with the edit's id and status
    ``queued``; with ``dry_run`` it answers 200 with the plan and changes nothing."""
    if not (body.text and body.text.strip()) and not body.triples:
        raise ApiError(422, "Send `text` or `triples`.", hint='e.g. {"text": "The capital of France is Lyon"}',
                       name="InvalidRequest")
    if body.text and body.triples:
        raise ApiError(422, "Send `text` or `triples`, not both.", name="InvalidRequest")
    triples = [t.model_dump() for t in body.triples] if body.triples else None
    if body.dry_run:
        def dry(s):
            intents = s.intake.from_triples(triples) if triples else None
            out = s.submit(body.text or "", intents=intents, user=user.name, dry_run=True).to_dict()
            # one vocabulary on the API: the ledger's "unchanged" for a request the KG already satisfies
            return out | {"status": "unchanged" if out["status"] == "noop" else out["status"]}
        return JSONResponse(await on_worker(svc, dry), status_code=200)
    row = await run_in_threadpool(svc.worker.submit, body.text or "", triples=triples, user=user.name,
                                  method=body.method,
                                  request_key=f"{user.name}:{body.request_key}" if body.request_key else None)
    links = {"self": f"/api/edits/{row['id']}", "events": f"/api/edits/{row['id']}/events"}
    return JSONResponse(row | {"links": links}, status_code=200 if row.get("duplicate") else 202,
                        headers={"Location": links["self"]})


@router.get("/api/edits")
def history(user: Viewer, svc: Svc, author: str | None = None, status: str | None = None,
            entity: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50):
    """Edits, newest first. Editors and viewers see their own; curators and admins anyone's."""
    system = svc.system
    if not may(user, "see"):
        if author and author != user.name:
            raise PermissionDenied(f"{user.name} ({user.role}) sees only their own edits.",
                                   hint="Curators and admins see everyone's.")
        author = user.name
    if entity:
        try:
            entity = system.kg.resolve_entity(entity).id
        except UnknownEntityError as exc:
            if (exc.details or {}).get("candidates"):
                raise
            return {"edits": []}
    rows = system.ledger.list(author=author, entity=entity, status=status, limit=limit)
    return {"edits": [e.to_dict() for e in rows]}


@router.get("/api/edits/{edit_id}")
def edit_status(edit_id: int, user: Viewer, svc: Svc):
    """One edit: its status (queued → pending → applied / rejected / needs_review / unchanged /
    failed; applied → rolled_back), its plan and its model edit."""
    return get_entry(svc, user, edit_id).to_dict()


@router.get("/api/edits/{edit_id}/events")
async def edit_events(edit_id: int, request: Request, user: Viewer, svc: Svc):
    """Server-sent events: the edit's status now, then each change until it is decided."""
    entry = await run_in_threadpool(get_entry, svc, user, edit_id)
    return EventSourceResponse(_stream(svc, request, lambda ev: ev.get("edit") == edit_id, first=entry,
                                       until_final=True))


@router.get("/api/events")
async def events(request: Request, user: Viewer, svc: Svc):
    """Server-sent events for every edit you can see (yours; everyone's for curators)."""
    return EventSourceResponse(_stream(svc, request, lambda ev: may(user, "see", ev.get("author"))))


async def _stream(service: Service, request: Request, want, *, first=None, until_final: bool = False):
    loop = asyncio.get_running_loop()
    q: asyncio.Queue = asyncio.Queue()
    token = service.hub.subscribe(loop, q)
    try:
        if first is not None:
            # read again after subscribing, so no change falls between the two
            first = await run_in_threadpool(service.system.ledger.get, first.id)
            yield {"event": "status", "data": json.dumps(event_of(first))}
            if until_final and first.status in FINAL:
                return
        else:
            yield {"event": "hello", "data": json.dumps({"queued": service.worker.depth()})}
        while True:
            ev = await q.get()
            if ev.get("type") == "shutdown":
                yield {"event": "shutdown", "data": "{}"}
                return
            if not want(ev):
                continue
            yield {"event": "status", "data": json.dumps(ev)}
            if until_final and ev.get("status") in FINAL:
                return
    finally:
        service.hub.unsubscribe(token)


@router.post("/api/edits/{edit_id}/rollback")
async def rollback(edit_id: int, user: Editor, svc: Svc, body: RollbackIn | None = None):
    """Undo an applied edit in the KG and the model. Editors roll back their own edits;
    curators and admins anyone's. Later edits that build on it: 409 unless ``cascade``."""
    get_entry(svc, user, edit_id)
    cascade = bool(body and body.cascade)
    out = await on_worker(svc, lambda s: s.rollback(edit_id, user=user.name, cascade=cascade))
    for i in out["rolled_back"]:
        svc.hub.publish(event_of(svc.system.ledger.get(i)))
    return out
