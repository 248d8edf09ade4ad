"""A real HTTP/1.1 server (http.server, in a thread) and real clients (http.client, urllib,
raw sockets) for the HTTP protocol tests: each scenario is one client conversation, run
through tests/capture.py's relay so the test gets the very bytes that crossed."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import brotli  # type: ignore[import-untyped]

TOKEN = "tok-Secret-8c1f2"
COOKIE = "cookie-Secret-55aa7"
SESSION = "session-Secret-9d0e3"
SECRETS = (TOKEN, COOKIE, SESSION)

DOC = {"items": [1, 2, 3], "name": "kpy", "nested": {"ok": True, "pi": 3.14, "none": None}}
TEXT = "héllo from kpy, " * 40  # compressible, and not ASCII
BINARY = bytes(range(256)) * 8  # not UTF-8
PARTS = [b'{"part":', b" [1, 2,", b" 3]}"]  # a chunked JSON response, one write each
COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and 100 Continue for Expect

    def log_message(self, format: str, *args: object) -> None:
        pass

    def reply(self, status: int, body: bytes = b"", *headers: tuple[str, str]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self) -> bytes:
        if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = b""
        while size := int(self.rfile.readline().split(b";")[0], 16):
            body += self.rfile.read(size)
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b""):
            pass  # trailers
        return body

    def do_POST(self) -> None:
        kind = self.headers.get("Content-Type", "application/octet-stream")
        self.reply(200, self.read_body(), ("Content-Type", kind))

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path, query = urlsplit(self.path).path, urlsplit(self.path).query
        as_json = ("Content-Type", "application/json")
        if path == "/hello":
            self.reply(200, f"hello {query}".encode(), ("Content-Type", "text/plain"))
        elif path == "/json":
            self.reply(200, json.dumps(DOC).encode(), as_json)
        elif path == "/binary":
            self.reply(200, BINARY, ("Content-Type", "application/octet-stream"))
        elif path.lstrip("/") in COMPRESS:
            coding = path.lstrip("/")
            body = COMPRESS[coding](TEXT.encode())
            self.reply(200, body, ("Content-Type", "text/plain"), ("Content-Encoding", coding))
        elif path == "/chunked":
            self.chunked(as_json)
        elif path == "/empty":
            self.reply(204)
        elif path == "/etag":
            fresh = self.headers.get("If-None-Match") == '"v1"'
            self.reply(304 if fresh else 200, b"" if fresh else b"tagged", ("ETag", '"v1"'))
        elif path == "/close":
            self.until_close()
        elif path == "/login":
            self.login()
        elif path == "/upgrade":
            self.upgrade()
        else:
            self.reply(404, b"no such page")

    def chunked(self, *headers: tuple[str, str]) -> None:
        self.send_response(200)
        for name, value in [*headers, ("Transfer-Encoding", "chunked")]:
            self.send_header(name, value)
        self.end_headers()
        for part in PARTS:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            time.sleep(0.02)  # separate segments: the body arrives in pieces
        self.wfile.write(b"0\r\n\r\n")

    def until_close(self) -> None:
        """No length: the body ends when the connection does."""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"the body runs ")
        time.sleep(0.02)
        self.wfile.write(b"until the server closes")
        self.close_connection = True

    def login(self) -> None:
        granted = self.headers.get("Authorization") == f"Bearer {TOKEN}"
        granted &= f"pref={COOKIE}" in self.headers.get("Cookie", "")
        cookie = f"session={SESSION}; Path=/; HttpOnly; SameSite=Lax"
        body = json.dumps({"user": "alice" if granted else None}).encode()
        self.reply(
            200 if granted else 401,
            body,
            ("Content-Type", "application/json"),
            ("Set-Cookie", cookie),
            ("Set-Cookie", f"theme=dark-{COOKIE}"),
        )

    def upgrade(self) -> None:
        """Switch to a toy protocol that echoes four bytes."""
        self.send_response(101)
        self.send_header("Upgrade", "kpy-echo")
        self.send_header("Connection", "Upgrade")
        self.end_headers()
        self.wfile.write(self.rfile.read(4))
        self.close_connection = True


@contextmanager
def http_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


# --- clients: one conversation each ---------------------------------------------------------


Request = tuple[str, str, dict[str, str], "bytes | str | None"]


def _exchanges(port: int, *requests: Request) -> None:
    """http.client, keep-alive: every request on one connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for method, url, headers, body in requests:
        conn.request(method, url, body=body, headers=headers)
        conn.getresponse().read()
    conn.close()


def _raw(port: int, first: bytes, then: bytes = b"", wait_for: bytes = b"") -> bytes:
    """A raw socket: send ``first``; once ``wait_for`` came back, send ``then``; read to EOF
    (the last request says Connection: close, or the server closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(first)
        got = b""
        while then and wait_for not in got:
            got += s.recv(65536)
        s.sendall(then)
        while data := s.recv(65536):
            got += data
        return got


def _get(url: str, close: bool = False) -> bytes:
    connection = "close" if close else "keep-alive"
    return f"GET {url} HTTP/1.1\r\nHost: kpy\r\nConnection: {connection}\r\n\r\n".encode()


def keep_alive(port: int) -> None:
    _exchanges(
        port,
        ("GET", "/hello?n=1", {}, None),
        ("POST", "/echo", {"Content-Type": "application/json"}, json.dumps(DOC)),
        ("GET", "/json", {}, None),
    )


def pipelined(port: int) -> None:
    _raw(port, _get("/hello?n=1") + _get("/json") + _get("/hello?n=3", close=True))


def chunked(port: int) -> None:
    def parts() -> Iterator[bytes]:
        for part in (b"first part, ", b"second part, ", b"last part"):
            yield part
            time.sleep(0.02)

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(
        "POST",
        "/echo",
        body=parts(),
        encode_chunked=True,
        headers={"Content-Type": "text/plain", "Transfer-Encoding": "chunked"},
    )
    conn.getresponse().read()
    conn.request("GET", "/chunked")
    conn.getresponse().read()
    conn.close()


def encodings(port: int) -> None:
    _exchanges(port, *[("GET", f"/{c}", {"Accept-Encoding": c}, None) for c in COMPRESS])


def binary(port: int) -> None:
    _exchanges(port, ("GET", "/binary", {}, None), ("POST", "/echo", {}, BINARY))


def bodyless(port: int) -> None:
    _exchanges(
        port,
        ("HEAD", "/hello?n=2", {}, None),
        ("GET", "/empty", {}, None),
        ("GET", "/etag", {}, None),
        ("GET", "/etag", {"If-None-Match": '"v1"'}, None),
    )


def close_delimited(port: int) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/close", timeout=10) as response:
        response.read()


def secrets(port: int) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Cookie": f"lang=en; pref={COOKIE}"}
    _exchanges(port, ("GET", "/login", headers, None))


def expect_continue(port: int) -> None:
    body = b'{"large": "enough to ask first"}'
    head = (
        f"POST /echo HTTP/1.1\r\nHost: kpy\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    _raw(port, head.encode(), body, wait_for=b"100 Continue\r\n\r\n")


def upgrade_refused(port: int) -> None:
    """http.server ignores Upgrade: the connection stays HTTP/1.1."""
    h2c = {"Upgrade": "h2c", "Connection": "Upgrade, HTTP2-Settings", "HTTP2-Settings": "AAMAAABk"}
    _exchanges(port, ("GET", "/hello?n=1", h2c, None), ("GET", "/hello?n=2", {}, None))


def upgrade(port: int) -> None:
    head = b"GET /upgrade HTTP/1.1\r\nHost: kpy\r\nUpgrade: kpy-echo\r\nConnection: Upgrade\r\n\r\n"
    _raw(port, head, b"\x00\x01\x02\x03", wait_for=b"\r\n\r\n")


SCENARIOS: dict[str, Callable[[int], None]] = {
    f.__name__: f
    for f in (
        keep_alive,
        pipelined,
        chunked,
        encodings,
        binary,
        bodyless,
        close_delimited,
        secrets,
        expect_continue,
        upgrade_refused,
        upgrade,
    )
}
