"""Protocol plug-ins, sniffed in this order from a connection's first client bytes;
``generic`` takes whatever none claims. Adding a protocol: its module, and one line here."""

from __future__ import annotations

from kpy_ci.protocols import generic, http, postgres, redis
from kpy_ci.protocols.base import Protocol

REGISTRY: list[Protocol] = [postgres.PROTOCOL, redis.PROTOCOL, http.PROTOCOL]


def sniff(first: bytes) -> Protocol:
    """The protocol a connection speaks, from the first bytes its client sent (none: the
    server speaks first, and kpy relays it as generic TCP)."""
    if first:
        for protocol in REGISTRY:
            if protocol.sniff(first):
                return protocol
    return generic.PROTOCOL
