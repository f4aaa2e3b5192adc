"""CLI output: rich tables for people, ``--json`` for scripts, and errors a person can act on."""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import sys
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console


def console() -> Console:
    return Console()


def err_console() -> Console:
    return Console(stderr=True)


_SURROGATE = re.compile("[\ud800-\udfff]")


def json_text(data: Any, *, indent: int | None = 2) -> str:
    """``data`` as JSON text that is valid UTF-8: bytes that came in undecodable (read with
    ``surrogateescape``, e.g. a bad line on stdin) are shown as U+FFFD, not written back raw."""
    return _SURROGATE.sub("\ufffd", json.dumps(data, indent=indent, ensure_ascii=False, default=str))


def print_json(data: Any) -> None:
    sys.stdout.write(json_text(data) + "\n")


def handle_errors(fn: Callable) -> Callable:
    """Turn ``OneEditError`` into a message (or a JSON error object) and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from oneedit.core import OneEditError

        try:
            try:
                return fn(*args, **kwargs)
            except (sqlite3.OperationalError, OSError) as exc:
                raise environment_error(exc) from None
        except OneEditError as exc:
            from rich.markup import escape

            if kwargs.get("as_json"):
                print_json(exc.to_dict())
            else:
                c = err_console()
                c.print(f"[bold red]Error:[/] {escape(exc.message)}", highlight=False, markup=True)
                if exc.hint:
                    c.print(f"[yellow]Hint:[/] {escape(exc.hint)}", highlight=False)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def environment_error(exc: Exception):
    """A :class:`OneEditError` for what the machine refused (read-only files, a full disk, a
    locked database), instead of a traceback."""
    import errno

    from oneedit.core import OneEditError

    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError):
        if "readonly" in text or "read-only" in text:
            return OneEditError("The workspace is read-only: its database cannot be written.",
                                hint="Run as a user who may write the workspace folder, or copy it somewhere writable.")
        if "locked" in text:
            return OneEditError("The workspace's database is busy (locked by another process).",
                                hint="Try again in a moment; stop the other OneEdit process if it persists.")
        return OneEditError(f"The workspace's database failed: {text}.", hint="Check the workspace folder.")
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    why = {errno.EACCES: "permission denied", errno.EPERM: "permission denied", errno.EROFS: "the file system is read-only",
           errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up"}.get(
               getattr(exc, "errno", None), getattr(exc, "strerror", None) or text)
    return OneEditError(f"The system refused{where}: {why}.",
                        hint="Check the path, its permissions and the free disk space, then run it again.")


class Steps:
    """A spinner with the current step, for work that takes more than a second."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._status = None

    def __enter__(self) -> Steps:
        if self.enabled:
            self._status = err_console().status("Starting…")
            self._status.__enter__()
        return self

    def __call__(self, message: str) -> None:
        if self._status is not None:
            self._status.update(message)

    def pause(self) -> None:
        """Hide the spinner while another live display (a progress bar) runs; :meth:`resume` brings it back."""
        if self._status is not None:
            self._status.stop()

    def resume(self) -> None:
        if self._status is not None:
            self._status.start()

    def stop(self) -> None:
        """End the spinner early (before a prompt or a progress bar takes the terminal)."""
        if self._status is not None:
            self._status.__exit__(None, None, None)
            self._status = None

    def __exit__(self, *exc) -> None:
        if self._status is not None:
            self._status.__exit__(*exc)
