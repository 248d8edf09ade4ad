"""The sample shop (examples/shop) as a test fixture: its own database on the tests' real
PostgreSQL, the tests' real Redis, the rates service, and the app, each a real process.

The end-to-end tests reuse this to record the shop under kpy: ``start_shop(..., wrap=...)``
starts app.py through another command (``kpy record -c ...``) with the same environment,
while the rates service stays outside, as a third-party API would.

    with start_shop(pg, redis, wrap=lambda argv: [*KPY, "record", "-c", shlex.join(argv),
                    "--port", ...], probe_health=False) as shop:
        ...  # shop.env, shop.app_port; or start_rates() + shop_env() + app_argv() by hand
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from redis import Redis as RedisClient

from tests.servers import Postgres, Redis, free_port, pg_bin

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"
DATABASE = "kpy_shop"
RATES_TOKEN = "rates-secret-T0ken-for-tests"
TRAFFIC_LINES = 15
"""How many requests traffic.py sends (one stdout line each)."""


@dataclass(frozen=True)
class Shop:
    """A running shop. ``app_argv`` and ``env`` are the contract for starting app.py by
    other means: run ``app_argv`` with ``os.environ | env``."""

    app_port: int
    rates_port: int
    app: subprocess.Popen[bytes]
    rates: subprocess.Popen[bytes]
    app_argv: list[str]
    """app.py's own command line, before ``wrap``."""
    argv: list[str]
    """What was run: ``wrap(app_argv)``, or app_argv itself."""
    env: dict[str, str]
    """The variables app.py reads: PORT, DATABASE_URL, REDIS_URL, RATES_URL, RATES_TOKEN."""
    app_log: Path
    rates_log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    def logs(self) -> str:
        """Both processes' stdout and stderr, for assertion messages."""
        return "".join(
            f"--- {path.name} ---\n{path.read_text(errors='replace')}"
            for path in (self.app_log, self.rates_log)
        )


def shop_postgres(pg: Postgres) -> Postgres:
    """The shop's own database on the tests' server (created once), so its tables never meet
    another test's."""
    psql = [pg_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA"]
    env = os.environ | pg.env()
    found = subprocess.run(
        [*psql, "-c", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    if not found.stdout.strip():
        subprocess.run(
            [*psql, "-c", f"CREATE DATABASE {DATABASE}"], env=env, capture_output=True, check=True
        )
    return dataclasses.replace(pg, database=DATABASE)


def seed(pg: Postgres) -> Postgres:
    """Run seed.sql with psql (tables created once, then emptied and filled, ids from 1)."""
    shop_pg = shop_postgres(pg)
    subprocess.run(
        [pg_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(SHOP / "seed.sql")],
        env=os.environ | shop_pg.env(),
        capture_output=True,
        check=True,
    )
    return shop_pg


def reset(pg: Postgres, redis: Redis, redis_ca: Path | None = None) -> None:
    """Back to the seeded state traffic.py expects: re-seed PostgreSQL, FLUSHALL Redis
    (over TLS, trusting ``redis_ca``, when it serves only TLS)."""
    seed(pg)
    options = {"ssl_ca_certs": str(redis_ca)} if redis_ca else {}
    client = RedisClient.from_url(redis.url(), **options)
    try:
        client.flushall()
    finally:
        client.close()


def shop_env(
    pg: Postgres, redis: Redis, app_port: int, rates_port: int, token: str = RATES_TOKEN
) -> dict[str, str]:
    """app.py's environment: everything it reads, nothing else."""
    return {
        "PORT": str(app_port),
        "DATABASE_URL": dataclasses.replace(pg, database=DATABASE).dsn(),
        "REDIS_URL": redis.url(),
        "RATES_URL": f"http://127.0.0.1:{rates_port}",
        "RATES_TOKEN": token,
    }


def app_argv() -> list[str]:
    return [sys.executable, str(SHOP / "app.py")]


def traffic_argv() -> list[str]:
    """traffic.py's command line; it reads BASE_URL."""
    return [sys.executable, str(SHOP / "traffic.py")]


def run_traffic(base_url: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """traffic.py against base_url; its exit code says whether every answer was right."""
    return subprocess.run(
        traffic_argv(),
        env=os.environ | {"BASE_URL": base_url},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@contextmanager
def start_rates(
    port: int, log: Path, token: str = RATES_TOKEN, timeout: float = 30
) -> Iterator[subprocess.Popen[bytes]]:
    """rates.py on 127.0.0.1:port, ready (it has logged "listening on") when this yields."""
    env = {"PORT": str(port), "RATES_TOKEN": token}
    with _process([sys.executable, str(SHOP / "rates.py")], env, log, signal.SIGTERM) as rates:
        _wait(lambda: f"listening on 127.0.0.1:{port}" in _read(log), rates, log, timeout)
        yield rates


@contextmanager
def start_shop(
    pg: Postgres,
    redis: Redis,
    *,
    wrap: Callable[[list[str]], list[str]] | None = None,
    app_port: int | None = None,
    rates_port: int | None = None,
    log_dir: Path | None = None,
    probe_health: bool = True,
    stop_signal: int = signal.SIGTERM,
    timeout: float = 30,
) -> Iterator[Shop]:
    """Start rates.py, then app.py (through ``wrap`` if given), and wait until both have
    logged "listening on 127.0.0.1:PORT"; then, if ``probe_health``, until GET /health
    answers 200 (leave it off when kpy records, or the probes become test cases). The
    database is not seeded here: call reset() first. On exit app.py, or its wrapper, gets
    ``stop_signal``; once it exits, or after 10 s, what is left of its process group gets
    SIGKILL. Then rates.py stops the same way, with SIGTERM."""
    app_port = app_port or free_port()
    rates_port = rates_port or free_port()
    logs = Path(log_dir or tempfile.mkdtemp(prefix="kpy-shop-"))
    rates_log, app_log = logs / "rates.log", logs / "app.log"
    env = shop_env(pg, redis, app_port, rates_port)
    own = app_argv()
    argv = wrap(own) if wrap else own
    with (
        start_rates(rates_port, rates_log, env["RATES_TOKEN"], timeout) as rates,
        _process(argv, env, app_log, stop_signal) as app,
    ):
        shop = Shop(app_port, rates_port, app, rates, own, argv, env, app_log, rates_log)
        _wait(lambda: f"listening on 127.0.0.1:{app_port}" in _read(app_log), app, app_log, timeout)
        if probe_health:
            _wait(lambda: _healthy(shop.base_url), app, app_log, timeout)
        yield shop


@contextmanager
def _process(
    argv: list[str], env: dict[str, str], log: Path, stop_signal: int
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env=os.environ | env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        # then whatever is left of the group it leads (start_new_session): a wrapper's
        # children, or the process itself if it ignored stop_signal
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _healthy(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=2) as response:
            return int(response.status) == 200
    except OSError:
        return False


def _wait(
    ready: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, timeout: float
) -> None:
    """Until ready(); fail at once, with the log, if the process exits first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args!r} exited with {proc.returncode}:\n{_read(log)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{proc.args!r} not ready after {timeout}s:\n{_read(log)}")
        time.sleep(0.05)
