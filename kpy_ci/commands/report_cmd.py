"""``kpy report``: work on reports already written, such as the JUnit files of a sharded run."""

from __future__ import annotations

from pathlib import Path

import click

from kpy_ci.report import junit


@click.group()
def report() -> None:
    """Work on kpy's reports."""


@report.command()
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The merged JUnit file to write.",
)
@click.argument(
    "inputs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
def merge(output: Path, inputs: tuple[Path, ...]) -> int:
    """Merge the JUnit files of one run's shards (a CI matrix) into one: suites of the same
    set become one suite."""
    junit.merge(list(inputs), output)
    click.echo(f"kpy: merged {len(inputs)} JUnit files into {output}")
    return 0
