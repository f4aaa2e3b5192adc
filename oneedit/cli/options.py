"""Options shared by every command."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

WorkspaceOpt = Annotated[Optional[Path], typer.Option(
    "--workspace", "-w", help="Workspace directory (default: $ONEEDIT_HOME, else ./.oneedit).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def store_config(store: str, uri: str | None, user: str, password_env: str | None, database: str | None):
    """The workspace's store settings from the command line (None: the default embedded store)."""
    from oneedit.config import StoreConfig
    from oneedit.core import OneEditError

    if store == "embedded":
        if uri or password_env or database:
            raise OneEditError("--uri, --password-env and --database are for --store neo4j.")
        return None
    if store != "neo4j":
        raise OneEditError(f"Unknown store {store!r}.", hint="Use --store embedded or --store neo4j.")
    if not uri:
        raise OneEditError("--store neo4j needs --uri (e.g. bolt://localhost:7687).")
    if password_env and password_env not in os.environ:
        raise OneEditError(f"${password_env} is not set.", hint=f"export {password_env}=… and run the command again.")
    options = {"uri": uri, "user": user}
    if password_env:
        options["password_env"] = password_env
    if database:
        options["database"] = database
    return StoreConfig("neo4j", options)
