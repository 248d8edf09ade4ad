"""kpy on stacks other than the shop's, written as their users write them: FastAPI with
SQLAlchemy over psycopg2 (a pool, its connect-time queries and pre-ping) and redis-py; and
Node.js with node-postgres (a pool, a named prepared statement, a transaction). Each is
recorded once on real PostgreSQL and Redis. While they are still up, kpy drift must flag
exactly the tests each migration of the recorded database touches (tests/drift_helpers.py's
oracle), from a migrated copy and from migration files. Then the servers are stopped and
each set replayed: every test passes, and a changed query fails."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.conftest import KPY, ROOT, child_env, free_port, leftover_cgroups
from tests.drift_helpers import (
    Step,
    check_verdict,
    drift,
    flagged,
    migrated_copy,
    migrations_dir,
    stale_by_oracle,
    word,
)
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


class Recorded:
    """Both stacks recorded into ``sets``/<name>, their environments, and the PostgreSQL they
    were recorded on, up until ``stop``."""

    def __init__(
        self, sets: Path, envs: dict[str, dict[str, str]], servers: ExitStack, pg: Postgres
    ) -> None:
        self.sets, self.envs, self._servers = sets, envs, servers
        self.pg: Postgres | None = pg

    def stop(self) -> None:
        self._servers.close()  # closing again, at the fixture's end, does nothing
        self.pg = None


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """Each stack recorded once; PostgreSQL and Redis stay up until a test asks for them gone."""
    if not (EXAMPLES / "users-node" / "node_modules" / "pg").is_dir() or not shutil.which("node"):
        pytest.fail("node and examples/users-node/node_modules: scripts/install.sh installs them")
    tmp = tmp_path_factory.mktemp("stacks")
    envs = {}
    with ExitStack() as servers:
        pg = servers.enter_context(postgres_server())
        redis = servers.enter_context(redis_server(tmp / "redis"))
        for stack in STACKS:
            port = free_port()
            env = {
                "DATABASE_URL": database(pg, db_name(stack)),
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
        yield Recorded(tmp / "kpy", envs, servers, pg)


@pytest.fixture
def live(stacks: Recorded) -> Postgres:
    """The server the stacks were recorded on, still up (the drift tests come first)."""
    if stacks.pg is None:
        pytest.fail("PostgreSQL was stopped for the replay tests: run the drift tests first")
    return stacks.pg


@pytest.fixture
def recorded(stacks: Recorded) -> dict[str, dict[str, str]]:
    """Each stack's environment, with its databases gone."""
    stacks.stop()
    return stacks.envs


def db_name(stack: Stack) -> str:
    return stack.name.replace("-", "_")


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


def steps(table: str, column: str, new_type: str) -> list[Step]:
    """Migrations of the column every recorded query of a stack reads, and of the table its
    INSERTs fill."""
    reads = word(column)

    def never(sql: str) -> bool:
        return False

    def inserts(sql: str) -> bool:
        return sql.startswith(f"INSERT INTO {table} ")

    return [
        Step("drop_read", f"ALTER TABLE {table} DROP COLUMN {column};\n", reads),
        Step("rename", f"ALTER TABLE {table} RENAME COLUMN {column} TO {column}_text;\n", reads),
        Step("retype", f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {new_type};\n", reads),
        Step("index", f"CREATE INDEX {table}_{column}_idx ON {table} ({column});\n", never),
        Step("add_nullable", f"ALTER TABLE {table} ADD COLUMN note text;\n", never),
        Step(
            "not_null",
            f"ALTER TABLE {table} ADD COLUMN note text;\nUPDATE {table} SET note = '';\n"
            f"ALTER TABLE {table} ALTER COLUMN note SET NOT NULL;\n",
            inserts,
        ),
    ]


MIGRATIONS = {  # the recorded rows ('one', 'two'; 'ann', 'bob') fit the new types
    "notes": steps("notes", "body", "varchar(10)"),
    "users-node": steps("users", "name", "varchar(40)"),
}
HARMLESS = ("index", "add_nullable")
CASES = [(stack, step) for stack in STACKS for step in MIGRATIONS[stack.name]]


def init_ddl(stack: Stack) -> str:
    """The CREATE TABLE the app runs when it starts: the first migration of its schema."""
    found = re.search(r"CREATE TABLE IF NOT EXISTS \w+ \([^\"]*\)", stack.app.read_text())
    assert found is not None, stack.app
    return found[0] + ";\n"


# The drift tests come before the replay tests, which stop the servers (pytest keeps file order).
@pytest.mark.parametrize(("stack", "step"), CASES, ids=[f"{s.name}-{m.name}" for s, m in CASES])
def test_drift_flags_exactly_the_tests_a_migration_touches(
    stack: Stack, step: Step, stacks: Recorded, live: Postgres, tmp_path: Path
) -> None:
    set_dir = stacks.sets / stack.name
    breaking = step.name not in HARMLESS
    assert bool(stale_by_oracle(set_dir, step.touches)) == breaking  # the oracle sees it too
    db = migrated_copy(live, db_name(stack), step)
    folder = migrations_dir(tmp_path, init_ddl(stack), step)
    for source in (("--dsn", db.dsn()), ("--migrations", str(folder))):
        check_verdict(set_dir, step, breaking, tmp_path, *source, "--set", stack.name)


@pytest.mark.parametrize("stack", STACKS, ids=[s.name for s in STACKS])
def test_drift_is_clean_on_the_schema_recorded(
    stack: Stack, stacks: Recorded, live: Postgres, tmp_path: Path
) -> None:
    folder = tmp_path / "init-only"
    folder.mkdir()
    (folder / "001_init.sql").write_text(init_ddl(stack))
    recorded_db = replace(live, database=db_name(stack))
    for source in (("--dsn", recorded_db.dsn()), ("--migrations", str(folder))):
        code, report, err = drift(stacks.sets, tmp_path, *source, "--set", stack.name)
        assert code == 0 and flagged(report) == set(), err


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
