"""Pairs a MySQL connection's requests with their answers. Sans-I/O: bytes in, exchanges
out, fed in chunks of any size.

What one exchange is:

- the connection's set-up: the client's HandshakeResponse (user, database, plugin,
  capabilities, attributes; its secret REDACTED, as are the packets it sends while
  authenticating) and the server's greeting, authentication packets and final OK or ERR;
- each command and its whole answer (all result sets of a multi-statement or a CALL; for
  LOAD DATA LOCAL INFILE, the server's request for the file, and after the client's data,
  kept in the request as ``local_infile_data``, the OK). Sequence ids start again at 0 with
  each command. COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA and COM_QUIT get no answer: their
  exchange has an empty response.

Requests the server answers in order may be pipelined; a request naming a statement is
decoded once the requests before it are answered (its statement is known then)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from kpy_ci.protocols.base import REDACTED, Doc, Exchange, ProtocolError, text_or_base64
from kpy_ci.protocols.mysql import flags, responses, results
from kpy_ci.protocols.mysql.commands import ANSWERS, COMMANDS, STREAMS, Statements, decode_command
from kpy_ci.protocols.mysql.handshake import (
    PROTOCOL_VERSION,
    client_capabilities,
    decode_handshake_response,
    server_capabilities,
)
from kpy_ci.protocols.mysql.matching import reusable
from kpy_ci.protocols.mysql.packets import Framer, Packet

NAME = "mysql"
MAX_GREETING = 4096


@dataclass
class _Unit:
    builder: responses.Builder
    started: int
    payload: bytes | None = None  # the command, until it is decoded
    request: Doc | None = None
    ended: int = 0
    infile: bytearray | None = None


class MysqlRecorder:
    def __init__(self) -> None:
        self._client = Framer()
        self._server = Framer()
        self._units: deque[_Unit] = deque()
        self._connect: _Unit | None = None
        self._greeted = False
        self._caps = 0  # the server's, then what client and server agreed
        self._extended = 0
        self._negotiated = responses.Negotiated()
        self._statements = Statements()
        self._out: list[Exchange] = []

    # feeding ---------------------------------------------------------------------------

    def client_data(self, data: bytes, at: int) -> list[Exchange]:
        for packet in self._client.feed(data, at):
            self._from_client(packet)
        return self._take()

    def server_data(self, data: bytes, at: int) -> list[Exchange]:
        first = not self._greeted and not self._server.buffered and len(data) >= 3
        if first and int.from_bytes(data[:3], "little") > MAX_GREETING:
            raise ProtocolError("not a MySQL greeting: first packet too long")
        for packet in self._server.feed(data, at):
            self._from_server(packet, at)
        return self._take()

    def close(self, at: int) -> list[Exchange]:
        out = self._take()
        for unit in self._units:
            if unit.request is None:
                unit.request = self._decode(unit)
            out.append(self._exchange(unit, at, incomplete=True))
        self._units.clear()
        return out

    def _take(self) -> list[Exchange]:
        out, self._out = self._out, []
        return out

    # client ----------------------------------------------------------------------------

    def _from_client(self, packet: Packet) -> None:
        if not self._greeted:
            raise ProtocolError("a MySQL client does not speak before the server's greeting")
        connect = self._connect
        if connect is not None and connect.request is None:
            self._handshake_response(connect, packet)
            return
        head = self._units[0] if self._units else None
        if packet.seq != 0:
            if head is None or head.request is None:
                raise ProtocolError("MySQL client packet continues no command")
            self._continued(head, packet)
            return
        code = packet.payload[:1]
        if not code or (code[0] not in COMMANDS and code[0] not in STREAMS):
            raise ProtocolError(f"not a MySQL command: {bytes(code)!r}")
        kind = ANSWERS.get(COMMANDS.get(code[0], ""), responses.SIMPLE)
        builder = responses.Builder(kind, self._negotiated, binary=code[0] in (0x17, 0x1C, 0xFA))
        unit = _Unit(builder, packet.at, payload=packet.payload, ended=packet.at)
        self._units.append(unit)
        self._advance()

    def _handshake_response(self, connect: _Unit, packet: Packet) -> None:
        client, extended = client_capabilities(packet.payload)
        connect.request = decode_handshake_response(packet.payload, self._caps)
        self._caps &= client
        self._extended &= extended
        self._negotiated = responses.Negotiated.of(self._caps, self._extended)
        connect.builder.negotiated = self._negotiated

    def _continued(self, head: _Unit, packet: Packet) -> None:
        """A packet of the command in flight: the client's file for LOCAL INFILE, or what
        it sends while authenticating (never kept)."""
        assert head.request is not None
        if head.builder.waiting_infile:
            if head.infile is None:
                head.infile = bytearray()
            if packet.payload:
                head.infile += packet.payload
                return
            head.request["local_infile_data"] = text_or_base64(bytes(head.infile))
            head.infile = None
            head.builder.infile_sent()
        elif head.builder.kind in (responses.AUTH, responses.CONNECT):
            head.request.setdefault("auth_responses", []).append(REDACTED)
        else:
            raise ProtocolError("MySQL client packet out of sequence")

    # server ----------------------------------------------------------------------------

    def _from_server(self, packet: Packet, at: int) -> None:
        if not self._greeted:
            first = packet.payload[:1]
            if packet.seq != 0 or first not in (bytes([PROTOCOL_VERSION]), b"\xff"):
                raise ProtocolError("not a MySQL greeting")
            self._greeted = True
            unit = _Unit(responses.Builder(responses.CONNECT, self._negotiated), packet.at)
            self._connect = unit
            self._units.append(unit)
            if first == b"\xff":
                unit.request = {"command": "connect"}
        head = self._units[0] if self._units else None
        if head is None or head.builder.done:
            head = _Unit(responses.Builder(responses.SIMPLE, self._negotiated), packet.at)
            head.request = {"command": "unasked"}
            self._units.appendleft(head)
        builder = head.builder
        builder.feed(packet)
        head.ended = at
        if builder.kind == responses.CONNECT and len(builder.results) == 1:
            self._greeting(builder.results[0])
        if builder.done and builder.statement is not None and head.request is not None:
            statement_id, params, _ = builder.statement
            item = builder.results[-1]
            types = results.param_types(item.get("params", []))
            columns = results.column_types(item.get("columns", []))
            sql = head.request.get("sql", "")
            self._statements.add(statement_id, sql, params, types, columns)
        if builder.done and head.request is not None and head.request["command"] == "execute":
            self._note_columns(head.request, builder)
        if builder.done and builder.kind == responses.AUTH:
            self._statements = Statements()  # COM_CHANGE_USER ends the session's statements
        self._advance()

    def _note_columns(self, request: Doc, builder: responses.Builder) -> None:
        """The column types an EXECUTE's answer sent: what the next may leave out."""
        statement = self._statements.get(int(request.get("statement_id", -1)))
        for item in builder.results:
            if statement is not None and item.get("columns"):
                statement.columns = results.column_types(item["columns"]) or statement.columns
                return

    def _greeting(self, item: Doc) -> None:
        greeting = item.get("greeting")
        if isinstance(greeting, dict):
            self._caps, self._extended = server_capabilities(greeting)
            if self._caps & flags.CLIENT_MYSQL:
                self._extended = 0

    # exchanges -------------------------------------------------------------------------

    def _advance(self) -> None:
        while self._units:
            head = self._units[0]
            if head.request is None:
                if head.payload is None:
                    return  # the set-up, before the client's HandshakeResponse
                head.request = self._decode(head)
                if head.request["command"] == "execute":
                    statement = self._statements.get(int(head.request.get("statement_id", -1)))
                    if statement is not None:
                        head.builder.known_columns = statement.columns
            if not head.builder.done:
                return
            self._units.popleft()
            self._out.append(self._exchange(head, head.ended))

    def _decode(self, unit: _Unit) -> Doc:
        if unit.payload is None:
            return {"command": "connect"}
        return decode_command(unit.payload, self._caps, self._statements)

    def _exchange(self, unit: _Unit, at: int, incomplete: bool = False) -> Exchange:
        request = unit.request or {"command": "connect"}
        response = unit.builder.document()
        if incomplete:
            response["incomplete"] = True
        return Exchange(
            protocol=NAME,
            request=request,
            response=response,
            started=unit.started,
            ended=max(unit.ended, unit.started) if not incomplete else max(at, unit.started),
            reusable=not incomplete and reusable(request, response),
            raw_response=bytes(unit.builder.raw),
        )
