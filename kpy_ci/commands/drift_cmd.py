"""``kpy drift``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from kpy_ci.errors import UsageError
from kpy_ci.report import drift as drift_report
from kpy_ci.report import junit as junit_report
from kpy_ci.schema import openapi
from kpy_ci.schema.check import SetDrift, Sources, check

EXIT_RERECORD = 3

path_option = click.option(
    "--path",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("kpy"),
    show_default=True,
    help="Where the test-sets are.",
)
dsn_option = click.option(
    "--dsn",
    help="Today's database: a PostgreSQL URL kpy reads the schema from (never shown; "
    "or from $KPY_DSN, which keeps it off the command line).",
)
migrations_option = click.option(
    "--migrations",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Today's database from DDL and migration files alone (plain SQL, Alembic --sql "
    "output, Flyway, golang-migrate), applied in order.",
)
openapi_option = click.option(
    "--openapi",
    "openapi_docs",
    multiple=True,
    help="HOST=FILE_OR_URL: today's OpenAPI document of an outbound HTTP dependency.",
)


def sources(dsn: str | None, migrations: Path | None, openapi_docs: tuple[str, ...]) -> Sources:
    documents = {}
    for value in openapi_docs:
        host, eq, source = value.partition("=")
        if not eq or not host or not source:
            raise UsageError(f"--openapi {value!r}: expected HOST=FILE or HOST=URL")
        documents[host] = openapi.load(source, Path.cwd())
    return Sources(dsn, migrations, documents)


def report(drifts: list[SetDrift], junit: Path | None, report_file: Path | None) -> int:
    """Every report of the drift; 3 when a test needs re-recording."""
    drift_report.console(drifts, sys.stderr)
    result = drift_report.run_result(drifts)
    if junit is not None:
        junit_report.write_junit(result, junit)
    if report_file is not None:
        drift_report.write_report(drifts, report_file)
    drift_report.github_report(drifts, result, os.environ, sys.stdout, junit)
    return EXIT_RERECORD if drift_report.stale_names(drifts) else 0


@click.command()
@path_option
@click.option("--set", "set_name", help="Only this test-set.")
@dsn_option
@migrations_option
@openapi_option
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="JUnit XML report.")
@click.option(
    "--report",
    "report_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The changes, as YAML (kind DriftReport).",
)
def drift(
    path: Path,
    set_name: str | None,
    dsn: str | None,
    migrations: Path | None,
    openapi_docs: tuple[str, ...],
    junit: Path | None,
    report_file: Path | None,
) -> int:
    """Compare each set's schema lock with today's schema: which tests need re-recording.

    Exit 0: nothing recorded is affected; 3: re-record the tests named.
    """
    drifts = check(path, set_name, sources(dsn, migrations, openapi_docs))
    return report(drifts, junit, report_file)
