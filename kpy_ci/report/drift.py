"""What ``kpy drift`` found, for people and for CI: a console table, JUnit (a failure of type
``schema-drift`` per stale test), GitHub annotations on the migration statement that made
each change, ``rerecord-needed`` and ``stale-tests`` step outputs, and a YAML report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from kpy_ci.config import validate
from kpy_ci.report import github
from kpy_ci.report.model import RunResult, SetResult, TestResult, one_line
from kpy_ci.schema.check import SetDrift
from kpy_ci.schema.drift import Change
from kpy_ci.store.atomic import write_file
from kpy_ci.store.serializer import document, dump

DRIFT_TYPE = "schema-drift"
TESTS_SHOWN = 8


def stale_names(drifts: Sequence[SetDrift]) -> list[str]:
    """``set/test`` of every stale test, as ``kpy record --from-set --tests`` takes them."""
    return [f"{d.test_set.name}/{t}" for d in drifts for t in d.stale_tests]


def _tests(change: Change) -> str:
    shown = ", ".join(change.tests[:TESTS_SHOWN])
    more = len(change.tests) - TESTS_SHOWN
    return shown + (f" (and {more} more)" if more > 0 else "") if change.tests else "-"


def console(drifts: Sequence[SetDrift], out: IO[str]) -> None:
    for d in drifts:
        for note in d.notes:
            print(f"kpy: {d.test_set.name}: {note}", file=out)
        if not d.changes:
            print(f"kpy: {d.test_set.name}: no drift", file=out)
            continue
        rows = [("verdict", "change", "where", "stale tests")]
        rows += [
            (
                "BREAKING" if c.breaking else "harmless",
                f"{c.dependency}: {c.what}",
                str(c.where) if c.where else "-",
                _tests(c) if c.breaking else "-",
            )
            for c in d.changes
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        print(f"kpy: {d.test_set.name}:", file=out)
        for row in rows:
            cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
            print("  " + "  ".join([*cells, row[3]]), file=out)
    stale = stale_names(drifts)
    if stale:
        print(f"kpy: re-record needed: {len(stale)} tests: {' '.join(stale)}", file=out)
        for d in drifts:
            if d.stale_tests:
                names = ",".join(d.stale_tests)
                print(
                    f"kpy: on staging: kpy record --from-set {d.test_set.path} --tests {names}"
                    " -c '<the service>'",
                    file=out,
                )
    else:
        print("kpy: no re-record needed", file=out)


def run_result(drifts: Sequence[SetDrift]) -> RunResult:
    """Every test of the sets, failed (``schema-drift``) when a breaking change makes it
    stale, with why: the JUnit report and annotations are made from this."""
    result = RunResult()
    for d in drifts:
        s = SetResult(d.test_set.name, d.test_set.path)
        for test in d.test_set.tests:
            why = [c for c in d.breaking if test.name in c.tests]
            request = f"{test.doc['request'].get('method')} {test.doc['request'].get('url')}"
            message = ""
            if why:
                at = f" ({why[0].where})" if why[0].where else ""
                more = f" (and {len(why) - 1} more)" if len(why) > 1 else ""
                message = f"re-record needed: {why[0].dependency}: {why[0].what}{at}{more}"
            details = "\n".join(c.line() + "".join(f"\n  {q}" for q in c.queries) for c in why)
            s.tests.append(
                TestResult(
                    d.test_set.name,
                    test.name,
                    test.file,
                    test.line(["mocks"]),
                    request,
                    not why,
                    0.0,
                    message,
                    details,
                    failure_type=DRIFT_TYPE,
                )
            )
        result.sets.append(s)
    result.available = result.total
    return result


def annotation_commands(
    drifts: Sequence[SetDrift], result: RunResult, workspace: Path | None
) -> list[str]:
    """An annotation on the migration statement of each change that has one (an error when
    it breaks tests, a notice when harmless); else on each stale test's file. ``result``:
    ``run_result(drifts)``."""
    commands = []
    seen: set[tuple[str, int, str]] = set()
    for d in drifts:
        for c in d.changes:
            if c.where is None or (c.where.file, c.where.line, c.what) in seen:
                continue
            seen.add((c.where.file, c.where.line, c.what))
            level = "error" if c.breaking else "notice"
            what = f"{c.what}: re-record {_tests(c)}" if c.breaking else f"{c.what} (harmless)"
            props = {
                "file": github.relative(Path(c.where.file), workspace),
                "line": str(c.where.line),
                "title": f"kpy: schema drift ({c.dependency})",
            }
            listed = ",".join(
                f"{k}={github.escape_property(one_line(v))}" for k, v in props.items()
            )
            commands.append(f"::{level} {listed}::{github.escape_data(one_line(what))}")
    # a stale test is annotated itself when a change that makes it stale has no line
    unplaced = {
        (d.test_set.name, t) for d in drifts for c in d.breaking if c.where is None for t in c.tests
    }
    on_files = RunResult(
        [
            SetResult(s.name, s.path, [t for t in s.tests if (s.name, t.name) in unplaced])
            for s in result.sets
        ]
    )
    return commands + github.annotations(on_files, workspace)


def outputs(drifts: Sequence[SetDrift]) -> dict[str, str]:
    stale = stale_names(drifts)
    return {"rerecord-needed": "true" if stale else "false", "stale-tests": " ".join(stale)}


def github_report(
    drifts: Sequence[SetDrift],
    result: RunResult,
    env: Mapping[str, str],
    out: IO[str],
    junit: Path | None,
) -> None:
    """Annotations, the job summary and the outputs; ``result``: ``run_result(drifts)``."""
    if not github.on_github(env):
        return
    workspace = Path(env["GITHUB_WORKSPACE"]) if env.get("GITHUB_WORKSPACE") else None
    for command in annotation_commands(drifts, result, workspace):
        print(command, file=out)
    github.write_summary(result, env, junit)
    github.append_outputs(env, outputs(drifts))


def report_document(drifts: Sequence[SetDrift]) -> dict[str, Any]:
    return document(
        "DriftReport",
        {
            "rerecord_needed": bool(stale_names(drifts)),
            "sets": [
                {
                    "name": d.test_set.name,
                    "path": str(d.test_set.path),
                    "stale_tests": d.stale_tests,
                    "notes": d.notes,
                    "changes": [
                        {
                            "dependency": c.dependency,
                            "change": c.what,
                            "breaking": c.breaking,
                            "where": {"file": c.where.file, "line": c.where.line}
                            if c.where
                            else None,
                            "queries": list(c.queries),
                            "mocks": list(c.mocks),
                            "tests": list(c.tests),
                        }
                        for c in d.changes
                    ],
                }
                for d in drifts
            ],
        },
    )


def write_report(drifts: Sequence[SetDrift], path: Path) -> None:
    """The report as YAML, checked against its schema first (whole or not at all)."""
    doc = report_document(drifts)
    validate(doc, "driftreport.schema.json", path, None)
    write_file(path, dump(doc).encode())
