"""The shop's traffic: a fixed sequence of requests that covers every endpoint, each checked
against the answer the seeded data must give. kpy records a run of it as test cases.

Run it against a freshly seeded shop (seed.sql, an empty Redis): the answers depend on the
order of the requests (cache misses, stock, order ids). Prints one line per request; exits 1
on the first unexpected answer. BASE_URL (http://127.0.0.1:8080) says where the shop is.
Standard library only, so it runs wherever python3 does.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Step:
    method: str
    path: str
    status: int
    body: Any
    """The JSON the shop must answer, compared whole."""
    send: Any = None
    """A JSON body to send, if any."""
    headers: dict[str, str] = field(default_factory=dict)
    """Response headers that must be present, with these values."""


MUG = {"id": 1, "sku": "MUG-01", "name": "Coffee mug", "price": "12.50", "stock": 10}
TEE = {"id": 2, "sku": "TEE-01", "name": "kpy T-shirt", "price": "19.99", "stock": 25}
STICKERS = {"id": 3, "sku": "STK-01", "name": "Sticker pack", "price": "3.25", "stock": 5}
ORDER = {
    "id": 1,
    "product_id": 1,
    "quantity": 2,
    "total_usd": "25.00",
    "currency": "EUR",
    "total": "23.00",
}

STEPS = [
    Step("GET", "/health", 200, {"status": "ok"}),
    Step("GET", "/products", 200, [MUG, TEE, STICKERS], headers={"X-Cache": "miss"}),
    Step("GET", "/products", 200, [MUG, TEE, STICKERS], headers={"X-Cache": "hit"}),
    Step("GET", "/products/2", 200, TEE),
    Step("GET", "/products/99", 404, {"error": "product 99 not found"}),
    Step(
        "GET",
        "/convert?amount=19.99&to=EUR",
        200,
        {"amount": "19.99", "from": "USD", "to": "EUR", "rate": "0.92", "converted": "18.39"},
    ),
    Step(
        "GET",
        "/convert?amount=ten&to=EUR",
        400,
        {"error": "amount must be a decimal number like 12.50"},
    ),
    Step("GET", "/convert?amount=5&to=XYZ", 400, {"error": "unknown currency XYZ"}),
    Step(
        "POST",
        "/orders",
        201,
        ORDER,
        send={"product_id": 1, "quantity": 2, "currency": "EUR"},
        headers={"Location": "/orders/1"},
    ),
    Step(
        "POST",
        "/orders",
        400,
        {"error": "quantity must be a positive integer"},
        send={"product_id": 1},
    ),
    Step(
        "POST",
        "/orders",
        409,
        {"error": "only 5 of product 3 in stock"},
        send={"product_id": 3, "quantity": 6},
    ),
    Step("GET", "/orders/1", 200, ORDER),
    Step("GET", "/orders/2", 404, {"error": "order 2 not found"}),
    Step(
        "GET", "/products", 200, [{**MUG, "stock": 8}, TEE, STICKERS], headers={"X-Cache": "miss"}
    ),
    Step("GET", "/stats", 200, {"orders": 1, "units_sold": 2, "product_list_views": 3}),
]


def compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def run(conn: http.client.HTTPConnection, step: Step) -> str | None:
    """Send one step; print its line; return what was wrong, or None."""
    headers = {"Accept": "application/json"}
    data = None
    if step.send is not None:
        data = json.dumps(step.send).encode()
        headers["Content-Type"] = "application/json"
    conn.request(step.method, step.path, body=data, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw.decode(errors="replace")
    shown = " ".join(f"{name}: {response.getheader(name)}" for name in step.headers)
    print(f"{step.method} {step.path} -> {response.status} {compact(body)} {shown}".rstrip())
    if response.status != step.status:
        return f"status {response.status}, expected {step.status}"
    if body != step.body:
        return f"body {compact(body)}, expected {compact(step.body)}"
    for name, value in step.headers.items():
        if response.getheader(name) != value:
            return f"header {name}: {response.getheader(name)!r}, expected {value!r}"
    return None


def main() -> int:
    base = urlsplit(os.environ.get("BASE_URL", "http://127.0.0.1:8080"))
    # one keep-alive connection for the whole sequence, as real clients do
    conn = http.client.HTTPConnection(base.hostname or "127.0.0.1", base.port or 80, timeout=10)
    prefix = base.path.rstrip("/")
    try:
        for step in STEPS:
            wrong = run(conn, replace(step, path=prefix + step.path))
            if wrong:
                print(f"traffic: {step.method} {step.path}: {wrong}", file=sys.stderr)
                return 1
    except OSError as e:
        print(f"traffic: {base.geturl()}: {e}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
