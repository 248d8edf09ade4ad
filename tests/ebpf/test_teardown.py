"""However kpy ends, nothing of it stays: its programs are detached, the service and
everything it forked are gone, its cgroup is removed; and a cgroup left by a kpy that died
together with its guard is cleaned by the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from kpy_ci.ebpf import cgroup
from kpy_ci.ebpf.session import Session
from tests.conftest import (
    KPY,
    attached,
    child_env,
    kpy_cgroups,
    leftover_cgroups,
    loaded,
    wait_until,
)

# a shell with a grandchild in the background: PR_SET_PDEATHSIG alone would miss it
SERVICE = "sleep 300 & sleep 300"


class Started(NamedTuple):
    kpy: subprocess.Popen[bytes]
    group: Path
    members: list[int]  # the service's processes
    programs: list[int]  # the ids of kpy's programs on its cgroup


def start_kpy(command: str = SERVICE) -> Started:
    kpy = subprocess.Popen([*KPY, "run", "-c", command], env=child_env())
    group = wait_until(
        lambda: next((p for p in kpy_cgroups() if cgroup.owner(p) == kpy.pid), None),
        what="kpy's cgroup",
    )
    members = wait_until(
        lambda: len(cgroup.pids(group)) >= 3 and cgroup.pids(group), what="service"
    )
    programs = wait_until(lambda: len(attached(group)) == 13 and attached(group), what="programs")
    return Started(kpy, group, members, programs)


def gone(pids: list[int]) -> bool:
    return not any(cgroup.alive(p) and not _zombie(p) for p in pids)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def assert_all_gone(group: Path, members: list[int], programs: list[int]) -> None:
    wait_until(lambda: gone(members), what=f"service processes {members} to die")
    wait_until(lambda: not group.exists(), what=f"{group} to be removed")
    wait_until(lambda: not loaded(programs), what=f"programs {programs} to unload")
    tree = subprocess.run(["bpftool", "cgroup", "tree"], capture_output=True, text=True).stdout
    assert group.name not in tree


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGKILL, -9)]
)
def test_signal_to_kpy_leaves_nothing(sig: signal.Signals, code: int) -> None:
    run = start_kpy()
    run.kpy.send_signal(sig)
    assert run.kpy.wait(30) == code
    assert_all_gone(run.group, run.members, run.programs)


def test_normal_exit_kills_what_the_service_left_behind() -> None:
    run = start_kpy("sleep 300 & sleep 300 & sleep 0.5; exit 7")
    assert run.kpy.wait(30) == 7  # kpy run exits with the command's code
    assert_all_gone(run.group, run.members, run.programs)


def test_exception_inside_a_session_leaves_nothing() -> None:
    with pytest.raises(RuntimeError), Session() as session:
        assert session.cgroup is not None
        group = session.cgroup
        session.spawn(SERVICE)
        members = wait_until(lambda: len(cgroup.pids(group)) >= 3 and cgroup.pids(group))
        programs = attached(group)
        assert len(programs) == 13
        raise RuntimeError("the caller failed")
    assert_all_gone(group, members, programs)


def test_cgroup_of_a_kpy_killed_with_its_guard_is_cleaned_by_the_next_run() -> None:
    run = start_kpy()
    guard = subprocess.run(
        ["pgrep", "-f", f"kpy_ci.ebpf.guard {run.group}"], capture_output=True, text=True
    ).stdout.split()
    assert len(guard) == 1
    os.kill(int(guard[0]), signal.SIGKILL)
    run.kpy.kill()
    run.kpy.wait(30)
    wait_until(lambda: not loaded(run.programs), what="links to drop with kpy's fds")
    assert run.group.exists() and not gone(run.members)  # the service outlived both: stale
    nxt = subprocess.run([*KPY, "run", "-c", "true"], env=child_env(), timeout=60)
    assert nxt.returncode == 0
    assert_all_gone(run.group, run.members, run.programs)


def test_stale_cgroups_of_live_processes_are_left_alone() -> None:
    # a kpy-<pid> whose owner is alive (here: this test process) belongs to a running kpy
    parent = cgroup.parent_dir(cgroup.hierarchy())
    mine = parent / f"{cgroup.PREFIX}{os.getpid()}-999"
    mine.mkdir()
    try:
        assert (
            subprocess.run([*KPY, "run", "-c", "true"], env=child_env(), timeout=60).returncode == 0
        )
        assert mine.exists()
    finally:
        mine.rmdir()


def test_session_can_be_used_again_after_close() -> None:
    session = Session()
    for _ in range(2):
        session.start()
        child = session.spawn([sys.executable, "-c", "print('hi')"], stdout=subprocess.PIPE)
        assert child.communicate(timeout=10)[0] == b"hi\n"
        session.close()
    session.close()  # idempotent
    assert leftover_cgroups() == [] and session.cgroup is None
