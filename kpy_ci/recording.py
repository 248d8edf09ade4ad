"""What a recording collects: the proxy captures chunks while the service runs; at the
end they are decoded by each connection's protocol recorder, every reply is checked to
re-encode to the bytes the server sent, and the exchanges are kept in order. A connection
whose bytes stop making sense to its protocol goes on as generic TCP from there, with a
warning: nothing is dropped silently.
"""

from __future__ import annotations

import pickle
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from kpy_ci.address import Address
from kpy_ci.protocols import generic
from kpy_ci.protocols.base import Doc, Exchange, Protocol, Recorder, text_or_base64
from kpy_ci.proxy.interfaces import Direction

Side = Literal["client", "server", "close"]


@dataclass(frozen=True)
class Recorded:
    """An exchange with where it happened."""

    exchange: Exchange
    direction: Direction
    connection: int
    order: int  # its place among the exchanges of its connection
    destination: Address
    tls: Doc | None = None  # what the mocks say of the connection's TLS (proxy/tls.py)


@dataclass
class _Connection:
    id: int
    protocol: Protocol
    direction: Direction
    destination: Address
    recorder: Recorder
    count: int = 0
    tls: Doc | None = None


@dataclass
class Recording:
    """Capture now, decode later.

    While the service runs, each chunk the proxy relays is only appended, with its
    connection and time, to an unlinked temporary file (the capture): nothing decodes while
    the relay works, so the two do not take turns on the interpreter, and memory stays flat
    however long it records. ``finish()`` then feeds the chunks, in order, to each
    connection's protocol recorder: inbound exchanges (test cases) are kept in memory,
    outbound ones (mocks, the many) go to a second temporary file, with only their start
    times kept (to attribute them to tests)."""

    started: int = field(default_factory=time.monotonic_ns)
    started_wall: float = field(default_factory=time.time)  # the same moment, on the clock
    inbound: list[Recorded] = field(default_factory=list)
    outbound_started: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # both unlinked at once and closed by close(): nothing of them stays on disk
        self._capture = tempfile.TemporaryFile(prefix="kpy-capture-")  # noqa: SIM115
        self._spool = tempfile.TemporaryFile(prefix="kpy-outbound-")  # noqa: SIM115
        self._connections: dict[int, _Connection] = {}
        self._next_id = 0
        self._lock = threading.Lock()

    def open(
        self,
        protocol: Protocol,
        direction: Direction,
        destination: Address,
        tls: Doc | None = None,
    ) -> Tap:
        """A connection's tap. ``tls``: the connection is inside TLS (or begins it later:
        ``Tap.tls``)."""
        with self._lock:
            self._next_id += 1
            conn = _Connection(self._next_id, protocol, direction, destination, protocol.recorder())
            conn.tls = tls
            self._connections[conn.id] = conn
        return Tap(conn.id, self)

    def capture(self, connection: int, side: Side, data: bytes) -> None:
        """One chunk, as relayed (cheap: a header and the bytes, buffered)."""
        header = _CHUNK.pack(connection, _SIDES.index(side), time.monotonic_ns(), len(data))
        with self._lock:
            self._capture.write(header)
            self._capture.write(data)

    def add(self, exchange: Exchange, destination: Address) -> None:
        """An exchange that is a connection of its own (a DNS query and its answer)."""
        with self._lock:
            self._next_id += 1
            connection = self._next_id
        self._store(Recorded(exchange, "outbound", connection, 1, destination))

    def set_tls(self, connection: int, tls: Doc) -> None:
        with self._lock:
            self._connections[connection].tls = tls

    def warn(self, message: str) -> None:
        """Kept for the test-set and said at the end, once however often it happened (a
        service that connects per request meets the same upstream defect each time)."""
        with self._lock:
            if message not in self.warnings:
                self.warnings.append(message)

    def finish(self) -> None:
        """Decode everything captured, in the order it was relayed."""
        with self._lock:
            self._capture.flush()
            self._capture.seek(0)
            while header := self._capture.read(_CHUNK.size):
                connection, side, at, size = _CHUNK.unpack(header)
                self._decode(
                    self._connections[connection], _SIDES[side], self._capture.read(size), at
                )
            self._capture.truncate(0)

    def outbound(self) -> Iterator[Recorded]:
        """The outbound exchanges, in the order they completed, read back one at a time
        (through a file description of its own, so its offset is ours)."""
        with self._lock:
            self._spool.flush()
        with open(f"/proc/self/fd/{self._spool.fileno()}", "rb") as spool:
            while True:
                try:
                    yield pickle.load(spool)
                except EOFError:
                    return

    def close(self) -> None:
        self._capture.close()
        self._spool.close()

    def _store(self, recorded: Recorded) -> None:
        if recorded.direction == "inbound":
            self.inbound.append(recorded)
        else:
            pickle.dump(recorded, self._spool, protocol=pickle.HIGHEST_PROTOCOL)
            self.outbound_started.append(recorded.exchange.started)

    def _decode(self, conn: _Connection, side: Side, data: bytes, at: int) -> None:
        try:
            exchanges = _feed(conn.recorder, side, data, at)
        except Exception as e:  # a ProtocolError, or a bug: either way, keep recording
            self.warnings.append(
                f"connection {conn.id} to {conn.destination}: not {conn.protocol.name} "
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
        protocol = conn.protocol
        if raw and protocol.encode_response(exchange.response) != raw:
            # a gap in kpy's decoding must not change what replay serves: keep the bytes
            exchange.response["raw"] = text_or_base64(raw)
            self.warnings.append(
                f"connection {conn.id} to {conn.destination}: a {protocol.name} reply "
                "did not re-encode to the bytes the server sent; kept the bytes as 'raw'"
            )
        conn.count += 1
        self._store(
            Recorded(exchange, conn.direction, conn.id, conn.count, conn.destination, conn.tls)
        )


_SIDES: tuple[Side, ...] = ("client", "server", "close")
_CHUNK = struct.Struct("<IBQI")  # connection, side, time (ns), size


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
    _recording: Recording

    def client(self, data: bytes) -> None:
        self._recording.capture(self.id, "client", data)

    def server(self, data: bytes) -> None:
        self._recording.capture(self.id, "server", data)

    def close(self) -> None:
        self._recording.capture(self.id, "close", b"")

    def tls(self, info: Doc) -> None:
        """The connection went on inside TLS (after PostgreSQL's SSLRequest)."""
        self._recording.set_tls(self.id, info)
