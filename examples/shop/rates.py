"""The shop's outbound HTTP dependency: a stand-in for a third-party exchange-rate API.

``GET /rates?from=USD&to=EUR`` -> ``{"from": "USD", "to": "EUR", "rate": 0.92}`` from a
fixed table. Every request must carry ``Authorization: Bearer <RATES_TOKEN>`` (401
otherwise): the token is the secret kpy must never write into a recording.

Environment: RATES_TOKEN (required); PORT (8081); TLS_CERT and TLS_KEY (PEM files: then it
serves HTTPS). Standard library only.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import signal
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

RATES: dict[tuple[str, str], float] = {
    ("USD", "EUR"): 0.92,
    ("USD", "GBP"): 0.79,
    ("USD", "JPY"): 151.25,
    ("EUR", "USD"): 1.09,
    ("GBP", "USD"): 1.27,
}


class RatesServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], token: str) -> None:
        super().__init__(address, RatesHandler)
        self.token = token


class RatesHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real APIs do
    server_version = "rates/1.0"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path != "/rates":
            return self.reply(404, {"error": "not found"})
        if not self.authorized():
            return self.reply(401, {"error": "unauthorized"}, {"WWW-Authenticate": "Bearer"})
        query = parse_qs(url.query)
        source = query.get("from", [""])[0].upper()
        target = query.get("to", [""])[0].upper()
        if not source or not target:
            return self.reply(400, {"error": "from and to are required"})
        rate = 1.0 if source == target else RATES.get((source, target))
        if rate is None:
            return self.reply(404, {"error": f"no rate from {source} to {target}"})
        self.reply(200, {"from": source, "to": target, "rate": rate})

    def authorized(self) -> bool:
        """Constant-time comparison, so the token cannot be guessed byte by byte."""
        assert isinstance(self.server, RatesServer)
        expected = f"Bearer {self.server.token}".encode()
        return hmac.compare_digest(self.headers.get("Authorization", "").encode(), expected)

    def reply(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, sort_keys=True).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def main() -> int:
    token = os.environ.get("RATES_TOKEN")
    if not token:
        print("rates: RATES_TOKEN is not set", file=sys.stderr)
        return 2
    port = int(os.environ.get("PORT", "8081"))
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like ^C
    with RatesServer(("127.0.0.1", port), token) as server:
        if os.environ.get("TLS_CERT"):  # HTTPS, as real APIs are
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(os.environ["TLS_CERT"], os.environ.get("TLS_KEY"))
            server.socket = context.wrap_socket(server.socket, server_side=True)
        print(f"rates: listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
