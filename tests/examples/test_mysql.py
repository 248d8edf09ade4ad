"""MySQL (MariaDB) and Redis behind two library services written as their users write them
(examples/mysql): Node.js with Express, a mysql2/promise pool (``pool.query``, the text
protocol, and ``pool.execute``, prepared statements with binary rows) and the redis client,
and Python with Flask, SQLAlchemy 2 over PyMySQL and redis-py. Each is recorded once on a
real MariaDB and Redis, which are then stopped, and replayed:

- every test passes, 20 times in a row, with no unused mock;
- injected regressions fail, each with a diff: a changed query (another ORDER BY), a
  changed parameter (an INSERT binding ``''`` for a missing summary, not NULL), a write
  dropped with the same response (the cache invalidation's DEL in Redis, and the loan's
  UPDATE in MySQL), a changed response field
  (``available`` as 1, not true) and an extra query (a COUNT over loans);
- neither the MariaDB nor the Redis password is in any byte of the written set.

The MariaDB user authenticates with mysql_native_password (a scramble, never the password)
and Redis with AUTH; both services get their passwords from the environment."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kpy_ci import clock
from tests.conftest import (
    ROOT,
    child_env,
    free_port,
    leftover_cgroups,
    no_kpy_left,
    record_with_kpy,
    replay_with_kpy,
)
from tests.examples.samples import Sample, with_regression
from tests.examples.samples import said as shown
from tests.servers import MARIADB_PASSWORD, REDIS_PASSWORD, mariadb_server, redis_server

MYSQL = ROOT / "examples" / "mysql"
TESTS = 13  # what traffic.py sends

pytestmark = pytest.mark.skipif(clock.unavailable() is not None, reason="needs libfaketime")


SAMPLES = [
    Sample(
        "node",
        MYSQL / "node" / "app.js",
        ["node"],
        {
            "query": ("WHERE author = ? ORDER BY id", "WHERE author = ? ORDER BY title"),
            "parameter": ("summary ?? null, String(price)", 'summary ?? "", String(price)'),
            "dropped_write": (
                "await redis.del(cacheKey(id));\n  res.json(shown(",
                "res.json(shown(",
            ),
            "dropped_sql_write": (
                '    await conn.execute("UPDATE books SET available = FALSE WHERE id = ?", '
                "[bookId]);\n",
                "",
            ),
            "response": ("available: !!row.available,", "available: row.available,"),
            "extra_query": (
                "  res.json({\n    books: row.books,",
                '  await pool.query("SELECT COUNT(*) AS n FROM loans");\n'
                "  res.json({\n    books: row.books,",
            ),
        },
        {  # pool.execute: a prepared statement, its values bound apart
            "query": [
                "matched no mock: prepare SELECT id, isbn",
                "WHERE author = ? ORDER BY title\n",
            ],
            "parameter": [
                "matched no mock: execute INSERT INTO books",
                "['9780593098233', 'Dune Messiah', 'Frank Herbert', '', '12.50', '1969-10-15']",
                "['9780593098233', 'Dune Messiah', 'Frank Herbert', NULL, '12.50', '1969-10-15']",
            ],
            "extra_query": ["matched no mock: SELECT COUNT(*) AS n FROM loans"],
        },
    ),
    Sample(
        "python",
        MYSQL / "python" / "app.py",
        [sys.executable],
        {
            "query": (".order_by(Book.id)", ".order_by(Book.title)"),
            "parameter": ('summary=given.get("summary"),', 'summary=given.get("summary") or "",'),
            "dropped_write": (
                "cache.delete(cache_key(book_id))\n    return jsonify(shown)",
                "return jsonify(shown)",
            ),
            "dropped_sql_write": (
                "        session.execute(update(Book).where(Book.id == book_id)"
                ".values(available=False))\n",
                "",
            ),
            "response": ('"available": self.available,', '"available": int(self.available),'),
            "extra_query": (
                "        books, total, available, oldest = ",
                "        session.scalar(select(func.count(Loan.id)))\n"
                "        books, total, available, oldest = ",
            ),
        },
        {  # PyMySQL sends no prepared statements: the values are in the SQL
            "query": ["matched no mock: SELECT books.id,", "ORDER BY books.title\n"],
            "parameter": [
                "matched no mock: INSERT INTO books",
                "'Dune Messiah', 'Frank Herbert', '', 12.50",
                "'Dune Messiah', 'Frank Herbert', NULL, 12.50",
            ],
            "extra_query": ["matched no mock: SELECT count(loans.id) AS count_1 FROM loans"],
        },
    ),
]
IDS = [s.name for s in SAMPLES]

SAID = {  # what each regression must make kpy say: the failing test, then its diff
    "query": ["FAIL s/test-6 GET /books?author=Frank+Herbert", "mysql call to", "nearest: mock-"],
    "parameter": ["FAIL s/test-2 POST /books", "mysql call to", "expected call not made: mock-"],
    "dropped_write": [
        "FAIL s/test-7 PATCH /books/1",
        "expected call not made: mock-",
        "redis DEL book:1",
        "kpy: 12 passed, 1 failed",
    ],
    "dropped_sql_write": [  # the loan's UPDATE not sent: its response is the same
        "FAIL s/test-9 POST /loans",
        "expected call not made: mock-",
        "UPDATE books SET available",
        "kpy: 12 passed, 1 failed",
    ],
    "response": ["FAIL s/test-1 POST /books", "body.available: true -> 1"],
    "extra_query": ["FAIL s/test-13 GET /stats", "mysql call to", "kpy: 12 passed, 1 failed"],
}
UNSAID = {  # and what it must not: the dropped write's response is the same
    "dropped_write": ["    status: ", "    body."],
    "dropped_sql_write": ["    status: ", "    body."],
}


@dataclass(frozen=True)
class Recorded:
    sets: Path
    envs: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """Both samples recorded on one MariaDB (a database each) and a Redis each; all of them
    are gone when the tests start."""
    if not (MYSQL / "node" / "node_modules" / "mysql2").is_dir() or not shutil.which("node"):
        pytest.fail("node and examples/mysql/node/node_modules: scripts/install.sh installs them")
    tmp = tmp_path_factory.mktemp("mysql")
    envs = {}
    with mariadb_server() as db:
        for sample in SAMPLES:
            database = f"library_{sample.name}"
            root = ["mysql", "--no-defaults", f"--socket={db.socket}", "-uroot", "-e"]
            grant = f"CREATE DATABASE {database}; GRANT ALL ON {database}.* TO '{db.user}'@'%'"
            subprocess.run([*root, grant], check=True, capture_output=True)
            if sample.name == "node":  # both ways of configuring the database, one each
                where = {"MYSQL_URL": f"mysql://{db.user}:{db.password}@{db.host}:{db.port}/"}
                where["MYSQL_URL"] += database
            else:
                where = {
                    "MYSQL_HOST": db.host,
                    "MYSQL_PORT": str(db.port),
                    "MYSQL_USER": db.user,
                    "MYSQL_PASSWORD": db.password,
                    "MYSQL_DATABASE": database,
                }
            with redis_server(tmp / f"redis-{sample.name}") as rd:
                env = {"REDIS_URL": rd.url(), "PORT": str(free_port()), **where}
                done = record_with_kpy(
                    [*sample.runtime, str(sample.app)],
                    env["PORT"],
                    tmp / sample.name,
                    shlex.join([sys.executable, str(MYSQL / "traffic.py")]),
                    child_env() | env,
                    "--set", "s", "--resolv-conf", str(resolv_conf(tmp)),
                )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert f"{TESTS} tests" in done.stderr, done.stderr
            envs[sample.name] = env
    yield Recorded(tmp, envs)


def resolv_conf(tmp: Path) -> Path:
    """The service resolves through kpy's DNS only."""
    resolv = tmp / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\n")
    return resolv


def replay(sample: Sample, at: Recorded, tmp: Path, *options: str, app: Path | None = None) -> str:
    command = [*sample.runtime, str(app or sample.app)]
    env = child_env() | at.envs[sample.name]
    done = replay_with_kpy(command, at.sets / sample.name, tmp, env, *options, timeout=300)
    assert leftover_cgroups() == []
    return shown(done)


def test_no_password_is_written(recorded: Recorded) -> None:
    """Every byte of every file under each set: neither MariaDB's password nor Redis's."""
    for sample in SAMPLES:
        files = [p for p in (recorded.sets / sample.name).rglob("*") if p.is_file()]
        assert any(p.name == "mocks.yaml" for p in files), files
        assert len([p for p in files if p.parent.name == "tests"]) == TESTS, files
        for path in files:
            written = path.read_bytes()
            for secret in (MARIADB_PASSWORD, REDIS_PASSWORD):
                assert secret.encode() not in written, f"{secret} in {path}"


@pytest.mark.parametrize("regression", list(SAID))
@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_a_regression_fails_with_its_diff(
    sample: Sample, regression: str, recorded: Recorded, tmp_path: Path
) -> None:
    old, new = sample.regressions[regression]
    with with_regression(sample.app, old, new, regression) as changed:
        said = replay(sample, recorded, tmp_path, app=changed)
    assert "exit 1" in said, said
    for words in SAID[regression] + sample.said.get(regression, []):
        assert words in said, said
    for words in UNSAID.get(regression, []):
        assert words not in said, said


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_every_test_passes_20_times_in_a_row(
    sample: Sample, recorded: Recorded, tmp_path: Path
) -> None:
    for run in range(20):
        said = replay(sample, recorded, tmp_path)
        assert f"kpy: {TESTS} passed, 0 failed" in said and "exit 0" in said, f"run {run}: {said}"
        assert "unused mocks" not in said and "passed when sent again" not in said, said
    no_kpy_left()
