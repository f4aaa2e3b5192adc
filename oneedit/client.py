"""A small Python client for the OneEdit HTTP service (``oneedit serve``).

::

    from oneedit.client import Client

    with Client("http://127.0.0.1:8000", token) as oe:
        row = oe.edit("The capital of France is Lyon")          # waits until it is decided
        row["status"], row["plan"]["kg_diff"]                     # 'applied', {'added': [...], ...}
        oe.ask("What is the capital of France?")["answers"]
        oe.rollback(row["id"])

Every method returns the service's JSON (dicts; lists where the service wraps one list). A non-2xx
answer raises :class:`ApiError` with the HTTP ``status`` and the server's ``error``, ``message``,
``hint`` and ``details``; a service that cannot be reached raises :class:`ApiError` with
``status`` ``None``.

:meth:`Client.edit` queues the edit (the service answers 202 at once) and, with ``wait=True``,
follows the edit's server-sent events until its status is final, falling back to polling when the
stream is not available; it returns the edit's ledger row.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, TypeAlias
from urllib.parse import quote

import httpx

from oneedit.core import OneEditError

try:
    from httpx_sse import SSEError, connect_sse
except ImportError:  # without httpx-sse the client polls instead of following the event stream
    connect_sse = None

    class SSEError(Exception):  # type: ignore[no-redef]
        pass

__all__ = ["FINAL_STATUSES", "ApiError", "Client", "WaitTimeout"]

#: Statuses after which an edit does not change by itself (``needs_review`` waits for a curator;
#: ``applied`` may later be ``rolled_back``).
FINAL_STATUSES: frozenset[str] = frozenset(
    {"applied", "rejected", "needs_review", "unchanged", "failed", "rolled_back"})

JSON: TypeAlias = dict[str, Any]
Method: TypeAlias = Literal["memit", "grace"]
Role: TypeAlias = Literal["viewer", "editor", "curator", "admin"]
#: A structured fact for :meth:`Client.edit`: a mapping with ``subject``, ``relation``, ``object``
#: and optionally ``op`` (``assert``, ``replace``, ``retract``), or a ``(subject, relation, object)``
#: tuple (an assertion).
Fact: TypeAlias = Mapping[str, Any] | tuple[str, str, str | None]

_POLL_FIRST = 0.05
_POLL_MAX = 0.5
_STREAM_READ = 10.0  # reconnect a silent event stream after this long (the server pings every 15 s)


class ApiError(OneEditError):
    """The service answered with an error, or could not be reached (``status`` is ``None``).

    ``error`` is the server's error name (``PermissionDenied``, ``AmbiguousRequest``, ...);
    ``details`` its structured details (e.g. ``candidates`` of an ambiguous name)."""

    def __init__(self, message: str, hint: str | None = None, *, status: int | None = None,
                 error: str | None = None, details: dict | None = None):
        super().__init__(message, hint, details=details)
        self.status = status
        self.error = error or ("ConnectionError" if status is None else "Error")

    def to_dict(self) -> dict:
        return super().to_dict() | {"error": self.error, "status": self.status}

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "message" not in body:
            text = " ".join(response.text.split())[:300] or response.reason_phrase
            return cls(f"HTTP {response.status_code} from {response.request.method} {response.request.url.path}: "
                       f"{text}", status=response.status_code, error="HTTPError")
        return cls(str(body["message"]), body.get("hint"), status=response.status_code,
                   error=body.get("error"), details=body.get("details") or {})


class WaitTimeout(ApiError):
    """An edit was not decided within the time given; ``edit_id`` and ``last`` (its row) tell
    where it stands. It goes on in the service: wait again, or look with :meth:`Client.status`."""

    def __init__(self, edit_id: int, seconds: float, last: JSON | None):
        status = (last or {}).get("status", "unknown")
        super().__init__(f"Edit #{edit_id} was not decided within {seconds:g} s (it is {status}).",
                         "It goes on in the service: wait again, or look at GET /api/edits/{id}.",
                         status=None, error="WaitTimeout", details={"edit": edit_id, "status": status})
        self.edit_id = edit_id
        self.last = last


class Client:
    """The OneEdit service at ``url``, as the user whose API ``token`` this is (``None``: only
    :meth:`health` works). ``timeout``: seconds for each request; ``transport``: an httpx transport
    to use instead of the network (e.g. ``httpx.MockTransport`` in tests). Use it as a context
    manager, or :meth:`close` it."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        headers = {"Accept": "application/json", "User-Agent": "oneedit-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)

    # -- life ----------------------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # -- plumbing ----------------------------------------------------------------------------------------
    def _unreachable(self, exc: httpx.TransportError) -> ApiError:
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            return ApiError(f"The OneEdit service at {self.url} did not answer in time ({exc or type(exc).__name__}).",
                            "It may be busy; try again, or pass a longer timeout.", error="Timeout")
        return ApiError(f"cannot reach the OneEdit service at {self.url}: {exc or type(exc).__name__} "
                        "— is `oneedit serve` running?",
                        "Start it with `oneedit serve`, or check the URL and port.", error="ConnectionError")

    def _request(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
                 timeout: float | None = None) -> httpx.Response:
        kw: dict[str, Any] = {}
        if json is not None:
            kw["json"] = json
        if params:
            kw["params"] = {k: v for k, v in params.items() if v is not None}
        if timeout is not None:
            kw["timeout"] = timeout
        # a read, or a keyed edit, is sent once more when the connection drops under it (a
        # keep-alive connection the server closed just as the request went out)
        retry = method == "GET" or bool(isinstance(json, Mapping) and json.get("request_key"))
        for attempt in (1, 2):
            try:
                response = self._http.request(method, path, **kw)
                break
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                if not retry or attempt == 2:
                    raise self._unreachable(exc) from exc
                time.sleep(0.05)
            except httpx.TransportError as exc:
                raise self._unreachable(exc) from exc
        if not response.is_success:
            raise ApiError.from_response(response)
        return response

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        response = self._request(method, path, **kw)
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(f"The service at {self.url} answered {method} {path} with something that is not JSON.",
                           status=response.status_code, error="BadResponse") from exc

    # -- service and users -------------------------------------------------------------------------------
    def health(self) -> JSON:
        """Liveness (no token needed): ``status``, ``model`` (none/loading/ready), ``queued``."""
        return self._json("GET", "/api/health")

    def me(self) -> JSON:
        """The token's user: name, role, trust and what they may do."""
        return self._json("GET", "/api/me")

    def stats(self) -> JSON:
        """Queue depth, ledger counts per status, the worker's batching, the KG revision."""
        return self._json("GET", "/api/stats")

    def users(self) -> list[JSON]:
        """Every user (admins only)."""
        return self._json("GET", "/api/users")["users"]

    def add_user(self, name: str, role: Role = "editor") -> JSON:
        """Create a user (admins only); the answer carries their API ``token``, shown this once."""
        return self._json("POST", "/api/users", json={"name": name, "role": role})

    # -- reading and asking --------------------------------------------------------------------------------
    def parse(self, text: str) -> JSON:
        """How the service reads ``text`` (intents, linked entities, candidates). Changes nothing."""
        return self._json("POST", "/api/parse", json={"text": text})

    def ask(self, text: str) -> JSON:
        """``{"question", "answers": [...]}``: per question the KG's answer (``kg``), the model's
        (``model``) and whether they ``agree``."""
        return self._json("POST", "/api/ask", json={"text": text})

    # -- edits -----------------------------------------------------------------------------------------------
    def edit(self, text: str | None = None, *, triples: Sequence[Fact] | None = None, method: Method | None = None,
             dry_run: bool = False, request_key: str | None = None, wait: bool = True,
             timeout: float = 120.0) -> JSON:
        """Submit an edit: ``text`` in plain language, or structured ``triples``.

        Returns its ledger row: with ``wait`` the row once the status is final (applied, rejected,
        needs_review, unchanged, failed), else the row as queued. A ``dry_run`` returns the plan
        (``status`` ``planned`` or ``unchanged``) and changes nothing. A ``request_key`` makes retries
        safe: a second request with the same key returns the first one's edit, marked
        ``duplicate: True``. Raises :class:`ApiError` when the service refuses the request outright
        (403, an ambiguous name: 409 with ``details["candidates"]``, an unreadable sentence: 400)
        and :class:`WaitTimeout` when it is not decided within ``timeout`` seconds."""
        body: JSON = {}
        if text is not None:
            body["text"] = text
        if triples is not None:
            body["triples"] = [_fact(t) for t in triples]
        if method is not None:
            body["method"] = method
        if dry_run:
            body["dry_run"] = True
        if not dry_run:
            # always keyed, so a request lost to a dropped connection can be sent again safely
            body["request_key"] = request_key if request_key is not None else uuid.uuid4().hex
        row = self._json("POST", "/api/edits", json=body)
        if dry_run or not wait:
            return row
        final = self.wait(int(row["id"]), timeout)
        if row.get("duplicate"):
            final["duplicate"] = True
        return final

    def status(self, edit_id: int) -> JSON:
        """The edit's ledger row: status, text, author, plan, model edit."""
        return self._json("GET", f"/api/edits/{int(edit_id)}")

    def wait(self, edit_id: int, timeout: float = 120.0) -> JSON:
        """Wait until the edit's status is final and return its row. Follows the edit's event
        stream; polls when the stream is not available."""
        deadline = time.monotonic() + timeout
        try:
            for status in self._stream_statuses(edit_id, deadline):
                if status in FINAL_STATUSES:
                    break
        except _StreamUnavailable:
            pass
        return self._poll(edit_id, deadline, timeout)

    def _poll(self, edit_id: int, deadline: float, timeout: float) -> JSON:
        delay = _POLL_FIRST
        while True:
            row = self.status(edit_id)
            if row.get("status") in FINAL_STATUSES:
                return row
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(edit_id, timeout, row)
            time.sleep(min(delay, left))
            delay = min(delay * 2, _POLL_MAX)

    def _stream_statuses(self, edit_id: int, deadline: float) -> Iterator[str]:
        """The statuses the edit's event stream reports, until it ends or ``deadline``. A silent
        stream is reopened (it starts with the status now, so nothing is missed). Raises
        :class:`_StreamUnavailable` when the stream cannot be used (then the caller polls)."""
        if connect_sse is None:
            raise _StreamUnavailable
        path = f"/api/edits/{int(edit_id)}/events"
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            timeout = httpx.Timeout(self.timeout, read=min(left, _STREAM_READ))
            try:
                with connect_sse(self._http, "GET", path, timeout=timeout) as source:
                    response = source.response
                    if response.status_code in (401, 403, 404):
                        response.read()
                        raise ApiError.from_response(response)
                    if not response.is_success:
                        raise _StreamUnavailable
                    for sse in source.iter_sse():
                        if sse.event == "shutdown":
                            raise _StreamUnavailable
                        if sse.event != "status":
                            continue
                        try:
                            status = sse.json().get("status")
                        except ValueError:
                            continue
                        yield status
                        if status in FINAL_STATUSES:
                            return
            except httpx.ReadTimeout:
                continue  # silent for a while: reopen (or stop at the deadline)
            except (httpx.TransportError, SSEError) as exc:
                raise _StreamUnavailable from exc
            # the stream ended without a final status: look by polling
            raise _StreamUnavailable

    def history(self, author: str | None = None, status: str | None = None, entity: str | None = None,
                limit: int = 50) -> list[JSON]:
        """Edits, newest first: your own (curators and admins: anyone's, or ``author``'s)."""
        return self._json("GET", "/api/edits", params={"author": author, "status": status, "entity": entity,
                                                       "limit": limit})["edits"]

    def rollback(self, edit_id: int, cascade: bool = False) -> JSON:
        """Undo an applied edit in the KG and the model: ``{"rolled_back": [ids], "details": [...]}``.
        Later edits that build on it: 409 (``details["dependents"]``) unless ``cascade``."""
        return self._json("POST", f"/api/edits/{int(edit_id)}/rollback", json={"cascade": bool(cascade)})

    # -- review (curators) ---------------------------------------------------------------------------------
    def review(self) -> list[JSON]:
        """Edits waiting for a curator, oldest first."""
        return self._json("GET", "/api/review")["edits"]

    def approve(self, edit_id: int, method: Method | None = None) -> JSON:
        """Approve an edit waiting for review: it is re-planned and applied (or refused)."""
        return self._json("POST", f"/api/review/{int(edit_id)}/approve", json={"method": method})

    def reject(self, edit_id: int, reason: str = "") -> JSON:
        """Reject an edit waiting for review; its row."""
        return self._json("POST", f"/api/review/{int(edit_id)}/reject", json={"reason": reason})

    def protect(self, subject: str, relation: str, object: str, *, reason: str = "", remove: bool = False) -> JSON:
        """Protect a fact (curators): edits that would retract it are refused. ``remove`` lifts it."""
        return self._json("POST", "/api/protect", json={"subject": subject, "relation": relation, "object": object,
                                                        "reason": reason, "remove": remove})

    def protected(self) -> list[JSON]:
        """The protected facts."""
        return self._json("GET", "/api/protect")["facts"]

    # -- the KG ----------------------------------------------------------------------------------------------
    def entity(self, name: str) -> JSON:
        """An entity (id, label or alias) with its facts, incoming facts and derived facts."""
        return self._json("GET", f"/api/kg/entities/{_segment(name)}")

    def neighbourhood(self, name: str, depth: int = 1) -> JSON:
        """Nodes and edges around an entity (``depth`` 1 or 2)."""
        return self._json("GET", f"/api/kg/entities/{_segment(name)}/neighbourhood", params={"depth": depth})

    def search(self, q: str, *, type: str | None = None, limit: int = 10) -> list[JSON]:
        """Entities by id, label or alias (then fuzzy), best first."""
        return self._json("GET", "/api/kg/search", params={"q": q, "type": type, "limit": limit})["results"]


class _StreamUnavailable(Exception):
    """The event stream cannot tell us more; poll instead."""


def _segment(name: str) -> str:
    if not name:
        raise ValueError("An entity name is needed.")
    return quote(name, safe="")


def _fact(t: Fact) -> JSON:
    if isinstance(t, Mapping):
        return {k: v for k, v in t.items() if v is not None or k == "object"}
    if isinstance(t, tuple) and len(t) == 3:
        return {"subject": t[0], "relation": t[1], "object": t[2]}
    raise TypeError(f"A fact is a mapping or a (subject, relation, object) tuple, not {t!r}.")
