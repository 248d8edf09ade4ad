"""A capturing TCP relay for protocol tests: clients connect to it, it connects to the real
server, and it keeps every chunk of both directions in arrival order, so a protocol test
can feed a recorder the very bytes a real client and server exchanged, chunked as they came.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType


@dataclass
class Connection:
    chunks: list[tuple[str, bytes, int]] = field(default_factory=list)
    """("client" | "server", data, time.monotonic_ns()) in arrival order."""

    def side(self, name: str) -> bytes:
        return b"".join(data for who, data, _ in self.chunks if who == name)


class CaptureRelay:
    """``with CaptureRelay(upstream_port) as relay:`` point clients at ``relay.port``;
    ``relay.connections`` holds what each connection carried."""

    def __init__(
        self,
        upstream_port: int,
        upstream_host: str = "127.0.0.1",
        edit_greeting: Callable[[bytes], bytes | None] | None = None,
    ) -> None:
        """``edit_greeting``: what kpy's proxy relays of a server's greeting (a protocol
        plug-in's ``edit_greeting``), applied here the same way."""
        self.upstream = (upstream_host, upstream_port)
        self.edit_greeting = edit_greeting
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = int(self.listener.getsockname()[1])
        self.connections: list[Connection] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> CaptureRelay:
        self._accepter.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self.listener.close()
        for thread in [self._accepter, *self._threads]:
            thread.join(10)

    def wait_closed(self, timeout: float = 30.0) -> None:
        """Until every connection has been closed on both sides and all of it was read."""
        deadline = time.monotonic() + timeout
        while any(t.is_alive() for t in self._threads):
            if time.monotonic() > deadline:
                raise AssertionError("connections through the relay stay open")
            time.sleep(0.01)

    def _accept(self) -> None:
        self.listener.settimeout(0.05)
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            conn = Connection()
            self.connections.append(conn)
            server = socket.create_connection(self.upstream)
            thread = threading.Thread(target=self._pump, args=(client, server, conn), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _pump(self, client: socket.socket, server: socket.socket, conn: Connection) -> None:
        peers = {client: (server, "client"), server: (client, "server")}
        greeting = b"" if self.edit_greeting is not None else None
        with selectors.DefaultSelector() as sel:
            for s in peers:
                sel.register(s, selectors.EVENT_READ)
            open_sides = 2
            while open_sides and not self._stop.is_set():
                for key, _ in sel.select(0.05):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    other, who = peers[sock]
                    data = sock.recv(65536)
                    if not data:
                        sel.unregister(sock)
                        open_sides -= 1
                        with contextlib.suppress(OSError):
                            other.shutdown(socket.SHUT_WR)
                        continue
                    if who == "server" and greeting is not None and self.edit_greeting:
                        greeting += data
                        if (edited := self.edit_greeting(greeting)) is None:
                            continue  # not whole yet
                        data, greeting = edited, None
                    elif who == "client":
                        greeting = None  # the client spoke first: nothing to edit
                    conn.chunks.append((who, data, time.monotonic_ns()))
                    other.sendall(data)
        client.close()
        server.close()
