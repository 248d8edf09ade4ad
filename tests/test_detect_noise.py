"""``kpy test --detect-noise`` end to end, as root: a service whose answer carries a new id
and the time on every call fails a plain replay; replayed twice, exactly those two fields
are proposed as noise; ``--write-noise`` adds them to the test file, and the plain replay
passes from then on. Nothing is left behind (cgroups, BPF objects)."""

from __future__ import annotations

import io
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kpy_ci import replay as kpy_replay
from kpy_ci.store.serializer import document
from kpy_ci.store.testset import write_test_set
from tests.conftest import KPY, child_env, free_port, leftover_cgroups, no_kpy_left

SERVICE = Path(__file__).resolve().parent / "noisy_service.py"
COMMAND = f"{shlex.quote(sys.executable)} {shlex.quote(str(SERVICE))}"
SET = "noisy"


def write_set(root: Path, port: int) -> Path:
    """A set of one test, written as kpy record writes it: GET /thing and its answer."""
    test = document(
        "TestCase",
        {
            "name": "test-1",
            "started": 0.101234,
            "ended": 0.104321,
            "request": {
                "method": "GET",
                "url": "/thing",
                "version": "1.1",
                "headers": [
                    ["Host", f"127.0.0.1:{port}"],
                    ["Accept-Encoding", "identity"],
                    ["Accept", "application/json"],
                ],
            },
            "response": {
                "status": 200,
                "reason": "OK",
                "version": "1.0",
                "headers": [
                    ["Server", "BaseHTTP/0.6 Python/3.11.7"],
                    ["Date", "Wed, 25 Nov 2026 14:31:47 GMT"],
                    ["Content-Type", "application/json"],
                    ["Content-Length", "95"],
                ],
                "body": {
                    "json": {
                        "id": "9f1c3d5e7a8b4c2d9e0f1a2b3c4d5e6f",
                        "at": "2026-11-25T14:31:47.123456",
                        "name": "thing",
                    }
                },
            },
            "mocks": [],
        },
    )
    meta = {
        "name": SET,
        "recorded_at": "2026-11-25T14:31:52+00:00",
        "port": port,
        "complete": True,
        "interrupted": None,
        "tests": 1,
        "mocks": 0,
        "warnings": [],
    }
    return write_test_set(root, SET, [test], [], meta)


def kpy_test(root: Path, port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [*KPY, "test", "-c", COMMAND, "--path", str(root), *extra]
    env = child_env() | {"PORT": str(port)}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert leftover_cgroups() == []
    return done


def test_detect_noise_proposes_the_fields_that_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "kpy"
    port = free_port()
    path = write_set(root, port)
    test_file = path / "tests" / "test-1.yaml"
    recorded = test_file.read_text()

    # a plain replay learns the id as made up (it changes between two runs: 32 random hex
    # digits), matches it by substitution, and fails on the time alone (the set does not
    # say when it was recorded, so no time is taken as generated)
    done = kpy_test(root, port)
    assert done.returncode == 1, done.stderr
    assert f"FAIL {SET}/test-1 GET /thing" in done.stderr
    assert "response changed: body.at: '2026-11-25T14:31:47.123456' -> '" in done.stderr
    assert "body.id" not in done.stderr and "header." not in done.stderr, done.stderr
    learned = r"(?<![A-Za-z0-9])[0-9a-f]{32}(?![A-Za-z0-9])"
    assert f"kpy: test-1: made-up values learned: {learned}" in done.stderr
    assert done.stderr.splitlines()[-1] == "kpy: 0 passed, 1 failed (1 tests in 1 sets)"

    # replayed twice, the fields that differ and are no made-up value are proposed: body.at
    # (TestResult.noise), and the test is compared without it
    monkeypatch.setenv("PORT", str(port))
    log = io.StringIO()
    options = kpy_replay.TestOptions(command=COMMAND, path=root, detect_noise=True)
    result = kpy_replay.replay(options, log)
    no_kpy_left()
    [only] = result.sets[0].tests
    assert list(only.noise) == ["body.at"], log.getvalue()
    assert list(only.made_up) == [learned], log.getvalue()
    assert only.passed, only.details
    assert test_file.read_text() == recorded  # proposing writes nothing

    done = kpy_test(root, port, "--detect-noise")
    assert done.returncode == 0, done.stderr
    proposed = [line for line in done.stderr.splitlines() if "noise proposed" in line]
    assert proposed == ["kpy: test-1: noise proposed: body.at"]
    assert test_file.read_text() == recorded

    # --write-noise adds both to the test file, and changes nothing else
    done = kpy_test(root, port, "--detect-noise", "--write-noise")
    assert done.returncode == 0, done.stderr
    assert "kpy: test-1: noise proposed: body.at (written to its file)" in done.stderr
    written = test_file.read_text()
    doc = yaml.safe_load(written)
    assert doc.pop("noise") == ["body.at"]
    assert doc.pop("made_up") == [learned]
    assert doc == yaml.safe_load(recorded)

    # from then on a plain replay passes
    done = kpy_test(root, port)
    assert done.returncode == 0, done.stderr
    assert "noise proposed" not in done.stderr
    assert f"PASS {SET}/test-1 GET /thing" in done.stderr
    assert done.stderr.splitlines()[-1] == "kpy: 1 passed, 0 failed (1 tests in 1 sets)"
    no_kpy_left()


def test_a_port_taken_already_is_refused(tmp_path: Path) -> None:
    """Something else on the service's port (an old build left running) would be tested in
    its place, and could pass: kpy refuses to start (exit 4) and says why."""
    root = tmp_path / "kpy"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        write_set(root, port)
        done = kpy_test(root, port)
    assert done.returncode == 4
    assert f"kpy: port {port} is taken: something listens there already" in done.stderr
