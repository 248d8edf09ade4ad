"""A replay's mocks cut down to recorded exchanges, for the protocol tests that drive a mock
server without kpy's store: each request answered by the first unused exchange with its key
or one of its partial keys (reusable ones, and what the matcher calls set-up, again and
again), as mock_store.py does; an ``optional`` ask (a greeting) that finds none is no miss.
Safe across threads: a socket server may run a mock server per connection."""

from __future__ import annotations

import threading
from collections.abc import Hashable

from kpy_ci.protocols.base import Doc, Exchange, Protocol


class RecordedMocks:
    def __init__(self, protocol: Protocol, exchanges: list[Exchange]) -> None:
        self.protocol = protocol
        self.mocks = [{"request": e.request, "response": e.response} for e in exchanges]
        self.reusable = [e.reusable or protocol.matcher.setup(e.request) for e in exchanges]
        self.keys = [
            [self._key(e.request), *protocol.matcher.partials(e.request)] for e in exchanges
        ]
        self.used: set[int] = set()
        self.misses: list[Doc] = []
        self._lock = threading.Lock()

    def _key(self, request: Doc) -> Hashable:
        return self.protocol.matcher.key(request)

    def serve(self, request: Doc, *, optional: bool = False) -> Doc | None:
        key = self._key(request)
        with self._lock:
            for i, mock in enumerate(self.mocks):
                if key in self.keys[i] and (i not in self.used or self.reusable[i]):
                    self.used.add(i)
                    return mock
            if not optional:
                self.misses.append(request)
            return None

    def next_on_connection(self, mock: Doc) -> Doc | None:
        i = next(i for i, m in enumerate(self.mocks) if m is mock)
        return self.mocks[i + 1] if i + 1 < len(self.mocks) else None

    def miss(self, request: Doc) -> None:
        with self._lock:
            self.misses.append(request)
