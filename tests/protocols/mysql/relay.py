"""A TCP relay on loopback between real clients and a real server: every chunk, in order,
each way, with its time (``time.monotonic_ns()``); the server's greeting goes through
``edit_greeting`` first, as kpy's proxy does. One capture per connection."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from kpy_ci.protocols.mysql import edit_greeting


@dataclass
class Capture:
    chunks: list[tuple[str, bytes, int]] = field(default_factory=list)  # (side, data, at)

    def side(self, name: str) -> bytes:
        return b"".join(data for side, data, _ in self.chunks if side == name)


@dataclass
class Relay:
    port: int
    captures: list[Capture] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_closed(self, count: int, timeout: float = 10.0) -> list[Capture]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                done = [c for c in self.captures if getattr(c, "closed", False)]
                if len(done) >= count and len(done) == len(self.captures):
                    return list(self.captures)
            time.sleep(0.01)
        raise AssertionError(f"{count} connections did not close")


def _pipe(client: socket.socket, server: socket.socket, capture: Capture) -> None:
    greeting = b""
    greeted = False
    try:
        while True:
            ready, _, _ = select.select([client, server], [], [], 30)
            if not ready:
                break
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                at = time.monotonic_ns()
                if sock is server:
                    if not greeted:
                        greeting += data
                        edited = edit_greeting(greeting)
                        if edited is None:
                            continue
                        data, greeted = edited, True
                    capture.chunks.append(("server", data, at))
                    client.sendall(data)
                else:
                    capture.chunks.append(("client", data, at))
                    server.sendall(data)
    except OSError:
        pass
    finally:
        capture.closed = True  # type: ignore[attr-defined]
        for s in (client, server):
            with suppress(OSError):
                s.close()


@contextmanager
def relay(upstream_port: int) -> Iterator[Relay]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    state = Relay(listener.getsockname()[1])
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", upstream_port))
            capture = Capture()
            with state.lock:
                state.captures.append(capture)
            threading.Thread(target=_pipe, args=(client, server, capture), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        thread.join(5)
        listener.close()
