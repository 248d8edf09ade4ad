"""The PostgreSQL protocol module fed the bytes real clients (psql, psycopg 3, pgbench) and a
real server exchanged, captured once for the module by ``pg_sessions.py``. Hand-made edge
cases are in ``test_postgres_edges.py``."""

from __future__ import annotations

import base64
import re
import struct

import pytest
import yaml

from kpy_ci.protocols.base import Doc, Exchange, from_text_or_base64
from kpy_ci.protocols.postgres import PROTOCOL
from kpy_ci.protocols.postgres.framing import Framer
from kpy_ci.protocols.postgres.messages import (
    AUTH_OK,
    FRONTEND,
    GSSENC_REQUEST,
    SSL_REQUEST,
    decode_message,
    encode_message,
)
from kpy_ci.protocols.postgres.recorder import encode_response, sniff
from tests.capture import Connection
from tests.protocols import pg_sessions as sessions
from tests.servers import PG_PASSWORD, Postgres

SESSIONS: dict[str, sessions.Drive] = {
    "psql-scram": sessions.psql("kpy"),
    "psql-md5": sessions.psql("kpy_md5"),
    "psql-trust": sessions.psql("kpy_trust"),
    "psql-bad-password": sessions.psql("kpy", password="not-the-password"),
    "psql-cancelled": sessions.psql_cancelled,
    "psycopg": sessions.psycopg_session,
    "pgbench": sessions.pgbench,
}
AUTH = {"psql-scram": "scram-sha-256", "psql-md5": "md5", "psql-trust": "trust"}


@pytest.fixture(scope="module")
def traffic(postgres: Postgres) -> dict[str, list[Connection]]:
    return {name: sessions.capture(postgres, drive) for name, drive in SESSIONS.items()}


@pytest.fixture(scope="module")
def recorded(traffic: dict[str, list[Connection]]) -> dict[str, list[list[Exchange]]]:
    return {name: [feed(conn) for conn in conns] for name, conns in traffic.items()}


def feed(conn: Connection, size: int = 0) -> list[Exchange]:
    """The recorder fed a connection's chunks in their order, or re-cut to ``size`` bytes
    (each piece keeping its chunk's time)."""
    recorder = PROTOCOL.recorder()
    out: list[Exchange] = []
    for who, data, at in conn.chunks:
        take = recorder.client_data if who == "client" else recorder.server_data
        step = size or len(data)
        for i in range(0, len(data), step):
            out += take(data[i : i + step], at)
    return out + recorder.close(conn.chunks[-1][2] + 1)


def types(side: Doc) -> list[str]:
    return [m["type"] for m in side["messages"]]


def of_type(side: Doc, kind: str) -> list[Doc]:
    return [m for m in side["messages"] if m["type"] == kind]


def rows(e: Exchange) -> list[list[object]]:
    return [m["values"] for m in of_type(e.response, "DataRow")]


def columns(e: Exchange) -> list[str]:
    return [f["name"] for m in of_type(e.response, "RowDescription") for f in m["fields"]]


def by_sql(exchanges: list[Exchange], sql: object) -> list[Exchange]:
    return [e for e in exchanges if e.request.get("sql") == sql]


def untyped(conn: Connection) -> tuple[int, int]:
    """(how many SSLRequest/GSSENCRequest the client sent first, where its typed messages
    begin), found without the module."""
    client, pos = conn.side("client"), 0
    while struct.unpack_from(">I", client, pos + 4)[0] in (SSL_REQUEST, GSSENC_REQUEST):
        pos += 8
    return pos // 8, pos + int.from_bytes(client[pos : pos + 4], "big")


def skipped(conn: Connection) -> int:
    """How many of the server's first bytes no exchange keeps: an answer byte per
    SSLRequest/GSSENCRequest, then authentication before AuthenticationOk."""
    server, (pos, _) = conn.side("server"), untyped(conn)
    while server[pos : pos + 1] == b"R" and server[pos : pos + 9] != AUTH_OK:
        pos += 1 + int.from_bytes(server[pos + 1 : pos + 5], "big")
    return pos


def typed(stream: bytes, start: int = 0) -> list[bytes]:
    """A stream cut into typed messages, independently of the module's framer."""
    out, pos = [], start
    while pos < len(stream):
        end = pos + 1 + int.from_bytes(stream[pos + 1 : pos + 5], "big")
        out.append(stream[pos:end])
        pos = end
    return out


@pytest.mark.parametrize("name", SESSIONS)
def test_responses_are_the_server_bytes_exactly(
    name: str, traffic: dict[str, list[Connection]], recorded: dict[str, list[list[Exchange]]]
) -> None:
    for conn, exchanges in zip(traffic[name], recorded[name], strict=True):
        for e in exchanges:
            assert encode_response(e.response) == e.raw_response
            reloaded = yaml.safe_load(yaml.safe_dump(e.response))  # keys sorted: no matter
            assert encode_response(reloaded) == e.raw_response
        server = conn.side("server")
        assert b"".join(e.raw_response for e in exchanges) == server[skipped(conn) :]


@pytest.mark.parametrize("size", [1, 7])
@pytest.mark.parametrize("name", SESSIONS)
def test_any_chunking_gives_the_same_exchanges(
    name: str,
    size: int,
    traffic: dict[str, list[Connection]],
    recorded: dict[str, list[list[Exchange]]],
) -> None:
    for conn, exchanges in zip(traffic[name], recorded[name], strict=True):
        assert feed(conn, size) == exchanges


@pytest.mark.parametrize("name", SESSIONS)
def test_real_messages_decode_to_fields_and_back(
    name: str, traffic: dict[str, list[Connection]], recorded: dict[str, list[list[Exchange]]]
) -> None:
    """No message real clients and a real server sent falls back to base64: every known type
    decodes to fields that encode to its very bytes, in both directions."""
    for conn, exchanges in zip(traffic[name], recorded[name], strict=True):
        for e in exchanges:
            for m in e.request["messages"] + e.response["messages"]:
                assert "base64" not in m, m
        framer, client = Framer(client=True), []
        for frame in framer.feed(conn.side("client"), 0):
            if frame.tag in FRONTEND:
                client.append(frame.raw)
        for raw in client:
            assert encode_message(decode_message(raw, frontend=True)) == raw


@pytest.mark.parametrize("name", [*AUTH, "psql-bad-password"])
def test_no_secret_is_recorded(
    name: str, traffic: dict[str, list[Connection]], recorded: dict[str, list[list[Exchange]]]
) -> None:
    conn, exchanges = traffic[name][0], recorded[name][0]
    method = AUTH.get(name, "scram-sha-256")
    secrets = auth_secrets(conn)
    if method == "md5":  # the password hash, the message, the salt, twice
        assert len(secrets) >= 1 + 1 + 2 + 2 and secrets[2].startswith("md5")
    elif method == "scram-sha-256":  # nonces, salt, proof, signature; the messages
        assert len(secrets) >= 1 + 6 + 4 or name == "psql-bad-password"
    dump = yaml.safe_dump([{"request": e.request, "response": e.response} for e in exchanges])
    for secret in secrets:
        assert secret not in dump
    assert exchanges[0].request["auth"] == {"method": method}


def auth_secrets(conn: Connection) -> list[str]:
    """The password, and every salt, nonce, proof, signature and hash the capture's
    authentication messages carry, as text and as base64."""
    asked, start = untyped(conn)
    bodies = [m[5:] for m in typed(conn.side("client"), start) if m[:1] == b"p"]
    auth = [m[5:] for m in typed(conn.side("server")[: skipped(conn)], asked)]
    found = [PG_PASSWORD]
    for body in bodies + [a[4:] for a in auth]:
        found.append(base64.b64encode(body).decode())
        text = body.decode("latin-1")
        if text.startswith("md5"):
            found.append(text.rstrip("\0"))
        for attribute in re.findall(r"(?:^|[,\0 ])([rspv])=([^,\0]+)", text):
            found.append(attribute[1])
    for a in auth:
        if a[:4] == struct.pack(">i", 5):  # AuthenticationMD5Password: a 4-byte salt
            found += [base64.b64encode(a[4:]).decode(), a[4:].hex()]
    return found


@pytest.mark.parametrize("name", AUTH)
def test_psql_session(name: str, recorded: dict[str, list[list[Exchange]]]) -> None:
    (exchanges,) = recorded[name]
    startup, *rest = exchanges
    assert startup.reusable and not any(e.reusable for e in rest)
    (hello,) = startup.request["messages"]
    assert hello["type"] == "StartupMessage" and hello["protocol"] == "3.0"
    user = {"psql-scram": "kpy", "psql-md5": "kpy_md5", "psql-trust": "kpy_trust"}[name]
    assert hello["parameters"]["user"] == user and hello["parameters"]["database"] == "kpy"
    assert startup.request["ssl_requested"] is True  # psql's sslmode=prefer; answered 'N'
    assert types(startup.response)[0] == "AuthenticationOk"
    assert types(startup.response)[-2:] == ["BackendKeyData", "ReadyForQuery"]
    assert startup.raw_response.startswith(AUTH_OK)

    (select,) = by_sql(rest, "SELECT id, name FROM pets ORDER BY id;")
    assert columns(select) == ["id", "name"]
    assert rows(select) == [["1", "Rex"], ["2", None]]
    (copy_in,) = by_sql(rest, "COPY pets FROM STDIN;")
    assert types(copy_in.request) == ["Query", "CopyData", "CopyDone"]
    sent = "".join(m["data"] for m in of_type(copy_in.request, "CopyData"))
    assert sent == "3\tCléo\n\\.\n"  # psql 15 sends the end marker too
    assert types(copy_in.response) == ["CopyInResponse", "CommandComplete", "ReadyForQuery"]
    (copy_out,) = by_sql(rest, "COPY pets TO STDOUT;")
    data = [m["data"] for m in of_type(copy_out.response, "CopyData")]
    assert data == ["1\tRex\n", "2\t\\N\n", "3\tCléo\n"]
    assert of_type(copy_out.response, "CommandComplete")[0]["tag"] == "COPY 3"
    assert all("Terminate" not in types(e.request) for e in exchanges)
    assert [e.started <= e.ended for e in exchanges] == [True] * len(exchanges)
    assert [e.started for e in exchanges] == sorted(e.started for e in exchanges)


def test_psycopg_extended_queries(recorded: dict[str, list[list[Exchange]]]) -> None:
    (exchanges,) = recorded["psycopg"]
    (params,) = by_sql(exchanges, "SELECT $1::int AS n, $2::text AS t")
    assert types(params.request) == ["Parse", "Bind", "Describe", "Execute", "Sync"]
    (bind,) = of_type(params.request, "Bind")
    number, text = bind["params"]
    assert int.from_bytes(from_text_or_base64(number), "big") == 42  # psycopg: binary int
    assert text == "forty-two" and bind["param_formats"] == [1, 0]
    assert rows(params) == [["42", "forty-two"]] and columns(params) == ["n", "t"]

    prepare, first, second = by_sql(exchanges, "SELECT $1::int + 1 AS next")
    (parse,) = of_type(prepare.request, "Parse")
    assert parse["statement"] and parse["param_types"] == [21]  # int2, as psycopg dumps 1
    assert types(prepare.response) == ["ParseComplete", "ReadyForQuery"]
    for e, expected in ((first, "2"), (second, "3")):  # Bind of the named statement only
        assert types(e.request) == ["Bind", "Describe", "Execute", "Sync"]
        assert of_type(e.request, "Bind")[0]["statement"] == parse["statement"]
        assert rows(e) == [[expected]]

    (pipeline,) = by_sql(exchanges, list(sessions.PIPELINE))
    assert types(pipeline.request).count("Execute") == 2
    assert rows(pipeline) == [["one"], ["two"]]
    assert types(pipeline.response).count("ReadyForQuery") == 1

    (binary,) = by_sql(exchanges, sessions.BINARY)
    assert of_type(binary.request, "Bind")[0]["result_formats"] == [1]
    (description,) = of_type(binary.response, "RowDescription")
    assert [f["format"] for f in description["fields"]] == [1, 1, 1]
    (values,) = rows(binary)
    assert values == [
        {"base64": base64.b64encode(struct.pack(">i", 7)).decode()},
        {"base64": base64.b64encode(b"abc").decode()},
        None,
    ]


def test_psycopg_copy(recorded: dict[str, list[list[Exchange]]]) -> None:
    (exchanges,) = recorded["psycopg"]
    simple, extended = by_sql(exchanges, "COPY notes FROM STDIN")
    assert types(simple.request) == ["Query", "CopyData", "CopyDone"]
    assert "".join(m["data"] for m in of_type(simple.request, "CopyData")) == "1\thello\n2\t\\N\n"
    query = ["Parse", "Bind", "Describe", "Execute", "Sync"]
    assert types(extended.request) == [*query, "CopyData", "CopyDone", "Sync"]
    assert of_type(extended.request, "CopyData") == [{"type": "CopyData", "data": "3\tthird\n"}]
    for e, tag in ((simple, "COPY 2"), (extended, "COPY 1")):
        assert types(e.response)[-2:] == ["CommandComplete", "ReadyForQuery"]
        assert of_type(e.response, "CommandComplete")[0]["tag"] == tag
    (out,) = by_sql(exchanges, "COPY notes TO STDOUT")
    assert [m["data"] for m in of_type(out.response, "CopyData")] == ["1\thello\n", "2\t\\N\n"]
    assert types(out.response)[0] == "CopyOutResponse"


def test_psycopg_errors_notices_and_notifications(
    recorded: dict[str, list[list[Exchange]]],
) -> None:
    (exchanges,) = recorded["psycopg"]
    (begin,) = by_sql(exchanges, "BEGIN")
    assert of_type(begin.response, "ReadyForQuery") == [{"type": "ReadyForQuery", "status": "T"}]
    (failed,) = by_sql(exchanges, "SELECT 1/0")
    (error,) = of_type(failed.response, "ErrorResponse")
    assert error["severity"] == "ERROR" and error["code"] == "22012"
    assert error["message"] == "division by zero" and "routine" in error
    assert of_type(failed.response, "ReadyForQuery")[0]["status"] == "E"
    (rollback,) = by_sql(exchanges, "ROLLBACK")
    assert of_type(rollback.response, "ReadyForQuery")[0]["status"] == "I"

    (do,) = by_sql(exchanges, "DO $$ BEGIN RAISE NOTICE 'hello %', 42; END $$")
    (notice,) = of_type(do.response, "NoticeResponse")
    assert notice["severity"] == "NOTICE" and notice["message"] == "hello 42"
    (notify,) = by_sql(exchanges, "NOTIFY pets, 'woof'")
    (note,) = of_type(notify.response, "NotificationResponse")
    pid = of_type(exchanges[0].response, "BackendKeyData")[0]["process_id"]
    assert note == {
        "type": "NotificationResponse",
        "process_id": pid,
        "channel": "pets",
        "payload": "woof",
    }


def test_pgbench(recorded: dict[str, list[list[Exchange]]]) -> None:
    exchanges = [e for conn in recorded["pgbench"] for e in conn]
    (copy,) = [e for e in exchanges if "copy pgbench_accounts" in str(e.request.get("sql"))]
    lines = "".join(m["data"] for m in of_type(copy.request, "CopyData")).splitlines()
    assert len(lines) == 100_001 and lines[-1] == "\\."  # rows, then the end marker
    assert lines[0].split("\t")[:3] == ["1", "1", "0"]
    assert of_type(copy.response, "CommandComplete")[0]["tag"] == "COPY 100000"
    select = re.compile(r"SELECT abalance FROM pgbench_accounts WHERE aid = \d+;?")
    selects = [e for e in exchanges if select.fullmatch(str(e.request.get("sql")))]
    assert len(selects) == 50
    assert all(rows(e) == [["0"]] and columns(e) == ["abalance"] for e in selects)


def test_cancel_request(recorded: dict[str, list[list[Exchange]]]) -> None:
    session, (cancel,) = recorded["psql-cancelled"]
    (key,) = of_type(session[0].response, "BackendKeyData")
    assert cancel.request["messages"] == [{**key, "type": "CancelRequest"}]
    assert cancel.response == {"messages": []} and cancel.raw_response == b""
    (sleep,) = by_sql(session, "SELECT pg_sleep(30)")
    assert of_type(sleep.response, "ErrorResponse")[0]["code"] == "57014"


def test_refused_startup(recorded: dict[str, list[list[Exchange]]]) -> None:
    ((refused,),) = recorded["psql-bad-password"]
    assert types(refused.response) == ["ErrorResponse"] and not refused.reusable
    (error,) = of_type(refused.response, "ErrorResponse")
    assert error["severity"] == "FATAL" and error["code"] == "28P01"


def test_sniff(traffic: dict[str, list[Connection]]) -> None:
    for conns in traffic.values():
        for conn in conns:
            first = conn.side("client")
            assert all(sniff(first[:n]) for n in range(1, 9)), first[:8]
    psql = traffic["psql-trust"][0].side("client")
    assert sniff(psql[8:]), "the StartupMessage after an SSLRequest"
    for other in NOT_POSTGRES:
        assert not sniff(other), other


NOT_POSTGRES = [
    b"GET / HTTP/1.1\r\n",  # HTTP
    b"*1\r\n$4\r\nPING\r\n",  # RESP
    b"PING\r\n",  # Redis inline
    b"\x16\x03\x01\x02\x00",  # TLS ClientHello
    b"",
    b"\x00\x00\x00\x08\x00\x00\x00\x00",  # a length, then no known code
    b"\x00\x00\x00\x09\x00\x02\x00\x00\x00",  # protocol 2
    b"\x00\x01\x00\x00",  # 65536 bytes: longer than any start-up packet
]
