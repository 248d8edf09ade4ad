"""A TCP relay from a public port to the service's moved one: the ingress side of a
session, for ``kpy run --move-port`` (``kpy record`` adds recording to the same Ingress).

The service binds port P; eBPF moves that bind to an internal port P'. The relay stands on
P and copies bytes both ways, so clients reach the service on the port they always used.
"""

from __future__ import annotations

from types import TracebackType

from kpy_ci.address import Address
from kpy_ci.proxy.server import Ingress, ProxyLoop


class Relay:
    """Listen on ``public`` and forward each connection to the first of ``targets`` that
    accepts (the service may have bound IPv4, IPv6 or both)."""

    def __init__(self, public: Address, targets: list[Address]) -> None:
        self.public = public
        self.targets = targets
        self._loop: ProxyLoop | None = None

    def start(self) -> Relay:
        self._loop = ProxyLoop()
        try:
            self._loop.listen(self.public, Ingress(None, self.targets).handle)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
