"""Generic TCP, end to end: a server-first protocol (a greeting before the client says
anything, heard and given at once, in plain text and inside TLS) and a client-first one
whose client waits long before it speaks. All recorded against real TCP servers on
loopback, replayed with the servers gone; a changed request fails."""

from __future__ import annotations

import shlex
import ssl
import subprocess
import sys
from pathlib import Path

from tests.conftest import KPY, child_env, free_port, write_config
from tests.servers import line_server
from tests.tls_certs import TestCA

SERVICE = """
import json, os, socket, ssl, time
from http.server import BaseHTTPRequestHandler, HTTPServer
def talk_tls(port):
    context = ssl.create_default_context()  # kpy's CA comes in through SSL_CERT_FILE
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.settimeout(float(os.environ.get("PATIENCE", "10")))
            f = s.makefile("rb")
            greeting = f.readline().decode()
            s.sendall(b"hi there\\r\\n")
            return greeting + f.readline().decode()
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
        } if self.path == "/" else {"tls": talk_tls(int(os.environ["TLS_GREETER"]))}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


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


def test_a_greeting_inside_tls_is_heard_and_given_at_once(tmp_path: Path) -> None:
    """SMTPS-like: TLS first, then the server's greeting. kpy ends the TLS, listens to both
    sides inside it, and knows the protocol from the greeting."""
    ca = TestCA(tmp_path / "ca")
    cert = ca.issue(ips=("127.0.0.1",))
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert.cert_path, cert.key_path)
    (tmp_path / "service.py").write_text(SERVICE)
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\n")
    write_config(tmp_path / "kpy", tls={"ca_files": [str(ca.cert_path)]})
    port = free_port()
    command = shlex.join([sys.executable, str(tmp_path / "service.py")])
    fetch = (
        "import os, urllib.request as u; print(u.urlopen(os.environ['BASE_URL'] + '/tls').read())"
    )
    common = ["-c", command, "--path", str(tmp_path / "kpy"), "--resolv-conf", str(resolv)]
    with line_server(b"220 secure greeter ready\r\n", server_tls) as greeter:
        env = child_env() | {"PORT": str(port), "TLS_GREETER": str(greeter), "PATIENCE": "0.3"}
        env |= {"GREETER": "1", "ECHO": "1"}
        traffic = shlex.join([sys.executable, "-c", fetch])
        argv = [*KPY, "record", *common, "--port", str(port), "--traffic", traffic]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "220 secure greeter ready" in done.stdout and "ok hi there" in done.stdout
    done = subprocess.run(
        [*KPY, "test", *common], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "1 passed, 0 failed" in done.stderr
