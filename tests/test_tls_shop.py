"""The shop with its rates API over HTTPS, on loopback, with a CA of its own that the shop
trusts through SSL_CERT_FILE: kpy records the calls in clear (method, path, JSON body),
replays them with the API stopped, and a changed call fails with a readable diff. No key
of any kind reaches a recorded byte."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import KPY, child_env, free_port, leftover_cgroups, no_kpy_left
from tests.dns_server import DnsServer
from tests.examples.shop import RATES_TOKEN, SHOP, TRAFFIC_LINES, app_argv, reset, shop_env
from tests.servers import PG_PASSWORD, REDIS_PASSWORD, postgres_server, redis_server
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


@pytest.fixture(scope="module")
def https_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsShop]:
    tmp = tmp_path_factory.mktemp("tls-shop")
    ca = TestCA(tmp / "pki")
    cert = ca.issue(dns_names=[RATES_HOST], ips=["127.0.0.1"])
    with (
        postgres_server() as pg,
        redis_server(tmp / "redis") as redis,
        rates_service(tmp, tls=(cert.cert_path, cert.key_path)) as rates_port,
        DnsServer({RATES_HOST: "127.0.0.1"}) as dns,
    ):
        reset(pg, redis)
        app_port = free_port()
        env = shop_env(pg, redis, app_port, rates_port) | {
            "RATES_URL": f"https://{RATES_HOST}:{rates_port}",
            "SSL_CERT_FILE": str(ca.cert_path),
        }
        out = tmp / "kpy"
        argv = [
            *KPY, "record", "-c", shlex.join(app_argv()), "--port", str(app_port),
            "--path", str(out), "--traffic", TRAFFIC, "--set", "shop",
            "--dns-upstream", f"127.0.0.1:{dns.port}",
        ]  # fmt: skip
        done = subprocess.run(
            argv, env=child_env() | env, capture_output=True, text=True, timeout=180
        )
        closed = [pg.port, redis.port, rates_port]
    for port in closed:
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
    keys = [cert.key_path.read_bytes(), ca.key_pem]
    yield HttpsShop(out, env, done, keys)


def kpy_test(
    shop: HttpsShop, tmp_path: Path, app: Path = SHOP / "app.py"
) -> subprocess.CompletedProcess[str]:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\n")
    argv = [
        *KPY, "test", "-c", shlex.join([sys.executable, str(app)]), "--path", str(shop.kpy),
        "--resolv-conf", str(resolv),
    ]  # fmt: skip
    env = child_env() | shop.env
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)


def test_https_calls_are_recorded_in_clear(https_shop: HttpsShop) -> None:
    assert https_shop.record.returncode == 0, https_shop.record.stderr
    meta, tests, mocks = load_set(https_shop.kpy / "shop")
    assert meta["complete"] is True and meta["warnings"] == [], meta
    assert len(tests) == TRAFFIC_LINES
    assert "generic" not in {m["protocol"] for m in mocks}  # no ciphertext was kept
    rates = [m for m in mocks if m.get("tls")]
    assert rates and {m["protocol"] for m in rates} == {"http"}
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


def test_no_key_or_secret_reaches_a_recorded_byte(https_shop: HttpsShop) -> None:
    written = b"".join(p.read_bytes() for p in https_shop.kpy.rglob("*") if p.is_file())
    assert b"rates.test" in written  # what was recorded is there
    assert b"PRIVATE KEY" not in written and b"BEGIN CERTIFICATE" not in written
    for key in https_shop.keys:
        body = b"".join(key.splitlines()[1:-1])  # the base64 between the PEM lines
        for chunk in (body[i : i + 24] for i in range(0, len(body) - 24, 24)):
            assert chunk not in written
    for secret in (PG_PASSWORD, REDIS_PASSWORD, RATES_TOKEN):
        assert secret.encode() not in written, secret
