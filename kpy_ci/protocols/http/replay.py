"""HTTP/1.x at replay: how an outbound call finds its mock (``MATCHER``) and a server that
answers a client from mocks (``HttpMockServer``). Sans-I/O; h11 reads the requests.

A call matches a mock with the same method, request target and body (JSON equal in
meaning, whatever its key order or spacing). Headers are not compared: they carry what
changes between runs (a port in Host, a token the recording redacted). A call no mock
matches gets ``502 Bad Gateway`` naming it. Keep-alive and pipelining work as h11 allows.
"""

from __future__ import annotations

import json
from collections.abc import Hashable

import h11

from kpy_ci.protocols.base import Doc, Matcher, MockSource, as_recorded, no_partials, no_setup
from kpy_ci.protocols.http.message import (
    MAX_HEAD,
    decode_body,
    encode_response,
    header_tokens,
    redact_headers,
)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def _body_key(body: Doc | None) -> Hashable:
    if body is None:
        return None
    if "json" in body:
        return ("json", json.dumps(body["json"], sort_keys=True, separators=(",", ":")))
    if "text" in body:
        return ("text", body["text"])
    return ("base64", body.get("base64"))


def match_key(request: Doc) -> Hashable:
    return (
        str(request.get("method", "")).upper(),
        request.get("url"),
        _body_key(request.get("body")),
    )


def describe(request: Doc) -> str:
    line = f"{request.get('method')} {request.get('url')}"
    body = request.get("body")
    if body is not None:
        shown = json.dumps(body["json"]) if "json" in body else str(body.get("text", "<binary>"))
        line += f" {shown[:120]}"
    return line


def expected(request: Doc) -> bool:
    return str(request.get("method", "")).upper() not in SAFE_METHODS


MATCHER = Matcher(match_key, describe, expected, no_setup, no_partials, as_recorded)


def _miss(request: Doc) -> bytes:
    body = f"kpy: no recorded mock matches {describe(request)}\n".encode()
    head = (
        "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nX-Kpy-Miss: 1\r\n\r\n"
    )
    return head.encode() + body


def _text(value: bytes) -> str:
    return value.decode("latin-1")


class HttpMockServer:
    def __init__(self, source: MockSource) -> None:
        self.source = source
        self.closed = False
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self._request: h11.Request | None = None
        self._body = bytearray()

    def opening(self) -> bytes:
        return b""

    def idle(self) -> bytes:
        return b""

    def client_data(self, data: bytes) -> bytes:
        self._conn.receive_data(data)
        out = bytearray()
        while not self.closed:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError:
                self.closed = True
                break
            if event is h11.NEED_DATA or event is h11.PAUSED:
                break
            if isinstance(event, h11.Request):
                self._request, self._body = event, bytearray()
            elif isinstance(event, h11.Data):
                self._body += event.data
            elif isinstance(event, h11.EndOfMessage):
                out += self._answer()
            elif isinstance(event, h11.ConnectionClosed):
                self.closed = True
        return bytes(out)

    def _answer(self) -> bytes:
        req = self._request
        assert req is not None
        headers = [[_text(n), _text(v)] for n, v in req.headers.raw_items()]
        # redacted as the recording was: a miss report shows this request, and is written
        request: Doc = {
            "method": _text(req.method),
            "url": _text(req.target),
            "version": _text(req.http_version),
            "headers": redact_headers(headers),
        }
        body = decode_body(headers, bytes(self._body))
        if body is not None:
            request["body"] = body
        mock = self.source.serve(request)
        data = _miss(request) if mock is None else encode_response(mock["response"])
        response = mock["response"] if mock is not None else {"headers": []}
        # move h11 on to the next request with an answer nobody sends: we send our bytes
        said = response.get("headers") or []
        closing = "close" in header_tokens(said, "connection")
        unframed = not header_tokens(said, "content-length") and not header_tokens(
            said, "transfer-encoding"
        )
        closing |= unframed and response.get("body") is not None  # its body ends at EOF
        self._conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
        self._conn.send(h11.EndOfMessage())
        if closing or self._conn.our_state is not h11.DONE:
            self.closed = True
        else:
            try:
                self._conn.start_next_cycle()
            except h11.LocalProtocolError:
                self.closed = True  # the client asked to close (Connection: close, HTTP/1.0)
        return data
