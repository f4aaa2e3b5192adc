"""CLI output: rich tables for people, ``--json`` for scripts, and errors a person can act on."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console


def console() -> Console:
    return Console()


def err_console() -> Console:
    return Console(stderr=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def handle_errors(fn: Callable) -> Callable:
    """Turn ``OneEditError`` into a message (or a JSON error object) and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from oneedit.core import OneEditError

        try:
            return fn(*args, **kwargs)
        except OneEditError as exc:
            if kwargs.get("as_json"):
                print_json(exc.to_dict())
            else:
                c = err_console()
                c.print(f"[bold red]Error:[/] {exc.message}", highlight=False, markup=True)
                if exc.hint:
                    c.print(f"[yellow]Hint:[/] {exc.hint}", highlight=False)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


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

    def stop(self) -> None:
        """End the spinner early (before a prompt or a progress bar takes the terminal)."""
        if self._status is not None:
            self._status.__exit__(None, None, None)
            self._status = None

    def __exit__(self, *exc) -> None:
        if self._status is not None:
            self._status.__exit__(*exc)
