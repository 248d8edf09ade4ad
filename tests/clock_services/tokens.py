"""POST /login: a token {"exp": now + LIFETIME, "sig": HMAC}, and when it was issued;
GET /check with X-Token: 200 while it has not expired by the clock, else 401.
It sleeps a little in each request (time.sleep: an absolute monotonic deadline since
Python 3.11), so a broken sleep shows."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = b"clock-test-secret"
LIFETIME = int(os.environ.get("LIFETIME", "3"))


def sign(exp: int) -> str:
    return hmac.new(SECRET, str(exp).encode(), hashlib.sha256).hexdigest()[:16]


class Handler(BaseHTTPRequestHandler):
    def answer(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        time.sleep(0.005)
        exp = int(time.time()) + LIFETIME
        issued = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
        self.answer(200, {"token": f"{exp}.{sign(exp)}", "issued": issued})

    def do_GET(self) -> None:
        time.sleep(0.005)
        exp, _, sig = self.headers.get("X-Token", "").partition(".")
        if not exp.isdigit() or not hmac.compare_digest(sig, sign(int(exp))):
            self.answer(403, {"error": "bad token"})
        elif int(exp) <= time.time():
            self.answer(401, {"error": "expired"})
        else:
            self.answer(200, {"ok": True})

    def log_message(self, *args: object) -> None:
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
