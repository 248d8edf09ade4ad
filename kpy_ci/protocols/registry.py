"""Protocol plug-ins, sniffed in this order from a connection's first client bytes;
``generic`` takes whatever none claims. Adding a protocol: its module (and its replay
module, which completes the plug-in), and one line here."""

from __future__ import annotations

from kpy_ci.protocols import dns, generic, http_replay, postgres_replay, redis_replay
from kpy_ci.protocols.base import Matcher, Protocol

REGISTRY: list[Protocol] = [postgres_replay.PROTOCOL, redis_replay.PROTOCOL, http_replay.PROTOCOL]

MATCHERS: dict[str, Matcher] = {
    p.name: p.matcher for p in [*REGISTRY, generic.PROTOCOL] if p.matcher is not None
} | {dns.NAME: dns.MATCHER}
"""How the mocks of each protocol are matched at replay, by protocol name."""


def sniff(first: bytes) -> Protocol:
    """The protocol a connection speaks, from the first bytes its client sent (none: the
    server speaks first, and kpy relays it as generic TCP)."""
    if first:
        for protocol in REGISTRY:
            if protocol.sniff(first):
                return protocol
    return generic.PROTOCOL
