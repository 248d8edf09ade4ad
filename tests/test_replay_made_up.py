"""Values the service makes up with no recognisable shape, learned at replay from two runs
of the same test: a salted password hash in an INSERT (psycopg 3) and a random session
token in a Redis key and in the response. The unchanged service passes, and the patterns
written with --write-noise spare the next replay its second run; a changed hashing cost,
the hash's fixed part, is caught as a call that matches no mock."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import yaml

from tests.conftest import (
    child_env,
    free_port,
    leftover_cgroups,
    no_kpy_left,
    record_with_kpy,
    replay_with_kpy,
)
from tests.servers import PG_PASSWORD, Postgres, Redis, pg_bin

SERVICE = """
import hashlib, json, os, secrets
import psycopg, redis
from http.server import BaseHTTPRequestHandler, HTTPServer
sessions = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
ROUNDS = int(os.environ.get("ROUNDS", "1000"))
def hashed(password):
    salt = secrets.token_hex(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), ROUNDS).hex()
    return f"pbkdf2_sha256${ROUNDS}${salt}${digest}"
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        user = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as db:
            row = db.execute(
                "INSERT INTO users (email, password) VALUES (%s, %s) RETURNING id",
                (user["email"], hashed(user["password"])),
            ).fetchone()
        session = secrets.token_urlsafe(24)
        sessions.set(f"session:{session}", row[0], ex=3600)
        self.answer(201, {"id": row[0], "session": session})
    def do_GET(self):
        user = sessions.get(f"session:{self.headers.get('X-Session', '')}")
        if user is None:
            return self.answer(401, {"error": "no session"})
        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as db:
            email = db.execute("SELECT email FROM users WHERE id = %s", (int(user),)).fetchone()
        self.answer(200, {"email": email[0]})
    def answer(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""
TRAFFIC = """
import json, os, urllib.request as u
base = os.environ["BASE_URL"]
sign_up = u.Request(base + "/users", json.dumps({"email": "a@b.test", "password": "pw"}).encode(),
                    {"Content-Type": "application/json"}, method="POST")
session = json.load(u.urlopen(sign_up))["session"]
print(json.load(u.urlopen(u.Request(base + "/me", headers={"X-Session": session}))))
"""


def recorded(postgres: Postgres, redis: Redis, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    pg_env = os.environ | postgres.env()
    for sql in (
        "DROP TABLE IF EXISTS users",
        "CREATE TABLE users (id serial PRIMARY KEY, email text, password text)",
    ):
        subprocess.run([pg_bin("psql"), "-X", "-q", "-c", sql], env=pg_env, check=True)
    (tmp_path / "service.py").write_text(SERVICE)
    (tmp_path / "traffic.py").write_text(TRAFFIC)
    database = f"postgresql://kpy:{PG_PASSWORD}@127.0.0.1:{postgres.port}/{postgres.database}"
    env = child_env() | {"PORT": str(free_port()), "DATABASE_URL": database}
    env["REDIS_URL"] = redis.url()
    command = [sys.executable, str(tmp_path / "service.py")]
    traffic = shlex.join([sys.executable, str(tmp_path / "traffic.py")])
    done = record_with_kpy(command, env["PORT"], tmp_path / "kpy", traffic, env, "--set", "s")
    assert done.returncode == 0, done.stderr
    return command, env


def replay(command: list[str], env: dict[str, str], tmp: Path, *options: str) -> str:
    done = replay_with_kpy(command, tmp / "kpy", tmp, env, "--port", env["PORT"], *options)
    assert leftover_cgroups() == []
    no_kpy_left()
    return done.stderr + f"\nexit {done.returncode}"


def test_made_up_values_are_learned_written_and_their_fixed_parts_still_compared(
    postgres: Postgres, redis: Redis, tmp_path: Path
) -> None:
    command, env = recorded(postgres, redis, tmp_path)
    first = replay(command, env, tmp_path)
    assert "kpy: 2 passed, 0 failed" in first and "exit 0" in first, first
    [learned] = [line for line in first.splitlines() if "made-up values learned" in line]
    assert learned.startswith("kpy: test-1: ") and r"pbkdf2_sha256\$1000\$" in learned, learned

    written = replay(command, env, tmp_path, "--write-noise")
    assert "kpy: 2 passed, 0 failed" in written, written
    test_file = tmp_path / "kpy" / "s" / "tests" / "test-1.yaml"
    patterns = yaml.safe_load(test_file.read_text())["made_up"]
    assert any(r"pbkdf2_sha256\$1000\$" in p for p in patterns), patterns
    again = replay(command, env, tmp_path)
    assert "kpy: 2 passed, 0 failed" in again and "made-up values learned" not in again, again

    costlier = replay(command, env | {"ROUNDS": "2000"}, tmp_path)
    assert "FAIL s/test-1 POST /users" in costlier and "exit 1" in costlier, costlier
    assert "INSERT INTO users" in costlier and "matched no mock" in costlier, costlier
    assert "pbkdf2_sha256$2000$" in costlier, costlier  # the call, in the miss's diff


ONCE = """
import json, os
from http.server import BaseHTTPRequestHandler, HTTPServer
wrong = int(os.environ.get("WRONG", "0"))  # how many first answers are wrong
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        global wrong
        body = json.dumps({"v": 2 if wrong > 0 else 1}).encode()
        wrong -= 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


def test_a_test_that_passes_only_when_sent_again_is_said_to(tmp_path: Path) -> None:
    (tmp_path / "once.py").write_text(ONCE)
    command = [sys.executable, str(tmp_path / "once.py")]
    env = {**child_env(), "PORT": str(free_port())}
    fetch = "import os, urllib.request as u; u.urlopen(os.environ['BASE_URL'] + '/v').read()"
    traffic = shlex.join([sys.executable, "-c", fetch])
    done = record_with_kpy(command, env["PORT"], tmp_path / "kpy", traffic, env, "--set", "s")
    assert done.returncode == 0, done.stderr
    junit = tmp_path / "junit.xml"
    once = replay_with_kpy(
        command, tmp_path / "kpy", tmp_path, env | {"WRONG": "1"}, "--junit", str(junit)
    )
    assert once.returncode == 0, once.stderr
    said = "passed when sent again, nothing learned"
    assert (
        said in once.stderr and "the first sending: response changed: body.v: 1 -> 2" in once.stderr
    )
    out = "".join(e.text or "" for e in ElementTree.parse(junit).iter("system-out"))
    assert "passed when sent again; the first sending: response changed: body.v: 1 -> 2" in out
    always = replay_with_kpy(command, tmp_path / "kpy", tmp_path, env | {"WRONG": "99"})
    assert always.returncode == 1 and "body.v: 1 -> 2" in always.stderr, always.stderr
    assert leftover_cgroups() == []
