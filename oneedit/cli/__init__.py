"""The ``oneedit`` command line (typer). Heavy modules load inside commands, so help is instant."""

from oneedit.cli.app import app, main

__all__ = ["app", "main"]
