"""The egress ledger as text (report/ledger.py), the keeper that builds it from what the
mock servers report (ledger.py), and its place in JUnit's <system-out>: before the
service's output."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from junitparser import JUnitXml

from kpy_ci.address import Address
from kpy_ci.ledger import LedgerKeeper, passed_between
from kpy_ci.report import junit
from kpy_ci.report.ledger import ledger_text
from kpy_ci.report.model import (
    ConnectionUse,
    Ledger,
    LookupUse,
    Miss,
    PassedThrough,
    RunResult,
    SetResult,
)
from tests.report.results import passing

SAMPLE = Ledger(
    connections=(
        ConnectionUse(
            4,
            "127.0.0.1:5432",
            "postgres",
            opened_earlier=True,
            served=("mock-12", "mock-13", "mock-14"),
        ),
        ConnectionUse(
            5,
            "127.0.0.1:8090",
            "http",
            name="rates.example",
            served=("mock-15",),
            refused=("GET /v2/rates",),
        ),
        ConnectionUse(6, "127.0.0.1:6379", "redis", refused=("GET a", "GET b"), closed_by_kpy=True),
        ConnectionUse(7, "[::1]:9000"),
    ),
    passed=(PassedThrough("127.0.0.1:6390", 2),),
    lookups=(LookupUse("A rates.example", "mock-3"), LookupUse("AAAA nowhere.example")),
)


def test_every_kind_of_egress_has_its_line() -> None:
    assert ledger_text(SAMPLE) == (
        "kpy: egress during this test (6 connections, 2 lookups):\n"
        "  #4 postgres 127.0.0.1:5432 (opened earlier): 3 calls served from mocks"
        " (mock-12, mock-13, mock-14)\n"
        "  #5 http 127.0.0.1:8090 (rates.example): 1 call served (mock-15),"
        " 1 refused: GET /v2/rates matched no mock\n"
        "  #6 redis 127.0.0.1:6379: 2 refused, then kpy closed the connection:\n"
        "      GET a matched no mock\n"
        "      GET b matched no mock\n"
        "  #7 tcp [::1]:9000: no call\n"
        "  passed through: 2 connections to 127.0.0.1:6390 (passthrough rule)\n"
        "  dns A rates.example: served from a mock (mock-3)\n"
        "  dns AAAA nowhere.example: refused: matched no mock (answered SERVFAIL)\n"
    )


def test_a_test_without_egress_says_so() -> None:
    assert ledger_text(Ledger()) == "kpy: egress during this test: none\n"


def test_long_lists_of_mocks_are_cut() -> None:
    names = tuple(f"mock-{i}" for i in range(1, 21))
    text = ledger_text(Ledger((ConnectionUse(1, "127.0.0.1:5432", "postgres", served=names),)))
    assert "20 calls served from mocks (mock-1, " in text and "mock-8 and 12 more)" in text
    assert "mock-9," not in text


def test_an_unreadable_call_shows_kpys_reason() -> None:
    why = "kpy could not read what the service sent: bad frame"
    text = ledger_text(Ledger((ConnectionUse(2, "127.0.0.1:1", "generic", refused=(why,)),)))
    assert f"1 refused: {why}\n" in text and "matched no mock" not in text


def test_passthrough_counts_are_differences() -> None:
    a, b = Address("127.0.0.1", 6390), Address("::1", 7000)
    assert passed_between({}, {a: 2}) == (PassedThrough("127.0.0.1:6390", 2),)
    assert passed_between({a: 2}, {a: 2, b: 1}) == (PassedThrough("[::1]:7000", 1),)
    assert passed_between({a: 5}, {a: 1}) == (PassedThrough("127.0.0.1:6390", 1),)  # aged out


def test_keeper_attributes_calls_to_tests() -> None:
    keeper = LedgerKeeper()
    keeper.opened(1, "127.0.0.1:5432")  # a pool's connection, before the first test
    dns_mock = {
        "name": "mock-1",
        "request": {"name": "rates.example.", "type": "A", "class": "IN"},
        "response": {"rcode": "NOERROR", "answer": ["rates.example. 60 IN A 127.0.0.1"]},
    }
    keeper.begin_test()
    keeper.served(0, "dns", dns_mock)
    keeper.opened(2, "127.0.0.1:8090")
    keeper.served(2, "http", {"name": "mock-2"})
    keeper.refused(Miss("http", "127.0.0.1:8090", 2, "GET /v2/rates"))
    keeper.closed(2, by_kpy=True)
    first = keeper.end_test({})
    assert first == Ledger(
        connections=(
            ConnectionUse(
                2,
                "127.0.0.1:8090",
                "http",
                name="rates.example",
                served=("mock-2",),
                refused=("GET /v2/rates",),
                closed_by_kpy=True,
            ),
        ),
        lookups=(LookupUse("A rates.example", "mock-1"),),
    )
    # connection 1, still open, used in the next test: opened earlier; 2 is gone
    keeper.begin_test()
    keeper.served(1, "postgres", {"name": "mock-3"})
    keeper.refused(Miss("dns", "the resolver", 0, "A nowhere.example."))
    second = keeper.end_test({Address("127.0.0.1", 6390): 1})
    assert second == Ledger(
        connections=(
            ConnectionUse(1, "127.0.0.1:5432", "postgres", opened_earlier=True, served=("mock-3",)),
        ),
        passed=(PassedThrough("127.0.0.1:6390", 1),),
        lookups=(LookupUse("A nowhere.example."),),
    )
    keeper.begin_test()
    assert keeper.end_test({Address("127.0.0.1", 6390): 1}) == Ledger()


def test_junit_puts_the_ledger_before_the_service_log(tmp_path: Path) -> None:
    test = dataclasses.replace(passing("shop", "test-1"), ledger=SAMPLE)
    path = tmp_path / "junit.xml"
    junit.write_junit(RunResult([SetResult("shop", Path("kpy/shop"), [test])]), path)
    [suite] = list(JUnitXml.fromfile(str(path)))
    [case] = list(suite)
    assert case.system_out == ledger_text(SAMPLE) + "GET /products 200\n"
