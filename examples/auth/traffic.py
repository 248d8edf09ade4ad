"""Traffic for the sign-in samples (stdlib only), on an empty database: two sign-ups (the
first becomes admin), sign-ins right and wrong, the token-protected route, a role change by
a user and by the admin. Each answer's status is checked; tokens are passed on as a client
would. Environment: BASE_URL."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

BASE = os.environ["BASE_URL"]
ANN = {"email": "ann@example.test", "name": "Ann", "password": "correct horse battery"}
BOB = {"email": "bob@example.test", "name": "Bob", "password": "tr0ub4dor&3"}


def call(method: str, path: str, send: Any = None, token: str | None = None) -> Any:
    data = json.dumps(send).encode() if send is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(BASE + path, data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, body = response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        status, body = e.code, json.loads(e.read())
    print(method, path, status, json.dumps(body))
    return status, body


def main() -> int:
    steps = [
        (("POST", "/signup", ANN), 201),
        (("POST", "/signup", BOB), 201),
        (("POST", "/signup", ANN), 409),
        (("POST", "/signin", {**ANN, "password": "wrong"}), 401),
        (("POST", "/signin", ANN), 200),
        (("POST", "/signin", BOB), 200),
    ]
    tokens = []
    for (method, path, send), status in steps:
        got, body = call(method, path, send)
        if got != status:
            print(f"traffic: {method} {path}: expected {status}, got {got}", file=sys.stderr)
            return 1
        if path == "/signin" and got == 200:
            tokens.append(body["token"])
    ann, bob = tokens
    checks = [
        (("GET", "/me", None, ann), 200),
        (("GET", "/me", None, None), 401),
        (("PATCH", "/users/2/role", {"role": "editor"}, bob), 403),
        (("PATCH", "/users/2/role", {"role": "editor"}, ann), 200),
        (("GET", "/me", None, bob), 200),
    ]
    for (method, path, send, token), status in checks:
        got, _ = call(method, path, send, token)
        if got != status:
            print(f"traffic: {method} {path}: expected {status}, got {got}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
