"""The service is ready when a socket of its own listens on its port: another process that
answers there (a second job's service on a shared runner, which took the port after kpy
looked) is never tested in its place. Real processes, a real cgroup, the real /proc."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from kpy_ci.ebpf.session import Session
from kpy_ci.service import listening_sockets, listens_in
from tests.conftest import KPY, child_env, free_port, leftover_cgroups, wait_until

SERVICE = """
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""
TRAFFIC = "import os, urllib.request as u; u.urlopen(os.environ['BASE_URL'] + '/ok').read()"


def test_listening_sockets_reads_the_kernels_table() -> None:
    with socket.socket() as listener, socket.socket() as bound:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        bound.bind(("127.0.0.1", 0))  # bound, not listening: not counted
        table = Path("/proc/net/tcp").read_text()
        [inode] = listening_sockets(table, listener.getsockname()[1])
        assert inode == os.fstat(listener.fileno()).st_ino
        assert listening_sockets(table, bound.getsockname()[1]) == set()


def test_only_a_listener_of_the_cgroup_counts() -> None:
    inside, outside = free_port(), free_port()
    code = (
        "import socket, time; s = socket.socket(); "
        f"s.bind(('127.0.0.1', {inside})); s.listen(); time.sleep(30)"
    )
    with socket.socket() as foreign, Session() as session:
        foreign.bind(("127.0.0.1", outside))
        foreign.listen()
        child = session.spawn([sys.executable, "-c", code])
        assert session.cgroup is not None
        wait_until(lambda: listens_in(session.cgroup, inside), what="the child's listener")
        assert not listens_in(session.cgroup, outside)
        child.kill()
        child.wait(5)
    assert leftover_cgroups() == []


def test_a_port_answered_by_another_process_is_no_ready_service(tmp_path: Path) -> None:
    port = free_port()
    env = child_env() | {"PORT": str(port)}
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\n")
    common = ["--path", str(tmp_path / "kpy"), "--resolv-conf", str(resolv)]
    (tmp_path / "service.py").write_text(SERVICE)
    command = shlex.join([sys.executable, str(tmp_path / "service.py")])
    traffic = shlex.join([sys.executable, "-c", TRAFFIC])
    argv = [*KPY, "record", "-c", command, "--port", str(port), "--traffic", traffic, *common]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    # the service under test never listens; once it has started, another process (outside
    # its cgroup) starts answering on its port, as the same service of a second job would
    started = tmp_path / "started"
    silent = f"touch {shlex.quote(str(started))}; exec sleep 30"
    foreign = socket.socket()
    foreign.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    foreign.bind(("127.0.0.1", port))

    def answer_once_started() -> None:
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        foreign.listen()

    thread = threading.Thread(target=answer_once_started, daemon=True)
    thread.start()
    try:
        argv = [*KPY, "test", "-c", silent, "--ready-timeout", "3", *common]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    finally:
        thread.join(60)
        foreign.close()
    assert started.exists()
    assert done.returncode == 1, done.stderr
    assert f"port {port} was answered by a process that is not the service's" in done.stderr
    assert "1 failed" in done.stderr and "passed, 0 failed" not in done.stderr
    assert leftover_cgroups() == []
