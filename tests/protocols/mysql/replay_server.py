"""Replay on a real loopback socket: the recorded exchanges as mocks (tests/protocols/
recorded_mocks.py) and a threaded TCP server that runs one MysqlMockServer per connection.
No MariaDB involved."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from kpy_ci.protocols.mysql import MysqlMockServer
from tests.protocols.recorded_mocks import RecordedMocks


def _serve(conn: socket.socket, source: RecordedMocks) -> None:
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
def mock_server(source: RecordedMocks) -> Iterator[int]:
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
