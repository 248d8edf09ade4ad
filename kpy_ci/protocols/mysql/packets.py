"""MySQL packets: a 3-byte little-endian length and a sequence id before each payload; a
payload of 0xFFFFFF bytes or more goes as several packets, each 0xFFFFFF long but the last
(which may be empty), with consecutive sequence ids. Length-encoded integers and strings,
and a reader over a payload. Sans-I/O."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from kpy_ci.protocols.base import ProtocolError

MAX_CHUNK = 0xFFFFFF
MAX_PAYLOAD = 1 << 30  # MySQL's max_allowed_packet tops out at 1 GiB


@dataclass(frozen=True, slots=True)
class Packet:
    """One logical packet: ``seq`` the sequence id of its first physical packet, ``parts``
    how many physical packets carried it, ``at`` when its first byte came."""

    seq: int
    payload: bytes
    at: int
    parts: int = 1


def physical_count(size: int) -> int:
    return size // MAX_CHUNK + 1


def encode_packet(payload: bytes, seq: int) -> bytes:
    """The payload framed, from sequence id ``seq`` (split when it is 0xFFFFFF or more)."""
    out = bytearray()
    pos = 0
    while True:
        chunk = payload[pos : pos + MAX_CHUNK]
        out += len(chunk).to_bytes(3, "little") + bytes([seq & 0xFF]) + chunk
        seq += 1
        pos += len(chunk)
        if len(chunk) < MAX_CHUNK:
            return bytes(out)


class Framer:
    """Cuts one direction's stream, fed in chunks split anywhere, into logical packets."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._offset = 0  # stream position of _buf[0]
        self._marks: deque[tuple[int, int]] = deque()
        self._pending: list[bytes] = []  # physical parts of a packet of 0xFFFFFF or more
        self._pending_seq = 0
        self._pending_at = 0

    @property
    def buffered(self) -> bool:
        return bool(self._buf) or bool(self._pending)

    def feed(self, data: bytes, at: int) -> list[Packet]:
        if not data:
            return []
        self._marks.append((self._offset + len(self._buf), at))
        self._buf += data
        out: list[Packet] = []
        pos = 0
        buf = self._buf
        while len(buf) - pos >= 4:
            size = int.from_bytes(buf[pos : pos + 3], "little")
            if len(buf) - pos < 4 + size:
                break
            seq = buf[pos + 3]
            payload = bytes(buf[pos + 4 : pos + 4 + size])
            first_at = self._at(self._offset + pos)
            pos += 4 + size
            if not self._pending:
                self._pending_seq, self._pending_at = seq, first_at
            elif seq != (self._pending_seq + len(self._pending)) & 0xFF:
                raise ProtocolError("MySQL packet continued with a wrong sequence id")
            self._pending.append(payload)
            if sum(map(len, self._pending)) > MAX_PAYLOAD:
                raise ProtocolError("MySQL packet over 1 GiB")
            if size == MAX_CHUNK:
                continue
            parts = self._pending
            self._pending = []
            joined = parts[0] if len(parts) == 1 else b"".join(parts)
            out.append(Packet(self._pending_seq, joined, self._pending_at, len(parts)))
        del self._buf[:pos]
        self._offset += pos
        return out

    def _at(self, position: int) -> int:
        while len(self._marks) > 1 and self._marks[1][0] <= position:
            self._marks.popleft()
        return self._marks[0][1]


# length-encoded integers and strings ---------------------------------------------------


def lenenc_int(value: int) -> bytes:
    if value < 0xFB:
        return bytes([value])
    if value < 1 << 16:
        return b"\xfc" + value.to_bytes(2, "little")
    if value < 1 << 24:
        return b"\xfd" + value.to_bytes(3, "little")
    return b"\xfe" + value.to_bytes(8, "little")


def lenenc_str(data: bytes) -> bytes:
    return lenenc_int(len(data)) + data


class Reader:
    """Reads a payload from the front; a read past its end raises ProtocolError."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolError("MySQL packet shorter than its fields")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little")

    def sint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little", signed=True)

    def lenenc(self) -> int | None:
        """A length-encoded integer; None for 0xFB (NULL in a text row)."""
        first = self.uint(1)
        if first < 0xFB:
            return first
        if first == 0xFB:
            return None
        if first == 0xFC:
            return self.uint(2)
        if first == 0xFD:
            return self.uint(3)
        if first == 0xFE:
            return self.uint(8)
        raise ProtocolError("MySQL length-encoded integer begins with 0xFF")

    def lenenc_bytes(self) -> bytes | None:
        size = self.lenenc()
        return None if size is None else self.take(size)

    def lenenc_required(self) -> bytes:
        value = self.lenenc_bytes()
        if value is None:
            raise ProtocolError("MySQL length-encoded string is NULL where one is required")
        return value

    def nul(self) -> bytes:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise ProtocolError("MySQL NUL-terminated string without its NUL")
        out = self.data[self.pos : end]
        self.pos = end + 1
        return out

    def rest(self) -> bytes:
        out = self.data[self.pos :]
        self.pos = len(self.data)
        return out
