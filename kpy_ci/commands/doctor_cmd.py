"""``kpy doctor``."""

from __future__ import annotations

import os

import click

from kpy_ci.doctor import in_container, run_checks, what_is_lacking
from kpy_ci.errors import EnvironmentProblem
from kpy_ci.report.github import escape_data, on_github


@click.command()
def doctor() -> int:
    """Check that this machine can run kpy, and try a live redirect. Exit 0 or 4."""
    checks = []
    for check in run_checks():
        click.echo(f"{check.status:<4} {check.name:<13} {check.detail}")
        checks.append(check)
    failed = [c.name for c in checks if c.status == "FAIL"]
    if failed:
        if on_github(os.environ):  # one annotation on the run, saying what the runner lacks
            lacking = what_is_lacking(checks, in_container())
            click.echo(f"::error title=kpy cannot run on this runner::{escape_data(lacking)}")
        raise EnvironmentProblem(f"this machine cannot run kpy: {', '.join(failed)} failed")
    click.echo("kpy can run here")
    return 0
