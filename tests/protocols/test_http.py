"""The HTTP recorder fed the bytes real clients and a real server exchanged (captured by a
relay), whole and re-cut; its exchanges re-encoded and parsed back with h11. The pure
helpers (sniff, bodies, redaction) on bytes of their own."""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import brotli  # type: ignore[import-untyped]
import h11
import pytest
import yaml

from kpy_ci.protocols.base import REDACTED, Exchange
from kpy_ci.protocols.http import PROTOCOL
from kpy_ci.protocols.http.message import (
    HttpParseError,
    HttpRecorder,
    decode_body,
    encode_body,
    encode_request,
    encode_response,
    redact_headers,
    redact_json_fields,
    sniff,
)
from tests.capture import CaptureRelay, Connection
from tests.protocols.http_peers import BINARY, DOC, PARTS, SCENARIOS, SECRETS, TEXT, http_server

Capture = Callable[[str], Connection]


@pytest.fixture(scope="module")
def capture() -> Iterator[Capture]:
    """Runs a scenario's client through a relay to the server, once; its one connection."""
    done: dict[str, Connection] = {}

    def run(name: str) -> Connection:
        if name not in done:
            with CaptureRelay(port) as relay:
                SCENARIOS[name](relay.port)
            assert len(relay.connections) == 1, name
            done[name] = relay.connections[0]
        return done[name]

    with http_server() as port:
        yield run


def record(conn: Connection, piece: int = 0) -> list[Exchange]:
    """The recorder fed ``conn`` as it arrived, or re-cut into ``piece``-byte pieces."""
    recorder = HttpRecorder()
    out: list[Exchange] = []
    for who, data, at in conn.chunks:
        feed = recorder.client_data if who == "client" else recorder.server_data
        step = piece or len(data)
        for i in range(0, len(data), step):
            out += feed(data[i : i + step], at)
    return out + recorder.close(conn.chunks[-1][2] + 1)


def docs(exchanges: list[Exchange]) -> list[dict[str, Any]]:
    return [{"request": e.request, "response": e.response} for e in exchanges]


def header(doc: dict[str, Any], name: str) -> list[str]:
    return [v for k, v in doc["headers"] if k.lower() == name.lower()]


def summary(exchanges: list[Exchange]) -> list[tuple[str, str, int, Any]]:
    return [
        (e.request["method"], e.request["url"], e.response["status"], e.response.get("body"))
        for e in exchanges
    ]


# --- what each conversation records ---------------------------------------------------------


def test_keep_alive(capture: Capture) -> None:
    exchanges = record(capture("keep_alive"))
    assert summary(exchanges) == [
        ("GET", "/hello?n=1", 200, {"text": "hello n=1"}),
        ("POST", "/echo", 200, {"json": DOC}),
        ("GET", "/json", 200, {"json": DOC}),
    ]
    assert exchanges[1].request["body"] == {"json": DOC}
    first = exchanges[0]
    assert [name for name, _ in first.request["headers"]] == ["Host", "Accept-Encoding"]
    assert [name for name, _ in first.response["headers"]] == [
        "Server",
        "Date",
        "Content-Type",
        "Content-Length",
    ]
    assert "body" not in exchanges[0].request
    assert exchanges[0].response["version"] == "1.1" and exchanges[0].response["reason"] == "OK"


def test_pipelined(capture: Capture) -> None:
    conn = capture("pipelined")
    assert len([c for c in conn.chunks if c[0] == "client"]) == 1  # all three in one send
    exchanges = record(conn)
    assert summary(exchanges) == [
        ("GET", "/hello?n=1", 200, {"text": "hello n=1"}),
        ("GET", "/json", 200, {"json": DOC}),
        ("GET", "/hello?n=3", 200, {"text": "hello n=3"}),
    ]
    assert len({e.started for e in exchanges}) == 1  # the same chunk carried them


def test_chunked_request_and_response(capture: Capture) -> None:
    exchanges = record(capture("chunked"))
    post, get = exchanges
    text = "first part, second part, last part"
    assert post.request["body"] == {"text": text, "chunked": True}
    assert header(post.request, "transfer-encoding") == ["chunked"]
    assert post.response["body"] == {"text": text}
    assert get.response["body"] == {"json": json.loads(b"".join(PARTS)), "chunked": True}
    assert header(get.response, "transfer-encoding") == ["chunked"]


def test_encoded_bodies_are_stored_decoded(capture: Capture) -> None:
    exchanges = record(capture("encodings"))
    for exchange, coding in zip(exchanges, ["gzip", "deflate", "br"], strict=True):
        assert exchange.response["body"] == {"text": TEXT, "encoding": coding}
        assert header(exchange.response, "content-encoding") == [coding]


def test_binary_bodies_are_base64(capture: Capture) -> None:
    get, post = record(capture("binary"))
    assert decode_body([], BINARY) == get.response["body"] == post.request["body"]
    assert list(get.response["body"]) == ["base64"]


def test_bodyless_responses(capture: Capture) -> None:
    head, empty, etag, not_modified = record(capture("bodyless"))
    assert head.request["method"] == "HEAD" and "body" not in head.response
    assert header(head.response, "content-length") == [str(len("hello n=2"))]
    assert (empty.response["status"], "body" in empty.response) == (204, False)
    assert etag.response["body"] == {"text": "tagged"}
    assert (not_modified.response["status"], "body" in not_modified.response) == (304, False)


def test_response_delimited_by_close(capture: Capture) -> None:
    conn = capture("close_delimited")
    recorder = HttpRecorder()
    early: list[Exchange] = []
    for who, data, at in conn.chunks:
        early += (recorder.client_data if who == "client" else recorder.server_data)(data, at)
    assert early == []  # only the end of the connection ends that body
    (exchange,) = recorder.close(conn.chunks[-1][2])
    assert exchange.response["body"] == {"text": "the body runs until the server closes"}
    assert header(exchange.response, "content-length") == []
    assert exchange.ended == conn.chunks[-1][2]


def test_secrets_are_redacted(capture: Capture) -> None:
    (exchange,) = record(capture("secrets"))
    assert exchange.response["status"] == 200  # the server saw the real secrets
    assert header(exchange.request, "authorization") == [f"Bearer {REDACTED}"]
    assert header(exchange.request, "cookie") == [f"lang={REDACTED}; pref={REDACTED}"]
    assert header(exchange.response, "set-cookie") == [
        f"session={REDACTED}; Path=/; HttpOnly; SameSite=Lax",
        f"theme={REDACTED}",
    ]


def test_expect_100_continue(capture: Capture) -> None:
    (exchange,) = record(capture("expect_continue"))
    assert exchange.response["interim"] == [{"status": 100, "reason": "Continue", "headers": []}]
    assert exchange.response["status"] == 200
    assert (
        exchange.request["body"]
        == exchange.response["body"]
        == {"json": {"large": "enough to ask first"}}
    )
    assert not encode_response(exchange.response).startswith(b"HTTP/1.1 100")


def test_refused_upgrade_goes_on(capture: Capture) -> None:
    exchanges = record(capture("upgrade_refused"))
    assert [e.response["body"]["text"] for e in exchanges] == ["hello n=1", "hello n=2"]


def test_upgrade_stops_the_record(capture: Capture) -> None:
    conn = capture("upgrade")
    assert b"\x00\x01\x02\x03" in conn.side("client") and b"\x00\x01\x02\x03" in conn.side("server")
    (exchange,) = record(conn)
    assert exchange.response["status"] == 101 and "body" not in exchange.response
    assert exchange.raw_response == b""  # see the module: not kept for HTTP


def test_fault_keeps_the_finished_exchanges(capture: Capture) -> None:
    conn = capture("keep_alive")
    recorder = HttpRecorder()
    recorder.client_data(conn.side("client") + b"GET /4 HTTP/1.1\r\nHost: kpy\r\n\r\n", 1)
    with pytest.raises(HttpParseError) as fault:
        recorder.server_data(conn.side("server") + b"HTTP/1.1 abc\r\n\r\n", 2)
    assert [e.request["url"] for e in fault.value.exchanges] == ["/hello?n=1", "/echo", "/json"]
    assert recorder.client_data(b"GET / HTTP/1.1\r\n\r\n", 3) == []


# --- what every conversation must keep ------------------------------------------------------

ALL = sorted(SCENARIOS)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("piece", [1, 13])
def test_cut_anyhow_same_exchanges(capture: Capture, name: str, piece: int) -> None:
    conn = capture(name)
    assert record(conn, piece) == record(conn)


@pytest.mark.parametrize("name", ALL)
def test_encode_response_parses_back(capture: Capture, name: str) -> None:
    for exchange in record(capture(name)):
        assert_parses_back(exchange)


def assert_parses_back(exchange: Exchange) -> None:
    """What replay sends, read by h11 as the client that sent the request: the same status,
    headers (but a new length) and decoded body."""
    response = exchange.response
    wire = encode_response(response)
    head, body, trailers = parse_response(wire, exchange.request["method"], upgrade(exchange))
    assert (head.status_code, head.reason.decode()) == (response["status"], response["reason"])
    got = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in head.headers.raw_items()]
    assert without_length(got) == without_length(response["headers"])
    assert trailers == response.get("trailers", [])
    if "body" in response:
        assert decode_body(got, body) == response["body"]
        assert header({"headers": got}, "content-length") in ([], [str(len(body))])
    else:
        assert body == b""


@pytest.mark.parametrize("name", ALL)
def test_as_h11_reads_the_server(capture: Capture, name: str) -> None:
    """Every recorded response is what a plain h11 client reads in the server's bytes
    (all at once), but for redaction."""
    conn = capture(name)
    client = h11.Connection(h11.CLIENT)
    client.receive_data(conn.side("server"))
    for exchange in record(conn):
        asked = [("Host", "kpy"), *[("Upgrade", p) for p in upgrade(exchange)]]
        client.send(h11.Request(method=exchange.request["method"], target="/", headers=asked))
        client.send(h11.EndOfMessage())
        head, body, _ = events(client)
        assert isinstance(head, h11.Response | h11.InformationalResponse)
        headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in head.headers.raw_items()]
        assert redact_headers(headers) == exchange.response["headers"]
        assert head.status_code == exchange.response["status"]
        assert (decode_body(headers, body) if body else None) == exchange.response.get("body")
        if client.states == {h11.CLIENT: h11.DONE, h11.SERVER: h11.DONE}:
            client.start_next_cycle()


def upgrade(exchange: Exchange) -> list[str]:
    return header(exchange.request, "upgrade")


@pytest.mark.parametrize("name", ALL)
def test_encode_request_parses_back(capture: Capture, name: str) -> None:
    for exchange in record(capture(name)):
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(encode_request(exchange.request))
        head, body, _ = events(conn)
        assert isinstance(head, h11.Request)
        assert (head.method.decode(), head.target.decode()) == (
            exchange.request["method"],
            exchange.request["url"],
        )
        assert decode_body(exchange.request["headers"], body) == exchange.request.get("body")


@pytest.mark.parametrize("name", ALL)
def test_yaml_ready_and_secret_free(capture: Capture, name: str) -> None:
    exchanges = record(capture(name))
    assert exchanges
    text = yaml.safe_dump(docs(exchanges), allow_unicode=True)
    assert yaml.safe_load(text) == docs(exchanges)
    assert not [secret for secret in SECRETS if secret in text]


@pytest.mark.parametrize("name", ALL)
def test_times_come_from_the_chunks(capture: Capture, name: str) -> None:
    conn = capture(name)
    client_at = {at for who, _, at in conn.chunks if who == "client"}
    server_at = {at for who, _, at in conn.chunks if who == "server"}
    previous = 0
    for exchange in record(conn):
        assert exchange.started in client_at and exchange.ended in server_at
        assert previous <= exchange.started <= exchange.ended
        previous = exchange.started


@pytest.mark.parametrize("name", ALL)
def test_sniff_claims_every_prefix(capture: Capture, name: str) -> None:
    first = capture(name).chunks[0][1]
    assert all(sniff(first[:n]) for n in range(1, min(len(first), 80)))


def parse_response(
    wire: bytes, method: str, protocols: list[str]
) -> tuple[h11.Response, bytes, list[list[str]]]:
    """One response, read as the client that sent ``method`` (and asked to upgrade)."""
    conn = h11.Connection(h11.CLIENT)
    asked = [("Host", "kpy"), *[("Upgrade", protocol) for protocol in protocols]]
    conn.send(h11.Request(method=method, target="/", headers=asked))
    conn.send(h11.EndOfMessage())
    conn.receive_data(wire)
    head, body, trailers = events(conn)
    assert isinstance(head, h11.Response | h11.InformationalResponse)
    return head, body, trailers  # type: ignore[return-value]


def events(conn: h11.Connection) -> tuple[h11.Event, bytes, list[list[str]]]:
    """The head, body and trailers of one message; EOF if the body needs it."""
    head: h11.Event | None = None
    body = b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(b"")
            continue
        if isinstance(event, h11.Request | h11.Response | h11.InformationalResponse):
            head = event
            if conn.their_state is h11.SWITCHED_PROTOCOL:
                return head, body, []
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            trailers = [[k.decode(), v.decode()] for k, v in event.headers.raw_items()]
            return head, body, trailers


def without_length(headers: list[list[str]]) -> list[list[str]]:
    return [[k, v] for k, v in headers if k.lower() != "content-length"]


# --- pure helpers ---------------------------------------------------------------------------


def postgres_startup() -> bytes:
    params = b"user\x00kpy\x00database\x00kpy\x00\x00"
    return struct.pack("!ii", 8 + len(params), 196608) + params


@pytest.mark.parametrize(
    "first",
    [
        postgres_startup(),
        struct.pack("!ii", 8, 80877103),  # SSLRequest
        b"*1\r\n$4\r\nPING\r\n",
        b"*",
        b"GET key\r\n",  # a Redis inline command
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"\x16\x03\x01\x02\x00",  # TLS
        b"\x00",
        b"",
        b"get / HTTP/1.1\r\n",
        b"GET  / HTTP/1.1\r\n",
        b"GET / HTTP/1.1x",
    ],
)
def test_sniff_refuses(first: bytes) -> None:
    assert not sniff(first)


@pytest.mark.parametrize("first", [b"G", b"GE", b"DELETE", b"M-SEARCH * HT", b"GET / HTTP/1.0\r\n"])
def test_sniff_claims(first: bytes) -> None:
    assert sniff(first)
    assert PROTOCOL.sniff is sniff and PROTOCOL.name == "http"


@pytest.mark.parametrize(
    ("headers", "raw", "doc"),
    [
        ([], b"", None),
        ([["Content-Type", "application/json"]], b"42", {"json": 42}),
        ([["Content-Type", "text/plain"]], b' [1, {"a": null}]', {"json": [1, {"a": None}]}),
        ([["Content-Type", "text/plain"]], b"42", {"text": "42"}),
        ([], b'{"a": 1, "a": 2}', {"text": '{"a": 1, "a": 2}'}),  # duplicate keys: text
        ([], b"\xff\xfe", {"base64": "//4="}),
        ([["Transfer-Encoding", "chunked"]], b"", {"text": "", "chunked": True}),
        ([["Content-Encoding", "gzip"]], b"not gzip", {"text": "not gzip"}),  # kept as sent
        ([["Content-Encoding", "zstd"]], b"\x28\xb5", {"base64": "KLU="}),
        (
            [["Content-Encoding", "deflate"]],
            zlib.compress(b"x")[2:-4],
            {"text": "x", "encoding": "deflate"},
        ),
        (
            [["Content-Encoding", "gzip, br"]],
            brotli.compress(gzip.compress(b"{}")),
            {"json": {}, "encoding": "gzip, br"},
        ),
    ],
)
def test_decode_body(headers: list[list[str]], raw: bytes, doc: Any) -> None:
    assert decode_body(headers, raw) == doc
    if doc is not None:
        assert decode_body(headers, encode_body(doc, headers)) == doc


def test_encode_body_refuses_a_mismatched_encoding() -> None:
    with pytest.raises(ValueError, match="Content-Encoding"):
        encode_body({"text": "x", "encoding": "gzip"}, [["Content-Encoding", "br"]])


def test_encode_response_sets_the_new_length() -> None:
    response = {
        "status": 200,
        "reason": "OK",
        "version": "1.1",
        "headers": [["Content-Length", "3"], ["Content-Encoding", "gzip"]],
        "body": {"text": "hello", "encoding": "gzip"},
    }
    wire = encode_response(response)
    head, _, body = wire.partition(b"\r\n\r\n")
    assert f"Content-Length: {len(body)}".encode() in head
    assert gzip.decompress(body) == b"hello"


def test_redact_headers() -> None:
    headers = [
        ["authorization", "Basic dXNlcjpwYXNz"],
        ["Proxy-Authorization", "token"],
        ["X-Api-Key", "k"],
        ["Set-Cookie", "a=b=c; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Secure"],
        ["Accept", "*/*"],
    ]
    redacted = redact_headers(headers, also=["x-api-key"])
    assert redacted == [
        ["authorization", f"Basic {REDACTED}"],
        ["Proxy-Authorization", REDACTED],
        ["X-Api-Key", REDACTED],
        ["Set-Cookie", f"a={REDACTED}; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Secure"],
        ["Accept", "*/*"],
    ]
    assert redact_headers(redacted, also=["x-api-key"]) == redacted
    assert headers[0][1] == "Basic dXNlcjpwYXNz"  # a copy


def test_redact_json_fields() -> None:
    body = {"json": {"user": "a", "Password": "p", "items": [{"token": {"x": 1}}, "token"]}}
    assert redact_json_fields(body, ["password", "token"]) == {
        "json": {"user": "a", "Password": REDACTED, "items": [{"token": REDACTED}, "token"]}
    }
    assert body["json"]["Password"] == "p"  # a copy


# --- corners no test server of ours produces, on hand-written bytes -------------------------

GET = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
NO = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno"


@pytest.mark.parametrize(
    ("feeds", "expected"),
    [
        pytest.param(
            [b"GET /x HTTP/1.0\r\n\r\n", b"<HTTP/1.0 200 OK\r\n\r\nup to EOF"],
            [("GET", "/x", 200, {"text": "up to EOF"})],
            id="HTTP/1.0",
        ),
        pytest.param(
            [
                b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nabc",
                b"<HTTP/1.1 413 No\r\n\r\n",
            ],
            [("PUT", "/x", 413, None)],
            id="answered before the body ended",
        ),
        pytest.param(
            [
                b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
                b"<HTTP/1.1 200 OK\r\n\r\n\x16\x03",
                b"\x16",
            ],
            [("CONNECT", "a:443", 200, None)],
            id="CONNECT",
        ),
        pytest.param(
            [b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", b"<" + NO, GET, b"<" + OK],
            [("CONNECT", "a:443", 403, {"text": "no"}), ("GET", "/x", 200, {"text": "ok"})],
            id="CONNECT refused",
        ),
        pytest.param([b"<HTTP/1.1 408 Timeout\r\nConnection: close\r\n\r\n"], [], id="idle 408"),
        pytest.param(
            [GET, b"<HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"], [], id="cut short"
        ),
        pytest.param(
            [
                b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n" + GET,
                b"<HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"HTTP/1.1 103 Hints\r\nLink: </a>\r\n\r\n"
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            ],
            [("HEAD", "/x", 200, None), ("GET", "/x", 200, {"text": "", "chunked": True})],
            id="HEAD chunked, 103, empty chunked",
        ),
    ],
)
def test_corners(feeds: list[bytes], expected: list[tuple[str, str, int, Any]]) -> None:
    """Each feed is client bytes, or server bytes after a ``<``."""
    recorder = HttpRecorder()
    out: list[Exchange] = []
    for at, data in enumerate(feeds):
        if data.startswith(b"<"):
            out += recorder.server_data(data[1:], at)
        else:
            out += recorder.client_data(data, at)
    out += recorder.close(len(feeds))
    assert summary(out) == expected
    for exchange in out:
        assert_parses_back(exchange)
