"""What the drift tests of every sample share: a migration step with its oracle, the oracle
itself (which tests list a mock whose SQL the step touches, found by regex, independently of
kpy's own analysis), a migrated copy of a live database, a migrations folder, and one run of
``kpy drift`` checked against the oracle."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import KPY, child_env
from tests.servers import Postgres, pg_bin


@dataclass(frozen=True)
class Step:
    name: str
    sql: str
    touches: Callable[[str], bool]
    """Whether a recorded statement is one this migration breaks (the oracle)."""


def word(w: str) -> Callable[[str], bool]:
    return lambda sql: re.search(rf"\b{w}\b", sql) is not None


def psql(pg: Postgres, *args: str, database: str = "kpy") -> None:
    env = os.environ | replace(pg, database=database).env()
    cmd = [pg_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", *args]
    subprocess.run(cmd, env=env, capture_output=True, check=True)


def kpy(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The kpy CLI, with GitHub's variables only where ``env`` gives them."""
    run_env = child_env() | (env or {})
    for name in ("GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
        if env is None or name not in env:
            run_env.pop(name, None)
    return subprocess.run(
        [*KPY, *args], env=run_env, capture_output=True, text=True, timeout=timeout
    )


def stale_by_oracle(set_dir: Path, touches: Callable[[str], bool]) -> set[str]:
    """The tests listing a PostgreSQL mock whose SQL the change touches."""
    hit = set()
    for mock in yaml.safe_load_all((set_dir / "mocks.yaml").read_text()):
        sql = mock["request"].get("sql") if mock["protocol"] == "postgres" else None
        texts = [sql] if isinstance(sql, str) else [s for s in sql or () if isinstance(s, str)]
        if any(touches(" ".join(t.split())) for t in texts):
            hit.add(mock["name"])
    return {
        doc["name"]
        for file in (set_dir / "tests").glob("*.yaml")
        if hit & set((doc := yaml.safe_load(file.read_text()))["mocks"])
    }


def drift(path: Path, tmp: Path, *source: str) -> tuple[int, dict[str, Any], str]:
    report = tmp / "drift.yaml"
    report.unlink(missing_ok=True)
    done = kpy("drift", "--path", str(path), "--report", str(report), *source)
    assert done.returncode in (0, 3), done.stderr
    return done.returncode, yaml.safe_load(report.read_text()), done.stderr


def flagged(report: dict[str, Any]) -> set[str]:
    [only] = report["sets"]
    return set(only["stale_tests"])


def migrated_copy(pg: Postgres, template: str, step: Step) -> Postgres:
    """A database as ``template`` would be after this migration alone (the template stays
    as recorded)."""
    name = f"drift_{template}_{step.name}"
    psql(pg, "-c", f"DROP DATABASE IF EXISTS {name}", "-c",
         f"CREATE DATABASE {name} TEMPLATE {template}")  # fmt: skip
    psql(pg, "-c", step.sql, database=name)
    return replace(pg, database=name)


def migrations_dir(tmp: Path, init: Path | str, step: Step) -> Path:
    """``001_init.sql`` (a file's copy, or DDL text) then ``002_<step>.sql``."""
    folder = tmp / f"migrations-{step.name}"
    folder.mkdir()
    if isinstance(init, Path):
        shutil.copy(init, folder / "001_init.sql")
    else:
        (folder / "001_init.sql").write_text(init)
    (folder / f"002_{step.name}.sql").write_text(step.sql)
    return folder


def check_verdict(
    set_dir: Path, step: Step, breaking: bool, tmp: Path, *source: str
) -> dict[str, Any]:
    """``kpy drift --path <set_dir's parent> *source`` (give ``--set`` in ``source`` when the
    set has neighbours) flags exactly the oracle's tests of the set, exits 3 only for a
    breaking step, and, from migrations, ties every change to ``002_<step>.sql`` and lists a
    harmless step as harmless. Returns the set's entry of the report."""
    code, report, err = drift(set_dir.parent, tmp, *source)
    assert flagged(report) == stale_by_oracle(set_dir, step.touches), (source[0], err)
    assert code == (3 if breaking else 0), err
    [entry] = report["sets"]
    if breaking:
        assert any(c["breaking"] for c in entry["changes"]), err
    if source[0] == "--migrations":
        # every change is tied to the migration's own statement
        for change in entry["changes"]:
            assert change["where"]["file"].endswith(f"002_{step.name}.sql"), change
        if not breaking:  # harmless, and said so
            assert entry["changes"] and not any(c["breaking"] for c in entry["changes"])
    return dict(entry)
