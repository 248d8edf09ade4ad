"""The kpy command as users run it: exit codes, one-line usage errors, and `kpy run` with a
moved port reachable through kpy's relay."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest

from tests.conftest import KPY, child_env, free_port


def kpy(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KPY, *args], env=child_env(), capture_output=True, text=True, timeout=timeout
    )


def test_run_exits_with_the_commands_code() -> None:
    assert kpy("run", "-c", "exit 3").returncode == 3
    done = kpy("run", "-c", "echo out; echo err >&2")
    assert (done.returncode, done.stdout, done.stderr) == (0, "out\n", "err\n")


def test_kpy_dsn_is_kpys_alone() -> None:
    """$KPY_DSN is --dsn's default for kpy; the command kpy starts never sees it."""
    done = subprocess.run(
        [*KPY, "run", "-c", "printenv KPY_DSN || echo absent"],
        env={**child_env(), "KPY_DSN": "postgresql://kpy:secret@127.0.0.1:1/x"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, "absent\n"), done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run"], "Missing option '-c'"),
        (["run", "-c", "true", "--proxy", "localhost:80"], "--proxy: 'localhost' in"),
        (["run", "-c", "true", "--move-port", "80"], "--move-port '80': expected PUBLIC:INTERNAL"),
        (["run", "-c", "true", "--resolv-conf", "/nonexistent"], "does not exist"),
        (["nosuch"], "No such command"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_line(args: list[str], message: str) -> None:
    done = kpy(*args)
    assert done.returncode == 2
    assert message in done.stderr


def test_version() -> None:
    assert kpy("--version").stdout.startswith("kpy, version ")


def test_run_with_a_moved_port_is_reachable_on_the_public_port() -> None:
    public, internal = free_port(), free_port()
    server = f"{sys.executable} -u -m http.server {public} --bind 127.0.0.1"
    proc = subprocess.Popen(
        [*KPY, "run", "--move-port", f"{public}:{internal}", "-c", server],
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        # the service announces the public port: getsockname() shows it, not the internal one
        assert f"port {public}" in proc.stdout.readline()

        def fetch(port: int) -> int:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
                return int(r.status)

        assert fetch(public) == 200  # through kpy's relay
        assert fetch(internal) == 200  # where the service really listens
    finally:
        proc.terminate()
        assert proc.wait(30) == 143
