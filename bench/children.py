"""Running a benchmark's client to its end, and what commit it measured: shared by the
benchmarks in bench/."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

Spawner = Callable[..., "subprocess.Popen[str]"]
"""``subprocess.Popen``, or ``Session.spawn`` to run the client inside a kpy session."""


def run_to_end(
    spawn: Spawner, argv: list[str], limit: float, env: dict[str, str] | None = None
) -> str:
    """Run a client within ``limit`` seconds; its stdout. A timeout or ^C leaves no client
    behind; a non-zero exit raises with the end of its stderr."""
    proc = spawn(
        argv,
        env=os.environ | (env or {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=limit)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {err.strip()[-2000:]}")
    return out


def commit(root: Path) -> str:
    """HEAD, and ``+changes`` when kpy_ci/ differs from it: what a benchmark measured."""
    git = ["git", "-C", str(root)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "kpy_ci"], capture_output=True)
    return head.stdout.strip() + (" +changes" if dirty.stdout.strip() else "")
