"""A Session confines a service to its own cgroup and redirects it there, and only there.

    with Session(proxy=Address("127.0.0.1", 16789)) as s:
        service = s.spawn(["python", "app.py"])
        ...                                   # the proxy calls s.original_destination(peer)
    # service killed, programs detached, cgroup removed

Set-up: check privileges, find (or privately mount) cgroup2, clean cgroups of dead kpy
processes, create ``kpy-<pid>``, start the guard, load bpf/kpy.bpf.o, fill its maps,
attach every program by a bpf_link. The service joins the cgroup before it execs, so it is
redirected from its first instruction. If kpy dies, the kernel drops the links with kpy's
file descriptors and the guard (guard.py) kills the service and removes the cgroup.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from kpy_ci.address import Address
from kpy_ci.ebpf import cgroup, maps
from kpy_ci.ebpf.libbpf import BpfError, BpfObject, Map
from kpy_ci.errors import EnvironmentProblem

PROGRAMS = (
    "kpy_connect4",
    "kpy_connect6",
    "kpy_sockops",
    "kpy_getpeername4",
    "kpy_getpeername6",
    "kpy_bind4",
    "kpy_bind6",
    "kpy_getsockname4",
    "kpy_getsockname6",
    "kpy_sendmsg4",
    "kpy_sendmsg6",
    "kpy_recvmsg4",
    "kpy_recvmsg6",
)

CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF = 12, 21, 39


def bpf_object_path() -> Path:
    """The compiled programs: $KPY_BPF_OBJECT, the copy in the installed package, or the
    repository's bpf/kpy.bpf.o (editable installs)."""
    env = os.environ.get("KPY_BPF_OBJECT")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for candidate in (here / "kpy.bpf.o", here.parent.parent / "bpf" / "kpy.bpf.o"):
        if candidate.is_file():
            return candidate
    raise EnvironmentProblem(
        f"kpy.bpf.o not found beside {here} or in bpf/: reinstall kpy, or build it "
        "with 'make -C bpf'"
    )


def effective_capabilities(status: str) -> int:
    """CapEff from a /proc/self/status text."""
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def check_privileges() -> None:
    """EnvironmentProblem unless this process may load and attach cgroup BPF programs."""
    if os.geteuid() != 0:
        raise EnvironmentProblem(
            "kpy must run as root: it attaches eBPF programs to the service's cgroup "
            "(run it with sudo, passing the environment explicitly)"
        )
    caps = effective_capabilities(Path("/proc/self/status").read_text())

    def has(cap: int) -> bool:
        return bool(caps >> cap & 1)

    if not (has(CAP_BPF) or has(CAP_SYS_ADMIN)) or not (has(CAP_NET_ADMIN) or has(CAP_SYS_ADMIN)):
        raise EnvironmentProblem(
            "BPF is unavailable: kpy needs CAP_BPF and CAP_NET_ADMIN (or CAP_SYS_ADMIN); "
            "in a container, run it with --privileged"
        )


class Session:
    """The service's cgroup with kpy's programs attached; see the module docstring."""

    def __init__(
        self,
        proxy: Address | None = None,
        *,
        dns: Address | None = None,
        ports: Mapping[int, int] | None = None,
        passthrough: Sequence[tuple[str, int]] = (),
        proxy6: str | None = None,
        dns6: str | None = None,
    ) -> None:
        """``proxy``: where TCP connections go (IPv6 sockets to ``proxy6``, or to ``proxy``
        mapped). ``dns``: where UDP port 53 goes (IPv6 sockets: ``dns6``, same port).
        ``ports``: public -> internal port for the service's bind(). ``passthrough``:
        (address or CIDR, port or 0) left alone."""
        self.proxy = proxy
        self.dns = dns
        self.ports = dict(ports or {})
        self.passthrough = list(passthrough)
        self.proxy6 = proxy6
        self.dns6 = dns6
        self.cgroup: Path | None = None
        self.stale_cleaned: list[Path] = []
        self._obj: BpfObject | None = None
        self._origin: Map | None = None
        self._passed: Map | None = None
        self._guard: subprocess.Popen[bytes] | None = None
        self._children: list[subprocess.Popen[Any]] = []

    def __enter__(self) -> Session:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        check_privileges()
        path = bpf_object_path()
        parent = cgroup.parent_dir(cgroup.hierarchy())
        self.stale_cleaned = cgroup.clean_stale(parent)
        self.cgroup = cgroup.create(parent)
        try:
            self._guard = _start_guard(self.cgroup)
            self._obj = BpfObject(str(path))
            self._fill_maps(self._obj)
            self._origin = self._obj.map("kpy_origin")
            self._passed = self._obj.map("kpy_passed")
            fd = os.open(self.cgroup, os.O_RDONLY | os.O_DIRECTORY)
            try:
                for name in PROGRAMS:
                    self._obj.attach_cgroup(name, fd)
            finally:
                os.close(fd)
        except BaseException:
            self.close()
            raise

    def _fill_maps(self, obj: BpfObject) -> None:
        obj.map("kpy_config").update(
            ctypes.c_uint32(0), maps.make_config(self.proxy, self.dns, self.proxy6, self.dns6)
        )
        ports = obj.map("kpy_ports")
        for public, internal in self.ports.items():
            ports.update(ctypes.c_uint16(public), ctypes.c_uint16(internal))
        rules = obj.map("kpy_pass")
        for network, port in self.passthrough:
            rules.update(maps.pass_key(network, port), ctypes.c_uint8(1))

    def spawn(
        self,
        args: Sequence[str] | str,
        *,
        resolv_conf: Path | None = None,
        mounts: Mapping[Path, Path] | None = None,
        **popen: Any,
    ) -> subprocess.Popen[Any]:
        """Start a process inside the cgroup (a str runs through /bin/sh). With
        ``resolv_conf`` or ``mounts`` (file -> the path it is to stand at), the process gets
        its own mount namespace where each file stands in its place (resolv_conf at
        /etc/resolv.conf). It leads a new session, so a ^C reaches kpy, not it."""
        if self.cgroup is None:
            raise RuntimeError("Session.spawn before start")
        if resolv_conf is not None and not resolv_conf.is_file():
            raise EnvironmentProblem(f"{resolv_conf}: no such file (resolv.conf for the service)")
        binds = dict(mounts or {})
        if resolv_conf is not None:
            binds[resolv_conf] = Path("/etc/resolv.conf")
        argv = ["/bin/sh", "-c", args] if isinstance(args, str) else list(args)
        child = subprocess.Popen(
            entering_argv(self.cgroup, binds) + argv, start_new_session=True, **popen
        )
        self._children.append(child)
        return child

    def original_destination(self, peer: tuple[str, int]) -> Address | None:
        """Where the connection whose client end is ``peer`` (as accept() gave it) was
        going, or None if it was not redirected. The entry is consumed."""
        if self._obj is None or self._origin is None:
            raise RuntimeError("Session.original_destination before start")
        origin = self._origin
        key = maps.endpoint_key(peer[0], peer[1])
        found = maps.Endpoint()
        if not origin.lookup(key, found):
            return None
        origin.delete(key)
        return maps.endpoint_address(found)

    def passed_through(self) -> dict[Address, int]:
        """How many TCP connect()s a passthrough rule has let go to each destination so
        far (as the service dialled it): counts only grow, so a test's are the difference
        of two readings. Empty before start and after close."""
        if self._passed is None:
            return {}
        entries = self._passed.items(maps.Endpoint, ctypes.c_uint64)
        return {maps.endpoint_address(key): int(count.value) for key, count in entries}

    def close(self) -> None:
        """Kill the service and everything it forked, detach, remove the cgroup. Idempotent."""
        errors: list[BaseException] = []
        if self.cgroup is not None:
            try:
                cgroup.remove(self.cgroup)
            except (OSError, EnvironmentProblem) as e:
                errors.append(e)
        for child in self._children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(5)  # reap: the cgroup is empty, so this returns at once
        self._children.clear()
        if self._obj is not None:
            self._obj.close()
            self._obj = self._origin = self._passed = None
        if self._guard is not None:
            assert self._guard.stdin is not None
            self._guard.stdin.close()
            self._guard.wait()
            self._guard = None
        self.cgroup = None
        if errors:
            raise EnvironmentProblem(f"tearing the session down: {errors[0]}")


def entering_argv(group: Path, binds: Mapping[Path, Path] | None = None) -> list[str]:
    """A prefix that moves the process into ``group`` (and bind-mounts each file of
    ``binds`` over its target) and then execs the rest of the argv in place, so the service
    is confined from its first instruction. A shell, not preexec_fn: forking a threaded
    Python and running Python code in the child can deadlock."""
    procs = str(group / "cgroup.procs")
    if not binds:
        script = 'echo 0 > "$0" && exec "$@"'
        return ["/bin/sh", "-c", script, procs]
    # "$0" the cgroup, then (file, target) pairs, then the service's argv
    script = (
        f'n={len(binds)}; while [ "$n" -gt 0 ]; do mount --bind "$1" "$2" && shift 2 '
        '|| exit 125; n=$((n - 1)); done; echo 0 > "$0" && exec "$@"'
    )
    pairs = [str(p) for source, target in binds.items() for p in (source.resolve(), target)]
    return [*in_private_mounts(script), procs, *pairs]


# Shell: make '/' private, unless it is no mount at all (a chroot): see
# cgroup.root_is_visible_mount. unshare's own --propagation private fails in a chroot.
MAKE_ROOT_PRIVATE = (
    "{ mount --make-rprivate / 2>/dev/null || "
    "! awk '$5 == \"/\" {f=1} END {exit !f}' /proc/self/mountinfo; }"
)


def in_private_mounts(script: str) -> list[str]:
    """argv running a shell ``script`` in a new mount namespace whose mounts stay in it."""
    unshare = ["unshare", "--mount", "--propagation", "unchanged"]
    return [*unshare, "/bin/sh", "-c", f"{MAKE_ROOT_PRIVATE} && {script}"]


def _start_guard(path: Path) -> subprocess.Popen[bytes]:
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "kpy_ci.ebpf.guard", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )


__all__ = ["PROGRAMS", "Address", "BpfError", "Session", "check_privileges"]
