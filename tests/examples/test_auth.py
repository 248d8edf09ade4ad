"""Time and made-up values on two sign-in services written as their users write them
(examples/auth): Node.js with Express, Sequelize, jsonwebtoken and bcryptjs, and Python with
Flask, SQLAlchemy over psycopg 3, PyJWT and passlib's bcrypt. Each is recorded once on a real
PostgreSQL, which is then stopped, and replayed with no noise rule written by hand:

- injected regressions fail, each with a diff: the token's lifetime, one of its claims, the
  expiry check inverted, the hashing cost, a timestamp column no longer written;
- once the recorded tokens have expired (30 s), ``--clock real`` fails the tests that send
  them, as the service checks them against today's clock;
- on the replay clock every test passes, 20 times in a row.

The bcrypt salts are learned as made-up values (the first replay of a sign-up runs twice);
the tokens that the traffic sends back are kept in clear, as the service issued them in an
earlier test's response; sign-in's JWT is judged by its claims."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from kpy_ci import clock
from tests.conftest import (
    KPY,
    ROOT,
    child_env,
    free_port,
    leftover_cgroups,
    no_kpy_left,
)
from tests.examples.samples import Sample, with_regression
from tests.examples.samples import said as shown
from tests.servers import PG_PASSWORD, pg_bin, postgres_server

AUTH = ROOT / "examples" / "auth"
LIFETIME = 30  # the samples' TOKEN_LIFETIME
TESTS = 11  # what traffic.py sends
JWT_SECRET = "jwt-signing-key-K9q2-for-tests"

pytestmark = pytest.mark.skipif(clock.unavailable() is not None, reason="needs libfaketime")


SAMPLES = [
    Sample(
        "node",
        AUTH / "node" / "app.js",
        ["node"],
        {
            "lifetime": ("const TOKEN_LIFETIME = 30;", "const TOKEN_LIFETIME = 60;"),
            "claim": ("{ sub: String(user.id), role", "{ sub: user.email, role"),
            "expiry": ("claims.exp <= Date.now() / 1000", "claims.exp > Date.now() / 1000"),
            "cost": ("const HASH_COST = 10;", "const HASH_COST = 11;"),
            "timestamp": ("user.update({ role });", "user.update({ role }, { silent: true });"),
        },
    ),
    Sample(
        "python",
        AUTH / "python" / "app.py",
        [sys.executable],
        {
            "lifetime": ("TOKEN_LIFETIME = 30 ", "TOKEN_LIFETIME = 60 "),
            "claim": ('"sub": str(user.id)', '"sub": user.email'),
            "expiry": ('claims["exp"] <= time.time()', 'claims["exp"] > time.time()'),
            "cost": ("HASH_COST = 10\n", "HASH_COST = 11\n"),
            "timestamp": ("default=now, onupdate=now", "default=now"),
        },
    ),
]
IDS = [s.name for s in SAMPLES]

SAID = {  # what each regression must make kpy say: the failing test, then its diff
    "lifetime": ["FAIL s/test-5 POST /signin", "a JWT whose claims differ: exp: ", "(+30)"],
    "claim": ["FAIL s/test-5 POST /signin", 'a JWT whose claims differ: sub: "1" -> "ann@'],
    "expiry": ["FAIL s/test-7 GET /me", "status: 200 -> 401", "'token expired'"],
    "cost": ["FAIL s/test-1 POST /signup", "matched no mock: INSERT", "$2b$11$"],
    "timestamp": ["FAIL s/test-10 PATCH /users/2/role", "matched no mock: UPDATE"],
}


@dataclass(frozen=True)
class Recorded:
    sets: Path
    envs: dict[str, dict[str, str]]
    expires: float
    """When the last token the traffic got has expired, by the real clock."""


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """Both samples recorded on one PostgreSQL, which is gone when the tests start."""
    if not (AUTH / "node" / "node_modules" / "sequelize").is_dir() or not shutil.which("node"):
        pytest.fail("node and examples/auth/node/node_modules: scripts/install.sh installs them")
    tmp = tmp_path_factory.mktemp("auth")
    envs = {}
    with postgres_server() as pg:
        for sample in SAMPLES:
            psql = [pg_bin("psql"), "-X", "-q", "-c", f"CREATE DATABASE auth_{sample.name}"]
            subprocess.run(psql, env=os.environ | pg.env(), check=True, capture_output=True)
            env = {
                "DATABASE_URL": f"postgresql://kpy:{PG_PASSWORD}@127.0.0.1:{pg.port}"
                f"/auth_{sample.name}",
                "JWT_SECRET": JWT_SECRET,
                "PORT": str(free_port()),
            }
            args = [
                "record", "-c", shlex.join([*sample.runtime, str(sample.app)]),
                "--port", env["PORT"], "--path", str(tmp / sample.name), "--set", "s",
                "--traffic", shlex.join([sys.executable, str(AUTH / "traffic.py")]),
            ]  # fmt: skip
            done = kpy(args, env, tmp)
            assert done.returncode == 0, done.stderr
            assert f"{TESTS} tests" in done.stderr, done.stderr
            envs[sample.name] = env
    yield Recorded(tmp, envs, time.time() + LIFETIME + 1)


def kpy(args: list[str], env: dict[str, str], tmp: Path) -> subprocess.CompletedProcess[str]:
    resolv = tmp / "resolv.conf"  # the service resolves through kpy's DNS only
    resolv.write_text("nameserver 127.0.0.53\n")
    return subprocess.run(
        [*KPY, *args, "--resolv-conf", str(resolv)],
        env=child_env() | env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def replay(sample: Sample, at: Recorded, tmp: Path, *options: str, app: Path | None = None) -> str:
    command = shlex.join([*sample.runtime, str(app or sample.app)])
    args = ["test", "-c", command, "--path", str(at.sets / sample.name), *options]
    done = kpy(args, at.envs[sample.name], tmp)
    assert leftover_cgroups() == []
    return shown(done)


def test_what_the_sets_hold(recorded: Recorded) -> None:
    """The tokens sent back are the ones the service issued, in clear; no secret is written."""
    for sample in SAMPLES:
        written = b"".join(p.read_bytes() for p in (recorded.sets / sample.name).rglob("*.yaml"))
        assert JWT_SECRET.encode() not in written and PG_PASSWORD.encode() not in written
        tests = recorded.sets / sample.name / "s" / "tests"
        token = yaml.safe_load((tests / "test-5.yaml").read_text())["response"]["body"]["json"]
        sent = yaml.safe_load((tests / "test-7.yaml").read_text())["request"]["headers"]
        assert ["Authorization", f"Bearer {token['token']}"] in sent, sent
        for test in (recorded.sets / sample.name / "s" / "tests").iterdir():
            assert "\nnoise:" not in test.read_text() and "\nmade_up:" not in test.read_text()


@pytest.mark.parametrize("regression", list(SAID))
@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_a_regression_fails_with_its_diff(
    sample: Sample, regression: str, recorded: Recorded, tmp_path: Path
) -> None:
    old, new = sample.regressions[regression]
    with with_regression(sample.app, old, new, regression) as changed:
        said = replay(sample, recorded, tmp_path, app=changed)
    assert "exit 1" in said, said
    for words in SAID[regression]:
        assert words in said, said


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_todays_clock_fails_the_expired_tokens(
    sample: Sample, recorded: Recorded, tmp_path: Path
) -> None:
    time.sleep(max(0.0, recorded.expires - time.time()))
    said = replay(sample, recorded, tmp_path, "--clock", "real")
    assert "exit 1" in said, said
    for test in ("test-7 GET /me", "test-10 PATCH /users/2/role", "test-11 GET /me"):
        assert f"FAIL s/{test}" in said, said
    assert "status: 200 -> 401" in said and "'token expired'" in said, said


@pytest.mark.parametrize("sample", SAMPLES, ids=IDS)
def test_every_test_passes_20_times_in_a_row_after_the_tokens_expired(
    sample: Sample, recorded: Recorded, tmp_path: Path
) -> None:
    time.sleep(max(0.0, recorded.expires - time.time()))
    for run in range(20):
        said = replay(sample, recorded, tmp_path)
        assert f"kpy: {TESTS} passed, 0 failed" in said and "exit 0" in said, f"run {run}: {said}"
        assert "unused mocks" not in said and "passed when sent again" not in said, said
        assert "made-up values learned" in said, said  # nothing written: learned each time
    no_kpy_left()
    assert time.time() > recorded.expires


def test_learned_values_written_need_no_second_run(recorded: Recorded, tmp_path: Path) -> None:
    sample = SAMPLES[1]
    written = replay(sample, recorded, tmp_path, "--write-noise")
    assert "exit 0" in written, written
    test_1 = (recorded.sets / sample.name / "s" / "tests" / "test-1.yaml").read_text()
    assert "made_up:" in test_1 and "$2b" in test_1, test_1
    again = replay(sample, recorded, tmp_path)
    assert "exit 0" in again and "made-up values learned" not in again, again
    assert f"kpy: {TESTS} passed, 0 failed" in again, again


def test_a_rerecording_sends_the_tokens_the_service_issues_now(tmp_path: Path) -> None:
    """``kpy record --from-set`` runs on today's clock, here with another signing key: the
    recorded tokens would be refused, so each test sends the one its sign-in got now."""
    sample = SAMPLES[1]
    with postgres_server() as pg:
        psql = [pg_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "auth", "-c"]
        create = [pg_bin("psql"), "-X", "-q", "-c", "CREATE DATABASE auth"]
        subprocess.run(create, env=os.environ | pg.env(), check=True, capture_output=True)
        env = {
            "DATABASE_URL": f"postgresql://kpy:{PG_PASSWORD}@127.0.0.1:{pg.port}/auth",
            "JWT_SECRET": JWT_SECRET,
            "PORT": str(free_port()),
        }
        command = shlex.join([*sample.runtime, str(sample.app)])
        traffic = shlex.join([sys.executable, str(AUTH / "traffic.py")])
        args = ["record", "-c", command, "--port", env["PORT"], "--path", str(tmp_path / "kpy")]
        done = kpy([*args, "--set", "s", "--traffic", traffic], env, tmp_path)
        assert done.returncode == 0, done.stderr
        set_dir = tmp_path / "kpy" / "s"
        before = {p.name: p.read_text() for p in (set_dir / "tests").iterdir()}
        again = ["record", "--from-set", str(set_dir), "-c", command]
        alone = kpy([*again, "--tests", "test-7"], env, tmp_path)
        assert "it sends a token that test-5 issued: re-record test-5 too" in alone.stderr
        assert {p.name: p.read_text() for p in (set_dir / "tests").iterdir()} == before
        subprocess.run([*psql, "DROP TABLE users"], env=os.environ | pg.env(), check=True)
        done = kpy(again, env | {"JWT_SECRET": "another-signing-key-for-tests"}, tmp_path)
        assert done.returncode == 0, done.stderr
    tests = set_dir / "tests"
    token = yaml.safe_load((tests / "test-5.yaml").read_text())["response"]["body"]["json"]
    test_7 = yaml.safe_load((tests / "test-7.yaml").read_text())
    assert ["Authorization", f"Bearer {token['token']}"] in test_7["request"]["headers"]
    assert test_7["response"]["status"] == 200, test_7
    assert token["token"] not in before["test-5.yaml"]  # signed with the other key
