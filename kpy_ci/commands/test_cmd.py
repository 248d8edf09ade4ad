"""``kpy test``."""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from pathlib import Path

import click

from kpy_ci.commands.drift_cmd import (
    EXIT_RERECORD,
    dsn_option,
    migrations_option,
    openapi_option,
    sources,
)
from kpy_ci.commands.record_cmd import configured_passthrough
from kpy_ci.commands.run_cmd import passthrough_rules, resolv_conf_option
from kpy_ci.config import load as load_config
from kpy_ci.errors import UsageError
from kpy_ci.replay import TestOptions, replay
from kpy_ci.report import console, github
from kpy_ci.report import drift as drift_report
from kpy_ci.report import junit as junit_report
from kpy_ci.report.drift import DRIFT_TYPE
from kpy_ci.report.model import RunResult
from kpy_ci.schema.check import check


def shard_option(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    m = re.fullmatch(r"(\d+)/(\d+)", value)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise UsageError(f"--shard {value!r}: expected I/N with 1 <= I <= N, like 2/4")
    return int(m.group(1)), int(m.group(2))


def header_option(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for value in values:
        name, colon, given = value.partition(":")
        if not colon or not name.strip() or any(c in name for c in " \t"):
            raise UsageError("--header: expected 'NAME: VALUE' (the value is not shown here)")
        out[name.strip().lower()] = given.strip()
    return out


@click.command()
@click.option(
    "-c", "--command", "command", required=True, help="Shell command starting the service."
)
@click.option(
    "--path",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("kpy"),
    show_default=True,
    help="Where the test-sets are.",
)
@click.option("--set", "set_name", help="Replay only this test-set.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="The port the service listens on (default: the one each set was recorded on).",
)
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="JUnit XML report.")
@click.option("--shard", help="I/N: replay the I-th of N stable parts of the tests.")
@click.option(
    "--detect-noise",
    is_flag=True,
    help="Replay each test twice and propose as noise the fields that differ.",
)
@click.option(
    "--write-noise",
    is_flag=True,
    help="Add to the test files the made-up values learned and, with --detect-noise, the "
    "noise proposed.",
)
@click.option(
    "--clock",
    type=click.Choice(["recorded", "real"]),
    help="recorded: each test runs with the service's wall clock at the instant it was "
    "recorded (libfaketime); real: today's clock. Default: recorded where the machine can.",
)
@click.option("--ready-url", help="URL that answers below 500 once the service is ready.")
@click.option("--ready-timeout", type=float, default=60.0, show_default=True, help="Seconds.")
@click.option(
    "--request-timeout", type=float, default=30.0, show_default=True, help="Seconds per request."
)
@click.option(
    "--passthrough",
    multiple=True,
    help="ADDRESS[/BITS] or IP:PORT the service reaches directly, not from mocks.",
)
@click.option(
    "--header",
    "headers",
    multiple=True,
    help="'NAME: VALUE' for a header the recording redacted (Authorization): sent instead.",
)
@click.option(
    "--check-drift",
    is_flag=True,
    help="Run kpy drift first (with --dsn, --migrations or --openapi): a test that needs "
    "re-recording fails as schema-drift, saying why, and the run exits 3.",
)
@dsn_option
@migrations_option
@openapi_option
@resolv_conf_option
def test(
    command: str,
    path: Path,
    set_name: str | None,
    port: int | None,
    junit: Path | None,
    shard: str | None,
    detect_noise: bool,
    write_noise: bool,
    clock: str | None,
    ready_url: str | None,
    ready_timeout: float,
    request_timeout: float,
    passthrough: tuple[str, ...],
    headers: tuple[str, ...],
    check_drift: bool,
    dsn: str | None,
    migrations: Path | None,
    openapi_docs: tuple[str, ...],
    resolv_conf: Path | None,
) -> int:
    """Replay the recorded tests against the service, its outbound calls served from mocks."""
    given = sources(dsn, migrations, openapi_docs)
    if given and not check_drift:
        raise UsageError("--dsn, --migrations and --openapi go with --check-drift")
    drifts = check(path, set_name, given) if check_drift else None
    if drifts is not None:
        drift_report.console(drifts, sys.stderr)
    config = load_config(path)
    options = TestOptions(
        command=command,
        path=path,
        set_name=set_name,
        port=port,
        ready_url=ready_url,
        ready_timeout=ready_timeout,
        request_timeout=request_timeout,
        shard=shard_option(shard),
        detect_noise=detect_noise,
        write_noise=write_noise,
        passthrough=passthrough_rules(passthrough) + configured_passthrough(config),
        config=config,
        resolv_conf=resolv_conf,
        headers=header_option(headers),
        clock=clock,
    )
    result = replay(options, sys.stderr)
    if drifts is not None:
        result = mark_stale(result, drift_report.run_result(drifts))
        github.append_outputs(os.environ, drift_report.outputs(drifts))
    if junit is not None:
        junit_report.write_junit(result, junit)
    console.summary(result, sys.stderr)
    github.report(result, os.environ, junit, sys.stdout)
    if not result.available:
        raise UsageError(f"{path}: no test to replay")
    if not result.total:  # a shard of a matrix drew none of the suite's tests: nothing failed
        print(f"kpy: shard {shard} drew none of the {result.available} tests", file=sys.stderr)
        return 0
    regressions = [t for s in result.sets for t in s.tests if not t.passed]
    if any(s.error for s in result.sets) or any(t.failure_type != DRIFT_TYPE for t in regressions):
        return 1
    return EXIT_RERECORD if regressions else 0


def mark_stale(result: RunResult, drifted: RunResult) -> RunResult:
    """The replay's results with each stale test failed as ``schema-drift``: the reason it
    needs re-recording first, then what the replay saw."""
    stale = {(s.name, t.name): t for s in drifted.sets for t in s.tests if not t.passed}
    for s in result.sets:
        for i, test in enumerate(s.tests):
            why = stale.get((s.name, test.name))
            if why is not None:
                seen = f"\n\nthe replay: {test.message or 'passed'}\n{test.details}".rstrip()
                s.tests[i] = dataclasses.replace(
                    test,
                    passed=False,
                    message=why.message,
                    details=why.details + seen,
                    failure_type=DRIFT_TYPE,
                )
    return result
