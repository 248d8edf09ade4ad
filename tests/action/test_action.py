"""The kpy action, run for real by act as a runner would, as a user that is not root and
has sudo: mode record on the sample shop with its dependencies live, then mode test with
every one of them stopped, then a regression in the shop; each with the action's outputs,
the job summary and the ``::error file=...,line=...`` annotations checked. GitHub does not
set INPUT_* in composite steps (act does): the replay runs once more with them removed."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from junitparser import JUnitXml

from tests.action.act import (
    Act,
    Run,
    action_copy,
    artifacts_dir,
    ensure_runner,
    repository,
    runner_dir,
)
from tests.conftest import ROOT, no_kpy_left
from tests.examples.shop import SHOP, TRAFFIC_LINES, shop_env
from tests.servers import PG_PASSWORD, free_port
from tests.test_record import shop_stack

WORKFLOW = Path(__file__).resolve().parent / "workflows" / "shop.yml"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
REGRESSION = ('"price": str(row["price"])', '"price": str(row["price"]).replace(".", ",")')


@dataclass
class Recorded:
    act: Act
    record: Run
    secrets: list[str]


@pytest.fixture(scope="module")
def recorded() -> Iterator[Recorded]:
    """The record job, run once: the shop on a fresh PostgreSQL, Redis and rates API."""
    ensure_runner()
    base = runner_dir()
    repo = repository(
        base / "repo",
        {
            "shop": SHOP,
            "resolv.conf": "nameserver 127.0.0.53\n",
            ".github/workflows/shop.yml": WORKFLOW,
        },
    )
    action = action_copy(base / "action")
    artifacts = artifacts_dir(base / "artifacts")
    with shop_stack(base) as (pg, redis, rates_port, dns):
        env = shop_env(pg, redis, free_port(), rates_port)
        act = Act(
            repo, action, artifacts, {**env, "SHOP_PYTHON": PYTHON, "DNS_PORT": str(dns.port)}
        )
        run = act.run("shop.yml", "record")
        secrets = [PG_PASSWORD, redis.password or "", env["RATES_TOKEN"]]
    try:
        yield Recorded(act, run, [s for s in secrets if s])
    finally:
        shutil.rmtree(base, ignore_errors=True)
    no_kpy_left()


def test_record_job_writes_the_set_as_the_runner_user(recorded: Recorded) -> None:
    run = recorded.record
    assert run.returncode == 0, run.log
    assert run.outputs("kpy")["set-path"] == "kpy/shop"
    assert run.step_results()["kpy"] == "success"
    shop = recorded.act.artifacts / "kpy-sets" / "shop"
    assert len(list((shop / "tests").glob("test-*.yaml"))) == TRAFFIC_LINES
    # under sudo, kpy gave every file back to the runner's user
    owners = {p.owner() for p in [shop, *shop.rglob("*")]}
    assert owners == {"kpy-runner"}
    for secret in recorded.secrets:
        for path in shop.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
    # the doctor ran first and said nothing was lacking
    assert "kpy can run here" in run.log
    assert not run.annotations()


def replay(act: Act) -> Run:
    shutil.rmtree(act.artifacts / "kpy-junit", ignore_errors=True)
    return act.run("shop.yml", "test")


def test_test_job_replays_green_with_every_dependency_stopped(recorded: Recorded) -> None:
    run = replay(recorded.act)
    assert run.returncode == 0, run.log
    outputs = run.outputs("kpy")
    assert outputs["passed"] == str(TRAFFIC_LINES) and outputs["failed"] == "0"
    assert outputs["total"] == str(TRAFFIC_LINES) and outputs["junit"] == "reports/kpy.xml"
    assert not run.annotations()
    [summary] = run.summaries("kpy")
    assert summary.startswith(f"## kpy: {TRAFFIC_LINES} passed, 0 failed")
    assert "### Failures" not in summary  # a green gate says little
    junit = recorded.act.artifacts / "kpy-junit" / "kpy.xml"
    assert junit.owner() == "kpy-runner"
    assert JUnitXml.fromfile(str(junit)).tests == TRAFFIC_LINES


def test_a_regression_fails_the_step_with_annotations_at_file_and_line(recorded: Recorded) -> None:
    act = recorded.act
    app = act.repo / "shop" / "app.py"
    original = app.read_text()
    assert REGRESSION[0] in original
    repository(act.repo, {"shop/app.py": original.replace(*REGRESSION)})
    try:
        run = replay(act)
    finally:
        repository(act.repo, {"shop/app.py": original})
    assert run.returncode != 0, run.log
    assert run.step_results()["kpy"] == "failure"
    outputs = run.outputs("kpy")
    failed = int(outputs["failed"])
    assert failed > 0 and int(outputs["passed"]) + failed == TRAFFIC_LINES
    errors = run.annotations()
    assert len(errors) == min(failed, 10) or len(errors) == failed
    sets = act.artifacts / "kpy-sets"
    changed = 0
    for error in errors:
        file, line = error["kvPairs"]["file"], int(error["kvPairs"]["line"])
        assert re.fullmatch(r"kpy/shop/tests/test-\d+\.yaml", file), error
        at = (sets / file.removeprefix("kpy/")).read_text().splitlines()[line - 1]
        if error["arg"].startswith("response changed: "):
            assert "price" in error["arg"] and "price" in at, (error, at)  # the changed field
            changed += 1
        else:  # the price, cached in Redis as written: a SET no mock has
            assert "matched no mock" in error["arg"] and at.startswith("mocks:"), (error, at)
    assert changed > 0
    [summary] = run.summaries("kpy")
    assert summary.startswith(f"## kpy: {TRAFFIC_LINES - failed} passed, {failed} failed")
    assert "### Failures" in summary


def test_the_action_needs_no_input_variables(recorded: Recorded) -> None:
    act = recorded.act
    bare = Act(
        act.repo,
        action_copy(act.repo.parent / "bare-action", without_inputs=True),
        act.artifacts,
        act.env,
    )
    text = (bare.action / "action.yml").read_text()
    assert 'grep "^INPUT_"' in text
    run = replay(bare)
    assert run.returncode == 0, run.log
    assert run.outputs("kpy")["passed"] == str(TRAFFIC_LINES)


def test_the_recorded_set_is_valid(recorded: Recorded) -> None:
    meta = yaml.safe_load(
        (recorded.act.artifacts / "kpy-sets" / "shop" / "test-set.yaml").read_text()
    )
    assert meta["complete"] is True
