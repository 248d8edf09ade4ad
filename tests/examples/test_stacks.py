"""kpy on stacks other than the shop's, written as their users write them: FastAPI with
SQLAlchemy over psycopg2 (a pool, its connect-time queries and pre-ping) and redis-py; and
Node.js with node-postgres (a pool, a named prepared statement, a transaction). Each is
recorded on real PostgreSQL and Redis, which are then stopped, and replayed: every test
passes, and a changed query fails."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import KPY, ROOT, child_env, free_port, leftover_cgroups
from tests.servers import PG_PASSWORD, Postgres, pg_bin, postgres_server, redis_server

EXAMPLES = ROOT / "examples"


@dataclass(frozen=True)
class Stack:
    name: str
    app: Path
    argv: list[str]
    tests: int
    """How many requests its traffic.py sends."""


STACKS = [
    Stack("notes", EXAMPLES / "notes" / "app.py", [sys.executable], 6),
    Stack("users-node", EXAMPLES / "users-node" / "app.js", ["node"], 8),
]


def database(pg: Postgres, name: str) -> str:
    psql = [pg_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c"]
    env = os.environ | pg.env()
    subprocess.run([*psql, f"CREATE DATABASE {name}"], env=env, check=True, capture_output=True)
    return f"postgresql://kpy:{PG_PASSWORD}@127.0.0.1:{pg.port}/{name}"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, str]]]:
    """Each stack recorded into tmp/kpy/<name>; its environment. The servers are gone after."""
    if not (EXAMPLES / "users-node" / "node_modules" / "pg").is_dir() or not shutil.which("node"):
        pytest.fail("node and examples/users-node/node_modules: scripts/install.sh installs them")
    tmp = tmp_path_factory.mktemp("stacks")
    envs = {}
    with postgres_server() as pg, redis_server(tmp / "redis") as redis:
        for stack in STACKS:
            port = free_port()
            env = {
                "DATABASE_URL": database(pg, stack.name.replace("-", "_")),
                "REDIS_URL": redis.url(),
                "PORT": str(port),
            }
            traffic = shlex.join([sys.executable, str(stack.app.parent / "traffic.py")])
            args = [
                "record", "-c", shlex.join([*stack.argv, str(stack.app)]), "--port", str(port),
                "--path", str(tmp / "kpy"), "--set", stack.name, "--traffic", traffic,
                "--resolv-conf", str(resolv_conf(tmp)),
            ]  # fmt: skip
            done = kpy(args, env)
            assert done.returncode == 0, done.stderr
            assert f"{stack.tests} tests" in done.stderr, done.stderr
            envs[stack.name] = env | {"KPY_SETS": str(tmp / "kpy")}
    yield envs


def resolv_conf(tmp: Path) -> Path:
    path = tmp / "resolv.conf"
    path.write_text("nameserver 127.0.0.53\n")
    return path


def replay(
    stack: Stack, env: dict[str, str], tmp_path: Path, app: Path | None = None
) -> subprocess.CompletedProcess[str]:
    command = shlex.join([*stack.argv, str(app or stack.app)])
    args = [
        "test", "-c", command, "--path", env["KPY_SETS"], "--set", stack.name,
        "--resolv-conf", str(resolv_conf(tmp_path)),
    ]  # fmt: skip
    return kpy(args, env)


def kpy(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KPY, *args], env=child_env() | env, capture_output=True, text=True, timeout=180
    )


@pytest.mark.parametrize("stack", STACKS, ids=[s.name for s in STACKS])
def test_replay_passes_with_its_databases_gone(
    stack: Stack, recorded: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    done = replay(stack, recorded[stack.name], tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"kpy: {stack.tests} passed, 0 failed" in done.stderr
    assert leftover_cgroups() == []


CHANGES = {  # a query by id, changed the way a refactoring would
    "notes": "SELECT id, body FROM notes WHERE id = :id",
    "users-node": "SELECT id, name FROM users WHERE id = $1",
}


@pytest.mark.parametrize("stack", STACKS, ids=[s.name for s in STACKS])
def test_a_changed_query_fails_naming_it(
    stack: Stack, recorded: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    old = CHANGES[stack.name]
    new = f"{old} LIMIT 1"
    source = stack.app.read_text()
    assert old in source
    changed = stack.app.parent / f".changed-{stack.app.name}"  # beside it: node finds pg
    changed.write_text(source.replace(old, new))
    try:
        done = replay(stack, recorded[stack.name], tmp_path, changed)
    finally:
        changed.unlink()
    assert done.returncode == 1, done.stderr
    assert "postgres call to 127.0.0.1:" in done.stderr
    assert "matched no mock: SELECT id" in done.stderr and "LIMIT 1" in done.stderr
