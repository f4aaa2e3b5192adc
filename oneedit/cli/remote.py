"""Reading commands answered by the workspace's running server.

While ``oneedit serve`` runs, it is the workspace's one writer, and an embedded KG admits one
process. ``oneedit history`` and ``oneedit ask`` then ask the server (over loopback, with the
local token it leaves in the workspace's ``writer.json``) instead of opening the workspace, so
they keep working — and see the same KG and model the server is changing.
"""

from __future__ import annotations

from pathlib import Path


def served(workspace: Path | None):
    """A client of the server holding ``workspace``, or None when no server holds it."""
    from oneedit.config import CONFIG_FILE, default_workspace
    from oneedit.core.wslock import WriterLock

    root = Path(workspace).expanduser() if workspace else default_workspace()
    if not (root / CONFIG_FILE).is_file():
        return None
    holder = WriterLock(root).holder()
    if not holder or not holder.get("url") or not holder.get("token"):
        return None
    from oneedit.client import Client

    return Client(holder["url"], holder["token"])
