"""The service's own cgroup v2: find or mount the hierarchy, create ``kpy-<pid>``, kill
everything in it, remove it, and clean the ones whose owner died."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import signal
import time
from pathlib import Path

from kpy_ci.errors import EnvironmentProblem

PREFIX = "kpy-"
PRIVATE_MOUNT_POINT = Path("/run/kpy/cgroup2")
CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_BIND = 4096

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_void_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.unshare.argtypes = [ctypes.c_int]


def cgroup2_mounts(mounts: str) -> list[Path]:
    """Mount points of cgroup2 in a /proc/self/mounts text."""
    found = []
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            found.append(Path(fields[1].replace("\\040", " ")))
    return found


def own_cgroup(proc_cgroup: str) -> str:
    """This process's cgroup v2 path from a /proc/self/cgroup text ('/' if unknown)."""
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:] or "/"
    return "/"


def root_is_visible_mount(mountinfo: str) -> bool:
    """Whether a /proc/self/mountinfo text lists a mount on '/'. In a chroot whose root is
    a plain directory it does not, and '/' cannot be made private (EINVAL): what is mounted
    there then propagates as the enclosing mount says (private under fresh-machine)."""
    return any(len(f) > 4 and f[4] == "/" for f in map(str.split, mountinfo.splitlines()))


def private_mount_namespace() -> None:
    """Give this process a mount namespace of its own, so what it mounts is seen by it and
    its children only, and vanishes with them."""
    if libc.unshare(CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNS): {os.strerror(err)}")
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        err = ctypes.get_errno()
        if err != errno.EINVAL or root_is_visible_mount(Path("/proc/self/mountinfo").read_text()):
            raise OSError(err, f"making / private: {os.strerror(err)}")


def hierarchy() -> Path:
    """A cgroup2 mount point: the host's, or one mounted in a private mount namespace
    when the host has none (hosts that mount only cgroup v1 controllers)."""
    mounts = cgroup2_mounts(Path("/proc/self/mounts").read_text())
    if mounts:
        return mounts[0]
    try:
        private_mount_namespace()
        where = PRIVATE_MOUNT_POINT
        where.mkdir(parents=True, exist_ok=True)  # stays empty on the host: mounted only here
        if libc.mount(b"cgroup2", str(where).encode(), b"cgroup2", 0, None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    except OSError as e:
        raise EnvironmentProblem(
            f"cgroup v2 is not mounted and cannot be mounted ({e.strerror}): kpy needs "
            "cgroup2 (Linux 4.5+, root or CAP_SYS_ADMIN); mount it with "
            "'mount -t cgroup2 none /sys/fs/cgroup/unified'"
        ) from None
    return where


def parent_dir(root: Path) -> Path:
    """Where kpy-<pid> is made: under kpy's own cgroup when the mount shows it (so it
    stays inside a delegated subtree), else at the mount's root."""
    own = own_cgroup(Path("/proc/self/cgroup").read_text()).lstrip("/")
    candidate = root / own
    return candidate if own and candidate.is_dir() else root


def pids(cgroup: Path) -> list[int]:
    try:
        text = (cgroup / "cgroup.procs").read_text()
    except FileNotFoundError:
        return []
    return [int(p) for p in text.split()]


def pids_below(group: Path) -> list[int]:
    """The processes of the cgroup and of every cgroup below it."""
    return [pid for procs in sorted(group.rglob("cgroup.procs")) for pid in pids(procs.parent)]


def kill_all(cgroup: Path, timeout: float = 5.0) -> None:
    """SIGKILL every process in the cgroup, children it forked included, and wait until it
    is empty. cgroup.kill (Linux 5.14+) does it in one step; older kernels get a loop."""
    deadline = time.monotonic() + timeout
    kill_file = cgroup / "cgroup.kill"
    while True:
        members = pids(cgroup)
        if not members:
            return
        if kill_file.exists():
            with contextlib.suppress(OSError):
                kill_file.write_text("1")
        else:
            for pid in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise EnvironmentProblem(f"processes {members} in {cgroup} would not die")
        time.sleep(0.005)


def remove(cgroup: Path) -> None:
    """Kill what is left in the cgroup and remove it; a missing cgroup is fine."""
    if not cgroup.exists():
        return
    kill_all(cgroup)
    for _ in range(200):  # rmdir fails with EBUSY until the last killed task is reaped
        try:
            cgroup.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            time.sleep(0.005)
    cgroup.rmdir()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner(cgroup: Path) -> int | None:
    """The kpy process that made ``kpy-<pid>`` or ``kpy-<pid>-<n>``."""
    head = cgroup.name[len(PREFIX) :].split("-")[0]
    return int(head) if cgroup.name.startswith(PREFIX) and head.isdigit() else None


def clean_stale(parent: Path) -> list[Path]:
    """Remove the kpy cgroups under ``parent`` whose kpy process is gone."""
    cleaned = []
    for child in parent.glob(PREFIX + "*"):
        pid = owner(child)
        if child.is_dir() and pid is not None and not alive(pid):
            remove(child)
            cleaned.append(child)
    return cleaned


def create(parent: Path) -> Path:
    """A new empty cgroup ``kpy-<pid>`` (``kpy-<pid>-<n>`` for a second session at once)."""
    base = f"{PREFIX}{os.getpid()}"
    for n in range(1000):
        path = parent / (base if n == 0 else f"{base}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise EnvironmentProblem(f"cannot create a cgroup under {parent}: all names taken")
