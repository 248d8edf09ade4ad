"""The mock servers of replay fed raw bytes, with a real MockSource over mocks held in
memory (keyed by each protocol's MATCHER key, as the store keys them): PostgreSQL, Redis,
HTTP and generic TCP answer what was recorded, and a protocol-level error or a hang-up
on a miss; DNS answers are rebuilt per query. No socket anywhere."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import h11
import pytest

from kpy_ci.protocols import dns as kpy_dns
from kpy_ci.protocols.base import REDACTED, Doc, MockServer
from kpy_ci.protocols.generic import GenericMockServer
from kpy_ci.protocols.http.replay import HttpMockServer
from kpy_ci.protocols.postgres.framing import Framer
from kpy_ci.protocols.postgres.messages import decode_message, encode_message
from kpy_ci.protocols.postgres.replay import PostgresMockServer, split_response
from kpy_ci.protocols.redis.replay import RedisMockServer
from kpy_ci.protocols.registry import MATCHERS


class Source:
    """A MockSource over mocks in memory: each served once, reusable ones without limit;
    what was asked is kept (``calls``, ``misses``)."""

    def __init__(self, protocol: str, *mocks: Doc) -> None:
        self.matcher = MATCHERS[protocol]
        self.by_key: dict[Hashable, list[Doc]] = {}
        self.places: dict[tuple[int, int], Doc] = {}
        self.used: set[str] = set()
        self.calls: list[tuple[Doc, bool]] = []
        self.misses: list[Doc] = []
        for m in mocks:
            for key in [self.matcher.key(m["request"]), *self.matcher.partials(m["request"])]:
                self.by_key.setdefault(key, []).append(m)
            self.places[(m["connection"], m["order"])] = m

    def serve(self, request: Doc, *, optional: bool = False) -> Doc | None:
        self.calls.append((request, optional))
        for m in self.by_key.get(self.matcher.key(request), []):
            if m["reusable"] or m["name"] not in self.used:
                self.used.add(m["name"])
                return m
        if not optional:
            self.misses.append(request)
        return None

    def miss(self, request: Doc) -> None:
        self.misses.append(request)

    def next_on_connection(self, mock: Doc) -> Doc | None:
        after = self.places.get((mock["connection"], mock["order"] + 1))
        if after is None or not after["request"].get("push"):
            return None
        self.used.add(after["name"])
        return after


_count = iter(range(1, 10_000))


def mock(
    request: Doc, response: Doc, *, reusable: bool = False, connection: int = 1, order: int = 0
) -> Doc:
    n = next(_count)
    return {
        "name": f"mock-{n}",
        "connection": connection,
        "order": order or n,
        "reusable": reusable,
        "request": request,
        "response": response,
    }


# --- PostgreSQL ----------------------------------------------------------------------------


def pg(*messages: Doc) -> bytes:
    return b"".join(encode_message(m) for m in messages)


def answers(data: bytes) -> list[Doc]:
    """The server's messages in these bytes, decoded."""
    return [decode_message(f.raw, frontend=False) for f in Framer(client=False).feed(data, 0)]


def types(data: bytes) -> list[str]:
    return [m["type"] for m in answers(data)]


def ready(status: str) -> Doc:
    return {"type": "ReadyForQuery", "status": status}


STARTUP_RESPONSE = {
    "messages": [
        {"type": "AuthenticationOk"},
        {"type": "ParameterStatus", "name": "server_version", "value": "16.4"},
        {"type": "ParameterStatus", "name": "client_encoding", "value": "UTF8"},
        {"type": "BackendKeyData", "process_id": 14386, "secret_key": 1058532976},
        ready("I"),
    ]
}
STARTUP = mock(
    {
        "messages": [
            {
                "type": "StartupMessage",
                "protocol": "3.0",
                "parameters": {"user": "shop", "database": "shop"},
            }
        ],
        "auth": {"method": "scram-sha-256"},
        "ssl_requested": True,
        "gssenc_requested": False,
    },
    {"messages": STARTUP_RESPONSE["messages"]},
    reusable=True,
)
PRICE_SQL = "SELECT price FROM products WHERE id = $1"
ROWS = [
    {
        "type": "RowDescription",
        "fields": [
            {
                "name": "price",
                "table_oid": 16387,
                "column": 4,
                "type_oid": 1700,
                "type_size": -1,
                "type_modifier": 655366,
                "format": 0,
            }
        ],
    },
    {"type": "DataRow", "values": ["12.50"]},
    {"type": "CommandComplete", "tag": "SELECT 1"},
]


def query(sql: str, *response: Doc) -> Doc:
    return mock({"messages": [{"type": "Query", "sql": sql}], "sql": sql}, {"messages": response})


def bind(statement: str, *params: str) -> Doc:
    return {
        "type": "Bind",
        "portal": "",
        "statement": statement,
        "param_formats": [0] * len(params),
        "params": list(params),
        "result_formats": [0],
    }


def parse(statement: str, sql: str = PRICE_SQL) -> Doc:
    return {"type": "Parse", "statement": statement, "sql": sql, "param_types": [23]}


RUN = [{"type": "Describe", "portal": ""}, {"type": "Execute", "portal": "", "max_rows": 0}]
SYNC = {"type": "Sync"}


def startup_bytes(user: str = "someone", database: str = "elsewhere") -> bytes:
    params = {"user": user, "database": database, "application_name": "test"}
    return pg({"type": "StartupMessage", "protocol": "3.0", "parameters": params})


def connected(*mocks: Doc) -> tuple[PostgresMockServer, Source]:
    source = Source("postgres", STARTUP, *mocks)
    server = PostgresMockServer(source)
    assert server.opening() == b""
    server.client_data(startup_bytes())
    return server, source


def test_postgres_ssl_request_gets_n_then_any_startup_gets_the_recorded_one() -> None:
    source = Source("postgres", STARTUP)
    server = PostgresMockServer(source)
    assert server.client_data(pg({"type": "SSLRequest"})) == b"N"
    assert server.client_data(pg({"type": "GSSENCRequest"})) == b"N"
    answer = server.client_data(startup_bytes(user="other", database="db2"))
    assert answer == pg(*STARTUP_RESPONSE["messages"])
    assert not server.closed and source.misses == []
    # a password message kpy never asked for is ignored, not an error
    assert server.client_data(b"p\x00\x00\x00\x09hunter\x00") == b""
    # and every connection gets the same start-up, whoever it says it is
    again = PostgresMockServer(source)
    assert again.client_data(startup_bytes(user="admin")) == answer


def test_postgres_startup_with_none_recorded_closes_with_an_error() -> None:
    server = PostgresMockServer(Source("postgres"))
    out = server.client_data(startup_bytes())
    [error, end] = answers(out)
    assert error["type"] == "ErrorResponse" and error["code"] == "XX000"
    assert end == ready("I")
    assert server.closed


def test_postgres_simple_query() -> None:
    server, source = connected(query("SELECT price FROM products", *ROWS, ready("I")))
    out = server.client_data(pg({"type": "Query", "sql": "SELECT  price\n  FROM products"}))
    assert out == pg(*ROWS, ready("I"))  # whitespace runs count as one space
    assert source.misses == []


def test_postgres_extended_query_whatever_the_statement_name() -> None:
    recorded = mock(
        {"messages": [parse("_pg3_0"), bind("_pg3_0", "1"), *RUN, SYNC], "sql": PRICE_SQL},
        {"messages": [{"type": "ParseComplete"}, {"type": "BindComplete"}, *ROWS, ready("T")]},
    )
    server, source = connected(recorded)
    unit = pg(parse("_pg3_7"), bind("_pg3_7", "1"), *RUN, SYNC)
    out = b""
    for i in range(len(unit)):  # byte by byte: nothing answers before the Sync
        piece = server.client_data(unit[i : i + 1])
        assert piece == b"" or i == len(unit) - 1
        out += piece
    assert out == pg(*recorded["response"]["messages"])
    assert source.misses == []


def test_postgres_bind_of_a_statement_prepared_earlier_matches_by_sql() -> None:
    prepare = mock(
        {"messages": [parse("_pg3_0"), SYNC], "sql": PRICE_SQL},
        {"messages": [{"type": "ParseComplete"}, ready("I")]},
    )
    run = mock(
        {"messages": [bind("_pg3_0", "7"), *RUN, SYNC], "sql": PRICE_SQL},
        {"messages": [{"type": "BindComplete"}, *ROWS, ready("I")]},
    )
    server, source = connected(prepare, run)
    assert types(server.client_data(pg(parse("s42"), SYNC))) == ["ParseComplete", "ReadyForQuery"]
    out = server.client_data(pg(bind("s42", "7"), *RUN, SYNC))
    assert out == pg(*run["response"]["messages"])
    assert source.misses == []
    # the same parameters for a statement never prepared on this connection: no SQL, a miss
    out = server.client_data(pg(bind("s43", "7"), *RUN, SYNC))
    assert types(out) == ["ErrorResponse", "ReadyForQuery"]
    assert len(source.misses) == 1 and "sql" not in source.misses[0]


def test_postgres_named_statement_prepared_on_another_connection_than_recorded() -> None:
    """A pool hands out other connections than when recording: the unit that prepared a
    named statement then runs where it is prepared already, and the other way round. The
    ParseComplete answers follow the Parses sent now."""
    first_use = mock(
        {"messages": [parse("user-by-id"), bind("user-by-id", "1"), *RUN, SYNC], "sql": PRICE_SQL},
        {"messages": [{"type": "ParseComplete"}, {"type": "BindComplete"}, *ROWS, ready("I")]},
    )
    again = mock(
        {"messages": [bind("user-by-id", "2"), *RUN, SYNC], "sql": PRICE_SQL},
        {"messages": [{"type": "BindComplete"}, *ROWS, ready("I")]},
    )
    server, source = connected(first_use, again)
    # this connection prepares it with the parameters of the recorded second use
    out = server.client_data(pg(parse("user-by-id"), bind("user-by-id", "2"), *RUN, SYNC))
    assert types(out) == [
        "ParseComplete",
        "BindComplete",
        *(m["type"] for m in ROWS),
        "ReadyForQuery",
    ]
    # and runs it prepared with the parameters of the recorded first use: no ParseComplete
    out = server.client_data(pg(bind("user-by-id", "1"), *RUN, SYNC))
    assert types(out) == ["BindComplete", *(m["type"] for m in ROWS), "ReadyForQuery"]
    assert source.misses == []


INSERT_SQL = "INSERT INTO t (a) VALUES ($1)"
PIPELINE = [
    parse("", INSERT_SQL), bind("", "4"), *RUN,
    parse("", PRICE_SQL), bind("", "7"), *RUN,
    {"type": "Flush"}, SYNC,
]  # fmt: skip
PIPELINE_ANSWER = [
    {"type": "ParseComplete"}, {"type": "BindComplete"}, {"type": "NoData"},
    {"type": "CommandComplete", "tag": "INSERT 0 1"},
    {"type": "ParseComplete"}, {"type": "BindComplete"}, *ROWS, ready("I"),
]  # fmt: skip


def pipelined() -> Doc:
    return mock(
        {"messages": PIPELINE, "sql": [INSERT_SQL, PRICE_SQL]}, {"messages": PIPELINE_ANSWER}
    )


def test_postgres_pipeline_answered_at_its_flush_then_at_its_sync() -> None:
    """psycopg in pipeline mode sends a Flush and waits for the answers before its Sync."""
    server, source = connected(pipelined())
    first = server.client_data(pg(*PIPELINE[:-1]))
    assert types(first) == [m["type"] for m in PIPELINE_ANSWER[:-1]]
    assert types(server.client_data(pg(SYNC))) == ["ReadyForQuery"]
    assert source.misses == []


def test_postgres_pipeline_that_goes_on_otherwise_is_a_miss() -> None:
    server, source = connected(pipelined())
    changed = [*PIPELINE[:6], parse("", "SELECT 2"), *PIPELINE[7:-1]]
    [error] = answers(server.client_data(pg(*changed)))
    assert error["type"] == "ErrorResponse" and error["code"] == "XX000"
    assert types(server.client_data(pg(SYNC))) == ["ReadyForQuery"]
    assert len(source.misses) == 1
    # and one that began as recorded but changed after the Flush fails at its Sync
    server, source = connected(pipelined())
    server.client_data(pg(*PIPELINE[:-1]))
    out = server.client_data(pg(parse("", "SELECT 3"), SYNC))
    assert types(out) == ["ErrorResponse", "ReadyForQuery"] and len(source.misses) == 1


COPY_SQL = "COPY t (a, b) FROM STDIN"
COPY_ANSWER = [
    {"type": "CopyInResponse", "format": 0, "column_formats": [0, 0]},
    {"type": "CommandComplete", "tag": "COPY 2"},
    ready("I"),
]


def copied(*chunks: str) -> list[Doc]:
    return [*({"type": "CopyData", "data": c} for c in chunks), {"type": "CopyDone"}]


def test_postgres_copy_from_stdin_asks_for_the_data_then_answers() -> None:
    recorded = mock(
        {
            "messages": [{"type": "Query", "sql": COPY_SQL}, *copied("1\tx\n2\ty\n")],
            "sql": COPY_SQL,
        },
        {"messages": COPY_ANSWER},
    )
    server, source = connected(recorded)
    assert types(server.client_data(pg({"type": "Query", "sql": COPY_SQL}))) == ["CopyInResponse"]
    # the same rows, cut otherwise into messages
    out = server.client_data(pg(*copied("1\tx\n", "2\ty\n")))
    assert types(out) == ["CommandComplete", "ReadyForQuery"] and source.misses == []
    # other rows: the COPY fails, and says why
    server, source = connected(recorded)
    server.client_data(pg({"type": "Query", "sql": COPY_SQL}))
    [error, end] = answers(server.client_data(pg(*copied("1\tx\n3\tz\n"))))
    assert error["type"] == "ErrorResponse" and end == ready("I") and len(source.misses) == 1


def test_split_response_finds_each_messages_answer() -> None:
    ends = split_response(PIPELINE, PIPELINE_ANSWER)
    assert ends == [1, 2, 3, 4, 5, 6, 7, 9, 9, 10]
    failed = [{"type": "ParseComplete"}, {"type": "ErrorResponse", "message": "x"}, ready("I")]
    assert split_response([parse(""), bind(""), *RUN, SYNC], failed) == [1, 2, 2, 2, 3]


def test_postgres_miss_is_an_error_then_ready_for_query() -> None:
    server, source = connected(
        query("BEGIN", {"type": "CommandComplete", "tag": "BEGIN"}, ready("T")),
        query("ROLLBACK", {"type": "CommandComplete", "tag": "ROLLBACK"}, ready("I")),
    )
    [error, end] = answers(server.client_data(pg({"type": "Query", "sql": "SELECT 42"})))
    assert error["type"] == "ErrorResponse"
    assert (error["severity"], error["code"]) == ("ERROR", "XX000")
    assert error["message"] == "kpy: no recorded mock matches SELECT 42"
    assert end == ready("I")
    assert [m["sql"] for m in source.misses] == ["SELECT 42"]
    # inside a transaction a failure leaves it failed: 'E', and 'E' it stays
    assert answers(server.client_data(pg({"type": "Query", "sql": "BEGIN"})))[-1] == ready("T")
    assert answers(server.client_data(pg({"type": "Query", "sql": "SELECT 43"})))[-1] == ready("E")
    assert answers(server.client_data(pg({"type": "Query", "sql": "SELECT 44"})))[-1] == ready("E")
    assert answers(server.client_data(pg({"type": "Query", "sql": "ROLLBACK"})))[-1] == ready("I")
    assert not server.closed


def test_postgres_extended_miss_names_the_sql_and_parameters() -> None:
    server, _ = connected()
    out = server.client_data(pg(parse(""), bind("", "3"), *RUN, SYNC))
    [error, end] = answers(out)
    assert error["message"] == f"kpy: no recorded mock matches {PRICE_SQL} ['3']"
    assert end == ready("I")


def test_postgres_terminate_closes() -> None:
    server, source = connected(query("SELECT 1", ready("I")))
    out = server.client_data(pg({"type": "Terminate"}, {"type": "Query", "sql": "SELECT 1"}))
    assert out == b"" and server.closed
    assert len(source.calls) == 1  # the start-up only: nothing after Terminate is read


def test_postgres_cancel_request_closes() -> None:
    server = PostgresMockServer(Source("postgres", STARTUP))
    cancel = {"type": "CancelRequest", "process_id": 1, "secret_key": 2}
    assert server.client_data(pg(cancel)) == b"" and server.closed


# --- Redis --------------------------------------------------------------------------------


def resp(*words: str) -> bytes:
    out = b"*%d\r\n" % len(words)
    for w in words:
        data = w.encode()
        out += b"$%d\r\n%s\r\n" % (len(data), data)
    return out


def command(*words: str, reply: Any, reusable: bool = False, **kw: Any) -> Doc:
    return mock({"command": list(words)}, {"reply": reply}, reusable=reusable, **kw)


def redis_server(*mocks: Doc) -> tuple[RedisMockServer, Source]:
    source = Source("redis", *mocks)
    return RedisMockServer(source), source


def test_redis_resp_array_and_inline_commands() -> None:
    server, source = redis_server(
        command("GET", "shop:products", reply="[1, 2]"),
        command("PING", reply={"simple": "PONG"}, reusable=True),
    )
    assert server.opening() == b"" and server.idle() == b""
    assert server.client_data(resp("GET", "shop:products")) == b"$6\r\n[1, 2]\r\n"
    assert server.client_data(b"ping\r\n") == b"+PONG\r\n"  # inline, any case
    assert server.client_data(resp("PING")) == b"+PONG\r\n"
    # split anywhere
    data = resp("PING")
    assert server.client_data(data[:3]) == b""
    assert server.client_data(data[3:]) == b"+PONG\r\n"
    assert source.misses == []


def test_redis_pipelined_commands_are_answered_in_order() -> None:
    server, _ = redis_server(
        command("MULTI", reply={"simple": "OK"}),
        command("INCRBY", "views", "1", reply={"simple": "QUEUED"}),
        command("GET", "views", reply={"simple": "QUEUED"}),
        command("EXEC", reply=[5, "5"]),
    )
    chunk = resp("MULTI") + resp("INCRBY", "views", "1") + resp("GET", "views") + resp("EXEC")
    out = server.client_data(chunk)
    assert out == b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:5\r\n$1\r\n5\r\n"


def test_redis_passwords_match_whatever_they_are() -> None:
    server, source = redis_server(
        command("AUTH", REDACTED, reply={"simple": "OK"}, reusable=True),
        command("AUTH", "default", REDACTED, reply={"simple": "OK"}, reusable=True),
        command("HELLO", "3", "AUTH", "default", REDACTED, reply={"map": [["proto", 3]]}),
    )
    assert server.client_data(resp("AUTH", "not-the-recorded-one")) == b"+OK\r\n"
    assert server.client_data(resp("AUTH", "default", "another")) == b"+OK\r\n"
    out = server.client_data(resp("HELLO", "3", "AUTH", "default", "s3cret"))
    assert out == b"%1\r\n$5\r\nproto\r\n:3\r\n"
    assert [r["command"][-1] for r, _ in source.calls] == [REDACTED] * 3  # never the secret
    # the user name is no secret: another user is another command
    out = server.client_data(resp("AUTH", "admin", "another"))
    assert out == f"-ERR kpy: no recorded mock matches AUTH admin {REDACTED}\r\n".encode()


def test_redis_miss_is_an_error_and_the_connection_goes_on() -> None:
    server, source = redis_server(command("GET", "a", reply="1"))
    assert (
        server.client_data(resp("GET", "nope"))
        == b"-ERR kpy: no recorded mock matches GET nope\r\n"
    )
    assert server.client_data(resp("GET", "a")) == b"$1\r\n1\r\n"
    assert server.client_data(resp("GET", "a")).startswith(b"-ERR kpy: no recorded mock")
    assert not server.closed and len(source.misses) == 2
    # a line break in the call cannot break the error line
    out = server.client_data(resp("GET", "a\r\nb"))
    assert out.count(b"\r\n") == 1 and out.endswith(b"\r\n")


def test_redis_pushes_recorded_after_subscribe_follow_its_reply() -> None:
    subscribed = mock(
        {"command": ["SUBSCRIBE", "news"]},
        {"replies": [["subscribe", "news", 1]]},
        connection=9,
        order=1,
    )
    first = mock({"push": True}, {"reply": ["message", "news", "hello"]}, connection=9, order=2)
    second = mock({"push": True}, {"reply": ["message", "news", "again"]}, connection=9, order=3)
    after = mock({"command": ["PING"]}, {"reply": ["pong", ""]}, connection=9, order=4)
    server, source = redis_server(subscribed, first, second, after)
    out = server.client_data(resp("SUBSCRIBE", "news"))
    assert out == (
        b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"
        b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n"
        b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nagain\r\n"
    )  # and not the PING's reply, which was asked for
    assert source.used == {subscribed["name"], first["name"], second["name"]}


def test_redis_quit_closes() -> None:
    server, source = redis_server(
        command("QUIT", reply={"simple": "OK"}), command("GET", "a", reply="1")
    )
    assert server.client_data(resp("QUIT") + resp("GET", "a")) == b"+OK\r\n"
    assert server.closed
    assert len(source.calls) == 1


# --- HTTP ---------------------------------------------------------------------------------


def http_mock(
    method: str,
    url: str,
    status: int = 200,
    *,
    body: Doc | None = None,
    request_body: Doc | None = None,
    headers: list[list[str]] | None = None,
) -> Doc:
    request: Doc = {
        "method": method,
        "url": url,
        "version": "1.1",
        "headers": [["Host", "api.test"], ["Content-Type", "application/json"]],
    }
    if request_body is not None:
        request["body"] = request_body
    response: Doc = {
        "status": status,
        "reason": "OK",
        "version": "1.1",
        "headers": headers if headers is not None else [["Content-Type", "application/json"]],
    }
    if body is not None:
        response["headers"] = [*response["headers"], ["Content-Length", "1"]]
        response["body"] = body
    return mock(request, response)


def http_request(method: str, url: str, body: bytes = b"", *headers: tuple[str, str]) -> bytes:
    lines = [f"{method} {url} HTTP/1.1", "Host: 127.0.0.1:8080", *(f"{n}: {v}" for n, v in headers)]
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_responses(data: bytes, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """The responses in these bytes, parsed by h11 as a client would."""
    client = h11.Connection(h11.CLIENT)
    client.receive_data(data)
    out = []
    for _ in range(count):
        client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
        client.send(h11.EndOfMessage())
        status, headers, body = 0, {}, b""
        while True:
            event = client.next_event()
            if isinstance(event, h11.Response):
                status = event.status_code
                headers = {n.decode().lower(): v.decode() for n, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise AssertionError(f"incomplete response: {event!r} in {data!r}")
        out.append((status, headers, body))
        if client.our_state is h11.DONE and client.their_state is h11.DONE:
            client.start_next_cycle()
    return out


def test_http_keep_alive_two_requests_in_one_chunk() -> None:
    source = Source(
        "http",
        http_mock("GET", "/rates?to=EUR", body={"json": {"rate": 0.92}}),
        http_mock("GET", "/rates?to=GBP", body={"json": {"rate": 0.79}}),
    )
    server = HttpMockServer(source)
    out = server.client_data(
        http_request("GET", "/rates?to=GBP") + http_request("GET", "/rates?to=EUR")
    )
    [gbp, eur] = read_responses(out, 2)
    assert (gbp[0], gbp[2]) == (200, b'{"rate":0.79}')
    assert gbp[1]["content-length"] == str(len(gbp[2]))  # re-framed to the body's size
    assert (eur[0], eur[2]) == (200, b'{"rate":0.92}')
    assert not server.closed
    # and the connection goes on
    out = server.client_data(http_request("GET", "/rates?to=EUR"))
    assert read_responses(out, 1)[0][0] == 502  # used once already


def test_http_json_body_in_another_key_order_matches() -> None:
    recorded = http_mock(
        "POST", "/orders", 201, request_body={"json": {"sku": "tea", "qty": 2}},
        body={"json": {"id": 7}},
    )  # fmt: skip
    source = Source("http", recorded)
    server = HttpMockServer(source)
    out = server.client_data(http_request("POST", "/orders", b'{ "qty": 2,  "sku": "tea" }'))
    [(status, _, body)] = read_responses(out, 1)
    assert (status, body) == (201, b'{"id":7}')
    assert source.misses == []
    # a value that differs is another call
    out = server.client_data(http_request("POST", "/orders", b'{"qty": 3, "sku": "tea"}'))
    assert read_responses(out, 1)[0][0] == 502


def test_http_miss_is_a_502_naming_the_call() -> None:
    server = HttpMockServer(Source("http", http_mock("GET", "/a", body={"text": "a"})))
    out = server.client_data(http_request("GET", "/nope?x=1"))
    [(status, headers, body)] = read_responses(out, 1)
    assert status == 502 and headers["x-kpy-miss"] == "1"
    assert body == b"kpy: no recorded mock matches GET /nope?x=1\n"
    assert not server.closed


@pytest.mark.parametrize("who", ["client", "server"])
def test_http_connection_close_closes(who: str) -> None:
    headers = [["Content-Type", "text/plain"]]
    if who == "server":
        headers.append(["Connection", "close"])
    source = Source("http", http_mock("GET", "/a", body={"text": "a"}, headers=headers))
    server = HttpMockServer(source)
    asked = [("Connection", "close")] if who == "client" else []
    out = server.client_data(http_request("GET", "/a", b"", *asked) + http_request("GET", "/a"))
    assert read_responses(out, 1)[0][2] == b"a"
    assert out.count(b"HTTP/1.1") == 1
    assert server.closed
    assert len(source.calls) == 1


def test_http_garbage_closes() -> None:
    server = HttpMockServer(Source("http"))
    assert server.client_data(b"\x00\x01 not http\r\n\r\n") == b""
    assert server.closed


# --- generic TCP --------------------------------------------------------------------------


def generic(request: str | Doc, response: str | Doc) -> Doc:
    return mock({"data": request}, {"data": response})


def test_generic_greeting_then_exact_bytes_on_idle() -> None:
    source = Source(
        "generic",
        generic("", "220 greeter ready\r\n"),
        generic("HELO me\r\n", "250 hello\r\n"),
        generic({"base64": "//4="}, {"base64": "/w=="}),
    )
    server: MockServer = GenericMockServer(source)
    assert server.opening() == b"220 greeter ready\r\n"
    assert source.calls[-1] == ({"data": ""}, True)  # a greeting nobody may have recorded
    assert server.idle() == b""  # nothing sent: nothing to answer
    assert server.client_data(b"HELO") == b""
    assert server.client_data(b" me\r\n") == b""
    assert server.idle() == b"250 hello\r\n"  # what it sent until it paused, whole
    assert server.client_data(b"\xff\xfe") == b""  # not UTF-8: base64 both sides
    assert server.idle() == b"\xff"
    assert not server.closed and source.misses == []


def test_generic_no_greeting_recorded_is_no_miss() -> None:
    source = Source("generic", generic("PING\n", "PONG\n"))
    server = GenericMockServer(source)
    assert server.opening() == b""
    assert source.misses == []
    server.client_data(b"PING\n")
    assert server.idle() == b"PONG\n"


def test_generic_miss_closes() -> None:
    source = Source("generic", generic("QUIT\r\n", "221 bye\r\n"))
    server = GenericMockServer(source)
    server.client_data(b"QUIT\r\n\r\n")  # not exactly the recorded bytes
    assert server.idle() == b""
    assert server.closed
    assert source.misses == [{"data": "QUIT\r\n\r\n"}]


# --- DNS ----------------------------------------------------------------------------------


def test_dns_answer_is_rebuilt_for_each_query() -> None:
    response = {"rcode": "NOERROR", "answer": ["api.staging.kpy.test. 60 IN A 127.0.0.42"]}
    for qid in (1, 4242):
        query = dns.message.make_query("API.staging.kpy.test.", "A", id=qid)
        wire = kpy_dns.encode_answer(response, query.to_wire())
        answer = dns.message.from_wire(wire)
        assert answer.id == qid
        assert answer.flags & dns.flags.QR
        assert answer.question == query.question
        decoded = kpy_dns.decode_answer(wire)  # the name as the query spelt it (compressed)
        assert decoded["rcode"] == "NOERROR"
        assert [a.lower() for a in decoded["answer"]] == [a.lower() for a in response["answer"]]
    assert kpy_dns.decode_query(query.to_wire()) == {
        "name": "API.staging.kpy.test.",
        "type": "A",
        "class": "IN",
    }
    # the key is the same whatever the case of the name
    key = MATCHERS["dns"].key
    assert key(kpy_dns.decode_query(query.to_wire())) == key(
        {"name": "api.staging.kpy.test.", "type": "A", "class": "IN"}
    )


def test_dns_answer_with_several_records_and_nxdomain() -> None:
    response = {
        "rcode": "NOERROR",
        "answer": [
            "www.kpy.test. 300 IN CNAME web.kpy.test.",
            "web.kpy.test. 60 IN A 10.0.0.1",
            "web.kpy.test. 60 IN A 10.0.0.2",
        ],
    }
    query = dns.message.make_query("www.kpy.test.", "A")
    wire = kpy_dns.encode_answer(response, query.to_wire())
    assert sorted(kpy_dns.decode_answer(wire)["answer"]) == sorted(response["answer"])
    nx = {"rcode": "NXDOMAIN", "answer": []}
    wire = kpy_dns.encode_answer(nx, dns.message.make_query("gone.kpy.test.", "AAAA").to_wire())
    assert dns.message.from_wire(wire).rcode() == dns.rcode.NXDOMAIN
    assert kpy_dns.decode_answer(wire) == nx


def test_dns_refused_is_servfail_for_the_query() -> None:
    query = dns.message.make_query("unknown.kpy.test.", "A", id=777)
    answer = dns.message.from_wire(kpy_dns.refused(query.to_wire()))
    assert answer.id == 777 and answer.rcode() == dns.rcode.SERVFAIL
    assert answer.question == query.question and answer.answer == []
    assert answer.question[0].rdtype == dns.rdatatype.A
