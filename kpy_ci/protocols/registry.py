"""The protocol plug-ins, and the only list of them: the mock schema's protocol enum,
``kpy doctor`` and the docs' table are made from ``REGISTRY``.

A connection's protocol is sniffed from its client's first bytes, in this order; a client
that waits for the server to speak first is known from the server's greeting instead. What
none claims is ``generic``, which takes anything and is last. Adding a protocol: its
package, and one line here.
"""

from __future__ import annotations

from kpy_ci.protocols import dns, generic, http, mysql, postgres, redis
from kpy_ci.protocols.base import Matcher, Protocol

REGISTRY: list[Protocol] = [
    postgres.PROTOCOL,
    redis.PROTOCOL,
    http.PROTOCOL,
    mysql.PROTOCOL,
    dns.PROTOCOL,
    generic.PROTOCOL,
]

BY_NAME: dict[str, Protocol] = {p.name: p for p in REGISTRY}

MATCHERS: dict[str, Matcher] = {p.name: p.matcher for p in REGISTRY}
"""How the mocks of each protocol are matched at replay, by protocol name."""


def sniff(first: bytes) -> Protocol:
    """The protocol of a connection whose client spoke first, from its first bytes."""
    return next(p for p in REGISTRY if p.sniff(first)) if first else generic.PROTOCOL


def greeting(first: bytes, port: int) -> Protocol:
    """The protocol of a connection whose server spoke first, from its greeting (the port
    is a hint a plug-in may weigh, never the only rule)."""
    return next(p for p in REGISTRY if p.greets(first, port))
