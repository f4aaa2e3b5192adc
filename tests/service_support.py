"""Helpers for tests that run the HTTP service: a workspace of the shipped KG and its users."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

from controller.users import UserStore
from oneedit.workspace import Workspace


def new_workspace(root: Path) -> Path:
    """A workspace over the shipped world KG, without a model."""
    ws, _created = Workspace.init(root)
    ws.close()
    return root


def add_users(root: Path, users: dict[str, str], *, low_trust: tuple[str, ...] = ()) -> dict[str, str]:
    """Create ``{name: role}`` users; their API tokens. Users in ``low_trust`` start below the
    review threshold, so their edits wait for a curator."""
    tokens = {}
    with UserStore(root / "ledger.sqlite") as store:
        for name, role in users.items():
            _user, tokens[name] = store.add(name, role)
        for name in low_trust:
            while not store.needs_review(store.get(name)):
                store.adjust_trust(name, "rolled_back")
    return tokens


def serve_users(root: Path, users: dict[str, str], *, low_trust: tuple[str, ...] = ()) -> Iterator[SimpleNamespace]:
    """A server on a fresh no-model workspace at ``root`` and one ``Client`` per user, as
    attributes (``svc.alice``), with ``url``, ``tokens`` and ``server`` (for a module fixture)."""
    from oneedit.client import Client
    from oneedit.service.server import ServerThread

    new_workspace(root)
    tokens = add_users(root, users, low_trust=low_trust)
    with ServerThread(root, port=0, load_model=False) as srv:
        clients = {name: Client(srv.url, token) for name, token in tokens.items()}
        try:
            yield SimpleNamespace(url=srv.url, tokens=tokens, server=srv, **clients)
        finally:
            for c in clients.values():
                c.close()


def serve_process(ws: Path, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """``oneedit serve`` (no model, no batching window) on ``ws`` in a child process; its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "oneedit", "serve", "--port", "0", "--json", "--no-model",
                             "--batch-window", "0", "-w", str(ws)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})})
    line = proc.stdout.readline()
    try:
        return proc, json.loads(line)["url"]
    except (ValueError, KeyError):
        proc.kill()
        raise AssertionError(f"oneedit serve did not start: {line!r} {proc.stderr.read()}") from None
