"""``kpy doctor``: can this machine run kpy? Each check says what it found and, when it
fails, how to fix it. The last one is live: a child in a session dials a loopback port
where nothing listens and must land on kpy's listener with its destination recovered."""

from __future__ import annotations

import platform
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kpy_ci.ebpf import cgroup, libbpf
from kpy_ci.ebpf.maps import Address
from kpy_ci.ebpf.session import Session, bpf_object_path, check_privileges
from kpy_ci.errors import KpyError

MIN_KERNEL = (5, 8)  # cgroup/getpeername hooks; sk storage in sock_addr programs


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True


def kernel_version(release: str) -> tuple[int, int]:
    parts = release.split(".")
    return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)


def _kernel() -> Check:
    release = platform.release()
    ok = kernel_version(release) >= MIN_KERNEL
    need = ".".join(map(str, MIN_KERNEL))
    return Check("kernel", ok, release if ok else f"{release}: kpy needs Linux {need} or newer")


def _btf() -> Check:
    ok = Path("/sys/kernel/btf/vmlinux").exists()
    detail = "/sys/kernel/btf/vmlinux" if ok else "absent (kpy's programs do not need it)"
    return Check("BTF", ok, detail, required=False)


def _privileges() -> Check:
    check_privileges()
    return Check("privileges", True, "root with CAP_BPF/CAP_NET_ADMIN")


def _cgroup2() -> Check:
    mounts = cgroup.cgroup2_mounts(Path("/proc/self/mounts").read_text())
    if mounts:
        return Check("cgroup v2", True, f"mounted at {mounts[0]}")
    return Check("cgroup v2", True, "not mounted; kpy mounts it privately for each session")


def _libbpf() -> Check:
    return Check("libbpf", True, libbpf.version())


def _bpf_object() -> Check:
    path = bpf_object_path()
    with libbpf.loaded(str(path)) as obj:
        count = len(obj.program_names())
    return Check("BPF programs", True, f"{count} programs in {path} load")


def _live_redirect() -> Check:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(10)
        proxy = Address("127.0.0.1", listener.getsockname()[1])
        dialled = ("127.0.0.1", _closed_port())
        with Session(proxy) as session:
            code = f"import socket; socket.create_connection({dialled!r}, timeout=10).close()"
            child = session.spawn([sys.executable, "-c", code])
            conn, peer = listener.accept()
            conn.close()
            found = session.original_destination(peer)
            child.wait(10)
    want = Address(*dialled)
    ok = found == want
    detail = f"a child's connect() to {want} landed on kpy's listener"
    return Check("redirect", ok, detail if ok else f"expected {want}, the map said {found}")


def _closed_port() -> int:
    """A loopback port where nothing listens now (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CHECKS: list[Callable[[], Check]] = [
    _kernel,
    _btf,
    _privileges,
    _cgroup2,
    _libbpf,
    _bpf_object,
    _live_redirect,
]


def run_checks() -> Iterator[Check]:
    """Every check in order; once a required one fails, the ones that need it are skipped."""
    failed = False
    for check in CHECKS:
        if failed and check in (_bpf_object, _live_redirect):
            yield Check(check.__name__.strip("_").replace("_", " "), False, "skipped")
            continue
        try:
            result = check()
        except KpyError as e:
            result = Check(check.__name__.strip("_").replace("_", " "), False, str(e))
        failed = failed or (result.required and not result.ok)
        yield result
