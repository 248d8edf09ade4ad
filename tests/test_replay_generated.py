"""Values the service generates (a new UUID, the current time) recorded in calls and echoed
in responses: replayed by consistent substitution, so the unchanged service passes; a time
that is not the current one, or a set that does not say when it was recorded, still fails.
psycopg 3 sends UUIDs and times in binary, psycopg 2 in the SQL text, redis-py in words."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import KPY, child_env, free_port
from tests.servers import PG_PASSWORD, Postgres, Redis, pg_bin

SERVICE = """
import datetime, json, os, uuid
import psycopg, psycopg2, redis
from http.server import BaseHTTPRequestHandler, HTTPServer
cache = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
SHIFT = datetime.timedelta(days=int(os.environ.get("SHIFT_DAYS", "0")))
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        thing, now = uuid.uuid4(), datetime.datetime.now(datetime.timezone.utc) - SHIFT
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("INSERT INTO things (id, created) VALUES (%s, %s)", (thing, now))
        old = psycopg2.connect(os.environ["DATABASE_URL"])
        naive = now.replace(tzinfo=None)
        old.cursor().execute("INSERT INTO audit (what, at) VALUES (%s, %s)", (str(thing), naive))
        old.commit()
        old.close()
        cache.set(f"thing:{thing}", now.isoformat())
        self.answer(201, {"id": str(thing), "created": now.isoformat()})
    def do_GET(self):
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
            n = conn.execute("SELECT count(*) FROM things").fetchone()[0]
        self.answer(200, {"things": n})
    def answer(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""
TRAFFIC = (
    "import os, urllib.request as u; b = os.environ['BASE_URL']; "
    "print(u.urlopen(u.Request(b + '/things', data=b'', method='POST')).read()); "
    "print(u.urlopen(b + '/things').read())"
)


def kpy(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\n")
    argv = [*KPY, *args, "--path", str(tmp_path / "kpy"), "--resolv-conf", str(resolv)]
    return subprocess.run(argv, env=child_env() | env, capture_output=True, text=True, timeout=120)


def test_generated_values_replay_by_consistent_substitution(
    postgres: Postgres, redis: Redis, tmp_path: Path
) -> None:
    pg_env = os.environ | postgres.env()
    for sql in (
        "DROP TABLE IF EXISTS things, audit",
        "CREATE TABLE things (id uuid PRIMARY KEY, created timestamptz)",
        "CREATE TABLE audit (what text, at timestamp)",
    ):
        subprocess.run([pg_bin("psql"), "-X", "-q", "-c", sql], env=pg_env, check=True)
    (tmp_path / "service.py").write_text(SERVICE)
    port = free_port()
    database = f"postgresql://kpy:{PG_PASSWORD}@127.0.0.1:{postgres.port}/{postgres.database}"
    env = {"PORT": str(port), "DATABASE_URL": database, "REDIS_URL": redis.url()}
    command = shlex.join([sys.executable, str(tmp_path / "service.py")])
    traffic = shlex.join([sys.executable, "-c", TRAFFIC])
    done = kpy(tmp_path, env, "record", "-c", command, "--port", str(port), "--traffic", traffic)
    assert done.returncode == 0, done.stderr

    # every value the service made up differs now, and the replay passes
    done = kpy(tmp_path, env, "test", "-c", command)
    assert done.returncode == 0, done.stderr
    assert "kpy: 2 passed, 0 failed" in done.stderr

    # a time that is not the current one is not generated: its calls miss
    done = kpy(tmp_path, env | {"SHIFT_DAYS": "3"}, "test", "-c", command)
    assert done.returncode == 1
    assert "matched no mock: INSERT INTO things (id, created) VALUES ($1, $2)" in done.stderr

    # a set that does not say when it was recorded: no time counts as generated
    meta_file = tmp_path / "kpy" / "test-set-1" / "test-set.yaml"
    meta = yaml.safe_load(meta_file.read_text())
    del meta["started_at"]
    meta_file.write_text(yaml.safe_dump(meta, sort_keys=False))
    done = kpy(tmp_path, env, "test", "-c", command)
    assert done.returncode == 1
    assert "matched no mock" in done.stderr
