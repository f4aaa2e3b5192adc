"""Options shared by every command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

WorkspaceOpt = Annotated[Optional[Path], typer.Option(
    "--workspace", "-w", help="Workspace directory (default: $ONEEDIT_HOME, else ./.oneedit).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
