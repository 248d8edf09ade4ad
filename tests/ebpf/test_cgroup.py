"""Parsing of /proc texts and cgroup names (pure), and the private cgroup2 mount used when
the host has none (real: in a private mount namespace where the host's is unmounted)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kpy_ci.ebpf import cgroup
from kpy_ci.ebpf.session import in_private_mounts
from tests.conftest import KPY, child_env

MOUNTS = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""


def test_cgroup2_mounts() -> None:
    assert cgroup.cgroup2_mounts(MOUNTS) == [Path("/sys/fs/cgroup/unified")]
    assert cgroup.cgroup2_mounts("cgroup /x cgroup rw 0 0\n") == []


def test_own_cgroup() -> None:
    assert (
        cgroup.own_cgroup("12:pids:/a\n0::/system.slice/x.service\n") == "/system.slice/x.service"
    )
    assert cgroup.own_cgroup("12:pids:/a\n") == "/"


def test_root_is_visible_mount() -> None:
    proc = "23 22 0:5 / /proc rw - proc proc rw\n"
    host = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n" + proc
    chroot = proc
    assert cgroup.root_is_visible_mount(host)
    assert not cgroup.root_is_visible_mount(chroot)


def test_owner() -> None:
    assert cgroup.owner(Path("/c/kpy-123")) == 123
    assert cgroup.owner(Path("/c/kpy-123-2")) == 123
    assert cgroup.owner(Path("/c/kpy-x")) is None
    assert cgroup.owner(Path("/c/other-1")) is None


UNMOUNT_CGROUP2 = (
    'for m in $(awk \'$3 == "cgroup2" {print $2}\' /proc/self/mounts); do umount -l "$m"; done; '
    "! grep -q ' cgroup2 ' /proc/self/mounts"
)


def test_kpy_mounts_cgroup2_privately_when_the_host_has_none() -> None:
    script = f"{UNMOUNT_CGROUP2} && exec {' '.join(KPY)} doctor"
    done = subprocess.run(
        in_private_mounts(script),
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kpy mounts it privately" in done.stdout
    assert "ok   redirect" in done.stdout
