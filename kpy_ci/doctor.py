"""``kpy doctor``: can this machine run kpy? Each check says what it found and, when it
fails, how to fix it. The last one is live: a child in a session dials a loopback port
where nothing listens and must land on kpy's listener with its destination recovered."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kpy_ci import clock, trust
from kpy_ci.address import Address
from kpy_ci.ebpf import cgroup, libbpf
from kpy_ci.ebpf.session import Session, bpf_object_path, check_privileges
from kpy_ci.errors import KpyError

MIN_KERNEL = (5, 8)  # cgroup/getpeername hooks; sk storage in sock_addr programs


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok", "FAIL", "warn" (not required), "skip" (an earlier check failed)
    detail: str


def kernel_version(release: str) -> tuple[int, int]:
    parts = release.split(".")
    return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)


def _kernel() -> tuple[bool, str]:
    release = platform.release()
    ok = kernel_version(release) >= MIN_KERNEL
    need = ".".join(map(str, MIN_KERNEL))
    return ok, release if ok else f"{release}: kpy needs Linux {need} or newer"


def _btf() -> tuple[bool, str]:
    ok = Path("/sys/kernel/btf/vmlinux").exists()
    return ok, "/sys/kernel/btf/vmlinux" if ok else "absent (kpy's programs do not need it)"


def _privileges() -> tuple[bool, str]:
    check_privileges()
    return True, "root with CAP_BPF/CAP_NET_ADMIN"


def _cgroup2() -> tuple[bool, str]:
    if cgroup.cgroup2_mounts(Path("/proc/self/mounts").read_text()):
        return True, f"mounted at {cgroup.hierarchy()}"
    where = cgroup.hierarchy()  # mounts it in a mount namespace of this process's own
    return True, f"not mounted by the host; kpy mounts it privately ({where} for this run)"


def _libbpf() -> tuple[bool, str]:
    return True, libbpf.version()


def _bpf_object() -> tuple[bool, str]:
    path = bpf_object_path()
    with libbpf.loaded(str(path)) as obj:
        count = len(obj.program_names())
    return True, f"{count} programs in {path} load"


def _live_redirect() -> tuple[bool, str]:
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
    if found != want:
        return False, f"a child dialled {want}, but kpy's map said {found}"
    return True, f"a child's connect() to {want} landed on kpy's listener"


def _closed_port() -> int:
    """A loopback port where nothing listens now (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tls_trust() -> tuple[bool, str]:
    covered, missed = trust.runtimes(os.environ.get("PATH", os.defpath))
    said = f"kpy's CA is trusted by {'; '.join(covered) or 'no runtime found on PATH'}"
    if missed:
        said += f". Not by {'; '.join(missed)}: list its TLS servers in kpy.yml tls.opaque"
    return not missed, said


def _protocols() -> tuple[bool, str]:
    """The registry's plug-ins, each with the schema of both sides of its mocks."""
    from kpy_ci.protocols import base, registry

    lacking = [
        p.name
        for p in registry.REGISTRY
        if not {"request", "response"} <= set(p.schema.get("$defs", {}))
    ]
    if lacking:
        return False, f"no request/response schema for {', '.join(lacking)}: a bug in kpy"
    *known, rest = registry.REGISTRY
    by_client = [p.name for p in known if p.greets is base.client_first]
    by_server = [p.name for p in known if p.greets is not base.client_first]
    said = f"{', '.join(by_client)} by the client's first bytes"
    if by_server:
        said += f"; {', '.join(by_server)} by the server's greeting"
    return True, f"{said}; {rest.name} for the rest"


def _replay_clock() -> tuple[bool, str]:
    """A program started under the replay clock, a day back, reads that day and sleeps."""
    why = clock.unavailable()
    if why is not None:
        return False, f"off: {why}; kpy test runs on today's clock"
    with clock.ReplayClock() as replay_clock:
        replay_clock.set_offset(-86_400.0)
        probe = "import time; time.sleep(0.001); print(time.time())"
        run = subprocess.run(
            [sys.executable, "-c", probe],
            env=replay_clock.env(os.environ),
            capture_output=True,
            text=True,
            timeout=30,
        )
    lines = (run.stdout or run.stderr).strip().splitlines()
    if run.returncode != 0 or not lines:
        return False, f"a program under libfaketime failed: {(lines or ['no output'])[-1]}"
    moved = float(lines[-1]) - time.time()
    if abs(moved + 86_400.0) > 60:
        return False, f"libfaketime did not move the clock (moved {moved:+.0f} s, not -86400)"
    return True, f"{replay_clock.library}: each test runs at the instant it was recorded"


# name, check, required, needs every required check before it to have passed
CHECKS: list[tuple[str, Callable[[], tuple[bool, str]], bool, bool]] = [
    ("kernel", _kernel, True, False),
    ("BTF", _btf, False, False),
    ("privileges", _privileges, True, False),
    ("cgroup v2", _cgroup2, True, False),
    ("libbpf", _libbpf, True, False),
    ("BPF programs", _bpf_object, True, True),
    ("redirect", _live_redirect, True, True),
    ("protocols", _protocols, True, False),
    ("TLS trust", _tls_trust, False, False),
    ("replay clock", _replay_clock, False, False),
]


def in_container() -> bool:
    """Whether this process runs in a Docker or Podman container (a job's ``container:``)."""
    return Path("/.dockerenv").exists() or Path("/run/.containerenv").exists()


def what_is_lacking(checks: list[Check], container: bool) -> str:
    """One line saying what the machine lacks, for a CI annotation: each failed check's
    finding, and for a container without the privileges, what to give it."""
    failed = [c for c in checks if c.status == "FAIL"]
    said = "; ".join(f"{c.name}: {c.detail}" for c in failed)
    if container and any(c.name in ("privileges", "cgroup v2", "BPF programs") for c in failed):
        said += (
            "; this job runs in a container without the privileges eBPF needs: give it "
            "`options: --privileged` (or run the job on the runner itself, with no container)"
        )
    return said


def run_checks() -> Iterator[Check]:
    """Every check in order; the ones that need the others are skipped once one failed."""
    failed = False
    for name, check, required, needs_others in CHECKS:
        if failed and needs_others:
            yield Check(name, "skip", "skipped: fix the failures above first")
            continue
        try:
            ok, detail = check()
        except KpyError as e:
            ok, detail = False, str(e)
        status = "ok" if ok else ("FAIL" if required else "warn")
        failed = failed or status == "FAIL"
        yield Check(name, status, detail)
