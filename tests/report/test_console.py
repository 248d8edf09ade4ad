"""The console: a line per test as it ends, then the failures, unused mocks, a table and
one last line in a fixed form."""

from __future__ import annotations

import io
import re

from kpy_ci.report import console
from kpy_ci.report.model import RunResult
from tests.report.results import broken_set, failing, passing, sample


def test_progress_lines() -> None:
    out = io.StringIO()
    console.progress(passing("shop", "test-3"), out)
    console.progress(failing("shop", "test-4", message="status 500\nexpected 200"), out)
    assert out.getvalue().splitlines() == [
        "PASS shop/test-3 GET /products 0.012s",
        "FAIL shop/test-4 POST /orders 0.250s — status 500 expected 200",
    ]


def summary(result: RunResult) -> list[str]:
    out = io.StringIO()
    console.summary(result, out)
    return out.getvalue().splitlines()


def test_summary() -> None:
    lines = summary(sample())
    assert lines[-1] == "kpy: 2 passed, 1 failed (3 tests in 2 sets)"
    assert re.fullmatch(r"kpy: (\d+) passed, (\d+) failed \((\d+) tests in (\d+) sets\)", lines[-1])
    assert lines[-4:-1] == [
        "set    passed  failed  total  seconds",
        "shop        1       1      2    0.500",
        "users       1       0      1    1.250",
    ]
    failure = lines.index("FAIL shop/test-2 POST /orders (keploy/shop:v2,b/tests/test-2.yaml:7)")
    assert lines[failure + 1 : failure + 6] == [
        "    response differs:",
        "    --- recorded",
        "    +++ live",
        '    -  "price": 12 <&>',
        '    +  "price": 13 \\x00\\x1b[31mred\\x1b[0m\\x07',
    ]
    unused = lines.index("unused mocks in users (60):")
    assert lines[unused + 1] == "    mock-1 redis GET shop:products:1"
    assert lines[unused + 20 : unused + 23] == [
        "    mock-20 redis GET shop:products:20",
        "    and 40 more",
        "",
    ]


def test_summary_of_a_set_that_could_not_run() -> None:
    lines = summary(RunResult([broken_set()]))
    assert lines[:4] == [
        "ERROR orders (keploy/orders) could not be replayed: the service never became ready: "
        "connection refused on 127.0.0.1:8080",
        "    the service's last output:",
        "    panic: cannot bind \\x1b[31m<&>\\x1b[0m",
        "    exit status 2",
    ]
    assert "FAIL orders/test-1 POST /orders (keploy/orders/tests/test-1.yaml:7)" in lines
    assert lines[-1] == "kpy: 0 passed, 1 failed (1 tests in 1 sets)"


def test_summary_of_nothing() -> None:
    assert summary(RunResult()) == [
        "set  passed  failed  total  seconds",
        "kpy: 0 passed, 0 failed (0 tests in 0 sets)",
    ]
