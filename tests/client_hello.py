"""What a TLS client offers before any certificate is seen: a raw TCP listener on 127.0.0.1
and ::1 that reads each connection's ClientHello, keeps its server name (SNI, extension 0)
and ALPN list (extension 16), and hangs up. Parsed here, independently of kpy's own parser
(kpy_ci/protocols/tls.py), so it can be the oracle for it."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from tests.servers import loopback_pair

SERVER_NAME = 0
ALPN = 16


@dataclass(frozen=True)
class Hello:
    sni: str | None
    alpn: list[str]
    raw: bytes
    """The handshake message, header included (records' framing removed)."""


def parse_client_hello(message: bytes) -> Hello:
    """A ClientHello handshake message (type 1, 3-byte length, body) -> its SNI and ALPN."""
    if message[0] != 1:
        raise ValueError(f"handshake type {message[0]}, not ClientHello")
    at = 4 + 2 + 32  # header, legacy_version, random
    at += 1 + message[at]  # session id
    at += 2 + struct.unpack_from(">H", message, at)[0]  # cipher suites
    at += 1 + message[at]  # compression methods
    (end,) = struct.unpack_from(">H", message, at)
    at, end = at + 2, at + 2 + end
    sni, alpn = None, []
    while at < end:
        kind, size = struct.unpack_from(">HH", message, at)
        data = message[at + 4 : at + 4 + size]
        at += 4 + size
        if kind == SERVER_NAME:  # list length, then (type 0, length, name)...
            (length,) = struct.unpack_from(">H", data, 3)
            sni = data[5 : 5 + length].decode("ascii")
        elif kind == ALPN:  # list length, then (length, protocol)...
            i = 2
            while i < len(data):
                alpn.append(data[i + 1 : i + 1 + data[i]].decode("ascii"))
                i += 1 + data[i]
    return Hello(sni, alpn, message)


def _read_hello(conn: socket.socket) -> Hello:
    """Reassemble the first handshake message from as many TLS records as it spans."""
    buffer = b""
    message = b""
    while len(message) < 4 or len(message) < 4 + int.from_bytes(message[1:4], "big"):
        while len(buffer) < 5 or len(buffer) < 5 + struct.unpack_from(">H", buffer, 3)[0]:
            chunk = conn.recv(65536)
            if not chunk:
                raise ConnectionError("closed before a whole ClientHello")
            buffer += chunk
        if buffer[0] != 0x16:
            raise ValueError(f"record type {buffer[0]}: not a TLS handshake")
        (length,) = struct.unpack_from(">H", buffer, 3)
        message += buffer[5 : 5 + length]
        buffer = buffer[5 + length :]
    return parse_client_hello(message[: 4 + int.from_bytes(message[1:4], "big")])


@dataclass
class Catcher:
    port: int
    hellos: list[Hello] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def url(self, host: str = "127.0.0.1", path: str = "/echo") -> str:
        return f"https://{host}:{self.port}{path}"


@contextmanager
def hello_catcher() -> Iterator[Catcher]:
    """Listen until the block ends; every connection's ClientHello lands in ``hellos``."""
    listeners = loopback_pair()
    catcher = Catcher(listeners[0].getsockname()[1])
    stop = threading.Event()

    def serve(listener: socket.socket) -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                try:
                    catcher.hellos.append(_read_hello(conn))
                except (OSError, ValueError, struct.error) as e:
                    catcher.errors.append(repr(e))

    threads = [
        threading.Thread(target=serve, args=(s,), name="hello-catcher", daemon=True)
        for s in listeners
    ]
    for thread in threads:
        thread.start()
    try:
        yield catcher
    finally:
        stop.set()
        for listener, thread in zip(listeners, threads, strict=True):
            with suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
            thread.join(10)
