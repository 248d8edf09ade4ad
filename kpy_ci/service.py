"""The service under test as a process: when it is ready, and how it is stopped. Shared by
``kpy record`` and ``kpy test``."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kpy_ci.ebpf import cgroup
from kpy_ci.service_log import ServiceLog

STOP_SECONDS = 10.0


def wait_ready(
    service: subprocess.Popen[Any],
    port: int,
    ready_url: str | None,
    timeout: float,
    service_log: ServiceLog,
    shown_port: int | None = None,
    group: Path | None = None,
) -> str | None:
    """Wait until the service accepts connections on ``port`` (or, with ``ready_url``,
    answers it below 500 there); why not, if it never did. The probe goes to the service
    itself, never through kpy, so it is no test case. ``shown_port``: the port to name in
    the answer, the one the user knows (kpy record moves the service's own). ``group``:
    the service's cgroup, whose processes must hold the listening socket: another process
    on the machine (a second job's service) that took the port after kpy looked must not be
    tested in the service's place."""
    deadline = time.monotonic() + timeout
    shown = shown_port or port
    foreign = False
    while time.monotonic() < deadline:
        if service.poll() is not None:
            why = f"the service exited with code {service.returncode} before it was ready"
            if foreign:
                why += f"; port {shown} was answered by a process outside it all along"
            return f"{why}; its last lines:\n{service_log.tail()}"
        if _answers(port, ready_url):
            if group is None or listens_in(group, port):
                return None
            foreign = True
        time.sleep(0.05)
    if foreign:
        return (
            f"port {shown} was answered by a process that is not the service's (another "
            f"service or kpy on this machine?), and the service never listened there in "
            f"{timeout:g}s; its last lines:\n{service_log.tail()}"
        )
    return (
        f"the service was not ready on port {shown} after {timeout:g}s; "
        f"its last lines:\n{service_log.tail()}"
    )


def listening_sockets(table: str, port: int) -> set[int]:
    """The inodes of the sockets listening on TCP ``port`` in a /proc/net/tcp or tcp6
    table (hex ``address:port`` in column 2, state 0A is LISTEN, the inode in column 10)."""
    found = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            found.add(int(fields[9]))
    return found


def socket_inodes(pids: Iterable[int], proc: Path = Path("/proc")) -> set[int]:
    """The inodes of the sockets these processes hold open."""
    found = set()
    for pid in pids:
        try:
            fds = list((proc / str(pid) / "fd").iterdir())
        except OSError:  # it exited meanwhile
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    found.add(int(target[8:-1]))
    return found


def listens_in(group: Path, port: int, proc: Path = Path("/proc")) -> bool:
    """Whether a process of the cgroup ``group`` (or of one below it) holds a socket
    listening on TCP ``port`` in this network namespace."""
    listening = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            listening |= listening_sockets((proc / "net" / table).read_text(), port)
    if not listening:
        return False
    return bool(listening & socket_inodes(cgroup.pids_below(group), proc))


def listening_host(port: int) -> str | None:
    """Where something accepts connections on ``port``: 127.0.0.1, else ::1; or None."""
    for host in ("127.0.0.1", "::1"):
        try:
            socket.create_connection((host, port), timeout=1).close()
            return host
        except OSError:
            continue
    return None


def _answers(port: int, ready_url: str | None) -> bool:
    if ready_url is None:
        return listening_host(port) is not None  # it may bind IPv4, IPv6 or both
    parts = urllib.parse.urlsplit(ready_url)
    direct = parts._replace(netloc=f"127.0.0.1:{port}").geturl()
    try:
        with urllib.request.urlopen(direct, timeout=2) as response:
            return int(response.status) < 500
    except urllib.error.HTTPError as e:
        return e.code < 500
    except OSError:
        return False


def stop(service: subprocess.Popen[Any]) -> None:
    """SIGTERM to the service's process group, as a deploy would, so that it closes its
    connections cleanly: the shell kpy starts it with may not pass the signal on."""
    if service.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(service.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            service.wait(STOP_SECONDS)
