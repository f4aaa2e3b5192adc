"""``oneedit serve``: the HTTP API (FastAPI) over the same facade the CLI uses, and the chat page.

Every endpoint but ``/api/health``, the page and the OpenAPI spec needs ``Authorization: Bearer
<token>`` (tokens from ``oneedit users add``; only their hashes are stored). Roles are checked on
the server for every endpoint: viewers read and ask; editors edit and see and roll back their own
edits; curators review, protect and roll back anyone's; admins manage users. A missing or wrong
token is a 401, a role too low a 403, both with a JSON body ``{"error", "message", "hint"}``.

Edits go through the :class:`~oneedit.service.worker.Worker`: ``POST /api/edits`` answers 202 with
the edit's id at once; its status is polled at ``GET /api/edits/{id}`` or streamed (server-sent
events) at ``GET /api/edits/{id}/events`` and ``GET /api/events``.

The pieces: :mod:`~oneedit.service.api` (errors as JSON, the :class:`Service` dependency, worker
helpers), :mod:`~oneedit.service.auth` (tokens and roles), :mod:`~oneedit.service.schemas`
(request bodies), :mod:`~oneedit.service.runtime` (the :class:`Service`) and one router per area
in :mod:`oneedit.service.routes`.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from oneedit.service.api import API_VERSION, ApiError, http_status, install_error_handlers
from oneedit.service.limits import BodyLimit
from oneedit.service.routes import ROUTERS
from oneedit.service.runtime import Service

__all__ = ["API_VERSION", "ApiError", "Service", "create_app", "http_status"]


def create_app(service: Service) -> FastAPI:
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
    app.add_middleware(BodyLimit, limit=service.system.ws.config.service.max_body_bytes)
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)

    # -- the page ---------------------------------------------------------------------------------------
    static = resources.files("oneedit.service") / "static"
    if static.is_dir():
        app.mount("/static", StaticFiles(directory=str(static)), name="static")

        @app.get("/", include_in_schema=False)
        def index():
            return FileResponse(str(static / "index.html"), headers={"Cache-Control": "no-cache"})

    return app
