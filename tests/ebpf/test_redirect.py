"""A child in a session lands on kpy's listener, whatever address family it dials; kpy
recovers the exact destination; the child sees the address it dialled; nothing outside the
session is touched."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kpy_ci.address import Address
from kpy_ci.ebpf.session import Session
from tests.conftest import free_port

DIAL = str(Path(__file__).with_name("dial.py"))


def accept_one(listener: socket.socket, session: Session) -> tuple[str, Address | None]:
    conn, peer = listener.accept()
    with conn:
        first_line = conn.makefile("rb").readline().decode().strip()
        conn.sendall(b"k")
        return first_line, session.original_destination(peer)


@pytest.mark.parametrize(
    ("host", "family"),
    [("127.0.0.1", "4"), ("127.0.0.9", "4"), ("::1", "6"), ("::ffff:127.0.0.1", "6")],
)
def test_connect_lands_on_proxy_with_original_destination(
    listener: socket.socket, host: str, family: str
) -> None:
    nowhere = free_port()
    proxy = Address(*listener.getsockname())
    with Session(proxy) as session:
        child = session.spawn(
            [sys.executable, DIAL, f"{host},{nowhere},{family}"], stdout=subprocess.PIPE, text=True
        )
        line, original = accept_one(listener, session)
        out, _ = child.communicate(timeout=10)
    assert child.returncode == 0
    assert line == f"{host} {nowhere}"
    assert original == Address(host, nowhere)
    # the child's getpeername() shows what it dialled, not the proxy
    assert json.loads(out)["peer"] == [host, nowhere]


def test_many_connections_each_keep_their_destination(listener: socket.socket) -> None:
    targets = [(f"127.0.0.{i}", free_port()) for i in range(2, 12)]
    with Session(Address(*listener.getsockname())) as session:
        child = session.spawn([sys.executable, DIAL, *(f"{h},{p}" for h, p in targets)])
        seen = [accept_one(listener, session) for _ in targets]
        assert child.wait(10) == 0
    for (line, original), (host, port) in zip(seen, targets, strict=True):
        assert line == f"{host} {port}"
        assert original == Address(host, port)


def test_ipv6_sockets_go_to_an_ipv6_proxy_when_given() -> None:
    with socket.socket(socket.AF_INET6) as listener6:
        listener6.bind(("::1", 0))
        listener6.listen()
        listener6.settimeout(10)
        port = listener6.getsockname()[1]
        nowhere = free_port(socket.AF_INET6)
        with Session(Address("127.0.0.1", port), proxy6="::1") as session:
            child = session.spawn([sys.executable, DIAL, f"::1,{nowhere},6"])
            _, original = accept_one(listener6, session)
            assert child.wait(10) == 0
    assert original == Address("::1", nowhere)


def test_process_outside_the_session_is_not_redirected(listener: socket.socket) -> None:
    nowhere = free_port()
    with Session(Address(*listener.getsockname())):
        # this test process and a child it starts itself are outside the cgroup
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.1", nowhere)),
        ):
            pass
        outside = subprocess.run([sys.executable, DIAL, f"127.0.0.1,{nowhere}"], timeout=10)
    assert outside.returncode == 3  # refused: it went where it asked, not to the proxy


def test_passthrough_destinations_are_left_alone(listener: socket.socket) -> None:
    nowhere, elsewhere = free_port(), free_port()
    rules = [("127.0.0.77", nowhere), ("127.0.1.0/24", 0)]
    with Session(Address(*listener.getsockname()), passthrough=rules) as session:
        exact = session.spawn([sys.executable, DIAL, f"127.0.0.77,{nowhere}"])
        by_net = session.spawn([sys.executable, DIAL, f"127.0.1.5,{elsewhere}"])
        other_port = session.spawn([sys.executable, DIAL, f"127.0.0.77,{elsewhere}"])
        _, original = accept_one(listener, session)
        assert exact.wait(10) == 3 and by_net.wait(10) == 3
        assert other_port.wait(10) == 0
    assert original == Address("127.0.0.77", elsewhere)


def test_connecting_to_the_proxy_itself_is_not_looped(listener: socket.socket) -> None:
    host, port = listener.getsockname()
    with Session(Address(host, port)) as session:
        child = session.spawn([sys.executable, DIAL, f"{host},{port}"])
        line, original = accept_one(listener, session)
        assert child.wait(10) == 0
    assert line == f"{host} {port}"
    assert original is None  # not redirected, so nothing recorded


def test_passthrough_connects_are_counted_by_destination(listener: socket.socket) -> None:
    """kpy_passed counts each connect() a rule let through, by what the socket dialled (an
    IPv6 socket's mapped address apart from an IPv4 socket's); redirected ones are not."""
    with socket.create_server(("127.0.0.1", 0)) as real:
        port = real.getsockname()[1]
        real.settimeout(10)
        with Session(Address(*listener.getsockname()), passthrough=[("127.0.0.1", port)]) as s:
            assert s.passed_through() == {}
            direct = [f"127.0.0.1,{port}", f"127.0.0.1,{port}", f"::ffff:127.0.0.1,{port},6"]
            child = s.spawn([sys.executable, DIAL, *direct, f"127.0.0.1,{free_port()}"])
            for _ in direct:  # the real server answers these: they never reach kpy
                conn, _ = real.accept()
                with conn:
                    conn.makefile("rb").readline()
                    conn.sendall(b"k")
            accept_one(listener, s)
            assert child.wait(10) == 0
            counts = s.passed_through()
        assert s.passed_through() == {}  # closed: nothing to read
    assert counts == {Address("127.0.0.1", port): 2, Address("::ffff:127.0.0.1", port): 1}
