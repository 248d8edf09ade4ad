"""Replay on a real loopback socket: a MockSource over recorded exchanges (keyed by the
plug-in's MATCHER, as the store keys them) and a threaded TCP server that runs one
MysqlMockServer per connection. No MariaDB involved."""

from __future__ import annotations

import socket
import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager

from kpy_ci.protocols.base import Doc, Exchange
from kpy_ci.protocols.mysql import MATCHER, MysqlMockServer


class Source:
    """Each mock served once, in the order recorded; reusable ones without limit."""

    def __init__(self, exchanges: list[Exchange]) -> None:
        self.by_key: dict[Hashable, list[Doc]] = {}
        self.used: set[int] = set()
        self.misses: list[Doc] = []
        self.lock = threading.Lock()
        for n, e in enumerate(exchanges):
            mock: Doc = {"name": n, "reusable": e.reusable or MATCHER.setup(e.request)}
            mock |= {"request": e.request, "response": e.response}
            for key in [MATCHER.key(e.request), *MATCHER.partials(e.request)]:
                self.by_key.setdefault(key, []).append(mock)

    def serve(self, request: Doc, *, optional: bool = False) -> Doc | None:
        with self.lock:
            for mock in self.by_key.get(MATCHER.key(request), []):
                if mock["reusable"] or mock["name"] not in self.used:
                    self.used.add(mock["name"])
                    return mock
            if not optional:
                self.misses.append(request)
            return None

    def next_on_connection(self, mock: Doc) -> Doc | None:
        return None

    def miss(self, request: Doc) -> None:
        with self.lock:
            self.misses.append(request)


def _serve(conn: socket.socket, source: Source) -> None:
    server = MysqlMockServer(source)
    with conn:
        conn.sendall(server.opening())
        while not server.closed:
            data = conn.recv(65536)
            if not data:
                return
            answer = server.client_data(data)
            if answer:
                conn.sendall(answer)


@contextmanager
def mock_server(source: Source) -> Iterator[int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=_serve, args=(conn, source), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()
