"""HTTP/1.x, sans-I/O: inbound requests become test cases, outbound calls become mocks.

Parsing is h11's, in both directions of one connection: a server-role ``h11.Connection``
reads the client's requests, a client-role one reads the server's responses. The second is
told each request's method and ``Connection``/``Upgrade`` headers (never its body), which
is all it needs to frame the answer: no body after HEAD, 204, 304 or a 1xx; a body up to
EOF when the response has no length. The request side is moved on to its next request by
an answer nobody sends, so keep-alive and pipelining come from h11's own state machine.

An exchange's ``request``::

    {method, url (the target as sent), version, headers: [[name, value], ...], body?}

and its ``response``: ``{status, reason, version, headers, body?, interim?}``. Header names
keep their case and order; values are latin-1 (lossless), without surrounding spaces.
``interim`` lists the 1xx answers (100 Continue, 103) before the final one; they are notes,
and ``encode_response`` leaves them out. ``body`` is absent when nothing followed the head
(HEAD, 204, 304, an empty body); otherwise one of ``{json: value}``, ``{text: str}``,
``{base64: str}``, decoded from Content-Encoding gzip, deflate or br with
``encoding: <the codings>`` noted, and ``chunked: true`` when it came chunked. The headers
stay as sent; re-encoding frames the body anew (one chunk, or a corrected Content-Length).
Chunked trailers, when any, are ``trailers: [[name, value], ...]``.

Secrets: Authorization and Proxy-Authorization keep only their scheme, Cookie and Set-Cookie
only cookie names and attributes (``redact_headers``), in every exchange before it is
returned. JSON fields named in kpy.yml go through ``redact_json_fields`` (wired by record).

``raw_response`` stays empty: replay is not byte-exact for HTTP (bodies are re-compressed
and re-framed, JSON re-serialized), so there are no bytes to check it against, and the raw
bytes would carry the cookies and credentials redaction removed.

Not covered: a protocol switch (101 to an Upgrade, 2xx to CONNECT) ends the record at that
exchange, and what follows on the connection is ignored; HTTP/1.0 keep-alive is not HTTP/1.1
and h11 refuses a second request on it (``HttpParseError``: the proxy relays the rest as TCP).
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import brotli  # type: ignore[import-untyped]
import h11

from kpy_ci.protocols.base import (
    REDACTED,
    Doc,
    Exchange,
    ProtocolError,
    from_text_or_base64,
    text_or_base64,
)

Headers = list[list[str]]
MAX_HEAD = 1 << 20  # bytes of one head (or chunk header) h11 may buffer; servers allow far less
_RawHeaders = list[tuple[bytes, bytes]]


class HttpParseError(ProtocolError):
    """The bytes stopped being HTTP/1.1."""


# --- sniffing -------------------------------------------------------------------------------

_METHOD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ-_")
_TARGET = frozenset(range(0x21, 0x7F))  # visible ASCII: a request target has no spaces


def sniff(first: bytes) -> bool:
    """Whether ``first`` is, or begins, a request line ``METHOD SP target SP HTTP/1.x``. A
    line cut short answers for what is there: ``b"GE"`` may be GET. PostgreSQL (a length
    first), RESP (``*``, ``$``, or an inline ``GET key`` line), TLS and HTTP/2's preface fail."""
    end = first.find(b"\n")
    complete = end >= 0
    line = (first[:end] if complete else first).removesuffix(b"\r")
    method, sp, rest = line.partition(b" ")
    if not method or len(method) > 20 or not set(method) <= _METHOD or not method[:1].isalpha():
        return False
    if not sp:
        return not complete
    target, sp, version = rest.partition(b" ")
    if not set(target) <= _TARGET or (sp and not target):
        return False
    if not sp:
        return not complete
    if complete or len(version) >= 8:
        return len(version) == 8 and version[:7] == b"HTTP/1." and version[7:].isdigit()
    return b"HTTP/1."[: len(version)] == version[:7]


# --- bodies ---------------------------------------------------------------------------------


def header_tokens(headers: Sequence[Sequence[str]], name: str) -> list[str]:
    """The comma-separated tokens of every ``name`` header, lower case, in order."""
    found = [value for key, value in headers if key.lower() == name.lower()]
    return [t.strip().lower() for value in found for t in value.split(",") if t.strip()]


def _content_type(headers: Sequence[Sequence[str]]) -> str:
    return next((v.lower() for k, v in headers if k.lower() == "content-type"), "")


def _decompress(data: bytes, codings: list[str]) -> bytes:
    for coding in reversed(codings):  # the last coding listed was applied last
        if coding in ("gzip", "x-gzip"):
            data = gzip.decompress(data)
        elif coding == "deflate":
            try:
                data = zlib.decompress(data)
            except zlib.error:  # some servers send raw deflate, without the zlib wrapper
                data = zlib.decompress(data, -zlib.MAX_WBITS)
        elif coding == "br":
            data = brotli.decompress(data)
        else:
            raise ValueError(f"unknown content coding {coding!r}")
    return data


def _compress(data: bytes, codings: list[str]) -> bytes:
    for coding in codings:
        if coding in ("gzip", "x-gzip"):
            data = gzip.compress(data, mtime=0)
        elif coding == "deflate":
            data = zlib.compress(data)
        elif coding == "br":
            data = brotli.compress(data)
        else:
            raise ValueError(f"cannot re-encode content coding {coding!r}")
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise ValueError("duplicate keys")  # the last would win: not lossless, keep it as text
    return value


def _shape(data: bytes, content_type: str) -> Doc:
    """JSON when it says so or looks so ({ or [ first) and parses; else text when UTF-8;
    else base64. Text and base64 give back the same bytes; JSON the same value."""
    if "json" in content_type or data.lstrip()[:1] in (b"{", b"["):
        try:
            return {"json": json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)}
        except (ValueError, RecursionError):
            pass
    text = text_or_base64(data)
    return {"text": text} if isinstance(text, str) else text


_DECODE_ERRORS = (ValueError, OSError, EOFError, zlib.error, brotli.error)


def decode_body(headers: Sequence[Sequence[str]], raw: bytes) -> Doc | None:
    """A body as received (de-chunked, still content-encoded) as a YAML-ready doc, or None
    when empty. A body whose coding is unknown or corrupt is kept as sent, with no
    ``encoding`` note: the note means "stored decoded, re-encode on the way out"."""
    chunked = "chunked" in header_tokens(headers, "transfer-encoding")
    if not raw and not chunked:
        return None
    codings = [c for c in header_tokens(headers, "content-encoding") if c != "identity"]
    data = raw
    if codings and raw:
        try:
            data = _decompress(raw, codings)
        except _DECODE_ERRORS:
            codings = []
    doc = _shape(data, _content_type(headers))
    if codings and raw:
        doc["encoding"] = ", ".join(codings)
    if chunked:
        doc["chunked"] = True
    return doc


def encode_body(doc: Doc, headers: Sequence[Sequence[str]]) -> bytes:
    """The bytes of a body doc, re-compressed when it notes an ``encoding`` (which must then
    be what Content-Encoding says). Not framed: see ``encode_response``."""
    if "json" in doc:
        data = json.dumps(doc["json"], ensure_ascii=False, separators=(",", ":")).encode()
    elif "text" in doc:
        data = str(doc["text"]).encode("utf-8")
    else:
        data = from_text_or_base64(doc)
    if not doc.get("encoding"):
        return data
    codings = [c.strip().lower() for c in str(doc["encoding"]).split(",")]
    sent = [c for c in header_tokens(headers, "content-encoding") if c != "identity"]
    if codings != sent:
        raise ValueError(f"body encoding {doc['encoding']!r} but Content-Encoding {sent!r}")
    return _compress(data, codings)


# --- secrets --------------------------------------------------------------------------------


AUTHORIZATION = ("authorization", "proxy-authorization")
"""The headers whose credentials are redacted, by lower-case name."""


def _redact_cookie(pair: str) -> str:
    name, eq, _ = pair.strip().partition("=")
    return f"{name}={REDACTED}" if eq else REDACTED


def redact_headers(headers: Sequence[Sequence[str]], also: Iterable[str] = ()) -> Headers:
    """A copy with secrets replaced by REDACTED: Authorization and Proxy-Authorization keep
    their scheme (``Bearer [redacted by kpy]``); Cookie keeps cookie names; Set-Cookie keeps
    the name and attributes; headers named in ``also`` lose their whole value. Idempotent."""
    whole = {name.lower() for name in also}
    out: Headers = []
    for name, value in headers:
        key = name.lower()
        if key in AUTHORIZATION:
            value = value.strip()
            scheme, _, credentials = value.partition(" ")
            value = f"{scheme} {REDACTED}" if credentials and value != REDACTED else REDACTED
        elif key == "cookie":
            value = "; ".join(_redact_cookie(pair) for pair in value.split(";") if pair.strip())
        elif key == "set-cookie":
            first, sep, attributes = value.partition(";")
            value = _redact_cookie(first) + sep + attributes
        elif key in whole:
            value = REDACTED
        out.append([name, value])
    return out


def credential(value: str) -> str:
    """An Authorization value's credentials: the part after the scheme (all of it when
    there is no scheme)."""
    return value.strip().partition(" ")[2].strip() or value.strip()


def credentials_of(headers: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """What ``redact_headers`` takes from Authorization and Proxy-Authorization, in header
    order."""
    return tuple(credential(value) for name, value in headers if name.lower() in AUTHORIZATION)


def redact_request(request: Doc) -> Doc:
    """A request with its headers' credentials and cookies replaced (``redact_headers``)."""
    if not isinstance(request.get("headers"), list):
        return request
    return {**request, "headers": redact_headers(request["headers"])}


def redact_json_fields(doc: Any, names: Iterable[str]) -> Any:
    """A copy of a JSON value (or a body doc) where the value of every object member named
    in ``names`` (case-insensitive), at any depth, is REDACTED."""
    wanted = {name.lower() for name in names}

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: REDACTED if str(k).lower() in wanted else walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(doc)


# --- encoding -------------------------------------------------------------------------------


def _lines(headers: Iterable[Sequence[str]]) -> bytes:
    return b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers)


def _encode_message(start_line: str, doc: Doc) -> bytes:
    """Head and body. An absent body writes nothing after the head, whatever the headers say
    (the answer to HEAD keeps its Content-Length); a present one is framed as the headers
    say: one chunk and trailers, or a Content-Length set to its new size, or up to EOF."""
    headers: Headers = [[str(n), str(v)] for n, v in doc.get("headers") or []]
    body = doc.get("body")
    tail = b""
    if body is not None:
        data = encode_body(body, headers)
        if "chunked" in header_tokens(headers, "transfer-encoding"):
            chunk = b"%x\r\n%s\r\n" % (len(data), data) if data else b""
            tail = chunk + b"0\r\n" + _lines(doc.get("trailers") or []) + b"\r\n"
        else:
            size = str(len(data))
            headers = [[n, size if n.lower() == "content-length" else v] for n, v in headers]
            tail = data
    return f"{start_line}\r\n".encode("latin-1") + _lines(headers) + b"\r\n" + tail


def encode_response(response: Doc) -> bytes:
    """Wire bytes of a recorded response: same status, headers and decoded body; the body
    re-compressed and re-framed (not byte-exact, and need not be for HTTP). A response
    without length (no Content-Length, not chunked) must be followed by closing."""
    version = response.get("version", "1.1")
    return _encode_message(
        f"HTTP/{version} {response['status']} {response.get('reason', '')}", response
    )


def encode_request(request: Doc) -> bytes:
    """Wire bytes of a recorded request, as ``encode_response`` does for responses."""
    version = request.get("version", "1.1")
    return _encode_message(f"{request['method']} {request['url']} HTTP/{version}", request)


# --- recording ------------------------------------------------------------------------------


def _text(value: bytes) -> str:
    return value.decode("latin-1")


def _headers(raw: _RawHeaders) -> Headers:
    return [[_text(name), _text(value)] for name, value in raw]


@dataclass(eq=False)
class _Pair:
    """One request and its response while they are read."""

    request: h11.Request
    started: int
    request_body: bytearray = field(default_factory=bytearray)
    request_trailers: _RawHeaders = field(default_factory=list)
    request_done: bool = False
    sent: bool = False  # told to the response reader
    interim: list[h11.InformationalResponse] = field(default_factory=list)
    response: h11.Response | h11.InformationalResponse | None = None
    response_body: bytearray = field(default_factory=bytearray)
    response_trailers: _RawHeaders = field(default_factory=list)
    response_done: bool = False
    ended: int = 0

    def exchange(self) -> Exchange:
        req, resp = self.request, self.response
        assert resp is not None
        request: Doc = {
            "method": _text(req.method),
            "url": _text(req.target),
            "version": _text(req.http_version),
        }
        _put(request, list(req.headers.raw_items()), self.request_body, self.request_trailers)
        if not self.request_done:
            request["incomplete"] = True  # the client stopped sending it (after an early answer)
        response: Doc = {
            "status": resp.status_code,
            "reason": _text(resp.reason),
            "version": _text(resp.http_version),
        }
        status, method = resp.status_code, req.method
        bodyless = method == b"HEAD" or status < 200 or status in (204, 304)
        bodyless |= method == b"CONNECT" and status < 300
        body = None if bodyless else self.response_body
        _put(response, list(resp.headers.raw_items()), body, self.response_trailers)
        if self.interim:
            response["interim"] = [
                {
                    "status": i.status_code,
                    "reason": _text(i.reason),
                    "headers": redact_headers(_headers(list(i.headers.raw_items()))),
                }
                for i in self.interim
            ]
        credentials = credentials_of(_headers(list(req.headers.raw_items())))
        return Exchange(
            "http", request, response, self.started, self.ended, credentials=credentials
        )


def _put(doc: Doc, raw: _RawHeaders, body: bytearray | None, trailers: _RawHeaders) -> None:
    headers = _headers(raw)
    doc["headers"] = redact_headers(headers)
    decoded = None if body is None else decode_body(headers, bytes(body))
    if decoded is not None:
        doc["body"] = decoded
    if trailers:
        doc["trailers"] = redact_headers(_headers(trailers))


def _answer_headers(request: h11.Request) -> _RawHeaders:
    """What the response reader must know of a request: no body, whether the client will
    close, and what protocol it proposed (h11 frames a 101 or a CONNECT answer by them)."""
    headers = [(b"Host", b"kpy"), (b"Content-Length", b"0")]
    closing = request.http_version < b"1.1" or any(
        k == b"connection" and b"close" in v.lower() for k, v in request.headers
    )
    if closing:
        headers.append((b"Connection", b"close"))
    headers += [(b"Upgrade", v) for k, v in request.headers if k == b"upgrade"]
    return headers


class _Timeline:
    """When the bytes of one stream arrived: offset -> the ``at`` of the chunk holding it.
    Asked about ever later offsets, so it forgets the chunks before the last one asked."""

    def __init__(self) -> None:
        self.chunks: deque[tuple[int, int]] = deque()  # (offset past the chunk, at)
        self.size = 0

    def add(self, size: int, at: int) -> None:
        self.size += size
        self.chunks.append((self.size, at))

    def at(self, offset: int) -> int:
        while len(self.chunks) > 1 and self.chunks[0][0] <= offset:
            self.chunks.popleft()
        return self.chunks[0][1] if self.chunks else 0


class HttpRecorder:
    """The Recorder of base.py for one HTTP/1.x connection."""

    def __init__(self) -> None:
        self._requests = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self._responses = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self._pairs: deque[_Pair] = deque()  # in request order, until returned
        self._reading: _Pair | None = None  # whose request body is arriving
        self._answering: _Pair | None = None  # whose response is being read
        self._held: _Pair | None = None  # proposed a protocol switch: wait for the answer
        self._client = _Timeline()
        self._request_start = 0  # client stream offset where the next request begins
        self._server_at = 0
        self._switched = False
        self._closed = False

    def client_data(self, data: bytes, at: int) -> list[Exchange]:
        if self._switched or self._closed or not data:
            return []
        self._client.add(len(data), at)

        def step() -> None:
            self._requests.receive_data(data)
            self._read_requests()
            self._read_responses(at)

        return self._run(step)

    def server_data(self, data: bytes, at: int) -> list[Exchange]:
        if self._switched or self._closed or not data:
            return []
        self._server_at = at

        def step() -> None:
            self._responses.receive_data(data)
            self._read_responses(at)

        return self._run(step)

    def close(self, at: int) -> list[Exchange]:
        """Ends responses delimited by EOF; keeps those whose request the client never
        finished (marked ``incomplete``); drops requests that got no complete answer."""
        if self._closed:
            return []
        self._closed = True
        if not self._switched:
            try:
                self._responses.receive_data(b"")
                self._read_responses(self._server_at)
            except h11.ProtocolError:
                pass  # cut short: that response is dropped below
        done = self._complete()
        done += [pair.exchange() for pair in self._pairs if pair.response_done]
        self._pairs.clear()
        return done

    def _run(self, step: Callable[[], None]) -> list[Exchange]:
        try:
            step()
        except h11.ProtocolError as e:
            self._closed = True
            raise HttpParseError(f"not HTTP/1.1: {e}", self._complete()) from e
        return self._complete()

    def _complete(self) -> list[Exchange]:
        done = []
        while self._pairs and self._pairs[0].request_done and self._pairs[0].response_done:
            done.append(self._pairs.popleft().exchange())
        return done

    def _read_requests(self) -> None:
        while self._held is None and not self._switched:
            event = self._requests.next_event()
            if isinstance(event, h11.Request):
                self._reading = _Pair(event, started=self._client.at(self._request_start))
                self._pairs.append(self._reading)
            elif isinstance(event, h11.Data):
                assert self._reading is not None
                self._reading.request_body += event.data
            elif isinstance(event, h11.EndOfMessage):
                pair, self._reading = self._reading, None
                assert pair is not None
                pair.request_trailers = list(event.headers.raw_items())
                pair.request_done = True
                self._next_request(pair)
            else:  # NEED_DATA, PAUSED, ConnectionClosed
                return

    def _next_request(self, pair: _Pair) -> None:
        """Move the request reader past ``pair`` with a stand-in answer, which only h11
        sees. A proposed protocol switch waits for the real answer: a refusal goes on."""
        state = self._requests.their_state  # DONE, MUST_CLOSE or MIGHT_SWITCH_PROTOCOL
        if state is h11.MUST_CLOSE:
            return  # the client said it sends nothing more
        if state is not h11.DONE and not pair.response_done:
            self._held = pair
            return
        self._requests.send(h11.Response(status_code=400, headers=[("Content-Length", "0")]))
        self._requests.send(h11.EndOfMessage())
        if self._requests.states == {h11.CLIENT: h11.DONE, h11.SERVER: h11.DONE}:
            self._requests.start_next_cycle()
            self._request_start = self._client.size - len(self._requests.trailing_data[0])

    def _read_responses(self, at: int) -> None:
        while not self._switched:
            pair = self._answering or self._ask_next()
            if pair is None:
                return
            event = self._responses.next_event()
            if isinstance(event, h11.InformationalResponse | h11.Response):
                if self._responses.their_state is h11.SWITCHED_PROTOCOL:
                    pair.response = event
                    self._switched = True
                    self._finish(pair, at, [])
                elif isinstance(event, h11.Response):
                    pair.response = event
                else:
                    pair.interim.append(event)
            elif isinstance(event, h11.Data):
                pair.response_body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self._finish(pair, at, list(event.headers.raw_items()))
            else:  # NEED_DATA, PAUSED, ConnectionClosed
                return

    def _ask_next(self) -> _Pair | None:
        """Tell the response reader about the next request, when it is ready for one."""
        pair = next((p for p in self._pairs if not p.sent), None)
        if pair is None or self._responses.our_state is not h11.IDLE:
            return None
        request = pair.request
        self._responses.send(
            h11.Request(
                method=request.method, target=request.target, headers=_answer_headers(request)
            )
        )
        self._responses.send(h11.EndOfMessage())
        pair.sent = True
        self._answering = pair
        return pair

    def _finish(self, pair: _Pair, at: int, trailers: _RawHeaders) -> None:
        pair.response_trailers = trailers
        pair.response_done = True
        pair.ended = at
        self._answering = None
        if self._switched:
            return
        if self._responses.states == {h11.CLIENT: h11.DONE, h11.SERVER: h11.DONE}:
            self._responses.start_next_cycle()
        if self._held is pair:  # the switch was refused: read on
            self._held = None
            self._next_request(pair)
            self._read_requests()
