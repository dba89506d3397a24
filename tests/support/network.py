"""A TCP hop to PostgreSQL that the tests can cut (loopback only).

`Relay` can cut a connection right after a COMMIT; `SocketSet` and the address helpers let
a test put its own hop between the app and the database. Each socket is closed by its owner.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

Address = str | tuple[str, int]  # a Unix socket path, or (host, port)


def upstream_of(database_url: str) -> Address:
    """Where PostgreSQL listens for `database_url`: its Unix socket, or host and port."""
    parts = urlsplit(database_url)
    query = dict(parse_qsl(parts.query))
    host = query.get("host") or parts.hostname or "localhost"
    port = int(query.get("port") or parts.port or 5432)
    return f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)


def connect_upstream(address: Address) -> socket.socket:
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(address)
    else:
        sock = socket.create_connection(address, timeout=5)
    sock.settimeout(None)
    return sock


def url_through(database_url: str, port: int) -> str:
    """`database_url`, reached through a relay listening on 127.0.0.1:`port`."""
    parts = urlsplit(database_url)
    userinfo = parts.netloc.rpartition("@")[0]
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("host", "port")]
    query.append(("sslmode", "disable"))
    netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))


class SocketSet:
    """The sockets a relay has open, to be closed all at once (the connections drop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()

    def add(self, *socks: socket.socket) -> None:
        with self._lock:
            self._open.update(socks)

    def close_all(self) -> None:
        with self._lock:
            socks, self._open = self._open, set()
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class Relay:
    """Forwards 127.0.0.1:<port> to PostgreSQL; `cut_after_commit()` arms a one-shot cut.

    When armed, the first chunk from the service that carries a COMMIT is forwarded and
    the server's side is half-closed after it: PostgreSQL runs the COMMIT, answers (the
    answer is dropped here) and hangs up, and only then is the service's side closed.
    The commit happened; the service cannot know.
    """

    def __init__(self, database_url: str) -> None:
        self._upstream_address = upstream_of(database_url)
        self._database_url = database_url
        self._armed = threading.Event()
        self.cuts = 0
        self._sockets = SocketSet()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = int(self._listener.getsockname()[1])
        self._open = True
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return url_through(self._database_url, self.port)

    def cut_after_commit(self) -> None:
        self._armed.set()

    def _upstream(self) -> socket.socket:
        return connect_upstream(self._upstream_address)

    def _accept(self) -> None:
        while self._open:
            try:
                app, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            app.settimeout(None)
            try:
                server = self._upstream()
            except OSError:
                app.close()
                continue
            self._sockets.add(app, server)
            cut = threading.Event()
            threading.Thread(target=self._to_server, args=(app, server, cut), daemon=True).start()
            threading.Thread(target=self._to_app, args=(server, app, cut), daemon=True).start()

    def _to_server(self, app: socket.socket, server: socket.socket, cut: threading.Event) -> None:
        try:
            while data := app.recv(65536):
                server.sendall(data)
                if b"COMMIT" in data and self._armed.is_set():
                    self._armed.clear()
                    self.cuts += 1
                    cut.set()  # from now on nothing goes back to the service
                    server.shutdown(socket.SHUT_WR)  # PostgreSQL still reads the COMMIT
                    return
        except OSError:
            pass
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_WR)

    def _to_app(self, server: socket.socket, app: socket.socket, cut: threading.Event) -> None:
        try:
            while data := server.recv(65536):
                if not cut.is_set():
                    app.sendall(data)
        except OSError:
            pass
        for sock in (app, server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._open = False
        self._listener.close()
        self._sockets.close_all()


@contextlib.contextmanager
def relay_to(database_url: str) -> Iterator[Relay]:
    relay = Relay(database_url)
    try:
        yield relay
    finally:
        relay.close()


def send_and_hang_up(
    port: int, path: str, body: bytes, headers: dict[str, str]
) -> Callable[[], None]:
    """Send a whole HTTP POST on a raw socket; return the hang-up, which reads nothing."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{head}\r\n"
    ).encode() + body
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(request)

    def hang_up() -> None:
        sock.close()

    return hang_up
