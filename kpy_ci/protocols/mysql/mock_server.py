"""A MySQL server that answers one client connection from mocks. Sans-I/O.

It speaks first: the greeting recorded for this destination (asked as the set-up's
``partials`` key, ``optional``: a connection kpy never recorded may have none), else a
made-up one; TLS and compression are cleared from it either way. It accepts any
credentials, checking none: a client that asks for the plugin it asked for when recorded
gets the recorded authentication packets (an auth switch, caching_sha2_password's more data,
each after the client's answer, as recorded), then the recorded OK; any other client gets
the recorded final OK (or a made-up one) at once, no auth switch. Sequence ids follow the
client's. COM_CHANGE_USER is answered the same way.

Commands are answered from mocks. Statement ids are the server's own: it numbers the
statements a connection prepares 1, 2, ... (rewriting the recorded prepare's OK), and
knows an EXECUTE, CLOSE, RESET or FETCH by the SQL behind the id. COM_STMT_CLOSE,
SEND_LONG_DATA and COM_QUIT answer nothing (their mock is asked ``optional``); COM_QUIT
hangs up. LOAD DATA LOCAL INFILE: the recorded request for the file is sent first, then
the client's file is taken and matched. A miss is an ERR packet (1105, HY000, "kpy: no
recorded mock matches ...")."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from kpy_ci.protocols.base import (
    Doc,
    MockSource,
    ProtocolError,
    from_text_or_base64,
    text_or_base64,
)
from kpy_ci.protocols.mysql import flags, responses, results
from kpy_ci.protocols.mysql.commands import Statements, decode_command
from kpy_ci.protocols.mysql.handshake import (
    CLEARED,
    client_capabilities,
    decode_greeting,
    decode_handshake_response,
    made_up_greeting,
    server_capabilities,
)
from kpy_ci.protocols.mysql.matching import describe, match_key, redact
from kpy_ci.protocols.mysql.packets import Framer, Packet, encode_packet

MISS_CODE, MISS_STATE = 1105, "HY000"
LOCAL_INFILE = re.compile(r"\s*LOAD\s+(DATA|XML)\s+((LOW_PRIORITY|CONCURRENT)\s+)?LOCAL\b", re.I)
MADE_UP_OK: Doc = {
    "ok": {"affected_rows": 0, "last_insert_id": 0, "status": ["AUTOCOMMIT"], "warnings": 0}
}


def miss_packet(request: Doc, seq: int) -> bytes:
    message = f"kpy: no recorded mock matches {describe(request)}"
    return encode_packet(results.error_packet(MISS_CODE, MISS_STATE, message), seq)


def _is_infile_item(item: Doc) -> bool:
    if "local_infile" in item:
        return True
    return "packet" in item and from_text_or_base64(item["packet"])[:1] == b"\xfb"


def _unsequenced(item: Doc) -> Doc:
    return {k: v for k, v in item.items() if k != "seq"}


class MysqlMockServer:
    def __init__(self, source: MockSource) -> None:
        self.source = source
        self.closed = False
        self._framer = Framer()
        self._greeting: Doc = made_up_greeting()
        self._caps = 0
        self._greeted = False
        self._statements = Statements()
        self._next_id = 1
        self._infile: tuple[Doc, Doc, int] | None = None  # request, mock, rest from
        self._auth: list[tuple[bool, Doc]] = []  # (after a client packet, item) still to send
        self._data = bytearray()

    def opening(self) -> bytes:
        mock = self.source.serve({"command": "connect", "partial": "greeting"}, optional=True)
        if mock is not None:
            for item in mock["response"].get("results", ()):
                if "greeting" in item:
                    self._greeting = item["greeting"]
                    break
                if "packet" in item and item.get("seq", 0) == 0:
                    with contextlib.suppress(ProtocolError):
                        self._greeting = decode_greeting(from_text_or_base64(item["packet"]))
                    break
        payload = _greeting_payload(self._greeting)
        self._caps, _ = server_capabilities(decode_greeting(payload))
        return encode_packet(payload, 0)

    def idle(self) -> bytes:
        return b""

    def client_data(self, data: bytes) -> bytes:
        out = bytearray()
        for packet in self._framer.feed(data, 0):
            if self.closed:
                break
            out += self._packet(packet)
        return bytes(out)

    def _packet(self, packet: Packet) -> bytes:
        if not self._greeted:
            return self._handshake(packet)
        if packet.seq != 0:
            if self._infile is not None:
                return self._infile_data(packet)
            return self._auth_step(packet.seq)  # what the client answers while authenticating
        request = redact(decode_command(packet.payload, self._caps, self._statements))
        command = request["command"]
        if command in ("quit", "close_statement", "send_long_data"):
            self.source.serve(request, optional=True)
            self.closed = command == "quit"
            return b""
        if command == "change_user":
            self._statements = Statements()  # a new session: its statements are gone
            mock = self.source.serve(request, optional=True)
            return self._authenticate(request, mock, packet.seq)
        sql = request.get("sql")
        if command == "query" and isinstance(sql, str) and LOCAL_INFILE.match(sql):
            return self._infile_start(request, packet.seq + 1)
        mock = self.source.serve(request)
        if mock is None:
            return miss_packet(request, packet.seq + 1)
        response = mock["response"]
        if command == "prepare":
            response = self._prepared(request, response)
        return responses.encode_response(response)

    # the set-up ------------------------------------------------------------------------

    def _handshake(self, packet: Packet) -> bytes:
        client, _ = client_capabilities(packet.payload)
        request = redact(decode_handshake_response(packet.payload, self._caps))
        self._caps &= client
        self._greeted = True
        mock = self.source.serve(request, optional=True)
        return self._authenticate(request, mock, packet.seq)

    def _authenticate(self, request: Doc, mock: Doc | None, seq: int) -> bytes:
        """Answer a HandshakeResponse or COM_CHANGE_USER, whatever its credentials. When the
        client asks for the plugin it asked for when recorded, the recorded packets are sent
        as they were (an auth switch, caching_sha2's more data...), each after the client
        packet it followed, with sequence ids following the client's; else (or with no
        recording) only the final OK or ERR, at once: no auth switch."""
        steps: list[tuple[bool, Doc]] = [(False, MADE_UP_OK)]
        if mock is not None:
            recorded = _auth_steps(mock["response"])
            final = [s for s in recorded if _final_item(s[1])]
            if mock["request"].get("auth_plugin") == request.get("auth_plugin"):
                steps = recorded
            elif final:
                steps = [(False, final[-1][1])]
        self._auth = steps
        return self._auth_step(seq, first=True)

    def _auth_step(self, seq: int, first: bool = False) -> bytes:
        """The recorded authentication packets up to the next the client must answer."""
        out = bytearray()
        while self._auth:
            waits, item = self._auth[0]
            if waits and not first and out:
                break
            self._auth.pop(0)
            seq = (seq + 1) & 0xFF
            out += responses.encode_response({"seq": seq, "results": [_unsequenced(item)]})
            first = False
        return bytes(out)

    # statements ------------------------------------------------------------------------

    def _prepared(self, request: Doc, response: Doc) -> Doc:
        """The recorded answer to a prepare with this connection's own statement id."""
        items = list(response.get("results", ()))
        if not items:
            return response
        first = items[0]
        statement_id = self._next_id
        if "prepared" in first:
            prepared = dict(first["prepared"])
            params = int(prepared["params"])
            prepared["statement_id"] = statement_id
            items[0] = {**first, "prepared": prepared}
        elif "packet" in first and from_text_or_base64(first["packet"])[:1] == b"\x00":
            payload = bytearray(from_text_or_base64(first["packet"]))
            params = int.from_bytes(payload[7:9], "little")
            payload[1:5] = statement_id.to_bytes(4, "little")
            items[0] = {**first, "packet": text_or_base64(bytes(payload))}
        else:
            return response  # an ERR: nothing prepared
        self._next_id += 1
        types = results.param_types(first.get("params", []))
        self._statements.add(statement_id, request.get("sql", ""), params, types)
        return {**response, "results": items}

    # LOAD DATA LOCAL INFILE ------------------------------------------------------------

    def _infile_start(self, request: Doc, seq: int) -> bytes:
        mock = self.source.serve({**request, "partial": "local_infile"})
        if mock is None:
            return miss_packet(request, seq)
        response = mock["response"]
        items = list(response.get("results", ()))
        cut = next((i for i, item in enumerate(items) if _is_infile_item(item)), None)
        if cut is None:  # the server did not ask for the file: the answer is whole
            return responses.encode_response(response)
        self._infile = (request, mock, cut + 1)
        self._data = bytearray()
        head = {**response, "seq": seq, "results": [_unsequenced(i) for i in items[: cut + 1]]}
        return responses.encode_response(head)

    def _infile_data(self, packet: Packet) -> bytes:
        if packet.payload:
            self._data += packet.payload
            return b""
        assert self._infile is not None
        request, mock, rest = self._infile
        self._infile = None
        full = {**request, "local_infile_data": text_or_base64(bytes(self._data))}
        seq = (packet.seq + 1) & 0xFF
        if match_key(full) != match_key(mock["request"]):
            self.source.miss(full)
            return miss_packet(full, seq)
        response = mock["response"]
        items = [_unsequenced(i) for i in response.get("results", ())[rest:]]
        return responses.encode_response({**response, "seq": seq, "results": items})


def _final_item(item: Doc) -> bool:
    if "ok" in item or "error" in item:
        return True
    return "packet" in item and from_text_or_base64(item["packet"])[:1] in (b"\x00", b"\xff")


def _auth_steps(response: Doc) -> list[tuple[bool, Doc]]:
    """A recorded set-up's packets after the greeting, each with whether a client packet
    came before it (its sequence id skips one), up to the final OK or ERR."""
    steps: list[tuple[bool, Doc]] = []
    seq = int(response.get("seq", 1))
    previous: int | None = None
    for item in response.get("results", ()):
        seq = int(item.get("seq", seq))
        if "greeting" not in item and not ("packet" in item and seq == 0):
            waits = previous is None or seq != (previous + 1) & 0xFF
            steps.append((waits, item))
            if _final_item(item):
                break
        previous, seq = seq, (seq + 1) & 0xFF
    return steps or [(False, MADE_UP_OK)]


def _greeting_payload(greeting: Doc) -> bytes:
    """The greeting's bytes, TLS and compression cleared."""
    from kpy_ci.protocols.mysql.handshake import encode_greeting

    doc: dict[str, Any] = dict(greeting)
    if "base64" in doc:
        return from_text_or_base64(doc)
    caps = flags.value(doc["capabilities"], flags.CAPABILITIES) & ~CLEARED
    doc["capabilities"] = flags.names(caps, flags.CAPABILITIES, 32)
    return encode_greeting(doc)
