"""PostgreSQL, protocol v3: sniff a connection, cut both directions into messages, pair
requests with their replies. Sans-I/O: bytes in, exchanges out. The messages themselves
(bytes to dicts and back) are ``messages.py``.

What one exchange is:

- the start-up: the StartupMessage's parameters, and the server's messages from
  AuthenticationOk through the first ReadyForQuery (``reusable``). Authentication between
  the two is never kept: the request only says ``auth: {method: ...}``; an SSLRequest
  (answered by the real server; on 'S' the proxy ends TLS on both sides, and what is seen
  here is what flowed inside) or a GSSENCRequest (answered 'N' by the proxy) only sets
  ``ssl_requested`` / ``gssenc_requested``;
- a simple query (Query), or a function call, up to its ReadyForQuery;
- an extended query: the client's messages through Sync (Parse, Bind, Describe, Execute,
  Close, Flush), up to its ReadyForQuery. Units in flight pair with ReadyForQuery in order
  (pipelining). A Flush outside a unit asks for nothing and is not kept;
- COPY data either way belongs to the exchange in flight.

Each side is ``{"messages": [...]}``; a request also has ``sql``, the statement text it runs
(a list when it runs several), known from its Parse or, for a Bind of a statement prepared
earlier on the connection, from that Parse.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field

from kpy_ci.protocols.base import Doc, Exchange, ProtocolError
from kpy_ci.protocols.postgres.framing import MAX_STARTUP, Frame, Framer, note_statement
from kpy_ci.protocols.postgres.messages import (
    AUTH_OK,
    CANCEL_REQUEST,
    FRONTEND,
    GSSENC_REQUEST,
    PROTOCOL_MAJOR,
    SSL_REQUEST,
    decode_message,
    decode_untyped,
    encode_message,
)

_FIRST_PACKETS = (
    (9, MAX_STARTUP, struct.pack(">H", PROTOCOL_MAJOR)),  # StartupMessage 3.x
    (8, 8, struct.pack(">I", SSL_REQUEST)),
    (8, 8, struct.pack(">I", GSSENC_REQUEST)),
    (16, 12 + 256, struct.pack(">I", CANCEL_REQUEST)),  # 3.2 keys are up to 256 bytes
)
"""(shortest, longest, how the code begins) of what a client may send first."""


def sniff(first: bytes) -> bool:
    """Whether these first bytes can begin a PostgreSQL client's first packet: its length
    (within bounds) then a known code. With fewer than 8 bytes, whether what is there fits."""
    head = first[:8]
    return bool(head) and any(_fits(head, *packet) for packet in _FIRST_PACKETS)


def _fits(head: bytes, shortest: int, longest: int, code: bytes) -> bool:
    size, got = head[:4], head[4:]
    if int.from_bytes(size.ljust(4, b"\0"), "big") > longest:
        return False
    if int.from_bytes(size.ljust(4, b"\xff"), "big") < shortest:
        return False
    return code.startswith(got) if len(got) < len(code) else got.startswith(code)


@dataclass
class _Unit:
    """A request in flight and the reply so far."""

    started: int
    startup: bool = False
    request: list[Doc] = field(default_factory=list)
    sql: list[str | Doc] = field(default_factory=list)
    parsed: set[str] = field(default_factory=set)  # statements the unit prepares itself
    sent: bool = False  # the client has sent all of it (Query, Sync, StartupMessage)
    needs_sync: bool = False  # extended COPY FROM STDIN: one more Sync comes after CopyDone
    response: list[Doc] = field(default_factory=list)
    raw: bytearray = field(default_factory=bytearray)
    formats: list[int] = field(default_factory=list)  # of the RowDescription in force
    ended: int = 0


class PostgresRecorder:
    """Pairs a connection's requests with their replies (see the module docstring).

    ``close`` also returns what was cut short: a request still in flight becomes an
    exchange whose response (whatever came of it) has ``incomplete: true``, never
    ``reusable``; server messages that came while nothing was asked are an exchange with no
    request messages, also ``incomplete``. A message cut in half by the close is not kept.
    Server messages that come while nothing is asked (a NOTIFY between queries) otherwise
    open the next exchange's response. Terminate ends the connection and is not kept.
    """

    def __init__(self) -> None:
        self._client = Framer(client=True)
        self._server = Framer(client=False)
        self._units: deque[_Unit] = deque()
        self._early = _Unit(started=0)  # server messages while nothing is in flight
        self._statements: dict[str, str | Doc] = {}  # prepared on this connection
        self._asked: dict[str, bool] = {"ssl_requested": False, "gssenc_requested": False}
        self._asked_at: int | None = None
        self._auth = "trust"
        self._sasl = False  # the next password message names the SASL mechanism

    def client_data(self, data: bytes, at: int) -> list[Exchange]:
        out: list[Exchange] = []
        for frame in self._client.feed(data, at):
            out += self._from_client(frame)
        return out

    def server_data(self, data: bytes, at: int) -> list[Exchange]:
        out: list[Exchange] = []
        for frame in self._server.feed(data, at):
            out += self._from_server(frame, at)
        return out

    def close(self, at: int) -> list[Exchange]:
        out = [self._exchange(unit, at, incomplete=True) for unit in self._units]
        self._units.clear()
        if self._early.response:
            out.append(self._exchange(self._early, at, incomplete=True))
            self._early = _Unit(started=0)
        return out

    # client -> server -------------------------------------------------------------------

    def _from_client(self, frame: Frame) -> list[Exchange]:
        if not frame.tag:
            return self._untyped(frame)
        if frame.tag == "p":  # password, SASL: never kept
            self._note_mechanism(frame.raw)
            return []
        if frame.tag == "X":
            return []
        doc = decode_message(frame.raw, frontend=True)
        head = self._units[0] if self._units else None
        if frame.tag in "dcf":  # COPY data goes with the COPY in flight
            if head is not None:
                head.request.append(doc)
            return []  # else the server ignores it too (after a failed COPY)
        if head is not None and head.needs_sync and frame.tag in "HS":
            head.request.append(doc)
            head.needs_sync = frame.tag != "S"
            return []
        unit = self._units[-1] if self._units and not self._units[-1].sent else None
        if unit is None:
            if frame.tag == "H":
                return []  # a Flush outside a unit asks for nothing
            unit = self._open(frame.at)
        unit.request.append(doc)
        self._note_statement(unit, doc)
        unit.sent = frame.tag in "QFS" or frame.tag not in FRONTEND  # the rest ask nothing
        return []

    def _untyped(self, frame: Frame) -> list[Exchange]:
        doc = decode_untyped(frame.raw)
        kind = doc["type"]
        if kind in ("SSLRequest", "GSSENCRequest"):
            self._asked["ssl_requested" if kind == "SSLRequest" else "gssenc_requested"] = True
            self._asked_at = frame.at if self._asked_at is None else self._asked_at
            self._server.expect_answer_byte()
            return []
        if kind == "CancelRequest":  # its own connection; the server never answers
            return [Exchange("postgres", {"messages": [doc]}, {"messages": []}, frame.at, frame.at)]
        if not str(doc["protocol"]).startswith(f"{PROTOCOL_MAJOR}."):
            raise ProtocolError(f"PostgreSQL protocol {doc['protocol']} is not supported")
        unit = self._open(frame.at if self._asked_at is None else self._asked_at)
        unit.startup = unit.sent = True
        unit.request.append(doc)
        return []

    def _open(self, at: int) -> _Unit:
        unit = _Unit(started=at)
        if self._early.response:  # what the server said unasked comes first
            unit.response, unit.raw = self._early.response, self._early.raw
            unit.ended = self._early.ended
            self._early = _Unit(started=0)
        self._units.append(unit)
        return unit

    def _note_mechanism(self, raw: bytes) -> None:
        """SASLInitialResponse begins with the mechanism's name: keep that, nothing else."""
        if self._sasl:
            self._sasl = False
            self._auth = raw[5 : raw.find(b"\0", 5)].decode("ascii", "replace").lower()

    def _note_statement(self, unit: _Unit, doc: Doc) -> None:
        note_statement(doc, unit.sql, unit.parsed, self._statements)

    # server -> client -------------------------------------------------------------------

    def _from_server(self, frame: Frame, at: int) -> list[Exchange]:
        if len(frame.raw) == 1:  # the answer to SSLRequest/GSSENCRequest
            # 'S': TLS begins, and kpy, which ends it on both sides, passes on what is inside
            if frame.tag not in ("N", "S"):
                raise ProtocolError(f"the server answered {frame.tag!r} to an encryption request")
            return []
        if frame.tag == "R" and frame.raw != AUTH_OK:
            self._note_auth_request(frame.raw)
            return []
        head = self._units[0] if self._units else self._early
        if head is self._early and not head.response:
            head.started = frame.at
        doc = decode_message(frame.raw, frontend=False, formats=head.formats)
        head.response.append(doc)
        head.raw += frame.raw
        head.ended = at
        if head is self._early:
            return []
        if frame.tag == "T":
            head.formats = [f["format"] for f in doc.get("fields", ())]
        elif frame.tag in "GW" and head.request and head.request[-1]["type"] == "Sync":
            head.needs_sync = True  # the Sync sent with it is ignored while COPY runs
        elif frame.tag == "Z" or (frame.tag == "E" and head.startup):
            self._units.popleft()  # ReadyForQuery, or start-up refused (the server hangs up)
            return [self._exchange(head, at)]
        return []

    def _note_auth_request(self, raw: bytes) -> None:
        code = int.from_bytes(raw[5:9], "big")
        self._sasl = code == 10
        method = {3: "password", 5: "md5", 7: "gss", 9: "sspi", 10: "sasl"}.get(code)
        if method is not None:
            self._auth = method

    def _exchange(self, unit: _Unit, at: int, incomplete: bool = False) -> Exchange:
        request: Doc = {"messages": unit.request}
        if unit.startup:
            request["auth"] = {"method": self._auth}
            request.update(self._asked)
        elif unit.sql:
            request["sql"] = unit.sql[0] if len(unit.sql) == 1 else unit.sql
        response: Doc = {"messages": unit.response}
        if incomplete:
            response["incomplete"] = True
        return Exchange(
            protocol="postgres",
            request=request,
            response=response,
            started=unit.started,
            ended=unit.ended if unit.response else at,
            reusable=unit.startup and not incomplete and _ready(unit.response),
            raw_response=bytes(unit.raw),
        )


def _ready(messages: list[Doc]) -> bool:
    return bool(messages) and messages[-1]["type"] == "ReadyForQuery"


def encode_response(response: Doc) -> bytes:
    """The bytes the server sent, from an exchange's ``response``."""
    return b"".join(encode_message(message) for message in response["messages"])


def answer_locally(first: bytes) -> tuple[int, bytes] | None:
    """GSSENCRequest is kpy's to answer: 'N' (kpy cannot take part in GSSAPI encryption),
    and libpq goes on to SSLRequest or plain text, which kpy can record."""
    if first[:8] == _GSSENC:
        return 8, b"N"
    return None


def starttls(first: bytes) -> tuple[int, bytes] | None:
    """SSLRequest asks for TLS; 'S' says yes (the real server's answer, when recording)."""
    return (8, b"S") if first[:8] == _SSL else None


_GSSENC = struct.pack(">II", 8, GSSENC_REQUEST)
_SSL = struct.pack(">II", 8, SSL_REQUEST)
