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
from typing import Any

from kpy_ci.service_log import ServiceLog

STOP_SECONDS = 10.0


def wait_ready(
    service: subprocess.Popen[Any],
    port: int,
    ready_url: str | None,
    timeout: float,
    service_log: ServiceLog,
    shown_port: int | None = None,
) -> str | None:
    """Wait until the service accepts connections on ``port`` (or, with ``ready_url``,
    answers it below 500 there); why not, if it never did. The probe goes to the service
    itself, never through kpy, so it is no test case. ``shown_port``: the port to name in
    the answer, the one the user knows (kpy record moves the service's own)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.poll() is not None:
            return (
                f"the service exited with code {service.returncode} before it was ready; "
                f"its last lines:\n{service_log.tail()}"
            )
        if _answers(port, ready_url):
            return None
        time.sleep(0.05)
    return (
        f"the service was not ready on port {shown_port or port} after {timeout:g}s; "
        f"its last lines:\n{service_log.tail()}"
    )


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
