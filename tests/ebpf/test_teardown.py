"""However kpy ends, nothing of it stays: its programs are detached, the service and
everything it forked are gone, its cgroup is removed; and a cgroup left by a kpy that died
together with its guard is cleaned by the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kpy_ci.ebpf import cgroup
from kpy_ci.ebpf.session import Session
from tests.conftest import KPY, child_env, kpy_cgroups, kpy_programs, no_kpy_left, wait_until

# a shell with a grandchild in the background: PR_SET_PDEATHSIG alone would miss it
SERVICE = "sleep 300 & sleep 300"


def start_kpy(command: str = SERVICE) -> tuple[subprocess.Popen[bytes], Path, list[int]]:
    kpy = subprocess.Popen([*KPY, "run", "-c", command], env=child_env())
    group = wait_until(
        lambda: next((p for p in kpy_cgroups() if cgroup.owner(p) == kpy.pid), None),
        what="kpy's cgroup",
    )
    members = wait_until(
        lambda: len(cgroup.pids(group)) >= 3 and cgroup.pids(group), what="service"
    )
    wait_until(lambda: len(kpy_programs()) == 13, what="13 programs attached")
    return kpy, group, members


def gone(pids: list[int]) -> bool:
    return not any(cgroup.alive(p) and not _zombie(p) for p in pids)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def assert_all_gone(group: Path, members: list[int]) -> None:
    wait_until(lambda: gone(members), what=f"service processes {members} to die")
    wait_until(lambda: not group.exists(), what=f"{group} to be removed")
    no_kpy_left()
    tree = subprocess.run(["bpftool", "cgroup", "tree"], capture_output=True, text=True).stdout
    assert group.name not in tree


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGKILL, -9)]
)
def test_signal_to_kpy_leaves_nothing(sig: signal.Signals, code: int) -> None:
    kpy, group, members = start_kpy()
    kpy.send_signal(sig)
    assert kpy.wait(30) == code
    assert_all_gone(group, members)


def test_normal_exit_kills_what_the_service_left_behind() -> None:
    kpy, group, members = start_kpy("sleep 300 & sleep 300 & sleep 0.5; exit 7")
    assert kpy.wait(30) == 7  # kpy run exits with the command's code
    assert_all_gone(group, members)


def test_exception_inside_a_session_leaves_nothing() -> None:
    with pytest.raises(RuntimeError), Session() as session:
        assert session.cgroup is not None
        group = session.cgroup
        session.spawn(SERVICE)
        members = wait_until(lambda: len(cgroup.pids(group)) >= 3 and cgroup.pids(group))
        raise RuntimeError("the caller failed")
    assert_all_gone(group, members)


def test_cgroup_of_a_kpy_killed_with_its_guard_is_cleaned_by_the_next_run() -> None:
    kpy, group, members = start_kpy()
    guard = subprocess.run(
        ["pgrep", "-f", f"kpy_ci.ebpf.guard {group}"], capture_output=True, text=True
    ).stdout.split()
    assert len(guard) == 1
    os.kill(int(guard[0]), signal.SIGKILL)
    kpy.kill()
    kpy.wait(30)
    wait_until(lambda: not kpy_programs(), what="links to drop with kpy's fds")
    assert group.exists() and not gone(members)  # the service outlived both: stale
    nxt = subprocess.run([*KPY, "run", "-c", "true"], env=child_env(), timeout=60)
    assert nxt.returncode == 0
    assert_all_gone(group, members)


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
    no_kpy_left()
