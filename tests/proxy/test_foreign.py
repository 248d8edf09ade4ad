"""Only the service can use kpy's egress port: a connection to it that eBPF did not
redirect (another local process, here the test itself, outside the service's cgroup) is
closed unanswered, while recording and at replay; never relayed anywhere, never answered
from the mocks. The service's own calls go on being recorded and replayed."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import KPY, child_env, free_port

SERVICE = """
import os, socket, time
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        with socket.create_connection(("127.0.0.1", int(os.environ["UPSTREAM"]))) as s:
            s.sendall(b"marco\\n")
            body = s.recv(100)
        time.sleep(float(os.environ.get("HOLD", "0")))  # time for the test to knock, at replay
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""

# the traffic: one request, then time for the test to knock on kpy's ports
TRAFFIC = (
    "import os, time, urllib.request as u; u.urlopen(os.environ['BASE_URL'] + '/').read(); "
    "time.sleep(4)"
)


def kpy_tcp_ports(pid: int, public: int) -> list[int]:
    """The TCP ports process ``pid`` listens on, its public (ingress) port left out."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    ports = []
    for line in out.splitlines():
        if f"pid={pid}," in line:
            port = int(re.split(r"\s+", line)[3].rsplit(":", 1)[1])
            if port != public:
                ports.append(port)
    return ports


def knock(port: int) -> bytes:
    """What kpy's port says to a process outside the session that sends it a request."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        try:
            s.sendall(b"marco\n")
            s.settimeout(3)
            return s.recv(100)
        except (ConnectionResetError, BrokenPipeError):
            return b""


def run_knocking(argv: list[str], env: dict[str, str], public: int) -> tuple[str, list[bytes]]:
    kpy = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    ports: list[int] = []
    while not ports and time.monotonic() < deadline and kpy.poll() is None:
        time.sleep(0.2)
        ports = kpy_tcp_ports(kpy.pid, public)
    answers = [knock(port) for port in ports]
    _, err = kpy.communicate(timeout=60)
    assert ports, err
    assert kpy.returncode == 0, err
    return err, answers


def test_a_process_outside_the_session_is_not_served(tmp_path: Path) -> None:
    upstream = socket.create_server(("127.0.0.1", 0))
    upstream_port = upstream.getsockname()[1]
    served: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = upstream.accept()
            except OSError:
                return
            with conn:
                served.append(conn.recv(100))
                conn.sendall(b"polo\n")

    threading.Thread(target=serve, daemon=True).start()
    (tmp_path / "service.py").write_text(SERVICE)
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\n")
    port = free_port()
    env = child_env() | {"PORT": str(port), "UPSTREAM": str(upstream_port)}
    common = ["-c", shlex.join([sys.executable, str(tmp_path / "service.py")])]
    common += ["--path", str(tmp_path / "kpy"), "--resolv-conf", str(resolv)]
    traffic = shlex.join([sys.executable, "-c", TRAFFIC])
    record = [*KPY, "record", *common, "--port", str(port), "--traffic", traffic]
    try:
        err, answers = run_knocking(record, env, port)
    finally:
        upstream.close()
    assert answers and all(a == b"" for a in answers), answers
    assert served == [b"marco\n"]  # the service's call only: no knock reached the upstream
    assert "had no destination" in err

    # at replay the upstream is gone; the knock, the very bytes a mock answers, gets no
    # answer from the mocks either
    err, answers = run_knocking([*KPY, "test", *common], env | {"HOLD": "4"}, port)
    assert answers and all(a == b"" for a in answers), answers
    assert "1 passed, 0 failed" in err
