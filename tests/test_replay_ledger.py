"""The egress ledger names the lookups too: a service that resolves a name (a real DNS
server on loopback when recording) and talks to the address it got (a real TCP server on
loopback) is replayed with both gone; its JUnit <system-out> shows the lookup served from
its mock and the connection under the name it was resolved from."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from junitparser import JUnitXml

from tests.conftest import KPY, child_env, free_port
from tests.dns_server import DnsServer
from tests.test_replay_generic import line_server

SERVICE = """
import http.server, os, socket
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ip = socket.getaddrinfo("echo.staging.kpy.test", 80, socket.AF_INET)[0][4][0]
        with socket.create_connection((ip, int(os.environ["ECHO"])), timeout=5) as s:
            s.sendall(b"hi there\\r\\n")
            body = s.makefile("rb").readline()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


def test_ledger_shows_lookups_and_the_names_of_connections(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\noptions timeout:2 attempts:1\n")
    (tmp_path / "service.py").write_text(SERVICE)
    port = free_port()
    fetch = "import os, urllib.request as u; u.urlopen(os.environ['BASE_URL'] + '/').read()"
    common = [
        "-c", shlex.join([sys.executable, str(tmp_path / "service.py")]),
        "--path", str(tmp_path / "kpy"), "--resolv-conf", str(resolv),
    ]  # fmt: skip
    with DnsServer({"echo.staging.kpy.test": "127.0.0.1"}) as dns, line_server(b"") as echo:
        env = child_env() | {"PORT": str(port), "ECHO": str(echo)}
        record = [
            *KPY, "record", *common, "--port", str(port), "--dns-upstream",
            f"127.0.0.1:{dns.port}", "--traffic", shlex.join([sys.executable, "-c", fetch]),
        ]  # fmt: skip
        done = subprocess.run(record, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

    report = tmp_path / "junit.xml"
    replay = [*KPY, "test", *common, "--junit", str(report)]
    done = subprocess.run(replay, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    [suite] = list(JUnitXml.fromfile(str(report)))
    [case] = list(suite)
    out = case.system_out or ""
    assert out.startswith("kpy: egress during this test (1 connection, 1 lookup):\n"), out
    assert re.search(
        rf"\n  #1 generic 127\.0\.0\.1:{echo} \(echo\.staging\.kpy\.test\): "
        r"1 call served from mocks \(mock-\d+\)\n",
        out,
    ), out
    assert re.search(r"\n  dns A echo\.staging\.kpy\.test: served from a mock \(mock-\d+\)\n", out)
