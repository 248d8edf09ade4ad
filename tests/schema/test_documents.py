"""schemas/ against what kpy's recorders make: every exchange the protocol tests record from
real clients and servers (PostgreSQL, Redis, HTTP, DNS, generic TCP) fits its protocol's
schema inside a Mock document as a file holds it, and so does every PostgreSQL message type
and RESP value the codecs know; hand-broken documents are refused with the field and why.
The protocol list is the registry's, and each of its protocols has its schema file."""

from __future__ import annotations

import copy
import socket
from collections.abc import Iterator
from typing import Any

import dns.message
import pytest
import yaml

from kpy_ci.config import Loader
from kpy_ci.protocols import dns as kpy_dns
from kpy_ci.protocols import registry
from kpy_ci.protocols.base import Exchange, text_or_base64
from kpy_ci.protocols.generic import GenericRecorder
from kpy_ci.protocols.postgres_messages import (
    BACKEND,
    FRONTEND,
    UNTYPED,
    decode_message,
    decode_untyped,
    encode_message,
)
from kpy_ci.schema import documents
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
    conns = [c for drive in PG_SESSIONS.values() for c in pg_sessions.capture(postgres, drive)]
    return [e for conn in conns for e in pg_feed(conn)]


@pytest.fixture(scope="module")
def redis_exchanges(redis: Redis) -> list[Exchange]:
    conns = [
        c for scenario in redis_traffic.SCENARIOS.values()
        for c in redis_traffic.capture(redis, scenario)
    ]  # fmt: skip
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
    seen = {m["type"] for e in pg_exchanges for side in (e.request, e.response) for m in side["messages"]}  # fmt: skip
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
            {"name": "test-1", "started": 0.1, "ended": 0.2, "request": e.request,
             "response": e.response, "mocks": ["mock-1"]},
        )  # fmt: skip
        assert problem(test, "testcase.schema.json") is None, e
    bodies = [side["body"] for e in http_exchanges for side in (e.request, e.response) if "body" in side]  # fmt: skip
    assert {"json", "text", "base64", "encoding", "chunked"} <= {k for b in bodies for k in b}
    assert any("interim" in e.response for e in http_exchanges)
    assert any("trailers" in side for e in http_exchanges for side in (e.request, e.response))


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
    },  # fmt: skip
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
    },  # fmt: skip
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
    },  # fmt: skip
    {"type": "DataRow", "values": ["12.50", None, {"base64": "AAE="}]},
    {"type": "CommandComplete", "tag": "SELECT 1"},
    {
        "type": "ErrorResponse",
        "severity": "ERROR",
        "code": "22012",
        "message": "division by zero",
        "Z": "a field code kpy does not know",
    },  # fmt: skip
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
    assert (unknown, corrupt) == ({"type": "x", "base64": "aGk="}, {"type": "ReadyForQuery", "base64": "SVQ="})  # fmt: skip
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
    ("postgres", {"messages": [{"type": "Query", "sql": 5}]}, READY,
     "request.messages.0.sql: 5 is not of type 'string', 'object'"),
    ("postgres", QUERY, {"messages": [{"type": "RowDescription", "fields": [{"name": "n"}]}]},
     "response.messages.0.fields.0: 'table_oid' is a required property"),
    ("postgres", {"messages": [{"type": "Describe", "statement": "", "portal": ""}]}, READY,
     "request.messages.0.portal: False schema does not allow ''"),
    ("postgres", QUERY, {"messages": [{"type": "DataRow", "values": [{"base64": "no!"}]}]},
     "response.messages.0.values.0.base64: 'no!' does not match "
     "'^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$'"),
    ("postgres", QUERY, {"messages": [{"type": "ReadyForQuery", "status": "I", "x": 1}]},
     "response.messages.0: Additional properties are not allowed ('x' was unexpected)"),
    ("postgres", {"messages": [{"type": "Parse", "sql": "SELECT 1"}]}, READY,
     "request.messages.0: 'statement' is a required property"),
    ("postgres", {"messages": [], "auth": {"method": "md5"}}, READY,
     "request: 'ssl_requested' is a dependency of 'auth'"),
    ("postgres", QUERY, {"messages": [{"type": "BackendKeyData", "process_id": 1, "secret_key": 2**31}]},
     "response.messages.0.secret_key: 2147483648 is greater than the maximum of 2147483647"),
    ("postgres", QUERY, {"messages": [{"status": "I"}]},
     "response.messages.0: 'type' is a required property"),
    ("redis", {}, OK, "request: 'command' is a required property"),
    ("redis", {"command": []}, OK, "request.command: [] should be non-empty"),
    ("redis", {"push": True, "command": ["PING"]}, OK,
     "request: {'push': True, 'command': ['PING']} has too many properties"),
    ("redis", PING, {"reply": 1, "replies": []}, "response.replies: False schema does not allow []"),
    ("redis", PING, {"reply": {"simple": "OK", "error": "x"}},
     "response.reply: {'simple': 'OK', 'error': 'x'} has too many properties"),
    ("redis", PING, {"reply": {"verbatim": "txt"}}, "response.reply: 'text' is a dependency of 'verbatim'"),
    ("redis", PING, {"reply": [1, {"map": [[1]]}]}, "response.reply.1.map.0: [1] is too short"),
    ("redis", PING, {"reply": None},
     "response.reply: None is not of type 'integer', 'string', 'array', 'object'"),
    ("redis", PING, {"reply": {"null": "nil"}},
     "response.reply.null: 'nil' is not one of ['bulk', 'array', 'resp3']"),
    ("http", GET, {**FOUND, "body": {"json": 1, "text": "1"}},
     "response.body.text: False schema does not allow '1'"),
    ("http", GET, {k: v for k, v in FOUND.items() if k != "status"},
     "response: 'status' is a required property"),
    ("http", {**GET, "headers": [["Host", "kpy", "x"]]}, FOUND,
     "request.headers.0: ['Host', 'kpy', 'x'] is too long"),
    ("http", {**GET, "version": 1.1}, FOUND, "request.version: 1.1 is not of type 'string'"),
    ("http", GET, {**FOUND, "status": "200"}, "response.status: '200' is not of type 'integer'"),
    ("dns", {"name": "kpy.test", "type": "A", "class": "IN"}, {"rcode": "NOERROR", "answer": []},
     "request.name: 'kpy.test' does not match '\\\\.$'"),
    ("dns", {"name": "kpy.test.", "type": "A", "class": "IN"}, {"rcode": "NOERROR", "answer": ["x"]},
     "response.answer.0: 'x' does not match '^\\\\S+\\\\s+[0-9]+\\\\s+\\\\S+\\\\s+\\\\S+\\\\s+\\\\S'"),
    ("generic", {"data": 5}, {"data": ""}, "request.data: 5 is not of type 'string', 'object'"),
    ("generic", {"data": ""}, {"data": {"base64": "AA=="}, "raw": "x"},
     "response: Additional properties are not allowed ('raw' was unexpected)"),
]  # fmt: skip


@pytest.mark.parametrize(("protocol", "request_", "response", "expected"), BAD_MOCKS)
def test_bad_mocks_are_refused_with_field_and_why(
    protocol: str, request_: Any, response: Any, expected: str
) -> None:
    assert problem(mock(protocol, request_, response)) == expected


def test_an_unknown_protocol_names_the_registry_s() -> None:
    names = ["postgres", "redis", "http", "generic", "dns"]
    assert problem(mock("mysql", PING, OK)) == f"protocol: 'mysql' is not one of {names}"
    # a protocol's shapes are its own: a Redis request is no PostgreSQL one
    assert problem(mock("postgres", PING, OK)) == (
        "request: Additional properties are not allowed ('command' was unexpected)"
    )


def test_test_cases_are_http_or_generic() -> None:
    test = document(
        "TestCase",
        {"name": "test-1", "started": 0.1, "ended": 0.2, "request": {"data": "hi"},
         "response": {"data": {"base64": "/w=="}}, "mocks": []},
    )  # fmt: skip
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
    files = {n.removeprefix("protocols/").removesuffix(".schema.json") for n in documents._files() if n.startswith("protocols/")}  # fmt: skip
    assert files == set(names)
    for name in names:
        assert set(schema(f"protocols/{name}.schema.json")["$defs"]) >= {"request", "response"}
    assert "enum" not in schema(MOCK)["properties"]["protocol"]  # only the registry lists them


def test_a_protocol_without_its_schema_fails_when_the_validator_is_made() -> None:
    from referencing.exceptions import Unresolvable

    composed = documents.mock_schema(["postgres", "smtp"])
    with pytest.raises(Unresolvable):
        documents.inline(composed)


def test_inlined_refs_check_the_same() -> None:
    """The validator follows no $ref but the recursive ones (Redis values)."""
    import json

    text = json.dumps(documents.validator(MOCK).schema)
    assert text.count('"$ref"') == text.count('redis.schema.json#/$defs/value"')


# --- schema.lock.yaml -------------------------------------------------------------------------

LOCK: dict[str, Any] = {
    "version": "kpy/v1",
    "kind": "SchemaLock",
    "postgres": [{
        "destination": "127.0.0.1:5432",
        "database": "shop",
        "introspected": True,
        "tables": {"products": {
            "complete": True,
            "columns": {
                "id": {"type": "integer", "attnum": 1, "nullable": False,
                       "default": "nextval('products_id_seq'::regclass)"},
                "price": {"type": "numeric(10,2)", "attnum": 4, "nullable": False, "default": None},
            },
            "constraints": {"products_pkey": "PRIMARY KEY (id)"},
            "indexes": {"products_pkey": "CREATE UNIQUE INDEX products_pkey ON public.products USING btree (id)"},
        }},
        "queries": [{
            "sql": "SELECT id, price FROM products ORDER BY id",
            "mocks": 4,
            "reads": {"products": ["id", "price"]},
            "writes": {},
            "inserts": {"orders": None, "lines": ["order_id", "sku"]},
            "star": [],
            "deletes": [],
            "result": [{"name": "price", "table": "products", "column": "price",
                        "type": "numeric(10,2)", "type_oid": 1700, "type_modifier": 655366},
                       {"name": "n", "table": None, "column": None, "type": "integer",
                        "type_oid": 23, "type_modifier": -1}],
            "error": None,
        }],
    }, {"destination": "[::1]:5433", "database": None, "introspected": False, "tables": {
        "public2.t": {"complete": False, "columns": {"a": {"type": None, "attnum": None}}}},
        "queries": []}],
    "http": [{
        "host": "127.0.0.1:52959",
        "openapi": {"source": "specs/rates.yaml", "sha256": "ab" * 32},
        "operations": [{"method": "GET", "path": "/rates", "operation_id": "getRates", "mocks": 3,
                        "responses": {"200": ["from", "rate", "to"]}}],
    }, {"host": "api", "openapi": None, "operations": []}],
}  # fmt: skip


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
    yield "postgres.0: 'introspected' is a required property", changed(["postgres", 0, "introspected"], KeyError)  # fmt: skip
    yield ("postgres.0.tables.products: Additional properties are not allowed ('rows' was unexpected)",
           changed(["postgres", 0, "tables", "products", "rows"], 5))  # fmt: skip
    yield "postgres.0.queries.0.mocks: '4' is not of type 'integer'", changed([*q, "mocks"], "4")
    yield "postgres.0.queries.0.star: 'products' is not of type 'array'", changed([*q, "star"], "products")  # fmt: skip
    yield "postgres.0.queries.0: 'error' is a required property", changed([*q, "error"], KeyError)
    yield ("postgres.0.queries.0.result.0: 'type_oid' is a required property",
           changed([*q, "result", 0, "type_oid"], KeyError))  # fmt: skip
    yield ("http.0.openapi.sha256: 'abc' does not match '^[0-9a-fA-F]{64}$'",
           changed(["http", 0, "openapi", "sha256"], "abc"))  # fmt: skip
    yield ("http.0.operations.0.responses: 'ok' does not match '^([1-5][0-9X]{2}|default)$'",
           changed(["http", 0, "operations", 0, "responses"], {"ok": []}))  # fmt: skip


def test_a_full_lock_fits() -> None:
    assert problem(LOCK, "schemalock.schema.json") is None


@pytest.mark.parametrize(("expected", "lock"), list(broken_locks()), ids=lambda x: "" if isinstance(x, dict) else x.split(":")[0])  # fmt: skip
def test_a_broken_lock_is_refused(expected: str, lock: dict[str, Any]) -> None:
    assert problem(lock, "schemalock.schema.json") == expected
