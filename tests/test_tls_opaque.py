"""TLS that kpy cannot or must not end, shown through curl (it offers HTTP/2, holds client
certificates and pins CA files): a server that demands a client certificate, a CA file
kpy is not told of, a name kpy.yml says to leave alone, and a server that chooses HTTP/2.
The service's calls work while recording as they do without kpy (bar the one first call
to a pinned name), the mocks say why they hold no plain call, and replay fails with that
reason, not with a diff of bytes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    free_port,
    leftover_cgroups,
    no_kpy_left,
    record_with_kpy,
    replay_with_kpy,
    write_config,
)
from tests.dns_server import DnsServer
from tests.https_upstream import h2_upstream, https_upstream
from tests.test_record import load_set
from tests.tls_certs import Issued, TestCA
from tests.tls_clients import ANSWERS, CLIENTS, TRAFFIC, service_env

API_HOST = "api.test"
CURL = CLIENTS["curl"]


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("opaque-ca"))


@pytest.fixture(scope="module")
def cert(ca: TestCA) -> Issued:
    return ca.valid(dns_names=(API_HOST,))


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsServer]:
    with DnsServer({API_HOST: "127.0.0.1"}) as server:
        yield server


def curl_env(port: int, url: str, **extra: str) -> dict[str, str]:
    return service_env(port, url, extra)


def record(
    tmp: Path, env: dict[str, str], dns: DnsServer, traffic: str, **kpy_yml: Any
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], list[dict[str, Any]]]:
    out = tmp / "kpy"
    if kpy_yml:
        write_config(out, **kpy_yml)
    dns_upstream = f"127.0.0.1:{dns.port}"
    done = record_with_kpy(
        CURL, env["PORT"], out, traffic, env, "--set", "curl", "--dns-upstream", dns_upstream
    )
    assert (out / "curl" / "test-set.yaml").exists(), done.stderr
    meta, _, mocks = load_set(out / "curl")
    return done, meta, [m for m in mocks if m["protocol"] != "dns"]


def replay(tmp: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = replay_with_kpy(CURL, tmp / "kpy", tmp, env, "--port", env["PORT"])
    assert leftover_cgroups() == []
    no_kpy_left()
    return done


def test_a_server_demanding_a_client_certificate_is_relayed_as_it_is(
    ca: TestCA, cert: Issued, dns: DnsServer, tmp_path: Path
) -> None:
    mine = ca.client("the-service")
    with https_upstream(cert, client_ca=ca.cert_path) as api:
        extra = {"CURL_CA_BUNDLE": str(ca.cert_path), "CLIENT_CERT": str(mine.cert_path)}
        env = curl_env(free_port(), api.url(API_HOST), CLIENT_KEY=str(mine.key_path), **extra)
        done, meta, mocks = record(tmp_path, env, dns, TRAFFIC)
        assert done.returncode == 0, done.stderr  # both calls answered, through kpy
        assert len(api.requests) == 2
    reason = f"{API_HOST} (127.0.0.1:{api.port}) asks for a client certificate (mutual TLS)"
    assert meta["warnings"] == [
        f"{reason}, and kpy holds none of the service's keys; relayed as it is (tls: opaque)"
    ]
    assert mocks and {m["protocol"] for m in mocks} == {"generic"}
    for mock in mocks:
        assert mock["tls"]["opaque"] is True and mock["tls"]["server_name"] == API_HOST
        assert mock["tls"]["reason"].startswith(reason)
    written = (tmp_path / "kpy" / "curl" / "mocks.yaml").read_bytes()
    assert b"qty" not in written and b"/echo" not in written  # nothing of the calls in clear
    done = replay(tmp_path, env)
    assert done.returncode == 1, done.stderr
    assert f"TLS to {API_HOST}: recorded as TLS kpy could not end (tls: opaque): {reason}" in (
        done.stderr
    )


def test_a_pinned_ca_file_fails_once_then_is_relayed(
    ca: TestCA, cert: Issued, dns: DnsServer, tmp_path: Path
) -> None:
    """curl --cacert FILE: a trust no variable tells kpy of. Its first call meets kpy's
    leaf and fails; kpy says so and relays the name's next connections as they are."""
    answers = tmp_path / "answers.json"
    with https_upstream(cert) as api:
        url = api.url(API_HOST)
        env = curl_env(free_port(), url, PINNED_CA=str(ca.cert_path))
        env |= {"VERDICT_URLS": json.dumps({"first": url, "second": url})}
        env |= {"VERDICT_FILE": str(answers)}
        done, meta, mocks = record(tmp_path, env, dns, ANSWERS)
    assert done.returncode == 0, done.stderr
    got = json.loads(answers.read_text())
    assert got["first"][0] == 502
    assert (
        "curl: (60) SSL certificate problem: unable to get local issuer" in got["first"][1]["error"]
    )
    assert got["second"] == [200, {"method": "POST", "path": "/echo", "body": {"n": 1}, "ok": True}]
    (warning, relayed) = meta["warnings"]
    assert f"unless it trusts {API_HOST} through a CA file of its own" in warning
    assert "kpy.yml tls.ca_files" in warning
    assert relayed == (
        f"the service refused kpy's certificate for {API_HOST}; relayed as it is (tls: opaque)"
    )
    assert mocks and all(m["tls"]["opaque"] for m in mocks)  # the second call's connection
    assert {m["connection"] for m in mocks} == {mocks[0]["connection"]}


def test_the_pinned_file_named_in_kpy_yml_is_recorded_in_clear(
    ca: TestCA, cert: Issued, dns: DnsServer, tmp_path: Path
) -> None:
    with https_upstream(cert) as api:
        env = curl_env(free_port(), api.url(API_HOST), PINNED_CA=str(ca.cert_path))
        done, meta, mocks = record(
            tmp_path, env, dns, TRAFFIC, tls={"ca_files": [str(ca.cert_path)]}
        )
    assert done.returncode == 0 and meta["warnings"] == [], done.stderr
    assert [m["protocol"] for m in mocks] == ["http", "http"]
    done = replay(tmp_path, env)
    assert done.returncode == 0 and "kpy: 2 passed, 0 failed" in done.stderr, done.stderr


def test_a_name_kpy_yml_leaves_alone_is_relayed_and_fails_replay_saying_so(
    ca: TestCA, cert: Issued, dns: DnsServer, tmp_path: Path
) -> None:
    with https_upstream(cert) as api:
        env = curl_env(free_port(), api.url(API_HOST), CURL_CA_BUNDLE=str(ca.cert_path))
        done, meta, mocks = record(tmp_path, env, dns, TRAFFIC, tls={"opaque": [API_HOST]})
        assert len(api.requests) == 2
    assert done.returncode == 0, done.stderr
    reason = f"kpy does not end the TLS of {API_HOST}"
    assert meta["warnings"] == [f"{reason}; relayed as it is (tls: opaque)"]
    assert {m["protocol"] for m in mocks} == {"generic"} and all(m["tls"]["opaque"] for m in mocks)
    done = replay(tmp_path, env)
    assert done.returncode == 1
    assert f"TLS to {API_HOST}: recorded as TLS kpy could not end (tls: opaque): {reason}" in (
        done.stderr
    )


def test_http2_is_relayed_recorded_as_such_and_fails_replay_clearly(
    ca: TestCA, cert: Issued, dns: DnsServer, tmp_path: Path
) -> None:
    with h2_upstream(cert) as port:
        url = f"https://{API_HOST}:{port}/echo"
        env = curl_env(free_port(), url, CURL_CA_BUNDLE=str(ca.cert_path))
        done, meta, mocks = record(tmp_path, env, dns, TRAFFIC)
    assert done.returncode == 0, done.stderr  # curl spoke HTTP/2 through kpy
    assert meta["warnings"] == [
        f"{API_HOST} chose HTTP/2 (ALPN h2): recorded as generic bytes; kpy does not replay "
        "HTTP/2 yet"
    ]
    assert mocks and all(
        m["protocol"] == "generic" and m["tls"] == {"server_name": API_HOST, "alpn": "h2"}
        for m in mocks
    )
    done = replay(tmp_path, env)
    assert done.returncode == 1
    assert f"TLS to {API_HOST}: HTTP/2 (ALPN h2): kpy records it, but does not replay it yet" in (
        done.stderr
    )
