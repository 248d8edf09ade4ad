"""DNS: a child's getaddrinfo() (glibc connects its UDP socket) and a raw query on an
unconnected socket both reach kpy's DNS port, and the answers come back as if from the
resolver the child asked. The child gets its own resolv.conf naming a loopback resolver, so
even a failed redirect would stay on loopback, never on the machine's own resolver."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kpy_ci.address import Address
from kpy_ci.ebpf.session import Session
from tests.dns_server import DnsServer

RESOLVE = str(Path(__file__).with_name("resolve.py"))
RECORDS = {"api.staging.kpy.test": "127.0.0.42", "raw.kpy.test": "127.0.0.43"}


@pytest.fixture
def resolv_conf(tmp_path: Path) -> Path:
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 127.0.0.53\noptions timeout:2 attempts:1\n")
    return path


def run_in_session(
    dns: DnsServer, resolv_conf: Path, *args: str, dns6: str | None = "::1"
) -> dict[str, list[str]]:
    with Session(dns=Address("127.0.0.1", dns.port), dns6=dns6) as session:
        child = session.spawn(
            [sys.executable, RESOLVE, *args], resolv_conf=resolv_conf, stdout=subprocess.PIPE
        )
        out, _ = child.communicate(timeout=20)
    if child.returncode != 0:
        return {"failed": [str(child.returncode)]}
    return json.loads(out)  # type: ignore[no-any-return]


@pytest.mark.parametrize("nameserver", ["127.0.0.53", "::1"])
def test_getaddrinfo_goes_to_kpy_dns(tmp_path: Path, nameserver: str) -> None:
    resolv_conf = tmp_path / "resolv.conf"
    resolv_conf.write_text(f"nameserver {nameserver}\noptions timeout:2 attempts:1\n")
    with DnsServer(RECORDS) as dns:
        result = run_in_session(dns, resolv_conf, "gai", "api.staging.kpy.test")
    assert result == {"addresses": ["127.0.0.42"]}
    assert ("api.staging.kpy.test.", "A") in {q[:2] for q in dns.questions}


def test_native_ipv6_query_fails_rather_than_escape_without_dns6(resolv_conf: Path) -> None:
    with DnsServer(RECORDS) as dns:
        result = run_in_session(dns, resolv_conf, "raw", "raw.kpy.test", "::1", "6", dns6=None)
    assert result == {"failed": ["1"]}  # sendto() got EPERM
    assert dns.questions == []


@pytest.mark.parametrize(
    ("server", "family"), [("127.0.0.53", "4"), ("::1", "6"), ("::ffff:127.0.0.53", "6")]
)
def test_unconnected_query_answer_seems_to_come_from_the_resolver_asked(
    resolv_conf: Path, server: str, family: str
) -> None:
    with DnsServer(RECORDS) as dns:
        result = run_in_session(dns, resolv_conf, "raw", "raw.kpy.test", server, family)
    assert result["answer"] == ["127.0.0.43"]
    assert result["from"] == [server, 53]
    assert [q[:2] for q in dns.questions] == [("raw.kpy.test.", "A")]


def test_child_sees_its_own_resolv_conf_and_host_keeps_its_own(resolv_conf: Path) -> None:
    host_before = Path("/etc/resolv.conf").read_bytes()
    with Session() as session:
        child = session.spawn(
            ["cat", "/etc/resolv.conf"], resolv_conf=resolv_conf, stdout=subprocess.PIPE
        )
        out, _ = child.communicate(timeout=10)
    assert out == resolv_conf.read_bytes()
    assert Path("/etc/resolv.conf").read_bytes() == host_before
