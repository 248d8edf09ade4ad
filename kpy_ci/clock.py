"""The replay clock: at replay the service's wall clock reads, from the start of each test,
the instant its request was recorded, then ticks on normally; monotonic clocks are left
alone. Tokens, expiries and "created today" then behave as they did when recorded.

libfaketime, preloaded into the service (any dynamically linked program: Python, Node.js,
Ruby, Java...), adds to the wall clock an offset it reads from a file on every call
(``FAKETIME_NO_CACHE``); kpy rewrites that file, atomically, before each request. A small
fix is preloaded before it (``clock_sleep.c``, built here with the system's C compiler):
libfaketime 0.9.10, as Debian 12 and Ubuntu 24.04 ship it, breaks absolute monotonic
sleeps (Python 3.11's ``time.sleep``) when it leaves the monotonic clock alone.

A program that reads the clock without libc (Go reads the vDSO itself) or is statically
linked cannot be moved: ``unmoved`` finds such processes, for one warning.
"""

from __future__ import annotations

import glob
import hashlib
import mmap
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from kpy_ci.errors import EnvironmentProblem

LIBFAKETIME_GLOBS = (
    "/usr/lib/*/faketime/libfaketime.so.1",  # Debian and Ubuntu, by architecture
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/lib64/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)
SLEEP_FIX_SOURCE = Path(__file__).with_name("clock_sleep.c")
GO_BUILDINFO = b"\xff Go buildinf:"  # the magic at the start of a Go binary's .go.buildinfo
FAKETIME_VARIABLES = (
    "FAKETIME",
    "FAKETIME_TIMESTAMP_FILE",
    "FAKETIME_NO_CACHE",
    "FAKETIME_FORCE_MONOTONIC_FIX",
)


def find_libfaketime() -> Path | None:
    for pattern in LIBFAKETIME_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return Path(found[0])
    return None


def compiler() -> str | None:
    return next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)


def unavailable() -> str | None:
    """Why the replay clock cannot run here, or None."""
    if find_libfaketime() is None:
        return "libfaketime is not installed (apt-get install libfaketime)"
    if compiler() is None:
        return "no C compiler (cc) to build kpy's sleep fix for libfaketime (apt-get install gcc)"
    return None


def offset_text(offset: float) -> str:
    """libfaketime's relative form: ``+12.5`` or ``-86400.250000`` seconds."""
    return f"{offset:+.6f}"


def cannot_move(maps: str, go: bool) -> str | None:
    """Why a process's wall clock is not the replay clock (``maps``: its /proc maps;
    ``go``: whether its program is Go's), or None when it is."""
    if go:
        return "a Go program reads the clock from the kernel itself, not through libc"
    if "libfaketime" not in maps:
        return "it did not load libfaketime (statically linked, or its environment was reset)"
    return None


class ReplayClock:
    """The clock file and the environment that makes the service read it. Used as a
    context manager: the directory (the file and the built fix) is removed after."""

    def __init__(self) -> None:
        library = find_libfaketime()
        cc = compiler()
        if library is None or cc is None:
            raise EnvironmentProblem(f"--clock recorded: {unavailable()}")
        self.library = library
        self.directory = Path(tempfile.mkdtemp(prefix="kpy-clock-"))
        self.file = self.directory / "offset"
        self.fix = self.directory / f"clock_sleep-{_digest(SLEEP_FIX_SOURCE)}.so"
        try:
            subprocess.run(
                [cc, "-shared", "-fPIC", "-O2", "-o", str(self.fix), str(SLEEP_FIX_SOURCE)],
                check=True,
                capture_output=True,
                text=True,
            )
        except subprocess.CalledProcessError as e:
            shutil.rmtree(self.directory, ignore_errors=True)
            first = (e.stderr or "").strip().splitlines()[:1]
            raise EnvironmentProblem(f"cannot build kpy's sleep fix with {cc}: {first}") from e
        os.chmod(self.directory, 0o755)  # a service run as another user reads the file too
        self.set_offset(0.0)

    def __enter__(self) -> ReplayClock:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with libfaketime preloaded (after kpy's fix, before what was there)."""
        env = {k: v for k, v in base.items() if k not in FAKETIME_VARIABLES}
        preload = [str(self.fix), str(self.library)]
        if base.get("LD_PRELOAD"):
            preload.append(base["LD_PRELOAD"])
        env |= {
            "LD_PRELOAD": ":".join(preload),
            "FAKETIME_TIMESTAMP_FILE": str(self.file),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            # its "monotonic fix" (on by itself with this glibc) cuts Java's timed waits
            # short and stalls Python's timed waits between threads (5.9 -> 14 ms a request,
            # bench/clock_bench.py); with monotonic clocks left alone it has nothing to fix
            "FAKETIME_FORCE_MONOTONIC_FIX": "0",
        }
        return env

    def set_offset(self, offset: float) -> None:
        """From now on the service's wall clock reads real time plus ``offset`` seconds;
        a rename, so a reader sees the old offset or the new, never part of one."""
        partial = self.file.with_suffix(".new")
        partial.write_text(offset_text(offset) + "\n")
        partial.chmod(0o644)
        os.replace(partial, self.file)

    def set_instant(self, instant: float) -> None:
        """From now on the service's wall clock reads ``instant`` (epoch seconds), ticking."""
        self.set_offset(instant - time.time())


def unmoved(pids: Iterable[int], proc: Path = Path("/proc")) -> list[str]:
    """One line per program among these processes whose clock the replay clock cannot
    move (each program once)."""
    out: list[str] = []
    seen: set[str] = set()
    for pid in pids:
        try:
            exe = os.readlink(proc / str(pid) / "exe")
            maps = (proc / str(pid) / "maps").read_text()
        except OSError:  # gone meanwhile, or a kernel thread
            continue
        if exe in seen:
            continue
        seen.add(exe)
        why = cannot_move(maps, is_go(proc / str(pid) / "exe"))
        if why is not None:
            out.append(f"the replay clock cannot move {exe} (pid {pid}): {why}")
    return out


def is_go(program: Path) -> bool:
    """Whether the program was built by Go (its build info's magic is in the file)."""
    try:
        with open(program, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return m.find(GO_BUILDINFO) != -1
    except (OSError, ValueError):
        return False


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
