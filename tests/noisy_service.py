"""A tiny service for tests/test_detect_noise.py: GET /thing answers a new id and the time
on every call, and a name that never changes; it calls nothing. Listens on
127.0.0.1:$PORT."""

from __future__ import annotations

import datetime
import json
import os
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # http.server calls it by this name
        if self.path != "/thing":
            self.send_error(404)
            return
        now = datetime.datetime.now().isoformat(timespec="microseconds")
        body = json.dumps({"id": uuid.uuid4().hex, "at": now, "name": "thing"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    server = HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
    print(f"listening on 127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()
