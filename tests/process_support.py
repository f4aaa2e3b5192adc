"""The CLI in a child process, optionally killed (SIGKILL) at a crash point
(``oneedit.core.faults.fault``, named by ``$ONEEDIT_CRASH_AT``)."""

from __future__ import annotations

import os
import subprocess
import sys


def cli(ws, *args: str, crash: str | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """``oneedit ARGS --workspace WS --json`` in a child process; ``crash``: the stage it dies at."""
    env = dict(os.environ)
    env.pop("ONEEDIT_CRASH_AT", None)
    if crash:
        env["ONEEDIT_CRASH_AT"] = crash
    return subprocess.run([sys.executable, "-m", "oneedit", *args, "--workspace", str(ws), "--json"],
                          capture_output=True, text=True, env=env, timeout=timeout)
