"""What a recording collects, off the event loop.

The proxy only copies each chunk it relays into a queue (``Tap``); a worker thread feeds the
chunks to each connection's protocol recorder, checks that every reply re-encodes to the
bytes the server sent, and keeps the exchanges in order. A connection whose bytes stop
making sense to its protocol goes on as generic TCP from there, with a warning: nothing is
dropped silently.
"""

from __future__ import annotations

import collections
import os
import pickle
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from kpy_ci.ebpf.maps import Address
from kpy_ci.protocols import generic
from kpy_ci.protocols.base import Exchange, Protocol, Recorder, text_or_base64

Side = Literal["client", "server", "close"]
Direction = Literal["inbound", "outbound"]


@dataclass(frozen=True)
class Recorded:
    """An exchange with where it happened."""

    exchange: Exchange
    direction: Direction
    connection: int
    order: int  # its place among the exchanges of its connection
    destination: Address


@dataclass
class _Connection:
    id: int
    protocol: Protocol
    direction: Direction
    destination: Address
    recorder: Recorder
    count: int = 0


@dataclass
class Recording:
    """Collects exchanges from every connection of a recording, in a worker thread.

    Memory stays flat however long it records: outbound exchanges (the many) are spooled
    to an unlinked temporary file as they complete, and only their start times stay in
    memory (to attribute them to tests); inbound ones (test cases) are kept."""

    started: int = field(default_factory=time.monotonic_ns)
    inbound: list[Recorded] = field(default_factory=list)
    outbound_started: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._spool = tempfile.TemporaryFile(prefix="kpy-outbound-")  # noqa: SIM115  (closed by close())
        self._queue = Chunks()
        self._connections: dict[int, _Connection] = {}
        self._next_id = 0
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._work, name="kpy-recorder", daemon=True)
        self._worker.start()

    def open(self, protocol: Protocol, direction: Direction, destination: Address) -> Tap:
        with self._lock:
            self._next_id += 1
            conn = _Connection(self._next_id, protocol, direction, destination, protocol.recorder())
            self._connections[conn.id] = conn
        return Tap(conn.id, self._queue)

    def add(self, exchange: Exchange, destination: Address) -> None:
        """An exchange that is a connection of its own (a DNS query and its answer)."""
        with self._lock:
            self._next_id += 1
            connection = self._next_id
        self._store(Recorded(exchange, "outbound", connection, 1, destination))

    def warn(self, message: str) -> None:
        """Kept for the test-set and said at the end, once."""
        with self._lock:
            self.warnings.append(message)

    def finish(self, timeout: float = 60.0) -> None:
        """Let the worker drain what was queued."""
        self._queue.put(None)
        self._worker.join(timeout)

    def outbound(self) -> Iterator[Recorded]:
        """The outbound exchanges, in the order they completed, read back from the spool
        one at a time (through a file description of its own, so its offset is ours)."""
        with self._lock:
            self._spool.flush()
        with open(f"/proc/self/fd/{self._spool.fileno()}", "rb") as spool:
            while True:
                try:
                    yield pickle.load(spool)
                except EOFError:
                    return

    def close(self) -> None:
        self._spool.close()

    def _store(self, recorded: Recorded) -> None:
        with self._lock:
            if recorded.direction == "inbound":
                self.inbound.append(recorded)
            else:
                self._spool.seek(0, os.SEEK_END)
                pickle.dump(recorded, self._spool, protocol=pickle.HIGHEST_PROTOCOL)
                self.outbound_started.append(recorded.exchange.started)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            conn_id, side, data, at = item
            conn = self._connections[conn_id]
            try:
                exchanges = _feed(conn.recorder, side, data, at)
            except Exception as e:  # a ProtocolError, or a bug: either way, keep recording
                self.warn(
                    f"connection {conn_id} to {conn.destination}: not {conn.protocol.name} "
                    f"any more ({e!r}); recording the rest as generic TCP"
                )
                for exchange in getattr(e, "exchanges", []):
                    self._keep(conn, exchange)
                conn.protocol, conn.recorder = generic.PROTOCOL, generic.GenericRecorder()
                exchanges = _feed(conn.recorder, side, data, at)
            for exchange in exchanges:
                self._keep(conn, exchange)

    def _keep(self, conn: _Connection, exchange: Exchange) -> None:
        raw = exchange.raw_response
        if raw and conn.protocol.encode_response(exchange.response) != raw:
            # a gap in kpy's decoding must not change what replay serves: keep the bytes
            exchange.response["raw"] = text_or_base64(raw)
            self.warn(
                f"connection {conn.id} to {conn.destination}: a {conn.protocol.name} reply "
                "did not re-encode to the bytes the server sent; kept the bytes as 'raw'"
            )
        conn.count += 1
        self._store(Recorded(exchange, conn.direction, conn.id, conn.count, conn.destination))


def _feed(recorder: Recorder, side: Side, data: bytes, at: int) -> list[Exchange]:
    if side == "client":
        return recorder.client_data(data, at)
    if side == "server":
        return recorder.server_data(data, at)
    return recorder.close(at)


@dataclass(frozen=True)
class Tap:
    """The proxy's handle on one connection: cheap calls, safe from the event loop."""

    id: int
    _queue: Chunks

    def client(self, data: bytes) -> None:
        self._queue.put((self.id, "client", data, time.monotonic_ns()))

    def server(self, data: bytes) -> None:
        self._queue.put((self.id, "server", data, time.monotonic_ns()))

    def close(self) -> None:
        self._queue.put((self.id, "close", b"", time.monotonic_ns()))


Item = tuple[int, Side, bytes, int] | None


class Chunks:
    """Chunks on their way from the proxy to the recorder thread, bounded in bytes: should
    the recorder fall this far behind, the proxy waits for it (backpressure on the
    service's connections) rather than pile up copies without limit."""

    LIMIT = 64 * 1024 * 1024

    def __init__(self) -> None:
        self._items: collections.deque[Item] = collections.deque()
        self._bytes = 0
        self._ready = threading.Condition()

    def put(self, item: Item) -> None:
        size = len(item[2]) if item is not None else 0
        with self._ready:
            while self._bytes > self.LIMIT:
                self._ready.wait()
            self._items.append(item)
            self._bytes += size
            self._ready.notify_all()

    def get(self) -> Item:
        with self._ready:
            while not self._items:
                self._ready.wait()
            item = self._items.popleft()
            self._bytes -= len(item[2]) if item is not None else 0
            self._ready.notify_all()
            return item
