"""What the proxy takes from the rest of kpy, as small interfaces: while recording, a sink
for what it captures (``Capture``, kept by recording.py); at replay, the mocks it answers
from (``Mocks``, kept by mock_store.py). The proxy imports neither of those."""

from __future__ import annotations

from typing import Literal, Protocol

from kpy_ci.address import Address
from kpy_ci.protocols.base import Doc, Exchange
from kpy_ci.protocols.base import Protocol as Plugin
from kpy_ci.report.model import Miss

Direction = Literal["inbound", "outbound"]


class Tap(Protocol):
    """The proxy's handle on one connection being recorded: cheap calls, safe from the
    event loop; each chunk as it was relayed, in order."""

    def client(self, data: bytes) -> None: ...

    def server(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def tls(self, info: Doc) -> None:
        """The connection went on inside TLS (after PostgreSQL's SSLRequest)."""
        ...


class Capture(Protocol):
    """Where a recording's bytes go."""

    def open(
        self, protocol: Plugin, direction: Direction, destination: Address, tls: Doc | None = None
    ) -> Tap: ...

    def add(self, exchange: Exchange, destination: Address) -> None:
        """An exchange that is a connection of its own (a DNS query and its answer)."""
        ...

    def warn(self, message: str) -> None: ...


class Mocks(Protocol):
    """The mocks a replay answers from, for every connection."""

    def serve(
        self, protocol: str, destination: str, connection: int, request: Doc, optional: bool
    ) -> Doc | None: ...

    def next_on_connection(self, mock: Doc) -> Doc | None: ...

    def miss(self, protocol: str, destination: str, connection: int, request: Doc) -> None: ...

    def add_miss(self, miss: Miss) -> None: ...

    def recorded_tls(self, destination: str, server_name: str | None = None) -> Doc | None: ...

    def protocols_at(self, destination: str) -> list[str]:
        """The protocols of the mocks recorded for this destination, in file order."""
        ...

    def opened(self, connection: int, where: str) -> None:
        """A connection began (for the ledger)."""
        ...

    def closed(self, connection: int, by_kpy: bool) -> None: ...
