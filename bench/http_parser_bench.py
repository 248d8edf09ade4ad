"""Benchmark of HTTP/1.1 request parsers for kpy's HTTP recorder: h11 against httptools.

Run from the project root (httptools is not a dependency: ``pip install httptools`` first):

    python3 bench/http_parser_bench.py [--requests 50000] [--rounds 5]

Each variant parses the same small request ``--requests`` times and prints requests per
second (median of the rounds; the variants alternate round by round, so noise on the machine
hits each alike). "fresh" builds one parser per request, as one connection per request does;
"keep-alive" feeds every request to one parser, moving it on between requests the way the
recorder does. The last line is the whole recorder (both parsers, body shaping, redaction,
one request and its response per exchange), which is the figure that bounds recording.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import h11

from kpy_ci.protocols.http.message import HttpRecorder

REQUEST = (
    b"GET /api/users?id=42 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench/1.0\r\n"
    b"Accept: application/json\r\n\r\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 24\r\n\r\n"
    b'{"id":42,"name":"alice"}'
)

Variant = Callable[[int], None]


def h11_fresh(n: int) -> None:
    for _ in range(n):
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(REQUEST)
        while type(conn.next_event()) is not h11.EndOfMessage:
            pass


def h11_keep_alive(n: int) -> None:
    conn = h11.Connection(h11.SERVER)
    for _ in range(n):
        conn.receive_data(REQUEST)
        while type(conn.next_event()) is not h11.EndOfMessage:
            pass
        conn.send(h11.Response(status_code=400, headers=[("Content-Length", "0")]))
        conn.send(h11.EndOfMessage())
        conn.start_next_cycle()


class _Collect:
    """httptools callbacks: keep what the recorder would keep."""

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()
        self.done = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.done += 1


def httptools_fresh(n: int) -> None:
    import httptools  # type: ignore[import-not-found, unused-ignore]

    for _ in range(n):
        collect = _Collect()
        parser = httptools.HttpRequestParser(collect)
        parser.feed_data(REQUEST)
        parser.get_method()
        assert collect.done == 1


def httptools_keep_alive(n: int) -> None:
    import httptools

    collect = _Collect()
    parser = httptools.HttpRequestParser(collect)
    for _ in range(n):
        collect.url, collect.headers = b"", []
        parser.feed_data(REQUEST)
        parser.get_method()
    assert collect.done == n


def kpy_recorder(n: int) -> None:
    recorder = HttpRecorder()
    count = 0
    for i in range(n):
        recorder.client_data(REQUEST, i)
        count += len(recorder.server_data(RESPONSE, i))
    assert count == n


VARIANTS: dict[str, Variant] = {
    "h11 fresh": h11_fresh,
    "h11 keep-alive": h11_keep_alive,
    "httptools fresh": httptools_fresh,
    "httptools keep-alive": httptools_keep_alive,
    "kpy HttpRecorder (request + response)": kpy_recorder,
}


def available() -> dict[str, Variant]:
    try:
        import httptools  # noqa: F401
    except ImportError:
        print("httptools is not installed (pip install httptools): h11 only")
        return {k: v for k, v in VARIANTS.items() if "httptools" not in k}
    return VARIANTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    variants = available()
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, run in variants.items():
            start = time.perf_counter()
            run(args.requests)
            rates[name].append(args.requests / (time.perf_counter() - start))
    results: dict[str, Any] = {name: statistics.median(r) for name, r in rates.items()}
    width = max(map(len, results))
    print(f"{args.requests} requests x {args.rounds} rounds, median requests/s:")
    for name, rate in results.items():
        print(f"  {name:<{width}}  {rate:>10,.0f}")


if __name__ == "__main__":
    main()
