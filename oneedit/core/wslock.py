"""One writer per workspace: an advisory lock file held by the process that changes it.

Every command that changes a workspace (edits, imports, rollbacks, ``kg`` changes, the server)
holds :class:`WriterLock` for as long as it runs; a second writer is refused with the holder named
(its command, process id, start time and, for ``oneedit serve``, its address). Only the holder runs
crash recovery, so no process can undo another one's edits in flight. Commands that only read do
not take it: they recover only when no writer holds it.

The lock is an OS file lock (``flock``, through the ``filelock`` package), so it is released when
its process ends in any way — SIGKILL included — and a stale lock never needs removing by hand.
Beside it, ``writer.json`` says who holds it (read only when the lock is found held).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from filelock import FileLock, Timeout

from oneedit.core.errors import WorkspaceError

LOCK_FILE = "writer.lock"
INFO_FILE = "writer.json"


class WorkspaceBusy(WorkspaceError):
    """Another process is changing the workspace."""


def describe(holder: dict | None) -> str:
    if not holder:
        return "another process"
    what = f"`{holder.get('command') or 'oneedit'}` (PID {holder.get('pid', '?')}"
    if holder.get("host") and holder["host"] != socket.gethostname():
        what += f" on {holder['host']}"
    if holder.get("since"):
        what += ", since " + time.strftime("%H:%M:%S", time.localtime(holder["since"]))
    return what + ")"


class WriterLock:
    """The workspace's writer lock. Within one process it is shared and counted (every workspace
    object on the same folder holds the one lock): the process is the writer, not the object."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._path = str((self.root / LOCK_FILE).resolve())
        self._lock = FileLock(self._path, timeout=0, thread_local=False, is_singleton=True)
        self.held = False

    def holder(self) -> dict | None:
        """Who holds the lock, as they wrote it (None when nobody does; this process when it does)."""
        if self._lock.is_locked:
            return self._info()
        try:
            self._lock.acquire()
        except Timeout:
            return self._info() or {}
        except OSError:
            return None
        self._lock.release()
        return None

    def _info(self) -> dict | None:
        try:
            return json.loads((self.root / INFO_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def try_acquire(self, command: str | None = None) -> bool:
        """Hold the lock if no other process does (a folder this process cannot write: False)."""
        if self.held:
            return True
        first = not self._lock.is_locked
        try:
            self._lock.acquire()
        except (Timeout, OSError):
            return False
        self.held = True
        if first:
            self.announce(command=command or " ".join(["oneedit", *sys.argv[1:3]]).strip())
        return True

    def acquire(self, command: str | None = None) -> None:
        """Hold the lock, or raise :class:`WorkspaceBusy` naming the holder."""
        if self.try_acquire(command):
            return
        holder = self.holder()
        if holder is None:  # free, so the folder is what refused
            raise WorkspaceError(f"Cannot lock the workspace {self.root} for writing (is it read-only?).",
                                 hint="Check the folder's permissions; reading commands still work.")
        hint = "Wait for it to finish, or stop it."
        if holder.get("url"):
            hint = (f"It is the server at {holder['url']}: send edits to its API (see {holder['url']}/docs), "
                    "or stop it first.")
        raise WorkspaceBusy(f"The workspace {self.root} is being changed by {describe(holder)}; one process "
                            "at a time may change a workspace.", hint=hint, details={"holder": holder})

    def announce(self, **info) -> None:
        """Add to what ``writer.json`` says about the holder (e.g. the server's address)."""
        if not self.held:
            return
        now = self._info() if info.keys() - {"command"} else None
        data = (now or {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}) | info
        tmp = self.root / f".{INFO_FILE}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, self.root / INFO_FILE)

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        if self._lock.lock_counter == 1:  # the last holder in this process
            try:
                (self.root / INFO_FILE).unlink(missing_ok=True)
            except OSError:
                pass
        self._lock.release()
