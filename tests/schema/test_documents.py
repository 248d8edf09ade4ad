"""schemas/ against what kpy's recorders make: every exchange the protocol tests record from
real clients and servers (PostgreSQL, Redis, HTTP, DNS, generic TCP) fits its protocol's
schema inside a Mock document as a file holds it, and so does every PostgreSQL message type
and RESP value the codecs know; hand-broken documents are refused with the field and why.
The protocol list is the registry's, and each of its protocols has its schema file."""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import Iterator
from typing import Any

import dns.message
import jsonschema
import pytest
import yaml
from referencing.exceptions import Unresolvable

from kpy_ci.config import Loader
from kpy_ci.protocols import dns as kpy_dns
from kpy_ci.protocols import registry
from kpy_ci.protocols.base import Exchange, text_or_base64
from kpy_ci.protocols.generic import GenericRecorder
from kpy_ci.protocols.postgres.messages import (
    BACKEND,
    FRONTEND,
    UNTYPED,
    decode_message,
    decode_untyped,
    encode_message,
)
from kpy_ci.schema import compiled, documents
from kpy_ci.schema.compiled import compile_schema
from kpy_ci.schema.documents import dotted, first_error, schema
from kpy_ci.store.serializer import document, dump
from tests.dns_server import DnsServer
from tests.protocols import http_peers, pg_sessions, redis_traffic
from tests.protocols.test_http import record as http_record
from tests.protocols.test_postgres import SESSIONS as PG_SESSIONS
from tests.protocols.test_postgres import feed as pg_feed
from tests.protocols.test_redis import record as redis_record
from tests.protocols.test_resp import VALUES
from tests.servers import Postgres, Redis

MOCK = "mock.schema.json"


def mock(protocol: str, request: Any, response: Any, name: str = "mock-1") -> dict[str, Any]:
    """A Mock document as mocks.yaml holds it: written by kpy's serializer, read back."""
    doc = document(
        "Mock",
        {
            "name": name,
            "protocol": protocol,
            "destination": "127.0.0.1:5432",
            "connection": 1,
            "order": 1,
            "reusable": False,
            "started": 0.1,
            "ended": 0.2,
            "request": request,
            "response": response,
        },
    )
    return yaml.load(dump(doc), Loader=Loader)  # type: ignore[no-any-return]


def problem(doc: Any, schema_name: str = MOCK) -> str | None:
    """``field: why`` for the first thing that does not fit, None when it fits."""
    error = first_error(doc, schema_name)
    return None if error is None else f"{dotted(error[0])}: {error[1]}"


def assert_fit(exchanges: list[Exchange]) -> None:
    assert exchanges
    for e in exchanges:
        assert problem(mock(e.protocol, e.request, e.response)) is None, (e.request, e.response)


# --- real traffic, recorded as the protocol tests record it ---------------------------------


@pytest.fixture(scope="module")
def pg_exchanges(postgres: Postgres) -> list[Exchange]:
    drives = [drive for name, drive in PG_SESSIONS.items() if name != "pgbench"]  # 100,000 rows
    conns = [c for drive in drives for c in pg_sessions.capture(postgres, drive)]
    return [e for conn in conns for e in pg_feed(conn)]


@pytest.fixture(scope="module")
def redis_exchanges(redis: Redis) -> list[Exchange]:
    shapes = ("resp2", "resp3", "pubsub3", "inline", "monitor", "client_reply", "unanswered")
    scenarios = [redis_traffic.SCENARIOS[name] for name in shapes]  # the others: the same shapes
    conns = [c for scenario in scenarios for c in redis_traffic.capture(redis, scenario)]
    return [e for conn in conns for e in redis_record(conn)]


@pytest.fixture(scope="module")
def http_exchanges() -> list[Exchange]:
    from tests.capture import CaptureRelay

    exchanges = []
    with http_peers.http_server() as port:
        for scenario in http_peers.SCENARIOS.values():
            with CaptureRelay(port) as relay:
                scenario(relay.port)
            exchanges += [e for conn in relay.connections for e in http_record(conn)]
    return exchanges


def test_every_postgres_exchange_fits(pg_exchanges: list[Exchange]) -> None:
    assert_fit(pg_exchanges)
    seen = {
        m["type"]
        for e in pg_exchanges
        for side in (e.request, e.response)
        for m in side["messages"]
    }
    assert {"StartupMessage", "Parse", "Bind", "CopyData", "CancelRequest"} <= seen
    assert {"ErrorResponse", "NoticeResponse", "NotificationResponse", "CopyInResponse"} <= seen
    assert any("auth" in e.request for e in pg_exchanges)
    assert any(isinstance(e.request.get("sql"), list) for e in pg_exchanges)


def test_every_redis_exchange_fits(redis_exchanges: list[Exchange]) -> None:
    assert_fit(redis_exchanges)
    assert any(e.request.get("push") for e in redis_exchanges)
    assert any(e.request.get("inline") for e in redis_exchanges)
    assert any(e.response.get("incomplete") for e in redis_exchanges)


def test_every_http_exchange_fits_as_mock_and_as_test(http_exchanges: list[Exchange]) -> None:
    assert_fit(http_exchanges)
    for e in http_exchanges:
        test = document(
            "TestCase",
            {
                "name": "test-1",
                "started": 0.1,
                "ended": 0.2,
                "request": e.request,
                "response": e.response,
                "mocks": ["mock-1"],
            },
        )
        assert problem(test, "testcase.schema.json") is None, e
    bodies = [
        side["body"] for e in http_exchanges for side in (e.request, e.response) if "body" in side
    ]
    assert {"json", "text", "base64", "encoding", "chunked"} <= {k for b in bodies for k in b}
    assert any("interim" in e.response for e in http_exchanges)


def test_dns_queries_and_answers_fit() -> None:
    exchanges = []
    with DnsServer({"api.staging.kpy.test": "127.0.0.42"}) as server:
        for name, rdtype in [("api.staging.kpy.test.", "A"), ("nowhere.kpy.test.", "AAAA")]:
            query = dns.message.make_query(name, rdtype).to_wire()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(5)
                s.sendto(query, ("127.0.0.1", server.port))
                answer = s.recv(4096)
            request, response = kpy_dns.decode_query(query), kpy_dns.decode_answer(answer)
            exchanges.append(Exchange("dns", request, response, 0, 1, reusable=True))
    assert_fit(exchanges)
    assert [e.response["rcode"] for e in exchanges] == ["NOERROR", "NXDOMAIN"]


def test_generic_exchanges_fit() -> None:
    recorder = GenericRecorder()
    out = recorder.server_data(b"220 greeter ready\r\n", 1)
    out += recorder.client_data(b"\xff\xfe binary \x00", 2)
    out += recorder.server_data(b"\x80 not text", 3)
    out += recorder.client_data(b"QUIT\r\n", 4) + recorder.close(5)
    assert [e.request["data"] for e in out] == ["", {"base64": "//4gYmluYXJ5IAA="}, "QUIT\r\n"]
    assert_fit(out)


# --- every message type and value the codecs know -------------------------------------------

_B = {"base64": "AAAAAQ=="}
FRONTEND_SAMPLES: list[dict[str, Any]] = [
    {"type": "Query", "sql": "SELECT 1"},
    {"type": "Query", "sql": {"base64": "/w=="}},
    {"type": "Parse", "statement": "_pg3_0", "sql": "SELECT $1", "param_types": [23]},
    {
        "type": "Bind",
        "portal": "",
        "statement": "_pg3_0",
        "param_formats": [1],
        "params": [_B, None],
        "result_formats": [0],
    },
    {"type": "Describe", "statement": "_pg3_0"},
    {"type": "Describe", "portal": ""},
    {"type": "Execute", "portal": "", "max_rows": 0},
    {"type": "Close", "portal": "p"},
    {"type": "Flush"},
    {"type": "Sync"},
    {
        "type": "FunctionCall",
        "function_oid": 1598,
        "arg_formats": [0],
        "args": ["x", None],
        "result_format": 0,
    },
    {"type": "CopyData", "data": "1\thello\n"},
    {"type": "CopyData", "data": {"base64": "UEdDT1BZCv8NCgA="}},
    {"type": "CopyDone"},
    {"type": "CopyFail", "message": "stopped"},
    {"type": "Terminate"},
]
UNTYPED_SAMPLES: list[dict[str, Any]] = [
    {"type": "StartupMessage", "protocol": "3.0", "parameters": {"user": "kpy", "database": "kpy"}},
    {"type": "SSLRequest"},
    {"type": "GSSENCRequest"},
    {"type": "CancelRequest", "process_id": 14386, "secret_key": -1058532976},
    {
        "type": "CancelRequest",
        "process_id": 7,
        "secret_key": {"base64": "AQIDBAUGBwgJCgsMDQ4PEA=="},
    },
]
BACKEND_SAMPLES: list[dict[str, Any]] = [
    {"type": "AuthenticationOk"},
    {"type": "ParameterStatus", "name": "application_name", "value": ""},
    {"type": "BackendKeyData", "process_id": 14386, "secret_key": 1058532976},
    {"type": "ReadyForQuery", "status": "T"},
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
    {"type": "DataRow", "values": ["12.50", None, {"base64": "AAE="}]},
    {"type": "CommandComplete", "tag": "SELECT 1"},
    {
        "type": "ErrorResponse",
        "severity": "ERROR",
        "code": "22012",
        "message": "division by zero",
        "Z": "a field code kpy does not know",
    },
    {"type": "NoticeResponse", "severity": "NOTICE", "message": "hello 42", "where": "PL/pgSQL"},
    {"type": "NotificationResponse", "process_id": 9, "channel": "pets", "payload": "woof"},
    {"type": "ParameterDescription", "type_oids": [23, 25]},
    {"type": "CopyInResponse", "format": 0, "column_formats": [0, 0]},
    {"type": "CopyOutResponse", "format": 1, "column_formats": [1]},
    {"type": "CopyBothResponse", "format": 0, "column_formats": []},
    {"type": "CopyData", "data": "3\tCléo\n"},
    {"type": "CopyDone"},
    {"type": "ParseComplete"},
    {"type": "BindComplete"},
    {"type": "CloseComplete"},
    {"type": "NoData"},
    {"type": "PortalSuspended"},
    {"type": "EmptyQueryResponse"},
    {"type": "FunctionCallResponse", "result": "42"},
    {"type": "FunctionCallResponse", "result": None},
    {"type": "NegotiateProtocolVersion", "newest_minor": 0, "unrecognized_options": ["_pq_.x"]},
]


def decoded(sample: dict[str, Any], frontend: bool) -> dict[str, Any]:
    """What the decoder makes of the sample's bytes: the sample itself when it is as the
    recorder writes it (so the samples are the recorder's own shapes)."""
    raw = encode_message(sample)
    if sample["type"] in UNTYPED:
        return decode_untyped(raw)
    formats = [0, 0, 1] if sample["type"] == "DataRow" else []  # its RowDescription's
    return decode_message(raw, frontend, formats)


def test_the_samples_cover_every_message_type_the_codec_knows() -> None:
    assert {s["type"] for s in FRONTEND_SAMPLES} == set(FRONTEND.values())
    assert {s["type"] for s in UNTYPED_SAMPLES} == set(UNTYPED)
    assert {s["type"] for s in BACKEND_SAMPLES} == set(BACKEND.values())
    defs = schema("protocols/postgres.schema.json")["$defs"]
    assert set(defs["frontend_types"]["enum"]) == set(FRONTEND.values()) | set(UNTYPED)
    assert set(defs["backend_types"]["enum"]) == set(BACKEND.values())


@pytest.mark.parametrize(
    ("sample", "frontend"),
    [(s, True) for s in FRONTEND_SAMPLES + UNTYPED_SAMPLES] + [(s, False) for s in BACKEND_SAMPLES],
    ids=lambda s: s["type"] if isinstance(s, dict) else "",
)
def test_every_message_type_fits(sample: dict[str, Any], frontend: bool) -> None:
    assert decoded(sample, frontend) == sample
    side = {"messages": [sample]}
    empty = {"messages": []}
    doc = mock("postgres", side, empty) if frontend else mock("postgres", empty, side)
    assert problem(doc) is None


def test_messages_kept_whole_fit() -> None:
    unknown = decode_message(b"x\x00\x00\x00\x06hi", frontend=False)
    corrupt = decode_message(b"Z\x00\x00\x00\x06IT", frontend=False)  # ReadyForQuery of 2 bytes
    assert (unknown, corrupt) == (
        {"type": "x", "base64": "aGk="},
        {"type": "ReadyForQuery", "base64": "SVQ="},
    )
    client = decode_message(b"Q\x00\x00\x00\x04", frontend=True)  # a Query without its text
    doc = mock("postgres", {"messages": [client]}, {"messages": [unknown, corrupt], "raw": "x"})
    assert problem(doc) is None


@pytest.mark.parametrize(("raw", "value"), VALUES)
def test_every_resp_value_fits(raw: bytes, value: Any) -> None:
    assert problem(mock("redis", {"command": ["GET", "k"]}, {"reply": value})) is None
    assert problem(mock("redis", {"command": ["GET", "k"]}, {"replies": [value, value]})) is None


def test_replies_kept_raw_fit() -> None:
    response = {"reply": {"raw": ":007\r\n"}, "raw": text_or_base64(b"\xff:007\r\n")}
    assert (
        problem(mock("redis", {"command": [{"base64": "/w=="}], "inline": True}, response)) is None
    )


# --- refusals -------------------------------------------------------------------------------

PING = {"command": ["PING"]}
OK = {"reply": {"simple": "PONG"}}
QUERY = {"messages": [{"type": "Query", "sql": "SELECT 1"}], "sql": "SELECT 1"}
READY = {"messages": [{"type": "ReadyForQuery", "status": "I"}]}
GET = {"method": "GET", "url": "/", "version": "1.1", "headers": [["Host", "kpy"]]}
FOUND = {"status": 200, "reason": "OK", "version": "1.1", "headers": []}
BAD_MOCKS: list[tuple[str, Any, Any, str]] = [
    (
        "postgres",
        {"messages": [{"type": "Query", "sql": 5}]},
        READY,
        "request.messages.0.sql: 5 is not of type 'string', 'object'",
    ),
    (
        "postgres",
        QUERY,
        {"messages": [{"type": "RowDescription", "fields": [{"name": "n"}]}]},
        "response.messages.0.fields.0: 'table_oid' is a required property",
    ),
    (
        "postgres",
        {"messages": [{"type": "Describe", "statement": "", "portal": ""}]},
        READY,
        "request.messages.0: 'portal' is not one of ['type', 'statement']",
    ),
    (
        "postgres",
        QUERY,
        {"messages": [{"type": "DataRow", "values": [{"base64": "no!"}]}]},
        "response.messages.0.values.0.base64: 'no!' does not match "
        "'^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$'",
    ),
    (
        "postgres",
        QUERY,
        {"messages": [{"type": "ReadyForQuery", "status": "I", "x": 1}]},
        "response.messages.0: Additional properties are not allowed ('x' was unexpected)",
    ),
    (
        "postgres",
        {"messages": [{"type": "Parse", "sql": "SELECT 1"}]},
        READY,
        "request.messages.0: 'statement' is a required property",
    ),
    (
        "postgres",
        {"messages": [], "auth": {"method": "md5"}},
        READY,
        "request: 'ssl_requested' is a dependency of 'auth'",
    ),
    (
        "postgres",
        QUERY,
        {"messages": [{"type": "BackendKeyData", "process_id": 1, "secret_key": 2**31}]},
        "response.messages.0.secret_key: 2147483648 is greater than the maximum of 2147483647",
    ),
    (
        "postgres",
        QUERY,
        {"messages": [{"status": "I"}]},
        "response.messages.0: 'type' is a required property",
    ),
    ("redis", {}, OK, "request: 'command' is a required property"),
    ("redis", {"command": []}, OK, "request.command: [] should be non-empty"),
    ("redis", {"push": True, "command": ["PING"]}, OK, "request: 'command' is not one of ['push']"),
    (
        "redis",
        PING,
        {"reply": 1, "replies": []},
        "response: 'replies' is not one of ['reply', 'raw']",
    ),
    (
        "redis",
        PING,
        {"reply": {"simple": "OK", "error": "x"}},
        "response.reply: {'simple': 'OK', 'error': 'x'} has too many properties",
    ),
    (
        "redis",
        PING,
        {"reply": {"verbatim": "txt"}},
        "response.reply: 'text' is a dependency of 'verbatim'",
    ),
    ("redis", PING, {"reply": [1, {"map": [[1]]}]}, "response.reply.1.map.0: [1] is too short"),
    (
        "redis",
        PING,
        {"reply": None},
        "response.reply: None is not of type 'integer', 'string', 'array', 'object'",
    ),
    (
        "redis",
        PING,
        {"reply": {"null": "nil"}},
        "response.reply.null: 'nil' is not one of ['bulk', 'array', 'resp3']",
    ),
    (
        "http",
        GET,
        {**FOUND, "body": {"json": 1, "text": "1"}},
        "response.body: 'text' is not one of ['json', 'encoding', 'chunked']",
    ),
    (
        "http",
        GET,
        {k: v for k, v in FOUND.items() if k != "status"},
        "response: 'status' is a required property",
    ),
    (
        "http",
        {**GET, "headers": [["Host", "kpy", "x"]]},
        FOUND,
        "request.headers.0: ['Host', 'kpy', 'x'] is too long",
    ),
    ("http", {**GET, "version": 1.1}, FOUND, "request.version: 1.1 is not of type 'string'"),
    ("http", GET, {**FOUND, "status": "200"}, "response.status: '200' is not of type 'integer'"),
    (
        "dns",
        {"name": "kpy.test", "type": "A", "class": "IN"},
        {"rcode": "NOERROR", "answer": []},
        "request.name: 'kpy.test' does not match '\\\\.$'",
    ),
    (
        "dns",
        {"name": "kpy.test.", "type": "A", "class": "IN"},
        {"rcode": "NOERROR", "answer": ["x"]},
        "response.answer.0: 'x' does not match "
        "'^\\\\S+\\\\s+[0-9]+\\\\s+\\\\S+\\\\s+\\\\S+\\\\s+\\\\S'",
    ),
    ("generic", {"data": 5}, {"data": ""}, "request.data: 5 is not of type 'string', 'object'"),
    (
        "generic",
        {"data": ""},
        {"data": {"base64": "AA=="}, "raw": "x"},
        "response: Additional properties are not allowed ('raw' was unexpected)",
    ),
]


@pytest.mark.parametrize(("protocol", "request_", "response", "expected"), BAD_MOCKS)
def test_bad_mocks_are_refused_with_field_and_why(
    protocol: str, request_: Any, response: Any, expected: str
) -> None:
    assert problem(mock(protocol, request_, response)) == expected


def test_an_unknown_protocol_names_the_registry_s() -> None:
    names = [p.name for p in registry.REGISTRY]
    assert {"postgres", "redis", "http", "dns", "generic"} <= set(names)
    assert problem(mock("kafka", PING, OK)) == f"protocol: 'kafka' is not one of {names}"
    # a protocol's shapes are its own: a Redis request is no PostgreSQL one
    assert problem(mock("postgres", PING, OK)) == "request: 'messages' is a required property"


def test_test_cases_are_http_or_generic() -> None:
    test = document(
        "TestCase",
        {
            "name": "test-1",
            "started": 0.1,
            "ended": 0.2,
            "request": {"data": "hi"},
            "response": {"data": {"base64": "/w=="}},
            "mocks": [],
        },
    )
    assert problem(test, "testcase.schema.json") is None
    test["request"] = {**GET, "data": "x"}
    assert problem(test, "testcase.schema.json") == (
        "request: Additional properties are not allowed ('headers', 'method', 'url', 'version' "
        "were unexpected)"
    )
    test["request"] = {"method": "GET", "url": "/"}
    assert problem(test, "testcase.schema.json") == "request: 'version' is a required property"


# --- the protocol list, written once ----------------------------------------------------------


def test_the_protocols_are_the_registry_s_each_with_its_schema() -> None:
    names = [p.name for p in [*registry.REGISTRY]] + ["generic", "dns"]
    assert documents.protocol_names() == list(registry.MATCHERS) and set(names) == set(
        registry.MATCHERS
    )
    files = {
        n.removeprefix("protocols/").removesuffix(".schema.json")
        for n in documents.names()
        if n.startswith("protocols/")
    }
    assert files == set(names)
    for name in names:
        assert set(schema(f"protocols/{name}.schema.json")["$defs"]) >= {"request", "response"}
    assert "enum" not in schema(MOCK)["properties"]["protocol"]  # only the registry lists them


def test_a_protocol_without_its_schema_fails_when_the_validator_is_made() -> None:
    with pytest.raises(Unresolvable):
        compile_schema(documents.mock_schema(["postgres", "smtp"]), documents.registry())


def plain(schema_name: str) -> jsonschema.Draft202012Validator:
    """The schema as its files say, checked by jsonschema itself: no inlining, no switch."""
    doc = (
        documents.mock_schema(documents.protocol_names())
        if schema_name == MOCK
        else schema(schema_name)
    )
    return jsonschema.Draft202012Validator(doc, registry=documents.registry())


def errors(checker: Any, doc: Any) -> list[tuple[list[Any], str]]:
    """Every error, ordered as first_error orders them (by path, then as found)."""
    found = [(list(e.absolute_path), e.message) for e in checker.iter_errors(doc)]
    return sorted(found, key=lambda error: [(isinstance(p, str), str(p)) for p in error[0]])


def test_the_quick_validator_says_what_the_schema_says(
    pg_exchanges: list[Exchange], redis_exchanges: list[Exchange], http_exchanges: list[Exchange]
) -> None:
    """compiled.py's inlined $ref and switches: the same errors, on good and bad documents."""
    docs = [
        mock(e.protocol, e.request, e.response)
        for e in pg_exchanges[:100] + redis_exchanges[:100] + http_exchanges
    ]
    docs += [mock(p, rq, rs) for p, rq, rs, _ in BAD_MOCKS] + [mock("kafka", PING, OK)]
    docs += [
        mock("postgres", {"messages": [s]}, {"messages": [s]})
        for s in FRONTEND_SAMPLES + BACKEND_SAMPLES
    ]
    docs += [
        mock("postgres", QUERY, {"messages": [{"type": t, "base64": "AA=="}]})
        for t in ("DataRow", "x", "Bogus")
    ]
    docs += [
        mock("postgres", QUERY, {"messages": [5, {"base64": ""}, {"type": 5}]}),
        {"request": {}},
        [],
        None,
    ]
    quick, slow = documents.validator(MOCK), plain(MOCK)
    for doc in docs:
        assert errors(quick, doc) == errors(slow, doc), doc
    assert sum(bool(errors(quick, doc)) for doc in docs) > len(BAD_MOCKS)
    assert compiled.SWITCH in json.dumps(quick.schema)  # and the switches are there
    assert json.dumps(quick.schema).count('"$ref"') == json.dumps(quick.schema).count(
        'redis.schema.json#/$defs/value"'
    )
    lock = next(broken_locks())[1]
    assert errors(documents.validator("schemalock.schema.json"), lock) == errors(
        plain("schemalock.schema.json"), lock
    )


# --- schema.lock.yaml -------------------------------------------------------------------------

LOCK: dict[str, Any] = yaml.safe_load("""
version: kpy/v1
kind: SchemaLock
postgres:
- destination: 127.0.0.1:5432
  database: shop
  introspected: true
  tables:
    products:
      complete: true
      columns:
        id: {type: integer, attnum: 1, nullable: false, default: "nextval('products_id_seq')"}
        price: {type: 'numeric(10,2)', attnum: 4, nullable: false, default: null}
      constraints: {products_pkey: PRIMARY KEY (id)}
      indexes: {products_pkey: CREATE UNIQUE INDEX products_pkey ON public.products (id)}
  queries:
  - sql: SELECT id, price FROM products ORDER BY id
    mocks: 4
    reads: {products: [id, price]}
    writes: {}
    inserts: {orders: null, lines: [order_id, sku]}
    star: []
    deletes: []
    result:
    - {name: price, table: products, column: price, type: 'numeric(10,2)', type_oid: 1700,
       type_modifier: 655366}
    - {name: n, table: null, column: null, type: integer, type_oid: 23, type_modifier: -1}
    error: null
- destination: '[::1]:5433'
  database: null
  introspected: false
  tables:
    public2.t: {complete: false, columns: {a: {type: null, attnum: null}}}
  queries: []
http:
- host: 127.0.0.1:52959
  openapi:
    source: specs/rates.yaml
    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
  operations:
  - {method: GET, path: /rates, operation_id: getRates, mocks: 3,
     responses: {'200': [from, rate, to]}}
- {host: api, openapi: null, operations: []}
""")
"""The lock format's example (docs/FORMAT.md), with what it leaves out: both kinds of tables."""


def broken_locks() -> Iterator[tuple[str, dict[str, Any]]]:
    def changed(path: list[Any], value: Any) -> dict[str, Any]:
        doc = copy.deepcopy(LOCK)
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if value is KeyError:
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
        return doc

    q = ["postgres", 0, "queries", 0]
    yield "kind: 'SchemaLock' was expected", changed(["kind"], "Lock")
    yield "(top level): 'http' is a required property", changed(["http"], KeyError)
    yield (
        "postgres.0: 'introspected' is a required property",
        changed(["postgres", 0, "introspected"], KeyError),
    )
    yield (
        "postgres.0.tables.products: Additional properties are not allowed ('rows' was unexpected)",
        changed(["postgres", 0, "tables", "products", "rows"], 5),
    )
    yield "postgres.0.queries.0.mocks: '4' is not of type 'integer'", changed([*q, "mocks"], "4")
    yield (
        "postgres.0.queries.0.star: 'products' is not of type 'array'",
        changed([*q, "star"], "products"),
    )
    yield "postgres.0.queries.0: 'error' is a required property", changed([*q, "error"], KeyError)
    yield (
        "postgres.0.queries.0.result.0: 'type_oid' is a required property",
        changed([*q, "result", 0, "type_oid"], KeyError),
    )
    yield (
        "http.0.openapi.sha256: 'abc' does not match '^[0-9a-fA-F]{64}$'",
        changed(["http", 0, "openapi", "sha256"], "abc"),
    )
    yield (
        "http.0.operations.0.responses: 'ok' does not match '^([1-5][0-9X]{2}|default)$'",
        changed(["http", 0, "operations", 0, "responses"], {"ok": []}),
    )


def test_a_full_lock_fits() -> None:
    assert problem(LOCK, "schemalock.schema.json") is None


@pytest.mark.parametrize(
    ("expected", "lock"),
    list(broken_locks()),
    ids=lambda x: "" if isinstance(x, dict) else x.split(":")[0],
)
def test_a_broken_lock_is_refused(expected: str, lock: dict[str, Any]) -> None:
    assert problem(lock, "schemalock.schema.json") == expected
