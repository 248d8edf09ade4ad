"""The egress proxy in a real session: psql, pgbench and redis-cli, redirected by eBPF,
reach their real servers through kpy, work as without it, and every exchange recorded
re-encodes to the bytes the server sent."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from kpy_ci.address import Address
from kpy_ci.ebpf.session import Session
from kpy_ci.protocols.registry import REGISTRY
from kpy_ci.proxy.server import Egress, ProxyLoop
from kpy_ci.recording import Recorded, Recording
from tests.servers import Postgres, Redis

ENCODERS = {p.name: p.encode_response for p in REGISTRY}


@contextmanager
def recording_session() -> Iterator[tuple[Session, Recording]]:
    recording = Recording()
    loop = ProxyLoop()
    session: Session | None = None

    def lookup(peer: tuple[str, int]) -> Address | None:
        return session.original_destination(peer) if session else None

    try:
        egress = loop.listen(Address("127.0.0.1", 0), Egress(recording, lookup).handle)
        session = Session(egress)
        with session:
            yield session, recording
    finally:
        loop.close()


def run(session: Session, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    child = session.spawn(
        argv, env=os.environ | env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    out, err = child.communicate(timeout=120)
    return subprocess.CompletedProcess(argv, child.returncode, out, err)


def assert_byte_exact(recorded: list[Recorded]) -> None:
    assert recorded
    for r in recorded:
        ex = r.exchange
        assert "raw" not in ex.response, (r.connection, ex.request)
        assert ENCODERS[ex.protocol](ex.response) == ex.raw_response


def test_psql_and_pgbench_through_the_proxy(postgres: Postgres) -> None:
    with recording_session() as (session, recording):
        for user in ("kpy", "kpy_md5", "kpy_trust"):
            done = run(
                session, ["psql", "-XAtc", "select current_user, 40 + 2"], postgres.env(user)
            )
            assert (done.returncode, done.stdout) == (0, f"{user}|42\n"), done.stderr
        init = run(session, ["pgbench", "-i", "-s", "1", "-q"], postgres.env())
        assert init.returncode == 0, init.stderr
        bench = run(
            session, ["pgbench", "-S", "-t", "50", "-c", "2", "-M", "extended"], postgres.env()
        )
        assert bench.returncode == 0, bench.stderr
    recording.finish()
    recorded = list(recording.outbound())
    assert {r.exchange.protocol for r in recorded} == {"postgres"}
    assert recording.warnings == []
    assert_byte_exact(recorded)
    assert sum(1 for r in recorded if "select current_user" in str(r.exchange.request)) == 3


def test_postgres_tls_through_kpy_is_tls_both_ways_and_recorded_in_clear(
    postgres_tls: Postgres,
) -> None:
    """kpy asks the real server on SSLRequest and, on its 'S', ends TLS on both sides: a
    client in sslmode=prefer (libpq's default) or require is on TLS as it is without kpy,
    and what flowed inside is recorded as PostgreSQL. SCRAM's channel binding would bind the
    password proof to kpy's certificate, so kpy's service environment turns it off."""
    query = ["psql", "-XAtc", "select ssl from pg_stat_ssl where pid = pg_backend_pid()"]
    unbound = {"PGCHANNELBINDING": "disable"}
    prefer = postgres_tls.env() | {"PGSSLMODE": "prefer"} | unbound
    direct = subprocess.run(query, env=os.environ | prefer, capture_output=True, text=True)
    assert direct.stdout == "t\n", direct.stderr  # the server does offer TLS
    with recording_session() as (session, recording):
        through_kpy = run(session, query, prefer)
        required = run(session, query, postgres_tls.env() | {"PGSSLMODE": "require"} | unbound)
        bound = run(session, query, postgres_tls.env() | {"PGSSLMODE": "require"})
    assert (through_kpy.returncode, through_kpy.stdout) == (0, "t\n"), through_kpy.stderr
    assert (required.returncode, required.stdout) == (0, "t\n"), required.stderr
    assert "channel binding" in bound.stderr  # what kpy's environment spares the service
    recording.finish()
    recorded = [r for r in list(recording.outbound()) if r.exchange.reusable]
    assert_byte_exact(recorded)
    assert len(recorded) >= 2
    for r in recorded[:2]:
        assert r.exchange.request["ssl_requested"] is True
        assert r.tls == {"server_name": None, "alpn": None}  # psql dialled an address


def test_redis_cli_through_the_proxy(redis: Redis) -> None:
    assert redis.password
    with recording_session() as (session, recording):
        cli = ["redis-cli", "-p", str(redis.port), "--no-auth-warning", "-a", redis.password]
        assert run(session, [*cli, "set", "kpy:k", "v"], {}).stdout == "OK\n"
        assert run(session, [*cli, "get", "kpy:k"], {}).stdout == "v\n"
        bench = run(
            session,
            [
                "redis-benchmark",
                "-p",
                str(redis.port),
                "-a",
                redis.password,
                "-t",
                "get,set",
                "-n",
                "200",
                "-P",
                "16",
                "-q",
            ],
            {},
        )
        assert bench.returncode == 0, bench.stderr
    recording.finish()
    recorded = list(recording.outbound())
    assert {r.exchange.protocol for r in recorded} == {"redis"}
    assert_byte_exact(recorded)
    assert redis.password not in str([r.exchange.request for r in recorded])
