"""What a person reads in the terminal or a CI log: one line per test as it finishes, then
the failures in full, unused mocks, a table of sets and one last line to grep for. Plain
text, no colours; a service's escape codes are shown escaped (``\\x1b[31m``), as in the
JUnit file, so what it printed cannot colour or garble the log."""

from __future__ import annotations

from typing import IO

from kpy_ci.report.model import RunResult, SetResult, TestResult, one_line, printable

UNUSED_SHOWN = 20
INDENT = "    "


def progress(test: TestResult, out: IO[str]) -> None:
    """``PASS shop/test-3 GET /products 0.012s``, or ``FAIL ... — why``."""
    status = "PASS" if test.passed else "FAIL"
    line = f"{status} {test.set_name}/{test.name} {test.request} {test.seconds:.3f}s"
    if not test.passed:
        line += f" — {one_line(test.message) or 'failed'}"
    out.write(line + "\n")  # one write: the service's output comes from another thread
    out.flush()


def summary(result: RunResult, out: IO[str]) -> None:
    """The end of a run. Its last line is ``kpy: N passed, M failed (T tests in S sets)``,
    always in that form (plurals included), so scripts can parse it."""
    for s in result.sets:
        _set_error(s, out)
        for test in s.tests:
            if not test.passed:
                _failure(test, out)
    for s in result.sets:
        _unused(s, out)
    _table(result, out)
    print(
        f"kpy: {result.passed} passed, {result.failed} failed "
        f"({result.total} tests in {len(result.sets)} sets)",
        file=out,
        flush=True,
    )


def _indented(text: str) -> str:
    return "".join(f"{INDENT}{line}".rstrip() + "\n" for line in printable(text).splitlines())


def _set_error(s: SetResult, out: IO[str]) -> None:
    if s.error is None:
        return
    print(f"ERROR {s.name} ({s.path}) could not be replayed: {one_line(s.error)}", file=out)
    if s.log_tail:
        print(f"{INDENT}the service's last output:", file=out)
        out.write(_indented(s.log_tail))
    print(file=out)


def _failure(test: TestResult, out: IO[str]) -> None:
    print(f"FAIL {test.set_name}/{test.name} {test.request} ({test.file}:{test.line})", file=out)
    out.write(_indented(test.details or test.message or "failed"))
    print(file=out)


def _unused(s: SetResult, out: IO[str]) -> None:
    if not s.unused:
        return
    print(f"unused mocks in {s.name} ({len(s.unused)}):", file=out)
    for mock in s.unused[:UNUSED_SHOWN]:
        print(f"{INDENT}{mock}", file=out)
    if len(s.unused) > UNUSED_SHOWN:
        print(f"{INDENT}and {len(s.unused) - UNUSED_SHOWN} more", file=out)
    print(file=out)


def _table(result: RunResult, out: IO[str]) -> None:
    rows = [("set", "passed", "failed", "total", "seconds")]
    rows += [
        (s.name, str(s.passed), str(s.failed), str(len(s.tests)), f"{s.seconds:.3f}")
        for s in result.sets
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        print("  ".join(cells).rstrip(), file=out)
