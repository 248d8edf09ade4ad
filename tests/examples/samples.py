"""What the sample-service tests (test_auth.py, test_mysql.py) share: a sample and its
regressions, what kpy said of a replay without the service's own lines, and a copy of a
sample with one regression in it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    name: str
    app: Path
    runtime: list[str]
    regressions: dict[str, tuple[str, str]]
    """By name, the text of app that a regression replaces, and what it puts there."""
    said: dict[str, list[str]] = field(default_factory=dict)
    """By regression, what kpy must say of this sample beyond what it says of every one."""


def said(done: subprocess.CompletedProcess[str]) -> str:
    """kpy's output and its exit code (``exit N``, last), the ``service | `` lines left out."""
    lines = (done.stdout + done.stderr).splitlines()
    kept = "\n".join(line for line in lines if not line.startswith("service"))
    return f"{kept}\nexit {done.returncode}"


@contextmanager
def with_regression(app: Path, old: str, new: str, name: str) -> Iterator[Path]:
    """A copy of ``app`` with ``old`` (found once) replaced by ``new``, for as long as the
    block runs: beside it, so that node finds its modules; named by pid, so that two runs
    cannot meet."""
    source = app.read_text()
    assert source.count(old) == 1, old
    changed = app.parent / f".changed-{name}-{os.getpid()}-{app.name}"
    changed.write_text(source.replace(old, new))
    try:
        yield changed
    finally:
        changed.unlink()
