"""``kpy doctor``."""

from __future__ import annotations

import click

from kpy_ci.doctor import run_checks
from kpy_ci.errors import EnvironmentProblem


@click.command()
def doctor() -> int:
    """Check that this machine can run kpy, and try a live redirect. Exit 0 or 4."""
    failed = []
    for check in run_checks():
        click.echo(f"{check.status:<4} {check.name:<13} {check.detail}")
        if check.status == "FAIL":
            failed.append(check.name)
    if failed:
        raise EnvironmentProblem(f"this machine cannot run kpy: {', '.join(failed)} failed")
    click.echo("kpy can run here")
    return 0
