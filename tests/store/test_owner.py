"""Under sudo, what kpy writes belongs to the user who called it: real files, real chown (the
tests run as root)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kpy_ci.store.atomic import write_file
from kpy_ci.store.owner import missing_parents, sudo_owner
from kpy_ci.store.serializer import document
from kpy_ci.store.testset import write_test_set

NOBODY = 65534


def owners(root: Path) -> set[tuple[int, int]]:
    return {(p.lstat().st_uid, p.lstat().st_gid) for p in (root, *root.rglob("*"))}


def write_set(root: Path) -> Path:
    test = document("TestCase", {"name": "test-1", "mocks": []})
    meta = {"name": "s", "recorded_at": "x", "port": 1, "complete": True, "tests": 1, "mocks": 0}
    return write_test_set(root, "s", [test], [], meta, lambda: {"schema.lock.yaml": "{}\n"})


def test_files_written_under_sudo_go_back_to_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert os.geteuid() == 0
    monkeypatch.setenv("SUDO_UID", str(NOBODY))
    monkeypatch.setenv("SUDO_GID", str(NOBODY))
    made = tmp_path / "repo" / "kpy"
    write_set(made)
    write_file(tmp_path / "repo" / "build" / "kpy.xml", b"<testsuites/>")
    assert owners(tmp_path / "repo") == {(NOBODY, NOBODY)}  # the folders kpy made too
    assert (tmp_path.lstat().st_uid, tmp_path.lstat().st_gid) == (0, 0)  # not what was there


def test_without_sudo_nothing_changes_hands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SUDO_UID", raising=False)
    monkeypatch.delenv("SUDO_GID", raising=False)
    write_set(tmp_path / "kpy")
    write_file(tmp_path / "kpy.xml", b"<testsuites/>")
    assert owners(tmp_path) == {(0, 0)}
    assert sudo_owner({"SUDO_UID": "0", "SUDO_GID": "0"}) is None  # sudo by root itself
    assert sudo_owner({"SUDO_UID": "1000", "SUDO_GID": "x"}) is None


def test_missing_parents_outermost_first(tmp_path: Path) -> None:
    assert missing_parents(tmp_path / "a" / "b") == [tmp_path / "a", tmp_path / "a" / "b"]
    assert missing_parents(tmp_path) == []
