"""Real PostgreSQL traffic for the protocol tests: each function drives a real client (psql,
psycopg 3, pgbench) through a CaptureRelay in front of the ``postgres`` fixture, and
``capture`` returns the connections it carried, chunked as they came.

psycopg is only used through calls that wait without holding the GIL (``conn.wait`` and
the cursor API): a blocking libpq call would starve the relay's threads of it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace

import psycopg
from psycopg import generators

from tests.capture import CaptureRelay, Connection
from tests.servers import Postgres

TIMEOUT = 60

PSQL_SCRIPT = """\
CREATE TEMP TABLE pets (id int, name text);
INSERT INTO pets VALUES (1, 'Rex'), (2, NULL);
SELECT id, name FROM pets ORDER BY id;
COPY pets FROM STDIN;
3\tCléo
\\.
COPY pets TO STDOUT;
"""

PREPARED = "SELECT %s::int + 1 AS next"
PIPELINE = ("SELECT 'one'", "SELECT 'two'")
BINARY = "SELECT 7::int4 AS i, 'abc'::text AS t, NULL::int AS z"


Drive = Callable[[Postgres, CaptureRelay], None]
"""Runs clients against the server at ``Postgres`` (the relay's port)."""


def capture(pg: Postgres, drive: Drive) -> list[Connection]:
    """Run ``drive`` against a relay in front of ``pg``; what every connection carried."""
    with CaptureRelay(pg.port) as relay:
        drive(replace(pg, port=relay.port), relay)
        relay.wait_closed(TIMEOUT)
    return relay.connections


def _env(pg: Postgres, user: str, password: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return {**env, **(pg.env(user) if password is None else pg.env(user, password))}


def psql(user: str, password: str | None = None) -> Drive:
    def drive(pg: Postgres, _: CaptureRelay) -> None:
        argv = ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-f", "-"]
        done = subprocess.run(
            argv,
            input=PSQL_SCRIPT,
            env=_env(pg, user, password),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert (done.returncode == 0) == (password is None), done.stderr

    return drive


def psql_cancelled(pg: Postgres, relay: CaptureRelay) -> None:
    """^C during a long query: psql sends a CancelRequest on a connection of its own."""
    argv = ["psql", "-X", "-c", "SELECT pg_sleep(30)"]
    proc = subprocess.Popen(argv, env=_env(pg, "kpy"), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + TIMEOUT
    while not any(b"pg_sleep" in conn.side("client") for conn in relay.connections):
        assert time.monotonic() < deadline, "psql never sent its query"
        time.sleep(0.01)
    time.sleep(0.2)  # and the server has begun it
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=TIMEOUT)
    assert "canceling statement due to user request" in err, err


def pgbench(pg: Postgres, _: CaptureRelay) -> None:
    env = _env(pg, "kpy")
    for argv in (["pgbench", "-i", "-q"], ["pgbench", "-S", "-t", "50"]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        assert done.returncode == 0, done.stderr


def psycopg_session(pg: Postgres, _: CaptureRelay) -> None:
    """One connection: simple, extended, prepared, pipelined and binary queries, COPY both
    ways (simple and extended protocol), an error in a transaction, a notice, a NOTIFY."""
    _psycopg(pg, extended_copy=True)


def psycopg_replayable(pg: Postgres, _: CaptureRelay) -> None:
    """``psycopg_session`` but for the COPY through the extended protocol, which the mock
    server does not answer (postgres/replay.py)."""
    _psycopg(pg, extended_copy=False)


def _psycopg(pg: Postgres, extended_copy: bool) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True, connect_timeout=TIMEOUT) as conn:
        cur = conn.cursor()
        cur.execute("CREATE TEMP TABLE notes (id int, body text)")
        cur.execute("SELECT %s::int AS n, %s::text AS t", (42, "forty-two"))
        for n in (1, 2):
            cur.execute(PREPARED, (n,), prepare=True)
        with conn.pipeline():
            for sql in PIPELINE:
                cur.execute(sql)
        cur.execute(BINARY, binary=True)
        with cur.copy("COPY notes FROM STDIN") as copy:
            copy.write_row((1, "hello"))
            copy.write_row((2, None))
        with cur.copy("COPY notes TO STDOUT") as copy:
            assert list(copy.rows()) == [("1", "hello"), ("2", None)]
        if extended_copy:
            _extended_copy(conn)
        try:
            with conn.transaction():
                cur.execute("SELECT 1/0")
        except psycopg.errors.DivisionByZero:
            pass
        cur.execute("DO $$ BEGIN RAISE NOTICE 'hello %', 42; END $$")
        cur.execute("LISTEN pets")
        cur.execute("NOTIFY pets, 'woof'")


def _extended_copy(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """COPY FROM STDIN through Parse/Bind/Execute/Sync, as libpq's PQsendQueryParams does
    it (the cursor API sends COPY as a simple Query)."""
    pgconn = conn.pgconn
    pgconn.send_query_params(b"COPY notes FROM STDIN", None)
    conn.wait(generators.execute(pgconn))
    conn.wait(generators.copy_to(pgconn, b"3\tthird\n"))
    conn.wait(generators.copy_end(pgconn, None))  # fetches every result, to the last
