"""Running the service: bind checks, uvicorn, graceful shutdown.

:func:`serve` runs in the foreground (``oneedit serve``); :class:`ServerThread` runs the same
server on a background thread (tests, benchmarks, notebooks) and stops it the same way: the worker
finishes the batch in flight and leaves what is still queued for the next start.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from pathlib import Path

from oneedit.core import OneEditError


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, allow_remote: bool) -> str | None:
    """Refuse a non-loopback address unless allowed; the warning to print when allowed."""
    if is_loopback(host):
        return None
    if not allow_remote:
        raise OneEditError(
            f"Refusing to listen on {host}: only loopback addresses (127.0.0.1, ::1, localhost) are served "
            "by default, because anyone who can reach the port can try tokens.",
            hint="Pass --allow-remote to serve other machines, and put a TLS proxy in front: tokens travel "
                 "in the Authorization header.")
    return (f"Listening on {host}, reachable from other machines. Tokens are sent in clear text unless a "
            "TLS proxy is in front of this port.")


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OneEditError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.",
                           hint="Is another `oneedit serve` running? Pick another --port, or 0 for any free one.") from None
    sock.listen(128)
    return sock


def _server_class():
    import signal

    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, but a SIGTERM/SIGINT that it shut down gracefully for is not raised
        again afterwards: the command finishes its own shutdown (closing the KG, printing the
        summary) and exits 0. A second Ctrl-C still forces the exit."""

        def handle_exit(self, sig, frame) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                self.should_exit = True

    return Server


def make_server(system, sock: socket.socket, *, window=None, max_batch=None, probe=None, log_level="warning"):
    import uvicorn

    from oneedit.service.app import Service, create_app

    service = Service(system, window=window, max_batch=max_batch, probe=probe)
    app = create_app(service)
    config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=3, lifespan="on",
                            timeout_keep_alive=30,  # clients wait on edits between requests
                            access_log=log_level in ("info", "debug"))
    return _server_class()(config), service


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class ServerThread:
    """The service on a background thread: ``with ServerThread(root) as srv: srv.url``."""

    def __init__(self, root: str | Path, *, host: str = "127.0.0.1", port: int = 0, window=None, max_batch=None,
                 probe=None, system=None, **open_kw):
        from oneedit.system import OneEdit

        self.own_system = system is None
        self.system = system or OneEdit.open(root, **open_kw)
        self.sock = bind_socket(host, port)
        self.url = url_of(self.sock)
        self.server, self.service = make_server(self.system, self.sock, window=window, max_batch=max_batch,
                                                probe=probe)
        self.system.ws.lock.announce(url=self.url, token=self.system.users.local_token(), command="oneedit serve")
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                        name="oneedit-http", daemon=True)

    def start(self, timeout: float = 60.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OneEditError("The OneEdit service did not start.")
            time.sleep(0.02)
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until the worker has loaded the model."""
        deadline = time.monotonic() + timeout
        while self.service.model_state == "loading" and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self, timeout: float = 120.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)
        self.sock.close()
        if self.own_system:
            self.system.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
