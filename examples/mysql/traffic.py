"""Traffic for the MySQL samples (stdlib only), on an empty database and cache: three books
added, one read twice (a cache miss, then a hit), a list by author, a price change (the
cached copy dropped, so the next read misses again), a loan taken and refused, a book
deleted and gone, the totals. Each answer's status is checked. Environment: BASE_URL."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

BASE = os.environ["BASE_URL"]
DUNE = {
    "isbn": 9780441172719,
    "title": "Dune",
    "author": "Frank Herbert",
    "summary": "A desert planet, its spice, and the boy who would rule it.",
    "price": "9.99",
    "published": "1965-08-01",
}
MESSIAH = {
    "isbn": 9780593098233,
    "title": "Dune Messiah",
    "author": "Frank Herbert",
    "price": "12.50",
    "published": "1969-10-15",
}
NEUROMANCER = {
    "isbn": 9780441569595,
    "title": "Neuromancer",
    "author": "William Gibson",
    "summary": "The sky above the port was the color of television.",
    "price": "8.75",
}
HERBERT = "/books?" + urllib.parse.urlencode({"author": "Frank Herbert"})

STEPS: list[tuple[str, str, Any, int]] = [
    ("POST", "/books", DUNE, 201),
    ("POST", "/books", MESSIAH, 201),
    ("POST", "/books", NEUROMANCER, 201),
    ("GET", "/books/1", None, 200),  # from MySQL, then cached
    ("GET", "/books/1", None, 200),  # from Redis
    ("GET", HERBERT, None, 200),
    ("PATCH", "/books/1", {"price": "10.49"}, 200),  # the cached copy dropped
    ("GET", "/books/1", None, 200),  # from MySQL again: the new price
    ("POST", "/loans", {"book_id": 2, "reader": "ann"}, 201),
    ("POST", "/loans", {"book_id": 2, "reader": "bob"}, 409),
    ("DELETE", "/books/3", None, 200),
    ("GET", "/books/3", None, 404),
    ("GET", "/stats", None, 200),
]


def call(method: str, path: str, send: Any = None) -> tuple[int, Any]:
    data = json.dumps(send).encode() if send is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    request = urllib.request.Request(BASE + path, data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, body = response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        status, body = e.code, json.loads(e.read())
    print(method, path, status, json.dumps(body))
    return status, body


def main() -> int:
    for method, path, send, status in STEPS:
        got, _ = call(method, path, send)
        if got != status:
            print(f"traffic: {method} {path}: expected {status}, got {got}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
