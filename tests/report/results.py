"""Replay results built by hand for the report tests: a pass, a failure whose text holds
everything a service can print (several lines, control characters, ``<&>``, backtick
fences), unused mocks, and a set whose service never started."""

from __future__ import annotations

from pathlib import Path

from kpy_ci.report.model import RunResult, SetResult, TestResult

DETAILS = (
    "response differs:\n"
    "--- recorded\n+++ live\n"
    '-  "price": 12 <&>\n'
    '+  "price": 13 \x00\x1b[31mred\x1b[0m\x07\n'
    "```\nnot a fence of the report\n````\n"
)


def passing(set_name: str, name: str, file: str = "keploy/shop/tests/test-1.yaml") -> TestResult:
    return TestResult(
        set_name=set_name,
        name=name,
        file=Path(file),
        line=1,
        request="GET /products",
        passed=True,
        seconds=0.012,
        log="GET /products 200\n",
    )


def failing(
    set_name: str,
    name: str,
    file: str = "keploy/shop:v2,b/tests/test-2.yaml",
    message: str = "status 500, expected 200 <&>",
    details: str = DETAILS,
) -> TestResult:
    return TestResult(
        set_name=set_name,
        name=name,
        file=Path(file),
        line=7,
        request="POST /orders",
        passed=False,
        seconds=0.25,
        message=message,
        details=details,
        log="Traceback (most recent call last):\n  boom \x1b[1m<&>\x1b[0m\n",
    )


def unused(n: int) -> list[str]:
    return [f"mock-{i} redis GET shop:products:{i}" for i in range(1, n + 1)]


def sample() -> RunResult:
    """2 passed, 1 failed: 3 tests in 2 sets, and 60 unused mocks in one."""
    shop = SetResult(
        "shop",
        Path("keploy/shop"),
        [passing("shop", "test-1"), failing("shop", "test-2")],
        seconds=0.5,
    )
    users = SetResult(
        "users",
        Path("keploy/users"),
        [passing("users", "test-1", "keploy/users/tests/test-1.yaml")],
        unused=unused(60),
        seconds=1.25,
        log_tail="listening on :8080\n",
    )
    return RunResult([shop, users])


def broken_set() -> SetResult:
    """A set whose service never became ready: its tests failed with the set's error."""
    error = "the service never became ready:\nconnection refused on 127.0.0.1:8080"
    return SetResult(
        "orders",
        Path("keploy/orders"),
        [failing("orders", "test-1", "keploy/orders/tests/test-1.yaml", error, "")],
        seconds=30.0,
        error=error,
        log_tail="panic: cannot bind \x1b[31m<&>\x1b[0m\nexit status 2\n",
    )
