"""A test-set is written whole or not at all, and never half-overwrites an existing one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kpy_ci.address import Address
from kpy_ci.protocols.base import Exchange
from kpy_ci.recording import Recorded
from kpy_ci.store import testset
from kpy_ci.store.serializer import document


def make_set(marker: str) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    tests = [document("TestCase", {"name": "test-1", "request": {"url": f"/{marker}"}})]
    mocks = [
        document("Mock", {"name": "mock-1", "response": {"data": "a\nmulti-line\nreply\n"}}),
        document("Mock", {"name": "mock-2", "response": {"data": marker}}),
    ]
    return tests, mocks


def test_next_set_name(tmp_path: Path) -> None:
    assert testset.next_set_name(tmp_path) == "test-set-1"
    (tmp_path / "test-set-1").mkdir()
    (tmp_path / "test-set-7").mkdir()
    (tmp_path / "test-set-x").mkdir()
    assert testset.next_set_name(tmp_path) == "test-set-8"


def test_written_files_are_versioned_yaml(tmp_path: Path) -> None:
    tests, mocks = make_set("one")
    path = testset.write_test_set(tmp_path, "test-set-1", tests, mocks, {"tests": 1})
    assert sorted(p.relative_to(path).as_posix() for p in path.rglob("*")) == [
        "mocks.yaml",
        "test-set.yaml",
        "tests",
        "tests/test-1.yaml",
    ]
    docs = list(yaml.safe_load_all((path / "mocks.yaml").read_text()))
    assert [d["name"] for d in docs] == ["mock-1", "mock-2"]
    assert all(d["version"] == "kpy/v1" and d["kind"] == "Mock" for d in docs)
    assert "data: |" in (path / "mocks.yaml").read_text()  # multi-line text reads as a block
    assert yaml.safe_load((path / "test-set.yaml").read_text())["kind"] == "TestSet"


def test_replacing_a_set_is_all_or_nothing(tmp_path: Path) -> None:
    tests, mocks = make_set("old")
    path = testset.write_test_set(tmp_path, "smoke", tests, mocks, {})
    before = {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}

    broken = [document("TestCase", {"name": "test-1", "bad": object()})]  # cannot be written
    with pytest.raises(yaml.representer.RepresenterError):
        testset.write_test_set(tmp_path, "smoke", broken, mocks, {})
    assert {p: p.read_bytes() for p in path.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["smoke"]  # no temporary left over

    tests, mocks = make_set("new")
    testset.write_test_set(tmp_path, "smoke", tests, mocks, {})
    assert "/new" in (path / "tests" / "test-1.yaml").read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["smoke"]


def test_mocks_are_attributed_by_time_window() -> None:
    def test(started: int, ended: int) -> Recorded:
        exchange = Exchange("http", {}, {}, started, ended)
        return Recorded(exchange, "inbound", 1, 1, Address("127.0.0.1", 1))

    # mock starts in the order they completed, not sorted
    timeline = testset.MockTimeline([50, 10, 30, 30, 90, 20])
    assert timeline.used_by(test(20, 30)) == [3, 4, 6]  # the mocks that started at 30, 30 and 20
    assert timeline.used_by(test(10, 10)) == [2]
    assert timeline.used_by(test(60, 80)) == []
    assert timeline.used_by(test(0, 100)) == [1, 2, 3, 4, 5, 6]
