"""The client services' traffic: two calls, each checked against the upstream's echo.
BASE_URL says where the service is; exits 1 on the first unexpected answer."""

from __future__ import annotations

import json
import os
import sys
import urllib.request

CALLS = [{"item": "pen", "qty": 2}, {"item": "ink", "qty": 1}]

for body in CALLS:
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        os.environ["BASE_URL"] + "/call", data, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
        upstream = response.headers["X-Upstream-Status"]
    if upstream != "200" or answer.get("body") != body:
        sys.exit(f"traffic: {body} -> {upstream} {answer}")
    print(f"POST /call {body} -> {answer}")
