"""The two example workflows, examples/workflows/pr-gate.yml and staging-record.yml, run by
act on a user's repository holding the sample shop and its recorded set, as the runner's
user: the gate passes; a pull request with a migration fails the stale tests as schema
drift, annotated on the migration's line; the scheduled job re-records just those tests on
the migrated staging database and ends with the new set committed on a branch (opening the
pull request is the one step that needs GitHub); with every dependency stopped, the gate
passes on that branch.

The examples are used as they are, but for the service's port (8080 in them; here the
port the set was recorded on, free on this machine)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

from tests.action.act import (
    Act,
    Run,
    action_copy,
    artifacts_dir,
    ensure_runner,
    give_to_runner,
    repository,
    runner_dir,
)
from tests.conftest import ROOT, no_kpy_left
from tests.examples.shop import SHOP, TRAFFIC_LINES
from tests.servers import pg_bin
from tests.test_drift_rerecord import RETYPE
from tests.test_record import TRAFFIC, kpy_record, shop_stack

EXAMPLES = ROOT / "examples" / "workflows"
SEED = """#!/usr/bin/env bash
# staging's state before a recording: the shop's seed, an empty Redis
set -euo pipefail
psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -f seed.sql
python -c 'import os, redis; redis.Redis.from_url(os.environ["REDIS_URL"]).flushall()'
"""


def example(name: str, port: int) -> str:
    """The example, the service's port moved to ``port``; the shards of a matrix one at a
    time, since here they share one machine, and each binds that port."""
    text = (EXAMPLES / name).read_text()
    assert '"8080"' in text
    text = text.replace('"8080"', f'"{port}"')
    return text.replace(
        "      fail-fast: false\n", "      fail-fast: false\n      max-parallel: 1\n"
    )


def gate_run(act: Act) -> Run:
    return act.run("pr-gate.yml", event="pull_request")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "safe.directory=*", *args], cwd=repo, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_gate_then_drift_then_the_rerecord_job_then_the_gate_again() -> None:
    ensure_runner()
    base = runner_dir()
    try:
        with shop_stack(base) as (pg, redis, rates_port, dns):
            argv, env = kpy_record(
                pg, redis, rates_port, base / "kpy", dns, TRAFFIC, "--set", "staging"
            )
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
            assert done.returncode == 0, done.stderr
            port = int(argv[argv.index("--port") + 1])
            files: dict[str, str | Path] = {
                name: SHOP / name for name in ("app.py", "traffic.py", "seed.sql")
            }
            repo = repository(
                base / "repo",
                {
                    **files,
                    "kpy": base / "kpy",
                    "requirements.txt": "flask>=3\npsycopg[binary]>=3.1\nredis>=5\n",
                    "scripts/seed-staging.sh": SEED,
                    "db/migrations/001_init.sql": SHOP / "seed.sql",
                    ".github/workflows/pr-gate.yml": example("pr-gate.yml", port),
                    ".github/workflows/staging-record.yml": example("staging-record.yml", port),
                },
            )
            (repo / "scripts" / "seed-staging.sh").chmod(0o755)
            database = dataclasses.replace(pg, database="kpy_shop")
            act = Act(
                repo,
                action_copy(base / "action"),
                artifacts_dir(base / "artifacts"),
                variables={
                    "STAGING_DATABASE_ADDRESS": env["DATABASE_URL"],
                    "STAGING_REDIS_ADDRESS": env["REDIS_URL"],
                    "RATES_URL": env["RATES_URL"],
                },
                secrets={
                    "STAGING_DATABASE_URL": env["DATABASE_URL"],
                    "STAGING_REDIS_URL": env["REDIS_URL"],
                    "RATES_TOKEN": env["RATES_TOKEN"],
                },
            )

            # 1. a pull request that changes nothing: the gate is green and says little
            gate = gate_run(act)
            assert gate.returncode == 0, gate.log
            assert not gate.annotations()
            passed = [int(s.split(" passed")[0].split()[-1]) for s in gate.summaries("kpy")]
            assert sum(passed) == TRAFFIC_LINES and len(passed) == 2  # the two shards

            # 2. a pull request with a migration: drift names it, the stale tests fail
            migration = "db/migrations/002_price_precision.sql"
            repository(repo, {migration: RETYPE})
            gate = gate_run(act)
            assert gate.returncode != 0
            errors = gate.annotations()
            on_migration = [e for e in errors if e.get("kvPairs", {}).get("file") == migration]
            assert on_migration and all(e["kvPairs"]["line"] == "1" for e in on_migration)
            assert any("price type changed" in e["arg"] for e in on_migration), errors
            drifted = [e for e in errors if e["arg"].startswith("re-record needed: ")]
            assert drifted, gate.log
            assert all(e["kvPairs"]["file"].startswith("kpy/staging/tests/") for e in drifted)
            stale = sorted({e["kvPairs"]["file"] for e in drifted})
            assert 0 < len(stale) < TRAFFIC_LINES

            # 3. the migration reaches staging; the scheduled job re-records what is stale
            subprocess.run(
                [pg_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", RETYPE],
                env=os.environ | database.env(),
                check=True,
                capture_output=True,
            )
            job = act.run("staging-record.yml", event="workflow_dispatch")
            assert job.returncode == 0, job.log
            assert job.step_results()["drift"] == "failure"  # exit 3, continue-on-error
            assert job.step_results()["rerecord"] == "success"
            bundle = act.artifacts / "kpy" / "rerecord.bundle"
            git(repo, "fetch", "-q", str(bundle), "kpy/rerecord:kpy/rerecord")
            changed = git(repo, "diff", "--name-only", "main", "kpy/rerecord").split()
            tests_changed = sorted(f for f in changed if "/tests/" in f)
            assert tests_changed == stale, (tests_changed, stale)
            assert all(f.startswith("kpy/staging/") for f in changed)
        # 4. every dependency is gone: the gate on the re-record branch is green again
        git(repo, "checkout", "-q", "kpy/rerecord")
        give_to_runner(repo)
        gate = gate_run(act)
        assert gate.returncode == 0, gate.log
        assert not gate.annotations()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    no_kpy_left()
