"""DNS messages, decoded for people (dnspython does the wire format): which names the
service resolved, and what they resolved to, so that replay can answer them again."""

from __future__ import annotations

from collections.abc import Hashable

import dns.exception
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from kpy_ci.protocols.base import Doc, Matcher, ProtocolError

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


MATCHER = Matcher(match_key, describe, lambda request: False)
"""Names resolved at record time resolve again at replay; a name never resolved fails."""
