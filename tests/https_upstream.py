"""A real HTTPS API for the client services to call: the stdlib's threaded HTTP server on a
free port of both 127.0.0.1 and ::1 (``localhost`` may resolve to either), TLS with a
certificate from tests/tls_certs.py, HTTP/1.1 keep-alive. It answers every GET and POST
with JSON saying what it got, and keeps what it received, so a test sees both sides of a
call without kpy in the way."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.servers import loopback_pair
from tests.tls_certs import Issued


@dataclass(frozen=True)
class Received:
    """One request as the upstream read it; ``alpn`` is the protocol the connection agreed
    on (None: the client offered none the server knows, or the server advertised none)."""

    method: str
    path: str
    headers: Message
    body: bytes
    alpn: str | None


@dataclass
class Upstream:
    port: int
    requests: list[Received] = field(default_factory=list)
    tls_errors: list[str] = field(default_factory=list)
    """Why handshakes failed, server side (a client refusing the certificate sends an alert)."""

    def url(self, host: str = "127.0.0.1", path: str = "/echo") -> str:
        return f"https://{host}:{self.port}{path}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a kept-alive connection must not hold the test's exit

    def __init__(self, context: ssl.SSLContext, upstream: Upstream, sock: socket.socket) -> None:
        self.context = context
        self.upstream = upstream
        self.address_family = sock.family
        super().__init__(sock.getsockname()[:2], _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock  # bound and listening already, beside its twin on the other loopback

    def get_request(self) -> tuple[socket.socket, Any]:
        # the handshake happens on the first read, in the connection's thread: a client
        # that refuses the certificate must not stall the accept loop
        sock, address = self.socket.accept()
        return self.context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        ), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ssl.SSLError, ConnectionError)):
            self.upstream.tls_errors.append(str(error))
        else:
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 30

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        assert isinstance(self.connection, ssl.SSLSocket)
        self.server.upstream.requests.append(
            Received(
                self.command,
                self.path,
                self.headers,
                body,
                self.connection.selected_alpn_protocol(),
            )
        )
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        payload = {"method": self.command, "path": self.path, "body": parsed, "ok": True}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def https_upstream(
    cert: Issued, alpn: list[str] | None = None, client_ca: Path | None = None
) -> Iterator[Upstream]:
    """Serve until the block ends. ``alpn``: the protocols the server advertises (by
    default none: the server takes part in no ALPN, like many real HTTP/1.1 APIs).
    ``client_ca``: demand a client certificate that CA issued (mutual TLS)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert.cert_path, cert.key_path)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    if alpn:
        context.set_alpn_protocols(alpn)
    upstream = Upstream(0)
    servers = [_Server(context, upstream, sock) for sock in loopback_pair()]
    upstream.port = servers[0].server_address[1]
    threads = [
        threading.Thread(target=server.serve_forever, args=(0.05,), name="https-upstream")
        for server in servers
    ]
    for thread in threads:
        thread.daemon = True
        thread.start()
    try:
        yield upstream
    finally:
        for server, thread in zip(servers, threads, strict=True):
            server.shutdown()
            server.server_close()
            thread.join(10)


@contextmanager
def h2_upstream(cert: Issued) -> Iterator[int]:
    """A real HTTP/2 server (Node's http2; it chooses ``h2`` when offered, HTTP/1.1 else)
    on a free 127.0.0.1 port, until the block ends."""
    env = {"TLS_CERT": str(cert.cert_path), "TLS_KEY": str(cert.key_path), "PATH": "/usr/bin:/bin"}
    script = Path(__file__).with_name("h2_upstream.js")
    with subprocess.Popen(["node", str(script)], env=env, stdout=subprocess.PIPE) as server:
        try:
            assert server.stdout is not None
            yield int(server.stdout.readline())
        finally:
            server.kill()
