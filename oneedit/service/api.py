"""What every router shares: the API's errors and how they become JSON, the :class:`Service`
dependency, and helpers for running on the model's worker and for reading an edit a user may see."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from controller.users import may
from oneedit.core import OneEditError, PermissionDenied, RateLimitError, UnknownEntityError, UserExistsError
from oneedit.service.runtime import Service
from oneedit.service.worker import ServiceStopping

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


async def _oneedit_error(request: Request, exc: OneEditError):
    status = http_status(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 429:
        headers = {"Retry-After": "60"}
    return _error_response(status, exc.to_dict(), headers)


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


async def _http(request: Request, exc: StarletteHTTPException):
    return _error_response(exc.status_code, {"error": "NotFound" if exc.status_code == 404 else "HTTPError",
                                             "message": str(exc.detail)})


def install_error_handlers(app: FastAPI) -> None:
    """Every error as JSON ``{"error", "message", "hint"?, "details"?}``: the project's own errors
    (status from :func:`http_status`), invalid requests (422) and Starlette's (404, 405, ...)."""
    app.add_exception_handler(OneEditError, _oneedit_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)


# -- the service ------------------------------------------------------------------------------------------
async def get_service(request: Request) -> Service:
    """The app's :class:`Service` (a dependency: ``svc: Svc``)."""
    return request.app.state.service


Svc = Annotated[Service, Depends(get_service)]


async def on_worker(service: Service, fn: Callable[..., Any], *args, **kwargs):
    """``fn(system, *args, **kwargs)`` on the model's worker thread, in turn with queued edits."""
    return await run_in_threadpool(service.worker.call, fn, *args, **kwargs)


# -- edits a user can see --------------------------------------------------------------------------------
def visible(user, entry) -> bool:
    return may(user, "see", entry.author)


def get_entry(service: Service, user, edit_id: int):
    entry = service.system.ledger.get(edit_id)
    if entry is None or not visible(user, entry):
        # an editor cannot tell someone else's edit from a missing one
        raise ApiError(404, f"No edit #{edit_id} that you can see.", hint="List yours with GET /api/edits.")
    return entry
