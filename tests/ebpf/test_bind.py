"""Ingress: a service that binds port P really listens on an internal port; kpy's relay
stands on P; clients reach the service on P, and the service still believes it has P."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kpy_ci.address import Address
from kpy_ci.ebpf.session import Session
from kpy_ci.proxy.relay import Relay
from tests.conftest import free_port

SERVE = str(Path(__file__).with_name("serve.py"))


def ask(host: str, port: int) -> dict[str, list[object]]:
    with socket.create_connection((host, port), timeout=10) as c:
        c.sendall(b"hi")
        c.shutdown(socket.SHUT_WR)
        return json.loads(c.makefile("rb").read())  # type: ignore[no-any-return]


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_bind_moves_to_internal_port_and_relay_serves_public(host: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    public, internal = free_port(family), free_port(family)
    with Session(ports={public: internal}) as session:
        child = session.spawn([sys.executable, SERVE, host, str(public)], stdout=subprocess.PIPE)
        assert child.stdout is not None
        # the service believes it listens on the public port
        assert json.loads(child.stdout.readline())["listening"] == [host, public]
        # ...while the kernel has it on the internal one, which answers directly
        direct = ask(host, internal)
        assert direct == {"listening": [host, public], "accepted": [host, public]}
        # ...and the public port is free for kpy: the relay binds it and reaches the service
        with Relay(Address(host, public), [Address(host, internal)]):
            assert ask(host, public) == direct


def test_ports_not_in_the_map_bind_as_asked() -> None:
    port, other = free_port(), free_port()
    with Session(ports={other: free_port()}) as session:
        child = session.spawn(
            [sys.executable, SERVE, "127.0.0.1", str(port)], stdout=subprocess.PIPE
        )
        assert child.stdout is not None
        child.stdout.readline()
        assert ask("127.0.0.1", port)["listening"] == ["127.0.0.1", port]
