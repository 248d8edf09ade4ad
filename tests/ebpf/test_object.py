"""The committed bpf/kpy.bpf.o is what its source compiles to, so users who never build
run the code that was reviewed. Compared only when the same compiler made both: another
clang emits other (equally valid) code."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from kpy_ci.ebpf.session import bpf_object_path
from tests.conftest import ROOT

COMMITTED = ROOT / "bpf" / "kpy.bpf.o"


def producer(obj: Path) -> str:
    out = subprocess.run(
        ["llvm-dwarfdump", "--debug-info", str(obj)], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r'DW_AT_producer\s+\("([^"]+)"\)', out)
    assert found, f"{obj}: no DW_AT_producer"
    return found.group(1)


def code(obj: Path) -> list[str]:
    """Instructions and relocations, then every type and map definition (from BTF, which
    holds the maps' sizes); nothing that names the path it was built in."""
    disassembly = subprocess.run(
        ["llvm-objdump", "-d", "-r", "--no-show-raw-insn", str(obj)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    types = subprocess.run(
        ["bpftool", "btf", "dump", "file", str(obj), "format", "raw"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in disassembly.splitlines() if "file format" not in line] + (
        types.splitlines()
    )


def test_committed_object_matches_its_source() -> None:
    fresh = bpf_object_path()
    if fresh.resolve() == COMMITTED.resolve():
        pytest.skip("no fresh build to compare with (scripts/test.sh sets KPY_BPF_OBJECT)")
    if producer(fresh) != producer(COMMITTED):
        pytest.skip(f"built by {producer(fresh)!r}, committed by {producer(COMMITTED)!r}")
    assert code(fresh) == code(COMMITTED), "bpf/kpy.bpf.o is stale: run 'make -C bpf'"
