"""PostgreSQL v3 streams cut into messages, one direction at a time, and the statements a
connection prepares: what the recorder and the mock server both follow. Sans-I/O."""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

from kpy_ci.protocols.base import Doc, ProtocolError
from kpy_ci.protocols.postgres.messages import GSSENC_REQUEST, SSL_REQUEST

MAX_STARTUP = 10_000  # PostgreSQL refuses longer start-up packets
MAX_MESSAGE = 1 << 30  # and any message of a gigabyte or more


@dataclass(frozen=True, slots=True)
class Frame:
    """One message as it came: ``tag`` is its type byte ('' for a start-up packet, which has
    none); ``raw`` all its bytes, header included; ``at`` when its first byte came."""

    tag: str
    raw: bytes
    at: int


class Framer:
    """Cuts one direction's stream, fed in chunks split anywhere, into Frames. A client's
    stream begins with untyped packets (SSLRequest/GSSENCRequest, then the StartupMessage
    or a CancelRequest); a server's is typed, but for the one byte answering an
    SSLRequest/GSSENCRequest, which ``expect_answer_byte`` announces.

    Whole messages in a chunk are sliced from it once; only a message split across chunks
    waits in a buffer.
    """

    def __init__(self, *, client: bool) -> None:
        self._buf = bytearray()
        self._offset = 0  # stream position of _buf[0]
        self._marks: deque[tuple[int, int]] = deque()  # (stream position, at) per chunk
        self._untyped = client
        self._answer_byte = False

    def expect_answer_byte(self) -> None:
        self._answer_byte = True

    def feed(self, data: bytes, at: int) -> list[Frame]:
        if not data:
            return []
        self._marks.append((self._offset + len(self._buf), at))
        if self._buf:
            self._buf += data
        source = self._buf or data
        frames: list[Frame] = []
        pos = 0
        while (cut := self._next(source, pos)) is not None:
            tag, end = cut
            frames.append(Frame(tag, _slice(source, pos, end), self._at(self._offset + pos)))
            pos = end
        if source is self._buf:
            del self._buf[:pos]
        else:
            self._buf = bytearray(memoryview(data)[pos:])
        self._offset += pos
        return frames

    def _next(self, source: bytes | bytearray, pos: int) -> tuple[str, int] | None:
        """The next message's tag and end, if it is all there."""
        have = len(source) - pos
        if self._answer_byte:
            if have < 1:
                return None
            self._answer_byte = False
            return chr(source[pos]), pos + 1
        if self._untyped:
            if have < 8:
                return None
            size, code = struct.unpack_from(">iI", source, pos)
            if not 8 <= size <= MAX_STARTUP:
                raise ProtocolError(f"PostgreSQL start-up packet of {size} bytes")
            if have < size:
                return None
            self._untyped = code in (SSL_REQUEST, GSSENC_REQUEST)
            return "", pos + size
        if have < 5:
            return None
        (size,) = struct.unpack_from(">i", source, pos + 1)
        if not 4 <= size < MAX_MESSAGE:
            raise ProtocolError(f"PostgreSQL message {source[pos : pos + 1]!r} of {size} bytes")
        return (chr(source[pos]), pos + 1 + size) if have > size else None

    def _at(self, position: int) -> int:
        """When the byte at this stream position came."""
        while len(self._marks) > 1 and self._marks[1][0] <= position:
            self._marks.popleft()
        return self._marks[0][1]


def _slice(source: bytes | bytearray, start: int, end: int) -> bytes:
    if isinstance(source, bytes):
        return source[start:end]  # the very object when the chunk is one message
    with memoryview(source) as view:
        return bytes(view[start:end])


def note_statement(
    doc: Doc, sql: list[str | Doc], parsed: set[str], statements: dict[str, str | Doc]
) -> None:
    """Follow one client message: the SQL its unit runs goes to ``sql``; statements it
    prepares (``parsed``, in this unit) and closes update the connection's ``statements``."""
    kind, name = doc["type"], str(doc.get("statement", ""))
    if kind == "Query":
        sql.append(doc["sql"])
    elif kind == "Parse":
        sql.append(doc["sql"])
        parsed.add(name)
        statements[name] = doc["sql"]
    elif kind == "Bind" and name not in parsed and name in statements:
        sql.append(statements[name])
    elif kind == "Close" and "statement" in doc:
        statements.pop(name, None)
