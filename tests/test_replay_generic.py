"""Generic TCP at replay, end to end: a server-first protocol (a greeting before the client
says anything, given at once) and a client-first one whose client waits longer than kpy's
sniffing delay before it speaks. Both recorded against real TCP servers on loopback,
replayed with the servers gone; a changed request fails."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import KPY, child_env, free_port

SERVICE = """
import json, os, socket, time
from http.server import BaseHTTPRequestHandler, HTTPServer
def talk(port, first, wait=0.0):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(float(os.environ.get("PATIENCE", "10")))
        f = s.makefile("rb")
        greeting = f.readline().decode() if first is None else ""
        s.settimeout(10)
        time.sleep(wait)
        s.sendall(os.environ.get("WORD", "hi there").encode() + b"\\r\\n")
        return greeting + f.readline().decode()
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({
            "greeter": talk(int(os.environ["GREETER"]), None),
            "slow": talk(int(os.environ["ECHO"]), "", wait=0.8),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


@contextmanager
def line_server(greeting: bytes) -> Iterator[int]:
    """A TCP server on loopback: sends ``greeting`` (if any), then answers each line."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(greeting)
                line = conn.makefile("rb").readline()
                conn.sendall(b"ok " + line)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        listener.close()


def test_server_first_and_slow_client_first_tcp_replay(tmp_path: Path) -> None:
    (tmp_path / "service.py").write_text(SERVICE)
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\n")
    port = free_port()
    command = shlex.join([sys.executable, str(tmp_path / "service.py")])
    fetch = "import os, urllib.request as u; print(u.urlopen(os.environ['BASE_URL'] + '/').read())"
    common = ["-c", command, "--path", str(tmp_path / "kpy"), "--resolv-conf", str(resolv)]
    with line_server(b"220 greeter ready\r\n") as greeter, line_server(b"") as echo:
        env = child_env() | {"PORT": str(port), "GREETER": str(greeter), "ECHO": str(echo)}
        traffic = shlex.join([sys.executable, "-c", fetch])
        argv = [*KPY, "record", *common, "--port", str(port), "--traffic", traffic]
        # the proxy dials the real server as the service connects and hears its greeting
        # at once: a client that gives up on a greeting after 0.3 s gets it while recorded
        impatient = env | {"PATIENCE": "0.3"}
        done = subprocess.run(argv, env=impatient, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "220 greeter ready" in done.stdout and "ok hi there" in done.stdout

    replay = [*KPY, "test", *common]
    # and replayed: greeted at once, as by its server
    done = subprocess.run(replay, env=impatient, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

    changed = env | {"WORD": "bye there"}
    done = subprocess.run(replay, env=changed, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert (
        "generic call to 127.0.0.1:" in done.stderr
        and "matched no mock: b'bye there\\r\\n'" in done.stderr
    )
