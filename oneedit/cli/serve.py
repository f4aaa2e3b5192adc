"""``oneedit serve``: the multi-user HTTP API and chat page."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from oneedit.cli.options import JsonOpt, WorkspaceOpt
from oneedit.cli.output import console, err_console


def serve_command(
    host: Annotated[Optional[str], typer.Option("--host", help="Address to listen on (default 127.0.0.1).")] = None,
    port: Annotated[Optional[int], typer.Option("--port", "-p", help="Port (default 8000; 0 picks a free one).")] = None,
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help="Allow a non-loopback --host (prints a warning).")] = False,
    batch_window: Annotated[Optional[float], typer.Option("--batch-window", help="Seconds to gather edits into one MEMIT batch.")] = None,
    max_batch: Annotated[Optional[int], typer.Option("--max-batch", help="Most edits in one MEMIT batch.")] = None,
    no_model: Annotated[bool, typer.Option("--no-model", help="Serve the KG only: edits change the KG, not a model.")] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level (warning, info, debug).")] = "warning",
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs) and the chat page at / for many users.

    Every request needs a bearer token (`oneedit users add NAME --role ROLE`). Edits from all users
    go through one queue; MEMIT edits that arrive close together are written as one batch.
    Ctrl-C (or SIGTERM) finishes the batch in flight; queued edits resume at the next start.
    """
    from oneedit.service.server import bind_socket, check_bind, make_server, url_of
    from oneedit.system import OneEdit
    from oneedit.workspace import Workspace

    ws = Workspace.open(workspace)
    cfg = ws.config.service
    ws.close()
    host = host or cfg.host
    port = cfg.port if port is None else port
    warning = check_bind(host, allow_remote)
    if warning:
        err_console().print(f"[bold yellow]Warning:[/] {warning}")
    sock = bind_socket(host, port)
    oe = OneEdit.open(workspace, load_model=not no_model)
    try:
        server, service = make_server(oe, sock, window=batch_window, max_batch=max_batch, log_level=log_level)
        url = url_of(sock)
        # readers on this machine (`oneedit history`, `oneedit ask`) are answered through the server
        oe.ws.lock.announce(url=url, token=oe.users.local_token(), command="oneedit serve")
        info = {"url": url, "workspace": str(oe.ws.root), "docs": f"{url}/docs", "page": f"{url}/",
                "model": oe.has_model(), "batch_window_s": service.worker.window, "max_batch": service.worker.max_batch,
                "queued": oe.ledger.count("queued")}
        if as_json:
            _line({"event": "listening"} | info)
        else:
            c = console()
            c.print(f"[bold green]OneEdit serving[/] {oe.ws.root} at [link={url}]{url}[/link]")
            c.print(f"  chat page {url}/   ·   API docs {url}/docs   ·   "
                    f"MEMIT batches: {service.worker.window:g} s window, up to {service.worker.max_batch} edits")
            if info["queued"]:
                c.print(f"  resuming {info['queued']} queued edit(s) from the last run")
            c.print("  Ctrl-C stops after the batch in flight.")
        server.run(sockets=[sock])
        stats = service.worker.stats.to_dict() | {"queued_left": oe.ledger.count("queued")}
        if as_json:
            _line({"event": "stopped"} | stats)
        else:
            console().print(f"Stopped. {stats['applied']} edit(s) applied in {stats['memit_batches']} MEMIT "
                            f"batch(es) (average {stats['avg_batch_size']}); {stats['queued_left']} left queued.")
    finally:
        sock.close()
        oe.close()


def _line(data: dict) -> None:
    """``--json``: one JSON object per line (listening, stopped), flushed for the reading process."""
    import json

    print(json.dumps(data), flush=True)
