"""The service under kpy, as ``kpy record`` and ``kpy test`` both run it: the proxy's loop,
kpy's CA in the service's trust, its eBPF session, the process and its log. Each caller
adds only its own parts (what the egress does with a connection, DNS, the ingress).

Everything is undone in the reverse order it was set up, however the block ends: the
service is stopped and its log drained, the session's programs detached, the proxy's
connections finished, the CA's bundles removed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from kpy_ci.address import Address
from kpy_ci.ebpf.session import Session
from kpy_ci.proxy.server import ProxyLoop
from kpy_ci.proxy.tls import Termination
from kpy_ci.service import stop, wait_ready
from kpy_ci.service_log import ServiceLog
from kpy_ci.trust import TrustedService, trusting


class UnderKpy:
    """Set up in steps (``session``, ``spawn``, ``ready``); closed once, by ``with``."""

    def __init__(self, ca_files: Sequence[str], service_log: ServiceLog) -> None:
        self.service_log = service_log
        self.termination = Termination()
        self.loop = ProxyLoop()
        self._undo = contextlib.ExitStack()
        self.current: Session | None = None
        self.service: subprocess.Popen[Any] | None = None
        try:
            self.trusted: TrustedService = self._undo.enter_context(
                trusting(os.environ, self.termination.authority.certificate_pem, ca_files)
            )
        except BaseException:
            self.loop.close()
            raise
        # undone after the session and before the CA's bundles, as the module says
        self._undo.callback(self.loop.close)

    def lookup(self, peer: tuple[str, int]) -> Address | None:
        """Where a connection the session redirected was going (None before the session)."""
        return self.current.original_destination(peer) if self.current is not None else None

    def session(
        self,
        egress: Address,
        dns: Address | None,
        ports: Mapping[int, int] | None = None,
        passthrough: Sequence[tuple[str, int]] = (),
    ) -> Session:
        """The service's cgroup with kpy's programs attached, until the block ends."""
        self.current = self._undo.enter_context(
            Session(
                egress,
                dns=dns,
                dns6="::1" if dns is not None else None,
                ports=dict(ports or {}),
                passthrough=passthrough,
            )
        )
        return self.current

    def spawn(
        self, command: str, resolv_conf: Path | None, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[Any]:
        """The service, in the session, its output read into the log."""
        assert self.current is not None, "UnderKpy.spawn before session"
        service = self.current.spawn(
            command,
            resolv_conf=resolv_conf,
            mounts=self.trusted.mounts,
            env=dict(env if env is not None else self.trusted.env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.service = service
        self._undo.callback(self.service_log.wait)
        self._undo.callback(stop, service)
        assert service.stdout is not None
        self.service_log.start(service.stdout)
        return service

    def ready(
        self, port: int, ready_url: str | None, timeout: float, shown_port: int | None = None
    ) -> str | None:
        """Why the service never became ready on ``port``; None once it is."""
        assert self.service is not None and self.current is not None
        return wait_ready(
            self.service,
            port,
            ready_url,
            timeout,
            self.service_log,
            shown_port,
            group=self.current.cgroup,
        )

    def __enter__(self) -> UnderKpy:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._undo.close()
