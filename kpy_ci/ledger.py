"""The egress ledger at replay: what kpy did with each of the service's outbound
connections and DNS lookups, test by test. The mock store tells it every call served or
refused, the mock egress every connection opened and closed; ``end_test`` gives a test's
``Ledger`` (report/model.py), with the passthrough connect()s eBPF counted.

A test's ledger covers what happened since the test before it ended, as its misses do
(the first test's: since the service started), so a call that fails a test is always in
its ledger. Thread-safe: the proxy's loop reports while the runner starts and ends tests.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from kpy_ci.address import Address, host_of, plain_ip
from kpy_ci.protocols.base import Doc
from kpy_ci.report.model import ConnectionUse, Ledger, LookupUse, Miss, PassedThrough

DNS = "dns"  # protocols/dns.py's NAME: its calls are lookups, not connections


@dataclass
class _Connection:
    destination: str
    name: str = ""
    protocol: str = ""
    earlier: bool = False  # opened before the running test began
    served: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    hung_up: bool = False
    closed: bool = False
    listed: bool = False  # has something to show in the running test's ledger


class LedgerKeeper:
    """Keeps the ledger of one set's replay: fed as calls happen, read as each test ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: dict[int, _Connection] = {}
        self._lookups: list[LookupUse] = []
        self._names: dict[str, str] = {}  # address -> the name last resolved to it
        self._passed: dict[Address, int] = {}  # eBPF's counts when the last test ended
        self._running = False

    # --- the mock servers' side ----------------------------------------------------------

    def opened(self, connection: int, destination: str) -> None:
        with self._lock:
            name = self._names.get(host_of(destination), "")
            # one opened between tests is listed once it is used
            self._connections[connection] = _Connection(
                destination, name, earlier=not self._running, listed=self._running
            )

    def served(self, connection: int, protocol: str, mock: Doc) -> None:
        """A mock answered a call (``mock``: its document)."""
        with self._lock:
            if protocol == DNS:
                self._resolved(mock)
                return
            c = self._connection(connection, protocol)
            if c is not None:
                c.served.append(str(mock["name"]))

    def refused(self, miss: Miss) -> None:
        """A call matched no mock."""
        with self._lock:
            if miss.protocol == DNS:
                self._lookups.append(LookupUse(miss.call))
                return
            c = self._connection(miss.connection, miss.protocol)
            if c is not None:
                c.refused.append(miss.call)

    def closed(self, connection: int, *, by_kpy: bool) -> None:
        """The connection ended; ``by_kpy``: kpy's mock server hung up, not the service."""
        with self._lock:
            c = self._connections.get(connection)
            if c is not None:
                c.closed = True
                c.hung_up = by_kpy and bool(c.refused)

    def _connection(self, connection: int, protocol: str) -> _Connection | None:
        c = self._connections.get(connection)
        if c is not None:
            c.protocol = c.protocol or protocol
            c.listed = True
        return c

    def _resolved(self, mock: Doc) -> None:
        request, response = mock["request"], mock["response"]
        name = str(request.get("name", "")).rstrip(".")
        self._lookups.append(LookupUse(f"{request.get('type')} {name}", str(mock["name"])))
        for record in response.get("answer") or ():
            fields = str(record).split(None, 4)  # name ttl class type address
            if len(fields) == 5 and fields[3] in ("A", "AAAA"):
                self._names[plain_ip(fields[4])] = name

    # --- the runner's side ---------------------------------------------------------------

    def begin_test(self) -> None:
        with self._lock:
            self._running = True

    def end_test(self, passed: Mapping[Address, int]) -> Ledger:
        """The running test's ledger; ``passed``: eBPF's passthrough counts now."""
        with self._lock:
            self._running = False
            uses = [_use(number, c) for number, c in sorted(self._connections.items()) if c.listed]
            lookups = self._start_over()
            before, self._passed = self._passed, dict(passed)
        return Ledger(tuple(uses), passed_between(before, passed), tuple(lookups))

    def run_again(self, passed: Mapping[Address, int]) -> None:
        """The running test is sent again (to learn what it makes up): its ledger tells of
        the last sending only. ``passed``: eBPF's passthrough counts now."""
        with self._lock:
            self._start_over()
            self._passed = dict(passed)

    def _start_over(self) -> list[LookupUse]:
        """Forget the calls of the test so far (its closed connections with them); the
        lookups it made."""
        for number, c in list(self._connections.items()):
            if c.closed:
                del self._connections[number]
            else:
                c.served, c.refused, c.earlier, c.listed = [], [], True, False
        lookups, self._lookups = self._lookups, []
        return lookups


def _use(number: int, c: _Connection) -> ConnectionUse:
    return ConnectionUse(
        connection=number,
        destination=c.destination,
        protocol=c.protocol,
        name=c.name,
        opened_earlier=c.earlier,
        served=tuple(c.served),
        refused=tuple(c.refused),
        closed_by_kpy=c.hung_up,
    )


def passed_between(
    before: Mapping[Address, int], after: Mapping[Address, int]
) -> tuple[PassedThrough, ...]:
    """The connect()s counted between two readings, by destination. A count that went
    down was aged out of eBPF's map and started again: all of it is new."""
    out = []
    for address, count in sorted(after.items(), key=lambda item: str(item[0])):
        was = before.get(address, 0)
        made = count - was if count >= was else count
        if made:
            out.append(PassedThrough(str(address), made))
    return tuple(out)
