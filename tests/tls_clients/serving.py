"""What every Python client service here shares: the inbound server (``GET /health``,
``POST /call``) around the one function that differs, the upstream call. The services
import it as a sibling module (each runs as a script from this directory)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Call = Callable[[str, bytes], tuple[int, bytes]]
"""The upstream's URL and the JSON body to send it -> the upstream's status and body."""


def upstream_url(header: str | None) -> str:
    """Where a call goes: the request's ``X-Upstream-Url`` (one service can then meet many
    upstreams), else $UPSTREAM_URL."""
    return header or os.environ["UPSTREAM_URL"]


def outgoing(body: bytes) -> bytes:
    """The body as it is sent upstream: the caller's, with CALL_EXTRA's fields merged in
    when set (how a test changes what the service sends, as a regression would)."""
    extra = os.environ.get("CALL_EXTRA")
    if not extra:
        return body
    return json.dumps(json.loads(body) | json.loads(extra)).encode()


def serve(call: Call) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def send(self, status: int, data: bytes, upstream: int | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if upstream is not None:
                self.send_header("X-Upstream-Status", str(upstream))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self.send(200 if self.path == "/health" else 404, b'{"ok": true}')

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != "/call":
                return self.send(404, b"{}")
            try:
                status, data = call(
                    upstream_url(self.headers.get("X-Upstream-Url")), outgoing(body)
                )
            except Exception as e:
                return self.send(502, json.dumps({"error": str(e)}).encode())
            self.send(200, data, status)

        def log_message(self, format: str, *args: object) -> None:
            pass  # no access log: the test reads the answers

    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
