"""kpy record on the sample shop, against real PostgreSQL, Redis and an HTTP dependency:
one test case per request, a mock for every outbound exchange, each test mapped to its
mocks; the shop answers exactly as without kpy; no secret reaches a recorded byte; an
interrupted recording keeps what was complete and leaves the previous set intact."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from kpy_ci.config import validate
from tests.conftest import KPY, child_env, free_port, leftover_cgroups
from tests.dns_server import DnsServer
from tests.examples.shop import (
    RATES_TOKEN,
    SHOP,
    TRAFFIC_LINES,
    _process,
    _read,
    _wait,
    app_argv,
    reset,
    shop_env,
)
from tests.servers import (
    PG_PASSWORD,
    REDIS_PASSWORD,
    Postgres,
    Redis,
    postgres_server,
    redis_server,
)

TRAFFIC = f"{sys.executable} {SHOP / 'traffic.py'}"


@contextmanager
def rates_service(tmp_path: Path, tls: tuple[Path, Path] | None = None) -> Iterator[int]:
    """The rates API on a port of its own; with ``tls`` (certificate, key), over HTTPS."""
    port = free_port()
    log = tmp_path / "rates.log"
    env = {"PORT": str(port), "RATES_TOKEN": RATES_TOKEN}
    if tls is not None:
        env |= {"TLS_CERT": str(tls[0]), "TLS_KEY": str(tls[1])}
    with _process(
        [sys.executable, str(SHOP / "rates.py")],
        env,
        log,
        signal.SIGTERM,
    ) as rates:
        _wait(lambda: f"listening on 127.0.0.1:{port}" in _read(log), rates, log, 30)
        yield port


@contextmanager
def shop_stack(tmp: Path) -> Iterator[tuple[Postgres, Redis, int, DnsServer]]:
    """What the shop is recorded on, each fresh and its own: PostgreSQL and Redis reset to
    the seed, the rates API (its port), and a DNS server that knows no name."""
    with (
        postgres_server() as pg,
        redis_server(tmp / "redis") as redis,
        rates_service(tmp) as rates_port,
        DnsServer({}) as dns,
    ):
        reset(pg, redis)
        yield pg, redis, rates_port, dns


def kpy_record(
    pg: Postgres,
    redis: Redis,
    rates_port: int,
    out: Path,
    dns: DnsServer,
    traffic: str,
    *extra: str,
) -> tuple[list[str], dict[str, str]]:
    """``kpy record`` of the shop, with ``traffic``, its DNS to the test's resolver."""
    app_port = free_port()
    env = child_env() | shop_env(pg, redis, app_port, rates_port)
    argv = [
        *KPY, "record", "-c", shlex.join(app_argv()), "--port", str(app_port),
        "--path", str(out), "--traffic", traffic, "--dns-upstream", f"127.0.0.1:{dns.port}",
        *extra,
    ]  # fmt: skip
    return argv, env


def load_set(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    meta = yaml.safe_load((path / "test-set.yaml").read_text())
    tests = [
        yaml.safe_load(p.read_text())
        for p in sorted((path / "tests").glob("*.yaml"), key=lambda p: int(p.stem.split("-")[1]))
    ]
    mocks = list(yaml.safe_load_all((path / "mocks.yaml").read_text()))
    return meta, tests, mocks


def assert_valid(path: Path) -> None:
    """Every document validates against its JSON Schema in schemas/."""
    checks = [("testset.schema.json", [path / "test-set.yaml"])]
    checks.append(("testcase.schema.json", sorted((path / "tests").glob("*.yaml"))))
    for name, files in checks:
        for file in files:
            validate(yaml.safe_load(file.read_text()), name, file, None)
    for doc in yaml.safe_load_all((path / "mocks.yaml").read_text()):
        validate(doc, "mock.schema.json", path / "mocks.yaml", None)


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with DnsServer({}) as server:
        yield server


def test_record_the_shop(postgres: Postgres, redis: Redis, tmp_path: Path, dns: DnsServer) -> None:
    reset(postgres, redis)
    out = tmp_path / "kpy"
    with rates_service(tmp_path) as rates_port:
        argv, env = kpy_record(postgres, redis, rates_port, out, dns, TRAFFIC)
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stderr
    # the shop behaved as without kpy: traffic.py checked every answer; its log is clean
    service_lines = [line for line in done.stderr.splitlines() if line.startswith("service | ")]
    assert len(service_lines) >= TRAFFIC_LINES
    assert not [line for line in service_lines if "Traceback" in line or "ERROR" in line]

    meta, tests, mocks = load_set(out / "test-set-1")
    assert meta["complete"] is True and meta["warnings"] == [], meta
    assert len(tests) == TRAFFIC_LINES
    assert {m["protocol"] for m in mocks} >= {"postgres", "redis", "http"}
    by_name = {m["name"]: m for m in mocks}
    for test in tests:
        for name in test["mocks"]:
            assert name in by_name
    # requests that reach the database or the rates service have mocks of that kind
    products = next(t for t in tests if t["request"]["url"] == "/products")
    assert "postgres" in {by_name[n]["protocol"] for n in products["mocks"]}
    convert = next(t for t in tests if t["request"]["url"].startswith("/convert"))
    assert "http" in {by_name[n]["protocol"] for n in convert["mocks"]}
    assert_valid(out / "test-set-1")
    assert leftover_cgroups() == []


COOKIE = "session-cookie-S3cret-for-tests"
BEARER = "bearer-token-S3cret-for-tests"


def test_no_secret_reaches_disk(
    postgres: Postgres, redis: Redis, tmp_path: Path, dns: DnsServer
) -> None:
    reset(postgres, redis)
    out = tmp_path / "kpy"
    # the shop's traffic, then a client that sends a cookie and a bearer token of its own
    with_credentials = (
        f'{TRAFFIC} && {sys.executable} -c "import os, urllib.request as u; '
        "u.urlopen(u.Request(os.environ['BASE_URL'] + '/health', headers={"
        f"'Cookie': 'session={COOKIE}', 'Authorization': 'Bearer {BEARER}'}})).read()\""
    )
    with rates_service(tmp_path) as rates_port:
        argv, env = kpy_record(postgres, redis, rates_port, out, dns, with_credentials)
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    written = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert b"Cookie" in written and b"Authorization" in written  # the headers were recorded
    for secret in (PG_PASSWORD, REDIS_PASSWORD, RATES_TOKEN, COOKIE, BEARER):
        assert secret.encode() not in written, secret


def test_sigint_keeps_what_was_complete_and_the_previous_set(
    postgres: Postgres, redis: Redis, tmp_path: Path, dns: DnsServer
) -> None:
    out = tmp_path / "kpy"
    with rates_service(tmp_path) as rates_port:
        reset(postgres, redis)
        argv, env = kpy_record(postgres, redis, rates_port, out, dns, TRAFFIC, "--set", "smoke")
        first = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
        assert first.returncode == 0, first.stderr
        before = {p: p.read_bytes() for p in (out / "smoke").rglob("*") if p.is_file()}

        # a second recording of the same set, interrupted mid-traffic: slow traffic
        reset(postgres, redis)
        slow = (
            f'{sys.executable} -c "import time, urllib.request, os;'
            "[(urllib.request.urlopen(os.environ['BASE_URL'] + '/health').read(), time.sleep(0.2))"
            ' for _ in range(100)]"'
        )
        argv, env = kpy_record(postgres, redis, rates_port, out, dns, slow, "--set", "smoke2")
        proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert_valid(out / "smoke2")
    meta, tests, _ = load_set(out / "smoke2")
    assert meta["complete"] is False and "interrupted" in meta["interrupted"]
    assert len(tests) >= 3
    assert all(t["response"]["status"] == 200 for t in tests)
    # the earlier set is untouched
    assert {p: p.read_bytes() for p in (out / "smoke").rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in out.iterdir()) == ["smoke", "smoke2"]


RESOLVING_SERVICE = """
import http.server, json, os, socket
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ip = socket.getaddrinfo("api.staging.kpy.test", 443, socket.AF_INET)[0][4][0]
        body = json.dumps({"ip": ip}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


def test_names_the_service_resolved_are_recorded(tmp_path: Path) -> None:
    resolv_conf = tmp_path / "resolv.conf"
    resolv_conf.write_text("nameserver 127.0.0.53\noptions timeout:2 attempts:1\n")
    (tmp_path / "service.py").write_text(RESOLVING_SERVICE)
    port = free_port()
    fetch = (
        f'{sys.executable} -c "import urllib.request, os; '
        "urllib.request.urlopen(os.environ['BASE_URL']).read()\""
    )
    with DnsServer({"api.staging.kpy.test": "127.0.0.42"}) as dns:
        done = subprocess.run(
            [
                *KPY,
                "record",
                "-c",
                f"{sys.executable} {tmp_path / 'service.py'}",
                "--port",
                str(port),
                "--path",
                str(tmp_path / "kpy"),
                "--traffic",
                fetch,
                "--resolv-conf",
                str(resolv_conf),
                "--dns-upstream",
                f"127.0.0.1:{dns.port}",
            ],
            env=child_env() | {"PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    _, tests, mocks = load_set(tmp_path / "kpy" / "test-set-1")
    assert tests[0]["response"]["body"] == {"json": {"ip": "127.0.0.42"}}
    [dns_mock] = [m for m in mocks if m["protocol"] == "dns"]
    assert dns_mock["request"]["name"] == "api.staging.kpy.test."
    assert dns_mock["response"]["answer"] == ["api.staging.kpy.test. 60 IN A 127.0.0.42"]
    assert dns_mock["name"] in tests[0]["mocks"]

    # replayed with the resolver gone: the name resolves again, from its mock; a name never
    # resolved when recording gets SERVFAIL, and its test fails naming it
    replay = [
        *KPY, "test", "-c", f"{sys.executable} {tmp_path / 'service.py'}",
        "--path", str(tmp_path / "kpy"), "--resolv-conf", str(resolv_conf),
    ]  # fmt: skip
    env = child_env() | {"PORT": str(port)}
    done = subprocess.run(replay, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    other = tmp_path / "other.py"
    other.write_text(RESOLVING_SERVICE.replace("api.staging", "db.staging"))
    replay[replay.index("-c") + 1] = f"{sys.executable} {other}"
    done = subprocess.run(replay, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "dns call to the resolver matched no mock: A db.staging.kpy.test." in done.stderr
