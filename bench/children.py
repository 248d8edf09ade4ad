"""Running a benchmark's client to its end, and what commit it measured: shared by the
benchmarks in bench/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def measured(
    name: str,
    measure: Callable[[], dict[str, Any]],
    report: Callable[[dict[str, Any]], str],
    json_path: Path | None,
) -> int:
    """Run a recording benchmark's ``measure`` as root and print its tables; what it left
    behind (exit 1) and a machine that was not quiet are said after them. Exit 4 when
    the machine cannot run it."""
    # kpy_ci as the benchmark found it (its own tree first on sys.path), not at import
    from kpy_ci.ebpf.session import check_privileges
    from kpy_ci.errors import EnvironmentProblem

    try:
        check_privileges()
        res = measure()
    except EnvironmentProblem as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 4
    print(report(res))
    if res["leftovers"]:
        print(f"LEFT BEHIND: {res['leftovers']}")
    if res["noise_at_start"] or res["noise_at_end"]:
        print(f"\nNOT QUIET: {res['noise_at_start'] + res['noise_at_end']}: figures are suspect")
    if json_path:
        json_path.write_text(json.dumps(res, indent=2, default=str) + "\n")
    return 1 if res["leftovers"] else 0
