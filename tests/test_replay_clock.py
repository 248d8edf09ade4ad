"""The replay clock (clock.py) on real services in Python and Node.js under kpy: a token
recorded minutes ago is still valid at replay, as its test runs at the instant it was
recorded; with ``--clock real`` it has expired; the service's sleeps and monotonic clock
work as without kpy; a program whose clock cannot be moved is named in a warning."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from kpy_ci import clock
from tests.clock_services import LIFETIME, SERVICES, TRAFFIC
from tests.conftest import (
    child_env,
    free_port,
    leftover_cgroups,
    no_kpy_left,
    record_with_kpy,
    replay_with_kpy,
)
from tests.test_record import load_set

pytestmark = pytest.mark.skipif(clock.unavailable() is not None, reason="needs libfaketime")


def record_tokens(service: str, tmp: Path) -> tuple[dict[str, str], Path]:
    env = {**child_env(), "PORT": str(free_port())}
    out = tmp / "kpy"
    done = record_with_kpy(SERVICES[service], env["PORT"], out, TRAFFIC, env, "--set", "s")
    assert done.returncode == 0, done.stderr
    return env, out


def replay(service: str, env: dict[str, str], out: Path, tmp: Path, *options: str) -> str:
    done = replay_with_kpy(SERVICES[service], out, tmp, env, *options)
    assert leftover_cgroups() == []
    no_kpy_left()
    return done.stdout + done.stderr + f"\nexit {done.returncode}"


@pytest.mark.parametrize("service", list(SERVICES))
def test_an_expired_token_passes_at_its_recorded_instant_and_fails_on_todays_clock(
    service: str, tmp_path: Path
) -> None:
    env, out = record_tokens(service, tmp_path)
    _, tests, _ = load_set(out / "s")
    assert [t["response"]["status"] for t in tests] == [200, 200]
    time.sleep(LIFETIME + 1.5)  # the recorded token has expired by the real clock
    replayed = replay(service, env, out, tmp_path)
    assert "2 passed, 0 failed" in replayed and "exit 0" in replayed, replayed
    assert "replay clock" not in replayed, replayed  # no warning: the clock moved
    real = replay(service, env, out, tmp_path, "--clock", "real")
    assert "FAIL s/test-2 GET /check" in real and "exit 1" in real, real
    assert "status: 200 -> 401" in real, real  # expired by today's clock


def test_a_program_whose_clock_cannot_move_is_named_and_the_rest_still_runs(
    tmp_path: Path,
) -> None:
    static = tmp_path / "static-sleeper"
    source = tmp_path / "sleeper.c"
    source.write_text("#include <unistd.h>\nint main(void) { sleep(600); return 0; }\n")
    subprocess.run(["cc", "-static", "-O2", "-o", str(static), str(source)], check=True)
    env, out = record_tokens("python", tmp_path)
    command = f"{static} & exec {' '.join(SERVICES['python'])}"
    done = replay_with_kpy(["sh", "-c", command], out, tmp_path, env)
    assert leftover_cgroups() == []
    no_kpy_left()
    said = done.stderr
    assert done.returncode == 0, said
    # by its path (from /proc: under a chroot, as the host names it)
    warning = next(line for line in said.splitlines() if "replay clock cannot move" in line)
    named = warning.split("cannot move ", 1)[1].split(" (pid ")[0]
    assert named.endswith(str(static)), said
    assert "did not load libfaketime" in said, said


JAVA_WAITS = """public class Waits { public static void main(String[] a) throws Exception {
  long m = System.nanoTime(); Thread.sleep(100); Object o = new Object();
  synchronized (o) { o.wait(100); }
  java.util.concurrent.locks.LockSupport.parkNanos(100_000_000L);
  new java.util.concurrent.LinkedBlockingQueue<Integer>().poll(100,
      java.util.concurrent.TimeUnit.MILLISECONDS);
  System.out.println(Math.round((System.nanoTime() - m) / 1e8) + " "
      + System.currentTimeMillis() / 1000); } }
"""


def test_sleeps_and_the_monotonic_clock_are_left_alone(tmp_path: Path) -> None:
    probe = (
        "import threading, time\n"
        "m, w = time.monotonic(), time.time()\n"
        "time.sleep(0.2); threading.Event().wait(0.1)\n"
        "lock = threading.Lock(); lock.acquire(); lock.acquire(timeout=0.1)\n"
        "print(round(time.monotonic() - m, 1), round(w))\n"
    )
    (tmp_path / "Waits.java").write_text(JAVA_WAITS)
    subprocess.run(["javac", str(tmp_path / "Waits.java")], check=True)
    with clock.ReplayClock() as replay_clock:
        replay_clock.set_instant(time.time() - 86_400)
        run = subprocess.run(
            ["python3", "-c", probe],
            env=replay_clock.env(os.environ),
            capture_output=True,
            text=True,
            timeout=30,
        )
        java = subprocess.run(
            ["java", "-cp", str(tmp_path), "Waits"],
            env=replay_clock.env(os.environ),
            capture_output=True,
            text=True,
            timeout=60,
        )
        before = time.monotonic()
        replay_clock.set_offset(3600)
        node = subprocess.run(
            ["node", "-e", "console.log(Math.round(Date.now() / 1000))"],
            env=replay_clock.env(os.environ),
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert run.returncode == 0, run.stderr
    slept, wall = run.stdout.split()
    assert slept == "0.4" and abs(int(wall) - (time.time() - 86_400)) < 30, run.stdout
    tenths, java_wall = java.stdout.split()  # four waits of 0.1 s, none cut short
    assert tenths == "4" and abs(int(java_wall) - (time.time() - 86_400)) < 30, java.stdout
    assert abs(int(node.stdout) - (time.time() + 3600)) < 30, node.stdout
    assert time.monotonic() >= before
