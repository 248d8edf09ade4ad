"""A service whose upstream is PostgreSQL through psycopg (libpq): ``POST /call`` connects
to the DSN in ``X-Upstream-Url`` (its sslmode; PGSSLROOTCERT from the environment) and runs
one query; a failure's text is libpq's."""

from __future__ import annotations

import json

import psycopg
from serving import serve


def call(dsn: str, body: bytes) -> tuple[int, bytes]:
    with psycopg.connect(dsn, connect_timeout=10) as connection:
        (ssl,) = connection.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        return 200, json.dumps({"ssl": ssl[0]}).encode()


serve(call)
