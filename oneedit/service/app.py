"""``oneedit serve``: the HTTP API (FastAPI) over the same facade the CLI uses, and the chat page.

Every endpoint but ``/api/health``, the page and the OpenAPI spec needs ``Authorization: Bearer
<token>`` (tokens from ``oneedit users add``; only their hashes are stored). Roles are checked on
the server for every endpoint: viewers read and ask; editors edit and see and roll back their own
edits; curators review, protect and roll back anyone's; admins manage users. A missing or wrong
token is a 401, a role too low a 403, both with a JSON body ``{"error", "message", "hint"}``.

Edits go through the :class:`~oneedit.service.worker.Worker`: ``POST /api/edits`` answers 202 with
the edit's id at once; its status is polled at ``GET /api/edits/{id}`` or streamed (server-sent
events) at ``GET /api/edits/{id}/events`` and ``GET /api/events``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from oneedit.core import (
    OneEditError,
    PermissionDenied,
    RateLimitError,
    UnknownEntityError,
    UserExistsError,
)
from controller.users import User
from oneedit.ledger import FINAL
from oneedit.service.limits import BodyLimit, RateWindow
from oneedit.service.worker import EventHub, ServiceStopping, Worker, event_of

log = logging.getLogger(__name__)

API_VERSION = "1"


# -- errors --------------------------------------------------------------------------------------------
class ApiError(OneEditError):
    def __init__(self, status: int, message: str, hint: str | None = None, *, details: dict | None = None,
                 name: str | None = None):
        super().__init__(message, hint, details=details)
        self.status = status
        self.name = name or {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
                             409: "Conflict"}.get(status, "Error")

    def to_dict(self) -> dict:
        return super().to_dict() | {"error": self.name}


def http_status(exc: OneEditError) -> int:
    from controller.planner import AmbiguousRequest
    from oneedit.system import DependentEdits, EditStateError

    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, UnknownEntityError) and (exc.details or {}).get("candidates"):
        return 409  # a name that fits several entities: the person chooses
    for cls, code in ((PermissionDenied, 403), (RateLimitError, 429), (AmbiguousRequest, 409),
                      (DependentEdits, 409), (EditStateError, 409), (UserExistsError, 409), (ServiceStopping, 503)):
        if isinstance(exc, cls):
            return code
    return 400


def _error_response(status: int, body: dict, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


# -- request bodies --------------------------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FactIn(_Body):
    op: Literal["assert", "replace", "retract"] = "assert"
    subject: str = Field(min_length=1, max_length=300, description="entity id, label or alias")
    relation: str = Field(min_length=1, max_length=100, description="relation id or phrase")
    object: str | None = Field(None, max_length=300, description="entity id, label or alias; a new name makes a new entity")
    subject_type: str | None = Field(None, max_length=100, description="type of a new subject (default: from the relation's domain)")
    object_type: str | None = Field(None, max_length=100, description="type of a new object (default: from the relation's range)")


class EditIn(_Body):
    text: str | None = Field(None, max_length=4000, description='a request in plain language, e.g. "The capital of France is Lyon"')
    triples: list[FactIn] | None = Field(None, max_length=200, description="structured facts instead of text")
    method: Literal["memit", "grace"] | None = Field(None, description="model-editing method (default: the workspace's policy)")
    dry_run: StrictBool = Field(False, description="return the plan (conflicts, KG diff, derived facts, checks) and change nothing")
    request_key: str | None = Field(None, max_length=128, description="idempotency key: a retried request with the same key returns the first one's edit")


class TextIn(_Body):
    text: str = Field(min_length=1, max_length=4000)


class RollbackIn(_Body):
    cascade: StrictBool = False


class RejectIn(_Body):
    reason: str = Field("", max_length=1000)


class ApproveIn(_Body):
    method: Literal["memit", "grace"] | None = None


class ProtectIn(_Body):
    subject: str = Field(min_length=1, max_length=300)
    relation: str = Field(min_length=1, max_length=100)
    object: str = Field(min_length=1, max_length=300)
    reason: str = Field("", max_length=1000)
    remove: StrictBool = False


class UserIn(_Body):
    name: str = Field(min_length=1, max_length=64)
    role: Literal["viewer", "editor", "curator", "admin"] = "editor"


class UserPatch(_Body):
    role: Literal["viewer", "editor", "curator", "admin"] | None = None
    active: StrictBool | None = None


# -- auth ------------------------------------------------------------------------------------------------
_bearer = HTTPBearer(auto_error=False, description="API token from `oneedit users add NAME --role ROLE`")


def current_user(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]):
    """The user whose bearer token this is (401 when missing or wrong)."""
    if creds is None or not creds.credentials:
        raise ApiError(401, "No API token: send `Authorization: Bearer <token>`.",
                       hint="An admin creates one with `oneedit users add NAME --role ROLE`.")
    user, why = request.app.state.service.system.users.check_token(creds.credentials)
    if why == "expired":
        raise ApiError(401, "The API token has expired.",
                       hint="Ask an admin for a new one (`oneedit users token NAME`); rotate yours before it "
                            "expires with POST /api/me/token.")
    if user is None:
        raise ApiError(401, "The API token is not valid (wrong, revoked or its user deactivated).",
                       hint="Ask an admin for a new one: `oneedit users token NAME`.")
    return user


def _role(needed: str, action: str):
    def check(user=Depends(current_user)):
        from controller.users import role_rank

        if role_rank(user.role) < role_rank(needed):
            raise PermissionDenied(f"{user.name} is a {user.role}; {action} needs the {needed} role or higher.",
                                   hint="Ask an admin: `oneedit users set-role NAME ROLE`.",
                                   details={"user": user.name, "role": user.role, "needed": needed})
        return user
    return check


Viewer = Annotated[User, Depends(_role("viewer", "reading"))]
Editor = Annotated[User, Depends(_role("editor", "editing"))]
Curator = Annotated[User, Depends(_role("curator", "reviewing"))]
Admin = Annotated[User, Depends(_role("admin", "managing users"))]


# -- the service ------------------------------------------------------------------------------------------
class Service:
    """The facade, its worker and the event hub, shared by the routes."""

    def __init__(self, system, *, window: float | None = None, max_batch: int | None = None,
                 probe: bool | None = None):
        cfg = system.ws.config.service
        self.system = system
        self.hub = EventHub()
        self.worker = Worker(system, window=cfg.batch_window if window is None else window,
                             max_batch=cfg.max_batch if max_batch is None else max_batch,
                             probe=cfg.probe if probe is None else probe, hub=self.hub)
        self.resumed: list[int] = []
        self.model_state = "none"
        self.questions = RateWindow(cfg.questions_per_minute, 60.0)

    def start(self) -> None:
        _ = self.system.interpreter  # built once, before requests share it
        self.system.safety.warm()    # the classifier and the lexicon load in seconds: not on the first edit
        def warmup(system):  # on the worker's thread, before any queued edit
            _ = system.model
            self.model_state = "ready"

        has_model = self.system.has_model()
        if has_model:
            self.model_state = "loading"
        self.resumed = self.worker.start(warmup=warmup if has_model else None)

    def stop(self) -> None:
        self.worker.stop()


def create_app(service: Service) -> FastAPI:
    from controller.users import can_admin, can_edit, can_review, may

    system = service.system

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        try:
            yield
        finally:
            await run_in_threadpool(service.stop)

    app = FastAPI(title="OneEdit", version=API_VERSION, lifespan=lifespan,
                  description="Edit a knowledge graph and a language model together. Authenticate with "
                              "`Authorization: Bearer <token>` (`oneedit users add NAME --role ROLE`).")
    app.state.service = service
    app.add_middleware(BodyLimit, limit=system.ws.config.service.max_body_bytes)

    # -- errors as JSON -----------------------------------------------------------------------------------
    @app.exception_handler(OneEditError)
    async def _oneedit_error(request: Request, exc: OneEditError):
        status = http_status(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if status == 429:
            headers = {"Retry-After": "60"}
        return _error_response(status, exc.to_dict(), headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = [{"where": ".".join(str(x) for x in e.get("loc", ())), "problem": e.get("msg", "")}
                  for e in exc.errors()]
        msg = "; ".join(f"{e['where']}: {e['problem']}" for e in errors[:5])
        parts = sorted({str(e.get("loc", ("request",))[0]) for e in exc.errors()})
        what = {"body": "The request body", "path": "The address (a path parameter)",
                "query": "A query parameter", "header": "A header"}
        where = what.get(parts[0], "The request") if len(parts) == 1 else "The request"
        return _error_response(422, {"error": "InvalidRequest", "message": f"{where} is not valid: {msg}",
                                     "hint": "See the schema at /docs or /openapi.json.",
                                     "details": {"errors": errors}})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return _error_response(exc.status_code, {"error": "NotFound" if exc.status_code == 404 else "HTTPError",
                                                 "message": str(exc.detail)})

    def visible(user, entry) -> bool:
        return may(user, "see", entry.author)

    def get_entry(user, edit_id: int):
        entry = system.ledger.get(edit_id)
        if entry is None or not visible(user, entry):
            # an editor cannot tell someone else's edit from a missing one
            raise ApiError(404, f"No edit #{edit_id} that you can see.", hint="List yours with GET /api/edits.")
        return entry

    async def on_worker(fn, *args, **kwargs):
        return await run_in_threadpool(service.worker.call, fn, *args, **kwargs)

    # -- health, me ---------------------------------------------------------------------------------------
    @app.get("/api/health", tags=["service"])
    def health():
        """Liveness (no token needed): the worker, the model and the queue."""
        return {"status": "ok" if service.worker.alive else "stopping", "model": service.model_state,
                "queued": system.ledger.count("queued"), "version": API_VERSION}

    @app.get("/api/me", tags=["users"])
    def me(user: Viewer):
        return user.to_dict() | {"can_edit": can_edit(user.role), "can_review": can_review(user.role),
                                 "can_admin": can_admin(user.role),
                                 "token_expires": system.users.token_expires(user.name)}

    @app.post("/api/me/token", tags=["users"])
    def me_token(user: Viewer):
        """A new token for yourself (the one you called with stops working at once), shown this once."""
        token = system.users.rotate_token(user.name)
        return {"name": user.name, "token": token, "token_expires": system.users.token_expires(user.name)}

    @app.get("/api/stats", tags=["service"])
    def stats(user: Viewer):
        """Queue depth, ledger counts per status, and how the worker batched model edits."""
        return {"queue_depth": service.worker.depth(), "ledger": system.ledger.counts(),
                "worker": service.worker.stats.to_dict(), "batch_window_s": service.worker.window,
                "max_batch": service.worker.max_batch, "kg_revision": system.kg.store.head(),
                "model": service.model_state,
                "consolidation": service.worker.sleep.state() if service.worker.sleep else None}

    @app.get("/api/audit", tags=["service"])
    async def audit(user: Viewer, sample: int | None = Query(None, ge=1, le=100_000), seed: int = 0):
        """The model against the KG: agreement on edited, unedited and all facts (``sample``: a
        seeded sample of facts, with a 95% interval), and where it disagrees."""
        if service.model_state != "ready":
            raise ApiError(503, "The model is not loaded (yet): nothing to audit.",
                           hint="Retry once GET /api/health says the model is ready.")
        return await on_worker(lambda s: s.audit(sample=sample, seed=seed))

    # -- interpreting and asking --------------------------------------------------------------------------
    @app.post("/api/parse", tags=["edits"])
    def parse(body: TextIn, user: Viewer):
        """How a request is read: typed intents with linked entities (or candidates). Changes nothing."""
        return system.parse(body.text).to_dict()

    @app.post("/api/ask", tags=["questions"])
    async def ask(body: TextIn, user: Viewer):
        """The KG's answer and the model's, side by side, for each question in the text (at
        most ``service.max_questions``; each user ``service.questions_per_minute``). Each question
        is its own turn on the model's worker, so edits queued meanwhile are not held up."""
        queries = await run_in_threadpool(system.questions, body.text)
        most = system.ws.config.service.max_questions
        if len(queries) > most:
            raise ApiError(422, f"{len(queries)} questions in one request; at most {most} are answered at once.",
                           hint="Split them over several requests.")
        wait = service.questions.take(user.name, len(queries))
        if wait:
            raise RateLimitError(f"{user.name} asked more than {service.questions.limit} questions in a minute.",
                                 hint=f"Ask again in {wait:.0f} s.")
        answers = [await on_worker(lambda s, q=q: s.answer(q)) for q in queries]
        return {"question": body.text, "answers": answers}

    # -- edits --------------------------------------------------------------------------------------------
    @app.post("/api/edits", tags=["edits"], status_code=202)
    async def submit(body: EditIn, user: Editor):
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
                intents = s.intents_from_triples(triples) if triples else None
                out = s.submit(body.text or "", intents=intents, user=user.name, dry_run=True).to_dict()
                # one vocabulary on the API: the ledger's "unchanged" for a request the KG already satisfies
                return out | {"status": "unchanged" if out["status"] == "noop" else out["status"]}
            return JSONResponse(await on_worker(dry), status_code=200)
        row = await run_in_threadpool(service.worker.submit, body.text or "", triples=triples, user=user.name,
                                      method=body.method,
                                      request_key=f"{user.name}:{body.request_key}" if body.request_key else None)
        links = {"self": f"/api/edits/{row['id']}", "events": f"/api/edits/{row['id']}/events"}
        return JSONResponse(row | {"links": links}, status_code=200 if row.get("duplicate") else 202,
                            headers={"Location": links["self"]})

    @app.get("/api/edits", tags=["edits"])
    def history(user: Viewer, author: str | None = None, status: str | None = None, entity: str | None = None,
                limit: Annotated[int, Query(ge=1, le=500)] = 50):
        """Edits, newest first. Editors and viewers see their own; curators and admins anyone's."""
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

    @app.get("/api/edits/{edit_id}", tags=["edits"])
    def edit_status(edit_id: int, user: Viewer):
        """One edit: its status (queued → pending → applied / rejected / needs_review / unchanged /
        failed; applied → rolled_back), its plan and its model edit."""
        return get_entry(user, edit_id).to_dict()

    @app.get("/api/edits/{edit_id}/events", tags=["edits"])
    async def edit_events(edit_id: int, request: Request, user: Viewer):
        """Server-sent events: the edit's status now, then each change until it is decided."""
        entry = await run_in_threadpool(get_entry, user, edit_id)
        return EventSourceResponse(_stream(request, lambda ev: ev.get("edit") == edit_id, first=entry,
                                           until_final=True))

    @app.get("/api/events", tags=["edits"])
    async def events(request: Request, user: Viewer):
        """Server-sent events for every edit you can see (yours; everyone's for curators)."""
        return EventSourceResponse(_stream(request, lambda ev: may(user, "see", ev.get("author"))))

    async def _stream(request: Request, want, *, first=None, until_final: bool = False):
        loop = asyncio.get_running_loop()
        q: asyncio.Queue = asyncio.Queue()
        token = service.hub.subscribe(loop, q)
        try:
            if first is not None:
                # read again after subscribing, so no change falls between the two
                first = await run_in_threadpool(system.ledger.get, first.id)
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

    @app.post("/api/edits/{edit_id}/rollback", tags=["edits"])
    async def rollback(edit_id: int, user: Editor, body: RollbackIn | None = None):
        """Undo an applied edit in the KG and the model. Editors roll back their own edits;
        curators and admins anyone's. Later edits that build on it: 409 unless ``cascade``."""
        get_entry(user, edit_id)
        cascade = bool(body and body.cascade)
        out = await on_worker(lambda s: s.rollback(edit_id, user=user.name, cascade=cascade))
        for i in out["rolled_back"]:
            service.hub.publish(event_of(system.ledger.get(i)))
        return out

    # -- review ---------------------------------------------------------------------------------------------
    @app.get("/api/review", tags=["review"])
    def review_queue(user: Curator):
        """Edits waiting for a curator, oldest first."""
        return {"edits": system.review_queue()}

    @app.post("/api/review/{edit_id}/approve", tags=["review"])
    async def approve(edit_id: int, user: Curator, body: ApproveIn | None = None):
        get_entry(user, edit_id)
        method = body.method if body else None
        out = await on_worker(lambda s: s.approve(edit_id, user=user.name, method=method).to_dict())
        service.hub.publish(event_of(system.ledger.get(edit_id)))
        return out

    @app.post("/api/review/{edit_id}/reject", tags=["review"])
    async def reject(edit_id: int, user: Curator, body: RejectIn | None = None):
        get_entry(user, edit_id)
        reason = body.reason if body else ""
        out = await on_worker(lambda s: s.reject(edit_id, user=user.name, reason=reason))
        service.hub.publish(event_of(system.ledger.get(edit_id)))
        return out

    @app.post("/api/protect", tags=["review"])
    async def protect(body: ProtectIn, user: Curator):
        """Protect a fact (only curators may then change it), or lift the protection."""
        t = await on_worker(lambda s: s.protect(body.subject, body.relation, body.object, user=user.name,
                                                reason=body.reason, remove=body.remove))
        return {"fact": list(t.as_tuple()), "protected": not body.remove}

    @app.get("/api/protect", tags=["review"])
    def protected(user: Viewer):
        return {"facts": system.protected.list()}

    # -- KG browse ------------------------------------------------------------------------------------------
    def entity_or_404(name: str):
        try:
            return system.kg.resolve_entity(name)
        except UnknownEntityError as exc:
            if (exc.details or {}).get("candidates"):
                raise
            raise ApiError(404, exc.message, exc.hint, details=exc.details) from None

    def _fact(t) -> dict:
        return {"subject": t.subject, "relation": t.relation, "object": t.object,
                "subject_label": system.kg.label(t.subject), "object_label": system.kg.label(t.object)}

    @app.get("/api/kg/search", tags=["kg"])
    def kg_search(user: Viewer, q: Annotated[str, Query(min_length=1, max_length=200)],
                  type: str | None = None, limit: Annotated[int, Query(ge=1, le=50)] = 10):
        """Entities by id, label or alias (then fuzzy)."""
        hits = system.kg.store.find_entities(q, limit=limit, type=type)
        return {"query": q, "results": [{"id": m.entity.id, "label": m.entity.label, "type": m.entity.type,
                                         "description": m.entity.description, "score": round(m.score, 3),
                                         "matched": m.matched, "how": m.how} for m in hits]}

    @app.get("/api/kg/entities/{name}", tags=["kg"])
    def kg_entity(name: str, user: Viewer):
        """An entity with its facts (outgoing and incoming) and its derived (multi-hop) facts."""
        e = entity_or_404(name)
        store = system.kg.store
        out_facts = [_fact(t) for t in store.triples(e.id, None, None) if not t.is_meta]
        in_facts = [_fact(t) for t in store.triples(None, None, e.id) if not t.is_meta]
        derived = [_fact(d.triple) | {"rule": d.rule, "via": [list(v.as_tuple()) for v in d.via]}
                   for d in system.kg.derived(subject=e.id)]
        return {"id": e.id, "label": e.label, "type": e.type, "aliases": list(e.aliases),
                "description": e.description, "facts": out_facts, "incoming": in_facts, "derived": derived}

    @app.get("/api/kg/entities/{name}/neighbourhood", tags=["kg"])
    def kg_neighbourhood(name: str, user: Viewer, depth: Annotated[int, Query(ge=1, le=2)] = 1,
                         limit: Annotated[int, Query(ge=1, le=300)] = 60):
        """Nodes and edges around an entity (for the page's graph picture)."""
        e = entity_or_404(name)
        store = system.kg.store
        nodes: dict[str, dict] = {}
        edges: list[dict] = []

        def node(eid: str, hop: int) -> None:
            if eid not in nodes:
                x = store.entity(eid)
                nodes[eid] = {"id": eid, "label": x.label if x else eid, "type": x.type if x else None, "hop": hop}

        node(e.id, 0)
        frontier = [e.id]
        for hop in range(1, depth + 1):
            nxt = []
            for eid in frontier:
                for t in [*store.triples(eid, None, None), *store.triples(None, None, eid)]:
                    if t.is_meta or len(edges) >= limit:
                        continue
                    if any(x["subject"] == t.subject and x["relation"] == t.relation and x["object"] == t.object
                           for x in edges):
                        continue
                    edges.append({"subject": t.subject, "relation": t.relation, "object": t.object})
                    for end in (t.subject, t.object):
                        if end not in nodes:
                            node(end, hop)
                            nxt.append(end)
            frontier = nxt
        return {"center": e.id, "nodes": list(nodes.values()), "edges": edges, "truncated": len(edges) >= limit}

    @app.get("/api/kg/relations", tags=["kg"])
    def kg_relations(user: Viewer):
        rels = system.kg.schema.relations.values()
        return {"relations": [{"id": r.id, "label": r.label, "domain": list(r.domain), "range": list(r.range),
                               "functional": r.functional, "composite": r.composite, "inverse": r.inverse}
                              for r in rels]}

    # -- users (admins) --------------------------------------------------------------------------------------
    @app.get("/api/users", tags=["users"])
    def users_list(user: Admin):
        return {"users": [u.to_dict() for u in system.users.list()]}

    @app.post("/api/users", tags=["users"], status_code=201)
    def users_add(body: UserIn, user: Admin):
        """Create a user; the response carries their API token, shown this once."""
        new, token = system.users.add(body.name, body.role)
        return new.to_dict() | {"token": token}

    @app.patch("/api/users/{name}", tags=["users"])
    def users_patch(name: str, body: UserPatch, user: Admin):
        if system.users.find(name) is None:
            raise ApiError(404, f"No user named {name!r}.")
        if name == user.name and (body.active is False or (body.role is not None and body.role != "admin")):
            raise ApiError(409, "You cannot deactivate yourself or give up your own admin role.",
                           hint="Another admin can, if it must be done.")
        if body.role is not None:
            system.users.set_role(name, body.role)
        if body.active is False:
            system.users.deactivate(name)
        elif body.active is True:
            system.users.activate(name)
        return system.users.get(name).to_dict()

    @app.post("/api/users/{name}/token", tags=["users"])
    def users_token(name: str, user: Admin):
        """A new token for ``name`` (the old one stops working)."""
        if system.users.find(name) is None:
            raise ApiError(404, f"No user named {name!r}.")
        return {"name": name, "token": system.users.rotate_token(name)}

    # -- the page -----------------------------------------------------------------------------------------------
    static = resources.files("oneedit.service") / "static"
    if static.is_dir():
        app.mount("/static", StaticFiles(directory=str(static)), name="static")

        @app.get("/", include_in_schema=False)
        def index():
            return FileResponse(str(static / "index.html"), headers={"Cache-Control": "no-cache"})

    return app

