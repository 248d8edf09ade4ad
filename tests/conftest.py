"""Shared fixtures. The tests run as root against the real kernel: real cgroups, real BPF
programs, real sockets on loopback. Nothing here fakes the thing under test."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from kpy_ci.ebpf import cgroup
from tests.servers import Postgres, Redis, postgres_server, redis_server

ROOT = Path(__file__).resolve().parent.parent
KPY = [sys.executable, "-m", "kpy_ci"]


def free_port(family: socket.AddressFamily = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port where nothing listens (bound, then released)."""
    with socket.socket(family, kind) as s:
        s.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        return int(s.getsockname()[1])


def own_bpf_objects() -> list[str]:
    """The BPF programs, maps and links this process holds, from its fds' fdinfo: after
    every session has closed, there must be none (other processes' kpy runs are theirs)."""
    held = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            info = (Path("/proc/self/fdinfo") / fd.name).read_text()
        except OSError:
            continue
        if "prog_id:" in info or "map_id:" in info or "link_id:" in info:
            held.append(f"fd {fd.name}: {info.splitlines()[-1]}")
    return held


def attached(group: Path) -> list[int]:
    """Ids of the programs attached to one cgroup."""
    out = subprocess.run(["bpftool", "-j", "cgroup", "show", str(group)], capture_output=True)
    return [p["id"] for p in json.loads(out.stdout or b"[]")] if out.returncode == 0 else []


def loaded(ids: list[int]) -> list[int]:
    """Which of these program ids are still loaded in the kernel."""
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, check=True)
    return [p["id"] for p in json.loads(out.stdout) if p["id"] in ids]


def kpy_cgroups() -> list[Path]:
    root = cgroup.parent_dir(cgroup.cgroup2_mounts(Path("/proc/self/mounts").read_text())[0])
    return sorted(root.glob(cgroup.PREFIX + "*"))


def leftover_cgroups() -> list[Path]:
    """kpy cgroups whose kpy process is gone: what a clean exit must never leave."""
    return [p for p in kpy_cgroups() if not cgroup.alive(cgroup.owner(p) or 0)]


def wait_until(predicate, timeout: float = 5.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def no_kpy_left() -> None:
    """This process holds no BPF object, and no kpy cgroup outlived its kpy."""
    wait_until(lambda: not own_bpf_objects(), what=f"BPF objects to close: {own_bpf_objects()}")
    assert leftover_cgroups() == []


@pytest.fixture(autouse=True, scope="session")
def _root_and_clean() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.exit("kpy's tests run as root: they attach eBPF programs to cgroups", 4)
    assert shutil.which("bpftool"), "bpftool is needed to check that tests leave nothing behind"
    yield
    no_kpy_left()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP listener on 127.0.0.1: the stand-in for kpy's proxy."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        s.settimeout(10)
        yield s


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A real PostgreSQL server on a loopback port, for the whole run."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_tls() -> Iterator[Postgres]:
    """A real PostgreSQL server that offers TLS."""
    with postgres_server(tls=True) as server:
        yield server


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    """A real Redis server on a loopback port, with a password (AUTH)."""
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def write_config(directory: Path, **fields: Any) -> None:
    """``directory``/kpy.yml with these top-level fields (and the two it must have)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {"version": "kpy/v1", "kind": "Config", **fields}
    (directory / "kpy.yml").write_text(yaml.safe_dump(config))


def record_with_kpy(
    command: Sequence[str],
    port: int | str,
    path: Path,
    traffic: str,
    env: Mapping[str, str],
    *options: str,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """``kpy record`` of ``command`` on ``port`` into ``path`` while ``traffic`` runs."""
    argv = [
        *KPY, "record", "-c", shlex.join(command), "--port", str(port), "--path", str(path),
        "--traffic", traffic, *options,
    ]  # fmt: skip
    return subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=timeout)


def replay_with_kpy(
    command: Sequence[str],
    path: Path,
    tmp: Path,
    env: Mapping[str, str],
    *options: str,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """``kpy test`` of ``command`` against the sets in ``path``, the service resolving
    through kpy's DNS only (a resolv.conf in ``tmp`` naming kpy's address)."""
    resolv = tmp / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\n")
    argv = [
        *KPY, "test", "-c", shlex.join(command), "--path", str(path),
        "--resolv-conf", str(resolv), *options,
    ]  # fmt: skip
    return subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=timeout)


from tests.servers import MariaDB, mariadb_server  # noqa: E402  (added with the fixture below)


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    """A real MariaDB server on a loopback port, for the whole run: database and user
    ``app`` (mysql_native_password), LOCAL INFILE allowed."""
    with mariadb_server() as server:
        yield server
