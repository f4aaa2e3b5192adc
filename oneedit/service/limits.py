"""Limits the service puts on what one client may send: request body size and questions per minute."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque


class RateWindow:
    """At most ``limit`` units per ``seconds`` for each key, over a sliding window (0: unlimited)."""

    def __init__(self, limit: int, seconds: float):
        self.limit = limit
        self.seconds = seconds
        self._seen: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def take(self, key: str, n: int = 1) -> float:
        """Count ``n`` units for ``key``; returns 0 when allowed, else the seconds until they would be."""
        if self.limit <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            seen = self._seen[key]
            while seen and seen[0] <= now - self.seconds:
                seen.popleft()
            if len(seen) + n > self.limit:
                return max(1.0, seen[0] + self.seconds - now) if seen else self.seconds
            seen.extend([now] * n)
            return 0.0


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is answered 413 before the app (and
    its authentication) sees it — by its Content-Length when it declares one, else as it streams."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.limit <= 0:
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.limit
            except ValueError:
                return await self._refuse(send, 400, "BadRequest", "The Content-Length header is not a number.")
            if too_big:
                return await self._refuse(send, 413, "PayloadTooLarge", self._message(int(declared)))
        seen = 0
        refused = False
        started = False

        async def counted():
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    if not started:
                        await self._refuse(send, 413, "PayloadTooLarge", self._message(seen))
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message):
            nonlocal started
            if refused:
                return  # the 413 went out already
            started = True
            await send(message)

        await self.app(scope, counted, guarded)

    def _message(self, size: int) -> str:
        return f"The request body is {size:,} bytes or more; at most {self.limit:,} are accepted."

    @staticmethod
    async def _refuse(send, status: int, error: str, message: str) -> None:
        body = json.dumps({"error": error, "message": message,
                           "hint": "Send less per request (e.g. split a batch of triples)."}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
