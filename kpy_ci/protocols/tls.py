"""TLS as kpy meets it: a layer under the protocols, not one of them. A connection whose
client opens with a ClientHello is TLS; the name it asks for (SNI) and the application
protocols it offers (ALPN) decide the certificate kpy shows it and what kpy offers the real
server. Only the ClientHello is read here (RFC 8446 4.1.2, RFC 6066 3, RFC 7301 3.1): the
rest of TLS is OpenSSL's, through Python's ``ssl``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HANDSHAKE = 0x16
CLIENT_HELLO = 1
SERVER_NAME = 0
ALPN = 16
RECORD_HEADER = 5


@dataclass(frozen=True)
class ClientHello:
    server_name: str | None
    """The host name the client asked for (SNI), lower case; None when it sent none (it
    dialled an address)."""
    alpn: tuple[str, ...]
    """The application protocols it offers, in its order of preference."""


class NotClientHello(ValueError):
    """The bytes begin like TLS but are not a well-formed ClientHello."""


def sniff(first: bytes) -> bool:
    """Whether a client's first bytes open TLS: a handshake record of TLS 1.x (3.x on the
    wire). One byte is enough to say: no other protocol kpy knows starts with 0x16."""
    return bool(first) and first[0] == HANDSHAKE and (len(first) < 2 or first[1] == 3)


def hello_size(data: bytes) -> int | None:
    """How many bytes the first record takes (header included), once its header is in."""
    if len(data) < RECORD_HEADER:
        return None
    return RECORD_HEADER + int(struct.unpack_from(">H", data, 3)[0])


def parse_client_hello(data: bytes) -> ClientHello:
    """The SNI and ALPN of the ClientHello at the start of ``data`` (its whole first record:
    see ``hello_size``). Raises NotClientHello on anything else."""
    size = hello_size(data)
    if size is None or len(data) < size or not sniff(data):
        raise NotClientHello("not a whole TLS handshake record")
    body = _Reader(data[RECORD_HEADER:size])
    if body.u8() != CLIENT_HELLO:
        raise NotClientHello("the first handshake message is not a ClientHello")
    body.take(3)  # the message's length: a ClientHello over one record is read as far as it is
    body.take(2 + 32)  # legacy version, random
    body.take(body.u8())  # legacy session id
    body.take(body.u16())  # cipher suites
    body.take(body.u8())  # compression methods
    server_name: str | None = None
    alpn: tuple[str, ...] = ()
    if body.left():
        extensions = _Reader(body.take(body.u16()))
        while extensions.left():
            kind, value = extensions.u16(), _Reader(extensions.take(extensions.u16()))
            if kind == SERVER_NAME:
                server_name = _server_name(value)
            elif kind == ALPN:
                alpn = _alpn(value)
    return ClientHello(server_name, alpn)


def _server_name(value: _Reader) -> str | None:
    names = _Reader(value.take(value.u16()))
    while names.left():
        kind, name = names.u8(), names.take(names.u16())
        if kind == 0:  # host_name
            return name.decode("ascii", "replace").lower().rstrip(".")
    return None


def _alpn(value: _Reader) -> tuple[str, ...]:
    names = _Reader(value.take(value.u16()))
    offered = []
    while names.left():
        offered.append(names.take(names.u8()).decode("ascii", "replace"))
    return tuple(offered)


class _Reader:
    """Big-endian fields off a buffer; running short is a malformed hello."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def left(self) -> int:
        return len(self._data) - self._at

    def take(self, n: int) -> bytes:
        if n > self.left():
            raise NotClientHello("a ClientHello field runs past its end")
        chunk = self._data[self._at : self._at + n]
        self._at += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])
