"""Each common HTTP client (Python urllib, requests, httpx, aiohttp; Node.js https and
fetch; curl; Java's HttpClient) calling an HTTPS API with its own CA, trusted through the
variable its runtime reads: kpy records the calls in clear, replays them with the API
stopped, and a changed request body fails with a diff of the body. The service's code never
mentions kpy."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

from tests.conftest import (
    free_port,
    leftover_cgroups,
    no_kpy_left,
    record_with_kpy,
    replay_with_kpy,
)
from tests.dns_server import DnsServer
from tests.https_upstream import https_upstream
from tests.test_record import load_set
from tests.tls_certs import TestCA
from tests.tls_clients import CLIENTS, JAVA, TRAFFIC, TRUST_VARIABLE, service_env

API_HOST = "api.test"
SERVICES = CLIENTS | JAVA
HOST = {"urllib": "127.0.0.1"}  # no SNI: kpy's leaf is for the dialled address


@dataclass(frozen=True)
class Recorded:
    kpy: Path
    env: dict[str, str]
    record: subprocess.CompletedProcess[str]


def client_env(client: str, port: int, url: str, ca: Path) -> dict[str, str]:
    """The service's environment, trusting ``ca`` by its runtime's own variable only."""
    trust = java_options(ca) if client in JAVA else str(ca)
    return service_env(port, url, {TRUST_VARIABLE[client]: trust})


def java_options(ca: Path) -> str:
    """A JVM's options trusting only ``ca``: a PKCS12 trust store beside it, with a
    password, as a service's deployment would give it."""
    store = ca.with_suffix(".p12")
    if not store.exists():
        certificate = x509.load_pem_x509_certificate(ca.read_bytes())
        entries = [pkcs12.PKCS12Certificate(certificate, None)]
        protection = BestAvailableEncryption(b"store-password")
        store.write_bytes(pkcs12.serialize_java_truststore(entries, protection))
    return f"-Djavax.net.ssl.trustStore={store} -Djavax.net.ssl.trustStorePassword=store-password"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Recorded]]:
    """Every client recorded against one HTTPS API, which is then stopped."""
    tmp = tmp_path_factory.mktemp("tls-clients")
    ca = TestCA(tmp / "pki")
    cert = ca.valid(dns_names=(API_HOST,), ips=("127.0.0.1",))
    sets: dict[str, Recorded] = {}
    with https_upstream(cert) as api, DnsServer({API_HOST: "127.0.0.1"}) as dns:
        for client, argv in SERVICES.items():
            port = free_port()
            env = client_env(client, port, api.url(HOST.get(client, API_HOST)), ca.cert_path)
            out = tmp / client
            dns_upstream = f"127.0.0.1:{dns.port}"
            done = record_with_kpy(
                argv, port, out, TRAFFIC, env, "--set", client, "--dns-upstream", dns_upstream
            )
            sets[client] = Recorded(out, env, done)
        assert len(api.requests) == 2 * len(SERVICES), api.tls_errors
    yield sets


def kpy_test(recorded: Recorded, client: str, tmp_path: Path, **env: str) -> str:
    done = replay_with_kpy(
        SERVICES[client], recorded.kpy, tmp_path, recorded.env | env,
        "--port", recorded.env["PORT"],
    )  # fmt: skip
    return f"exit {done.returncode}\n{done.stderr}"


@pytest.mark.parametrize("client", list(SERVICES))
def test_recorded_in_clear(recorded: dict[str, Recorded], client: str) -> None:
    done = recorded[client].record
    assert done.returncode == 0, done.stderr
    meta, tests, mocks = load_set(recorded[client].kpy / client)
    assert meta["complete"] is True and meta["warnings"] == [], meta
    assert len(tests) == 2
    calls = [m for m in mocks if m["protocol"] == "http"]
    assert [m["protocol"] for m in mocks if m["protocol"] != "dns"] == ["http"] * len(calls)
    server_name = None if client in HOST else API_HOST
    bodies = []
    for mock in calls:
        assert mock["tls"]["server_name"] == server_name, mock["tls"]
        assert (mock["request"]["method"], mock["request"]["url"]) == ("POST", "/echo")
        bodies.append(mock["request"]["body"]["json"])
    assert bodies == [{"item": "pen", "qty": 2}, {"item": "ink", "qty": 1}]


@pytest.mark.parametrize("client", list(SERVICES))
def test_replayed_with_the_api_stopped(
    recorded: dict[str, Recorded], client: str, tmp_path: Path
) -> None:
    out = kpy_test(recorded[client], client, tmp_path)
    assert out.startswith("exit 0\n"), out
    assert "kpy: 2 passed, 0 failed" in out
    assert leftover_cgroups() == []
    no_kpy_left()


@pytest.mark.parametrize("client", list(SERVICES))
def test_a_changed_body_fails_with_its_diff(
    recorded: dict[str, Recorded], client: str, tmp_path: Path
) -> None:
    out = kpy_test(recorded[client], client, tmp_path, CALL_EXTRA='{"priority": 5}')
    assert out.startswith("exit 1\n"), out
    assert "matched no mock: POST /echo" in out
    assert re.search(r" qty: 2\n *\+    priority: 5\n", out), out  # the body's diff
    assert "version" not in out  # the diff shows what changed, nothing the two share
