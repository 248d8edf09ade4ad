"""Traffic for the notes sample (stdlib only): each answer is checked, on an empty table."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

BASE = os.environ["BASE_URL"]
STEPS = [
    ("GET", "/notes", None, 200, []),
    ("POST", "/notes", {"body": "one"}, 201, {"id": 1, "body": "one"}),
    ("POST", "/notes", {"body": "two"}, 201, {"id": 2, "body": "two"}),
    ("GET", "/notes", None, 200, [{"id": 1, "body": "one"}, {"id": 2, "body": "two"}]),
    ("GET", "/notes/1", None, 200, {"id": 1, "body": "one", "added": 2}),
    ("GET", "/notes/99", None, 404, {"detail": "no such note"}),
]


def main() -> int:
    for method, path, send, status, body in STEPS:
        data = json.dumps(send).encode() if send is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        request = urllib.request.Request(BASE + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                got = (response.status, json.loads(response.read()))
        except urllib.error.HTTPError as e:
            got = (e.code, json.loads(e.read()))
        print(method, path, *got)
        if got != (status, body):
            print(f"traffic: {method} {path}: expected {status} {body}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
