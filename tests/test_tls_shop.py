"""The shop with its rates API over HTTPS, on loopback, with a CA of its own that the shop
trusts through SSL_CERT_FILE: kpy records the calls in clear (method, path, JSON body),
replays them with the API stopped, and a changed call fails with a readable diff. No key
of any kind reaches a recorded byte."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    child_env,
    free_port,
    leftover_cgroups,
    no_kpy_left,
    record_with_kpy,
    replay_with_kpy,
    write_config,
)
from tests.dns_server import DnsServer
from tests.examples.shop import RATES_TOKEN, SHOP, TRAFFIC_LINES, app_argv, reset, shop_env
from tests.servers import (
    PG_PASSWORD,
    REDIS_PASSWORD,
    Postgres,
    Redis,
    postgres_server,
    redis_server,
)
from tests.test_record import TRAFFIC, load_set, rates_service
from tests.test_replay import regressed
from tests.tls_certs import TestCA

RATES_HOST = "rates.test"


@dataclass(frozen=True)
class HttpsShop:
    kpy: Path
    env: dict[str, str]
    record: subprocess.CompletedProcess[str]
    keys: list[bytes]
    """The private keys of the test's PKI (PEM): none may reach a recorded byte."""


def record_shop(
    tmp: Path, pg: Postgres, redis: Redis, rates_port: int, env: dict[str, str], **kpy_yml: Any
) -> tuple[Path, dict[str, str], subprocess.CompletedProcess[str]]:
    """Record the shop's traffic with the rates API at RATES_HOST, ``env`` over the shop's
    plain environment."""
    app_port = free_port()
    env = shop_env(pg, redis, app_port, rates_port) | env
    out = tmp / "kpy"
    if kpy_yml:
        write_config(out, **kpy_yml)
    with DnsServer({RATES_HOST: "127.0.0.1"}) as dns:
        dns_upstream = f"127.0.0.1:{dns.port}"
        done = record_with_kpy(
            app_argv(), app_port, out, TRAFFIC, child_env() | env,
            "--set", "shop", "--dns-upstream", dns_upstream,
        )  # fmt: skip
    return out, env, done


def assert_closed(*ports: int) -> None:
    for port in ports:
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass


@pytest.fixture(scope="module")
def https_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsShop]:
    """The rates API over HTTPS with its own CA (SSL_CERT_FILE); PostgreSQL over TLS with
    a self-signed certificate that ``sslmode=require`` does not check; Redis in clear."""
    tmp = tmp_path_factory.mktemp("tls-shop")
    ca = TestCA(tmp / "pki")
    cert = ca.issue(dns_names=[RATES_HOST], ips=["127.0.0.1"])
    with (
        postgres_server(tls=True) as pg,
        redis_server(tmp / "redis") as redis,
        rates_service(tmp, tls=(cert.cert_path, cert.key_path)) as rates_port,
    ):
        reset(pg, redis)
        env = {
            "RATES_URL": f"https://{RATES_HOST}:{rates_port}",
            "SSL_CERT_FILE": str(ca.cert_path),
        }
        env["DATABASE_URL"] = shop_env(pg, redis, 0, 0)["DATABASE_URL"] + "?sslmode=require"
        out, env, done = record_shop(tmp, pg, redis, rates_port, env)
        closed = [pg.port, redis.port, rates_port]
    assert_closed(*closed)
    yield HttpsShop(out, env, done, [cert.key_path.read_bytes(), ca.key_pem])


@pytest.fixture(scope="module")
def tls_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsShop]:
    """Every call over TLS, each verified: PostgreSQL with ``sslmode=verify-full`` and
    the CA named in the DSN (``sslrootcert=``, which kpy.yml's tls.ca_files covers), Redis
    with TLS only (``rediss://``), the rates API over HTTPS; one CA trusted through
    SSL_CERT_FILE."""
    tmp = tmp_path_factory.mktemp("tls-everywhere")
    ca = TestCA(tmp / "pki")
    rates = ca.issue(dns_names=[RATES_HOST])
    database = ca.valid(dns_names=("localhost",), ips=("127.0.0.1",))
    cache = ca.valid(dns_names=("localhost",), ips=("127.0.0.1",))
    with (
        postgres_server(cert=database) as pg,
        redis_server(tmp / "redis", tls=cache) as redis,
        rates_service(tmp, tls=(rates.cert_path, rates.key_path)) as rates_port,
    ):
        reset(pg, redis, redis_ca=ca.cert_path)
        url = shop_env(pg, redis, 0, 0)["DATABASE_URL"]
        env = {
            "RATES_URL": f"https://{RATES_HOST}:{rates_port}",
            "SSL_CERT_FILE": str(ca.cert_path),
            "DATABASE_URL": f"{url}?sslmode=verify-full&sslrootcert={ca.cert_path}",
        }
        out, env, done = record_shop(
            tmp, pg, redis, rates_port, env, tls={"ca_files": [str(ca.cert_path)]}
        )
        closed = [pg.port, redis.port, rates_port]
    assert_closed(*closed)
    keys = [c.key_path.read_bytes() for c in (rates, database, cache)] + [ca.key_pem]
    yield HttpsShop(out, env, done, keys)


def kpy_test(
    shop: HttpsShop, tmp_path: Path, app: Path = SHOP / "app.py", *options: str
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(app)]
    return replay_with_kpy(command, shop.kpy, tmp_path, child_env() | shop.env, *options)


def test_https_calls_are_recorded_in_clear(https_shop: HttpsShop) -> None:
    assert https_shop.record.returncode == 0, https_shop.record.stderr
    meta, tests, mocks = load_set(https_shop.kpy / "shop")
    assert meta["complete"] is True, meta
    # sslmode=require checks no certificate: kpy says, once, that the real one fails
    # the service's trust, and shows the service the same defect (which it accepts)
    (warning,) = meta["warnings"]
    assert warning.startswith("the certificate of 127.0.0.1 (127.0.0.1:"), warning
    assert "(self-signed certificate): the service was shown the same defect" in warning
    assert len(tests) == TRAFFIC_LINES
    assert "generic" not in {m["protocol"] for m in mocks}  # no ciphertext was kept
    assert {m["protocol"] for m in mocks if m.get("tls")} == {"http", "postgres"}
    postgres = [m for m in mocks if m["protocol"] == "postgres"]
    assert postgres and all(m["tls"] == {"server_name": None, "alpn": None} for m in postgres)
    rates = [m for m in mocks if m["protocol"] == "http"]
    assert rates
    for mock in rates:
        assert mock["tls"] == {"server_name": RATES_HOST, "alpn": None}
        assert mock["request"]["method"] == "GET"
        assert mock["request"]["url"].startswith("/rates?from=USD&to=")
    eur = next(m for m in rates if m["request"]["url"] == "/rates?from=USD&to=EUR")
    assert eur["response"]["body"] == {"json": {"from": "USD", "rate": 0.92, "to": "EUR"}}


def test_replay_passes_with_the_https_api_stopped(https_shop: HttpsShop, tmp_path: Path) -> None:
    done = kpy_test(https_shop, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"kpy: {TRAFFIC_LINES} passed, 0 failed" in done.stderr
    assert leftover_cgroups() == []
    no_kpy_left()


def test_a_changed_https_call_fails_with_a_readable_diff(
    https_shop: HttpsShop, tmp_path: Path
) -> None:
    app = regressed(
        tmp_path,
        "urlencode({'from': BASE_CURRENCY, 'to': currency})",
        "urlencode({'from': BASE_CURRENCY, 'to': currency, 'precision': 6})",
    )
    done = kpy_test(https_shop, tmp_path, app)
    assert done.returncode == 1, done.stderr
    assert "http call to 127.0.0.1:" in done.stderr
    assert "matched no mock: GET /rates?from=USD&to=EUR&precision=6" in done.stderr
    assert "nearest: mock-" in done.stderr  # the recorded call, and the diff to it:
    assert "-url: /rates?from=USD&to=EUR\n" in done.stderr
    assert "+url: /rates?from=USD&to=EUR&precision=6" in done.stderr


def test_every_call_verified_over_tls_is_recorded_in_clear(tls_shop: HttpsShop) -> None:
    assert tls_shop.record.returncode == 0, tls_shop.record.stderr
    meta, tests, mocks = load_set(tls_shop.kpy / "shop")
    assert meta["complete"] is True and meta["warnings"] == [], meta
    assert len(tests) == TRAFFIC_LINES
    by_protocol = {m["protocol"] for m in mocks if m["protocol"] != "dns"}
    assert by_protocol == {"http", "postgres", "redis"}
    for mock in mocks:
        if mock["protocol"] != "dns":
            assert mock["tls"]["alpn"] is None and not mock["tls"].get("opaque"), mock
    queries = [m["request"] for m in mocks if m["protocol"] == "postgres"]
    assert any("FROM products" in str(q) for q in queries)  # SQL in clear
    commands = [m["request"] for m in mocks if m["protocol"] == "redis"]
    assert any("GET" in str(c) for c in commands)


def test_replay_passes_with_every_tls_server_stopped(tls_shop: HttpsShop, tmp_path: Path) -> None:
    done = kpy_test(tls_shop, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"kpy: {TRAFFIC_LINES} passed, 0 failed" in done.stderr
    assert leftover_cgroups() == []
    no_kpy_left()


def test_scram_over_tls_leaves_nothing_of_the_exchange(tls_shop: HttpsShop) -> None:
    """The shop's role authenticates with SCRAM-SHA-256 inside TLS: its mocks say the
    method and keep no nonce, salt, proof or signature (kpy's own replay answers SCRAM)."""
    _, _, mocks = load_set(tls_shop.kpy / "shop")
    startups = [m for m in mocks if m["protocol"] == "postgres" and "auth" in m["request"]]
    assert startups and all(m["request"]["auth"] == {"method": "scram-sha-256"} for m in startups)
    written = b"".join(p.read_bytes() for p in tls_shop.kpy.rglob("*") if p.is_file())
    assert b"SCRAM-SHA-256" not in written.replace(b"scram-sha-256", b"")
    assert not re.search(rb"(?:^|[,\s'\"])[rspv]=[A-Za-z0-9+/]{16,}", written)


def test_no_key_or_secret_reaches_a_report(tls_shop: HttpsShop, tmp_path: Path) -> None:
    app = regressed(tmp_path, "/rates?", "/v2/rates?")
    report = tmp_path / "junit.xml"
    done = kpy_test(tls_shop, tmp_path, app, "--junit", str(report))
    assert done.returncode == 1, done.stderr
    assert b"+url: /v2/rates?from=USD" in report.read_bytes()
    assert_secret_free(tls_shop, report.read_bytes() + (done.stdout + done.stderr).encode())


@pytest.mark.parametrize("shop", ["https_shop", "tls_shop"])
def test_no_key_or_secret_reaches_a_recorded_byte(
    shop: str, request: pytest.FixtureRequest
) -> None:
    https_shop: HttpsShop = request.getfixturevalue(shop)
    written = b"".join(p.read_bytes() for p in https_shop.kpy.rglob("*") if p.is_file())
    assert b"rates.test" in written  # what was recorded is there
    assert_secret_free(https_shop, written)


def assert_secret_free(https_shop: HttpsShop, written: bytes) -> None:
    """No PEM, no 24-byte run of any key's base64, no password or token."""
    assert b"PRIVATE KEY" not in written and b"BEGIN CERTIFICATE" not in written
    for key in https_shop.keys:
        body = b"".join(key.splitlines()[1:-1])  # the base64 between the PEM lines
        for chunk in (body[i : i + 24] for i in range(0, len(body) - 24, 24)):
            assert chunk not in written
    for secret in (PG_PASSWORD, REDIS_PASSWORD, RATES_TOKEN):
        assert secret.encode() not in written, secret
