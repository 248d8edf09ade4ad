"""DNS as one plug-in: which names the service resolved, and what they resolved to, so
that replay can answer them again (dnspython does the wire format).

The plug-in speaks DNS over TCP: each message after its two-byte length (RFC 1035 4.2.2).
kpy's DNS port (proxy/dns.py) takes the service's UDP queries and gives each to the same
recorder and mock server with that length in front, so both transports share one path.
An answer is rebuilt for each query at replay (its id and question): not byte-exact."""

from __future__ import annotations

import struct
from collections.abc import Hashable

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from kpy_ci.protocols.base import (
    Doc,
    Exchange,
    Matcher,
    MockSource,
    Protocol,
    ProtocolError,
    as_recorded,
    client_first,
    load_schema,
    no_partials,
    no_setup,
    nothing_local,
    unchanged,
)

NAME = "dns"


def decode_query(wire: bytes) -> Doc:
    try:
        message = dns.message.from_wire(wire)
    except dns.exception.DNSException as e:
        raise ProtocolError(f"not a DNS query: {e}") from e
    if not message.question:
        raise ProtocolError("a DNS query with no question")
    q = message.question[0]
    return {
        "name": q.name.to_text(),
        "type": dns.rdatatype.to_text(q.rdtype),
        "class": dns.rdataclass.to_text(q.rdclass),
    }


def decode_answer(wire: bytes) -> Doc:
    try:
        message = dns.message.from_wire(wire)
    except dns.exception.DNSException as e:
        raise ProtocolError(f"not a DNS answer: {e}") from e
    return {
        "rcode": dns.rcode.to_text(message.rcode()),
        "answer": [line for rrset in message.answer for line in rrset.to_text().splitlines()],
    }


def encode_answer(response: Doc, query: bytes) -> bytes:
    """An answer to ``query`` (its id and question) with the recorded records."""
    message = dns.message.make_response(dns.message.from_wire(query))
    message.set_rcode(dns.rcode.from_text(response["rcode"]))
    for line in response["answer"]:
        name, ttl, rdclass, rdtype, rdata = line.split(None, 4)
        message.answer.append(dns.rrset.from_text(name, int(ttl), rdclass, rdtype, rdata))
    return message.to_wire()


def match_key(request: Doc) -> Hashable:
    return (str(request.get("name", "")).lower(), request.get("type"), request.get("class"))


def describe(request: Doc) -> str:
    return f"{request.get('type')} {request.get('name')}"


def refused(query: bytes) -> bytes:
    """SERVFAIL for ``query``: what a resolver says when it cannot answer."""
    message = dns.message.make_response(dns.message.from_wire(query))
    message.set_rcode(dns.rcode.SERVFAIL)
    return message.to_wire()


def framed(message: bytes) -> bytes:
    """A message as DNS over TCP carries it."""
    return struct.pack(">H", len(message)) + message


def unframed(data: bytes) -> tuple[list[bytes], bytes]:
    """The whole messages at the start of ``data``, and what is left."""
    messages = []
    while len(data) >= 2 and len(data) >= 2 + (size := struct.unpack(">H", data[:2])[0]):
        messages.append(data[2 : 2 + size])
        data = data[2 + size :]
    return messages, data


def sniff(first: bytes) -> bool:
    """A whole DNS query after its length, as a TCP client sends its first: nothing looser,
    since two bytes and a header could begin many binary protocols."""
    messages, rest = unframed(first)
    if len(messages) != 1 or rest or len(messages[0]) < 12:
        return False
    try:
        message = dns.message.from_wire(messages[0])
    except dns.exception.DNSException:
        return False
    return not message.flags & dns.flags.QR and len(message.question) == 1


class DnsRecorder:
    """Queries and answers paired by id: a TCP server may answer out of order (RFC 7766)."""

    def __init__(self) -> None:
        self._client = b""
        self._server = b""
        self._asked: dict[int, tuple[Doc, int]] = {}

    def client_data(self, data: bytes, at: int) -> list[Exchange]:
        messages, self._client = unframed(self._client + data)
        for wire in messages:
            query_id = struct.unpack(">H", wire[:2])[0] if len(wire) >= 2 else -1
            self._asked[query_id] = (decode_query(wire), at)
        return []

    def server_data(self, data: bytes, at: int) -> list[Exchange]:
        messages, self._server = unframed(self._server + data)
        done: list[Exchange] = []
        for wire in messages:
            query_id = struct.unpack(">H", wire[:2])[0] if len(wire) >= 2 else -1
            if query_id not in self._asked:
                raise ProtocolError(f"a DNS answer to no query (id {query_id})", done)
            request, started = self._asked.pop(query_id)
            # names resolve again and again: reusable
            done.append(Exchange(NAME, request, decode_answer(wire), started, at, reusable=True))
        return done

    def close(self, at: int) -> list[Exchange]:
        return []  # a query never answered tells replay nothing


def encode_response(response: Doc) -> bytes:
    """The recorded answer as a message of its own (id 0, no question): replay builds each
    answer for its query instead (``encode_answer``)."""
    return framed(encode_answer(response, dns.message.Message(id=0).to_wire()))


def expected(request: Doc) -> bool:
    return False  # resolving changes nothing


class DnsMockServer:
    """Answers each query from the mock for its name and type; SERVFAIL on a miss."""

    def __init__(self, source: MockSource) -> None:
        self.source = source
        self.closed = False
        self._pending = b""

    def opening(self) -> bytes:
        return b""

    def idle(self) -> bytes:
        return b""

    def client_data(self, data: bytes) -> bytes:
        messages, self._pending = unframed(self._pending + data)
        out = bytearray()
        for query in messages:
            try:
                request = decode_query(query)
            except ProtocolError:
                continue  # not a query: a resolver would drop it too
            mock = self.source.serve(request)
            answer = refused(query) if mock is None else encode_answer(mock["response"], query)
            out += framed(answer)
        return bytes(out)


MATCHER = Matcher(match_key, describe, expected, no_setup, no_partials, as_recorded)
"""Names resolved at record time resolve again at replay; a name never resolved fails."""

PROTOCOL = Protocol(
    name=NAME,
    sniff=sniff,
    greets=client_first,
    edit_greeting=unchanged,
    answer_locally=nothing_local,
    starttls=nothing_local,
    recorder=DnsRecorder,
    encode_response=encode_response,
    byte_exact=False,
    matcher=MATCHER,
    mock_server=DnsMockServer,
    schema=load_schema(__name__),
    redact=as_recorded,  # a name is no secret
)
