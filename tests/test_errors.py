"""What the machine lacks gets one clear line on stderr and exit code 4, and leaves nothing
behind: not root, BPF unavailable, libbpf missing, cgroup2 not mountable. Each is made real:
a process whose effective uid is not 0, one whose capabilities were dropped, a mount
namespace where libbpf.so.1 is empty, one where cgroup2 is unmounted and cannot be mounted."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys

import pytest

from kpy_ci.doctor import Check, what_is_lacking
from kpy_ci.ebpf.session import in_private_mounts
from tests.conftest import KPY, child_env, leftover_cgroups
from tests.ebpf.test_cgroup import UNMOUNT_CGROUP2

# Imports happen while still root: the interpreter may live where nobody cannot read
# (/root/.pyenv), and click imports difflib lazily while parsing.
NOT_ROOT = (
    "import os, sys, difflib; from kpy_ci.cli import main; "
    "os.setegid(65534); os.seteuid(65534); sys.exit(main(['run', '-c', 'true']))"
)
KPY_RUN = f"{' '.join(KPY)} run -c true"


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=child_env(), capture_output=True, text=True, timeout=60)


def drop_caps(caps: str) -> list[str]:
    spec = ",".join(f"-{c}" for c in caps.split(","))
    return ["setpriv", f"--inh-caps={spec}", f"--bounding-set={spec}", "--"]


def libbpf_path() -> str:
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    found = subprocess.run(
        ["sh", "-c", f"ldconfig -p | grep -m1 '{name}' | sed 's/.*=> //'"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return os.path.realpath(found)


CASES = {
    "not root": ([sys.executable, "-c", NOT_ROOT], "kpy must run as root"),
    "BPF unavailable": (
        [*drop_caps("bpf,sys_admin,net_admin"), *KPY, "run", "-c", "true"],
        "BPF is unavailable",
    ),
    "libbpf missing": (
        in_private_mounts(f"mount --bind /dev/null {libbpf_path()} && exec {KPY_RUN}"),
        "libbpf not found",
    ),
    "cgroup2 not mountable": (
        in_private_mounts(
            f"{UNMOUNT_CGROUP2} && exec {' '.join(drop_caps('sys_admin'))} {KPY_RUN}"
        ),
        "cgroup v2 is not mounted and cannot be mounted",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_environment_problem_is_one_line_and_exit_4(case: str) -> None:
    argv, message = CASES[case]
    done = run(argv)
    assert done.returncode == 4, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("kpy: ") and message in done.stderr, done.stderr
    assert leftover_cgroups() == []


def test_doctor_says_what_is_missing() -> None:
    done = run([*drop_caps("bpf,sys_admin,net_admin"), *KPY, "doctor"])
    assert done.returncode == 4
    assert "FAIL privileges" in done.stdout and "BPF is unavailable" in done.stdout
    assert "skip redirect      skipped" in done.stdout
    assert done.stderr.strip() == "kpy: this machine cannot run kpy: privileges failed"


def test_doctor_on_github_says_it_in_one_annotation() -> None:
    env = {**child_env(), "GITHUB_ACTIONS": "true"}
    argv = [*drop_caps("bpf,sys_admin,net_admin"), *KPY, "doctor"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 4
    errors = [line for line in done.stdout.splitlines() if line.startswith("::error")]
    assert len(errors) == 1, done.stdout
    assert errors[0].startswith("::error title=kpy cannot run on this runner::privileges: ")
    assert "BPF is unavailable" in errors[0] and "redirect" not in errors[0]


def test_what_a_container_without_privileges_lacks() -> None:
    checks = [
        Check("kernel", "ok", "6.18"),
        Check("privileges", "FAIL", "BPF is unavailable: kpy needs CAP_BPF"),
        Check("redirect", "skip", "skipped: fix the failures above first"),
    ]
    assert what_is_lacking(checks, container=False) == (
        "privileges: BPF is unavailable: kpy needs CAP_BPF"
    )
    said = what_is_lacking(checks, container=True)
    assert said.startswith("privileges: BPF is unavailable") and "--privileged" in said
    assert "--privileged" not in what_is_lacking([Check("kernel", "FAIL", "4.19")], True)
