"""``kpy test --header``: a recorded request's Authorization is redacted on disk, so a
service that checks it answers 401 at replay; ``--header 'Authorization: Bearer ...'``
gives it back for the replay only. The token reaches no recorded or reported byte."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from tests.conftest import KPY, child_env, free_port, leftover_cgroups

TOKEN = "inbound-T0ken-for-header-tests"
PORT = free_port()
SERVICE = f"""
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.headers.get("Authorization") == "Bearer {TOKEN}"
        body = b'{{"me": "ann"}}' if ok else b'{{"error": "who are you"}}'
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""
TRAFFIC = (
    "import os, urllib.request as u; u.urlopen(u.Request(os.environ['BASE_URL'] + '/me', "
    f"headers={{'Authorization': 'Bearer {TOKEN}'}})).read()"
)


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\n")
    argv = [*KPY, *args, "--path", str(tmp_path / "kpy"), "--resolv-conf", str(resolv)]
    env = child_env() | {"PORT": str(PORT)}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def test_header_gives_a_redacted_credential_back_for_the_replay(tmp_path: Path) -> None:
    (tmp_path / "service.py").write_text(SERVICE)
    command = shlex.join([sys.executable, str(tmp_path / "service.py")])
    traffic = shlex.join([sys.executable, "-c", TRAFFIC])
    args = ["-c", command]
    done = run(tmp_path, "record", *args, "--port", str(PORT), "--traffic", traffic)
    assert done.returncode == 0, done.stderr
    recorded = b"".join(p.read_bytes() for p in (tmp_path / "kpy").rglob("*") if p.is_file())
    assert b"Bearer [redacted by kpy]" in recorded and TOKEN.encode() not in recorded

    without = run(tmp_path, "test", *args, "--junit", str(tmp_path / "without.xml"))
    assert without.returncode == 1
    assert "response changed: status: 200 -> 401" in without.stderr

    given = f"Authorization: Bearer {TOKEN}"
    junit = tmp_path / "with.xml"
    done = run(tmp_path, "test", *args, "--header", given, "--junit", str(junit))
    assert done.returncode == 0, done.stderr
    assert TOKEN not in junit.read_text() + (tmp_path / "without.xml").read_text()
    assert leftover_cgroups() == []


def test_a_bad_header_option_does_not_show_its_value(tmp_path: Path) -> None:
    done = run(tmp_path, "test", "-c", "true", "--header", f"Bearer {TOKEN}")
    assert done.returncode == 2
    assert TOKEN not in done.stderr and "--header: expected 'NAME: VALUE'" in done.stderr
