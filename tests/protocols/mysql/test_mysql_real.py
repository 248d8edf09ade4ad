"""The MySQL plug-in against a real MariaDB and real clients (PyMySQL, mysql-connector-python,
SQLAlchemy, the mysql CLI, mysqlslap), through a relay that captures every chunk: the
recorder gives the same exchanges however the bytes are cut, every response re-encodes to
its exact bytes, every document validates, no secret is kept; then replay from the
recorded exchanges, MariaDB not used, gives the clients the same results."""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import mysql.connector
import pymysql  # type: ignore[import-untyped]
import pytest
import referencing
import yaml

from kpy_ci.protocols.base import REDACTED, Exchange
from kpy_ci.protocols.mysql import (
    MATCHER,
    PROTOCOL,
    SCHEMA,
    MysqlRecorder,
    edit_greeting,
    encode_response,
    redact,
)
from tests.capture import CaptureRelay
from tests.capture import Connection as Capture
from tests.protocols.mysql import clients
from tests.protocols.mysql.replay_server import mock_server
from tests.protocols.recorded_mocks import RecordedMocks
from tests.servers import MariaDB

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Run:
    result: Any
    captures: list[Capture]


@pytest.fixture(scope="module")
def infile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mysql") / "people.csv"
    path.write_text("Zed,3.5\nYan,4\n")
    return path


@pytest.fixture(scope="module")
def runs(mariadb: MariaDB, infile: Path) -> Iterator[dict[str, Run]]:
    out: dict[str, Run] = {}
    sessions: dict[str, Callable[[int], Any]] = {
        "pymysql": lambda port: clients.pymysql_session(port, mariadb.password, infile),
        "connector": lambda port: clients.connector_session(port, mariadb.password),
        "sqlalchemy": lambda port: clients.sqlalchemy_session(port, mariadb.password),
        "cli": lambda port: clients.cli_session(mariadb, port),
        "mysqlslap": lambda port: clients.slap_session(mariadb, port),
    }
    with CaptureRelay(mariadb.port, edit_greeting=edit_greeting) as r:
        for name, session in sessions.items():
            before = len(r.connections)
            result = session(r.port)
            r.wait_closed()
            out[name] = Run(result, r.connections[before:])
    yield out


def feed(capture: Capture, cut: Any = None) -> list[Exchange]:
    """The recorder fed the capture, each chunk cut by ``cut`` (a size, or a Random)."""
    recorder = MysqlRecorder()
    out: list[Exchange] = []
    for side, data, at in capture.chunks:
        parts = [data]
        if isinstance(cut, int):
            parts = [data[i : i + cut] for i in range(0, len(data), cut)]
        elif isinstance(cut, random.Random):
            parts, pos = [], 0
            while pos < len(data):
                step = cut.randint(1, 40)
                parts.append(data[pos : pos + step])
                pos += step
        for part in parts:
            if side == "client":
                out += recorder.client_data(part, at)
            else:
                out += recorder.server_data(part, at)
    return out + recorder.close(capture.chunks[-1][2] if capture.chunks else 0)


def exchanges(run: Run) -> list[Exchange]:
    return [e for c in run.captures for e in feed(c)]


CLIENTS = ["pymysql", "connector", "sqlalchemy", "cli", "mysqlslap"]


@pytest.mark.parametrize("name", CLIENTS)
def test_any_chunking_gives_the_same_exchanges(runs: dict[str, Run], name: str) -> None:
    for capture in runs[name].captures[:3]:
        whole = feed(capture)
        assert whole
        assert feed(capture, 1) == whole
        for seed in range(3):
            assert feed(capture, random.Random(seed)) == whole


@pytest.mark.parametrize("name", CLIENTS)
def test_every_response_reencodes_byte_exact(runs: dict[str, Run], name: str) -> None:
    for capture in runs[name].captures:
        got = feed(capture)
        server = capture.side("server")
        assert b"".join(e.raw_response for e in got) == server  # every server byte, in order
        for e in got:
            assert encode_response(e.response) == e.raw_response, e.request
            # no packet kept whole where the clients' traffic can be decoded
            assert not any("packet" in item for item in e.response["results"]), e.response


def _validator() -> jsonschema.Draft202012Validator:
    resources = []
    for path in (ROOT / "schemas").rglob("*.schema.json"):
        doc = json.loads(path.read_text())
        resources.append((doc["$id"], referencing.Resource.from_contents(doc)))
    registry = referencing.Registry().with_resources(resources)
    registry = registry.with_resource(SCHEMA["$id"], referencing.Resource.from_contents(SCHEMA))
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    return jsonschema.Draft202012Validator(SCHEMA, registry=registry)


@pytest.mark.parametrize("name", CLIENTS)
def test_documents_validate_and_are_plain_data(runs: dict[str, Run], name: str) -> None:
    validator = _validator()
    request = validator.evolve(schema={"$ref": SCHEMA["$id"] + "#/$defs/request"})
    response = validator.evolve(schema={"$ref": SCHEMA["$id"] + "#/$defs/response"})
    seen: set[str] = set()
    for e in exchanges(runs[name]):
        shape = json.dumps([e.request.get("command"), e.request.get("sql"), e.response])
        if shape in seen:  # mysqlslap's connections repeat each other: each shape once
            continue
        seen.add(shape)
        request.validate(e.request)
        response.validate(e.response)
        assert yaml.safe_load(yaml.safe_dump([e.request, e.response])) == [e.request, e.response]


@pytest.mark.parametrize("name", CLIENTS)
def test_no_secret_is_kept(runs: dict[str, Run], mariadb: MariaDB, name: str) -> None:
    for capture in runs[name].captures:
        got = feed(capture)
        dumped = yaml.safe_dump([[e.request, e.response] for e in got], allow_unicode=True)
        assert mariadb.password not in dumped
        secrets = clients.client_secrets(capture.side("client"))
        assert secrets, "the client sent a scramble"
        for secret in secrets:
            for form in (secret, base64.b64encode(secret), secret.hex().encode()):
                assert form.decode("latin-1") not in dumped
        connect = got[0].request
        assert connect["command"] == "connect" and connect["user"] == "app"
        assert connect["auth_response"] == REDACTED
        assert all(redact(e.request) == e.request for e in got)


def _find(got: list[Exchange], **fields: Any) -> Exchange:
    for e in got:
        if all(e.request.get(k) == v for k, v in fields.items()):
            return e
    raise AssertionError(f"no exchange with {fields}")


def test_pymysql_documents(runs: dict[str, Run], infile: Path) -> None:
    got = exchanges(runs["pymysql"])
    connect = got[0]
    assert connect.reusable and "database" in connect.request
    assert {"_client_name": "pymysql"}.items() <= connect.request["attributes"].items()
    multi = _find(
        got,
        sql="SELECT 1 AS one; SELECT 'two' AS two, NULL AS nothing; UPDATE people SET score = 1",
    )
    sets = multi.response["results"]
    assert [s["rows"] for s in sets[:2]] == [[["1"]], [["two", None]]]
    assert (
        "MORE_RESULTS_EXISTS" in sets[0]["end"].get("ok", sets[0]["end"].get("eof", {}))["status"]
    )
    assert sets[2]["ok"]["affected_rows"] == 2
    call = _find(got, sql="CALL two_sets()")
    assert [r["rows"] for r in call.response["results"][:2]] == [[["2"]], [["Ada"], ["Émile"]]]
    assert [c["name"] for c in call.response["results"][1]["columns"]] == ["name"]
    load = next(e for e in got if "local_infile_data" in e.request)
    assert load.request["local_infile_data"] == "Zed,3.5\nYan,4\n"
    items = load.response["results"]
    assert items[0] == {"local_infile": str(infile)}
    assert items[1]["seq"] == 4 and items[1]["ok"]["affected_rows"] == 2
    assert MATCHER.expected(load.request)
    error = _find(got, sql="SELECT * FROM no_such_table").response["results"][0]["error"]
    assert error == {
        "code": 1146,
        "sql_state": "42S02",
        "message": "Table 'app.no_such_table' doesn't exist",
    }
    warned = _find(got, sql="SELECT 1/0 AS x, CAST('12abc' AS SIGNED) AS y").response["results"][0]
    assert warned["rows"] == [[None, "12"]]
    end = warned["end"].get("ok") or warned["end"]["eof"]
    assert end["warnings"] == 2
    assert _find(got, command="ping").response["results"][0]["ok"]["affected_rows"] == 0
    assert MATCHER.setup(_find(got, command="init_db", database="app").request)
    insert = next(e for e in got if str(e.request.get("sql", "")).startswith("INSERT"))
    assert insert.response["results"][0]["ok"]["last_insert_id"] == 1
    assert MATCHER.expected(insert.request) and not MATCHER.setup(insert.request)
    select = next(e for e in got if str(e.request.get("sql", "")).startswith("SELECT  id"))
    assert MATCHER.key(select.request) == (
        "query",
        "SELECT id, name, born, score, note FROM people ORDER BY id",
    )
    assert not MATCHER.expected(select.request)
    assert got[-1].request == {"command": "quit"} and got[-1].response["results"] == []


def test_connector_documents(runs: dict[str, Run]) -> None:
    got = exchanges(runs["connector"])
    connect = got[0]
    # mysql-connector asks for caching_sha2_password; MariaDB switches it
    assert connect.request["auth_plugin"] == "caching_sha2_password"
    assert connect.request["auth_responses"] == [REDACTED]
    items = connect.response["results"]
    assert items[1]["switch"]["plugin"] == "mysql_native_password" and items[1]["seq"] == 2
    assert items[2]["seq"] == 4 and "ok" in items[2]
    prepares = [e for e in got if e.request["command"] == "prepare"]
    assert prepares and all(e.reusable for e in prepares)
    prepared = prepares[0].response["results"][0]
    assert prepared["prepared"]["params"] == 27 and len(prepared["params"]) == 27
    inserts = [
        e
        for e in got
        if e.request["command"] == "execute" and str(e.request["sql"]).startswith("INSERT")
    ]
    params = inserts[0].request["params"]
    assert params[:10] == [1, -128, 255, -32768, 65535, -8388608, -2147483648, 4294967295,
                           -9223372036854775808, 18446744073709551615]  # fmt: skip
    assert inserts[0].request["new_params_bound"] is True
    assert MATCHER.expected(inserts[0].request)
    assert "statement_id" in inserts[0].request
    select = next(
        e for e in got if e.request["command"] == "execute" and e.request["params"] == [1]
        and str(e.request["sql"]).startswith("SELECT *")
    )  # fmt: skip
    rows = select.response["results"][0]
    assert rows["binary"] is True
    assert [c["type"] for c in rows["columns"]][:3] == ["LONG", "TINY", "TINY"]
    first = rows["rows"][0]
    assert first[:10] == [1, -128, 255, -32768, 65535, -8388608, -2147483648, 4294967295,
                          -9223372036854775808, 18446744073709551615]  # fmt: skip
    assert first[10:16] == [
        1.5,
        -2.25,
        "12345.678901",
        "2024-02-29",
        "2024-02-29 13:14:15.123456",
        "2024-01-01",
    ]  # a TIMESTAMP at midnight: the server sends its date only
    assert re.fullmatch(r"-\d\d+:\d\d:\d\d(\.\d{6})?", first[16]) and first[-1] is None
    assert first[20] == {"base64": "AAH+/w=="}  # a BLOB that is not UTF-8
    by_uuid = next(
        e for e in got if e.request["command"] == "execute" and "uid =" in str(e.request["sql"])
    )
    assert MATCHER.readable(by_uuid.request)["params"] == [str(clients.UUID)]
    closes = [e for e in got if e.request["command"] == "close_statement"]
    assert closes and all(e.response["results"] == [] and e.raw_response == b"" for e in closes)
    assert not MATCHER.expected(closes[0].request)


def test_mysqlslap_and_cli(runs: dict[str, Run]) -> None:
    assert len(runs["mysqlslap"].captures) >= 4
    slap = [e for run in ("mysqlslap",) for e in exchanges(runs[run])]
    assert sum(1 for e in slap if e.request["command"] == "connect") >= 4
    assert any(MATCHER.expected(e.request) for e in slap)
    cli = exchanges(runs["cli"])
    queried = [e.request.get("sql") for e in cli if e.request["command"] == "query"]
    assert "SELECT 1 AS a" in queried and "SHOW TABLES LIKE 'people'" in queried


def test_matcher_describe_every_exchange(runs: dict[str, Run]) -> None:
    for name in CLIENTS:
        for e in exchanges(runs[name]):
            line = MATCHER.describe(e.request)
            assert line and "\n" not in line
            assert isinstance(hash(MATCHER.key(e.request)), int)
            assert MATCHER.partials(e.request) is not None
    assert PROTOCOL.name == "mysql" and PROTOCOL.byte_exact


# replay -----------------------------------------------------------------------------------


def test_replay_pymysql_any_password(runs: dict[str, Run], infile: Path) -> None:
    source = RecordedMocks(PROTOCOL, exchanges(runs["pymysql"]))
    with mock_server(source) as port:
        again = clients.pymysql_session(port, "not-the-password", infile)
    assert again == runs["pymysql"].result
    assert source.misses == []


def test_replay_connector_prepared(runs: dict[str, Run]) -> None:
    source = RecordedMocks(PROTOCOL, exchanges(runs["connector"]))
    with mock_server(source) as port:
        again = clients.connector_session(port, "wrong")
    assert again == runs["connector"].result
    assert source.misses == []


def _shifted(e: Exchange, by: int) -> Exchange:
    """The exchange as a server that numbers statements from ``by`` would have answered."""
    request, response = copy.deepcopy(e.request), copy.deepcopy(e.response)
    if "statement_id" in request:
        request["statement_id"] += by
    for item in response["results"]:
        if "prepared" in item:
            item["prepared"]["statement_id"] += by
    return dataclasses.replace(e, request=request, response=response)


def test_replay_remaps_statement_ids(runs: dict[str, Run]) -> None:
    recorded = [_shifted(e, 1000) for e in exchanges(runs["connector"])]
    assert any(e.request.get("statement_id", 0) > 1000 for e in recorded)
    source = RecordedMocks(PROTOCOL, recorded)
    with mock_server(source) as port:
        again = clients.connector_session(port, "any")
    assert again == runs["connector"].result
    assert source.misses == []


def test_replay_sqlalchemy_and_cli(runs: dict[str, Run], mariadb: MariaDB) -> None:
    source = RecordedMocks(PROTOCOL, exchanges(runs["sqlalchemy"]))
    with mock_server(source) as port:
        assert clients.sqlalchemy_session(port, "x") == runs["sqlalchemy"].result
    source = RecordedMocks(PROTOCOL, exchanges(runs["cli"]))
    with mock_server(source) as port:
        assert clients.cli_session(mariadb, port) == runs["cli"].result


def test_replay_miss_is_a_mysql_error(runs: dict[str, Run]) -> None:
    source = RecordedMocks(
        PROTOCOL, [e for e in exchanges(runs["pymysql"]) if MATCHER.setup(e.request)]
    )
    with mock_server(source) as port:
        conn = pymysql.connect(
            host="127.0.0.1",
            port=port,
            user="app",
            password="whatever",
            database="app",
            autocommit=True,
        )
        with conn, conn.cursor() as cur, pytest.raises(pymysql.MySQLError) as caught:
            cur.execute("SELECT 42")
    assert caught.value.args[0] == 1105
    assert "kpy: no recorded mock matches" in caught.value.args[1]
    assert source.misses and source.misses[0]["sql"] == "SELECT 42"
    source = RecordedMocks(
        PROTOCOL, [e for e in exchanges(runs["connector"]) if MATCHER.setup(e.request)]
    )
    with mock_server(source) as port:
        conn2 = mysql.connector.connect(
            host="127.0.0.1",
            port=port,
            user="app",
            password="x",
            database="app",
            use_pure=True,
            autocommit=True,
        )
        cursor = conn2.cursor(prepared=True)
        with pytest.raises(mysql.connector.Error) as error:
            cursor.execute("SELECT %s", (1,))
        assert error.value.errno == 1105 and error.value.sqlstate == "HY000"
        conn2.close()


def test_connector_change_user(runs: dict[str, Run]) -> None:
    got = exchanges(runs["connector"])
    change = _find(got, command="change_user")
    assert change.request["user"] == "app" and change.request["database"] == "app"
    assert change.request["auth_response"] == REDACTED
    assert change.request["auth_responses"] == [REDACTED]  # after MariaDB's auth switch
    items = change.response["results"]
    assert items[0]["switch"]["plugin"] == "mysql_native_password"
    assert "ok" in items[-1]
    assert runs["connector"].result[-1] == [("app@%", "app")]


def test_real_greetings_are_recognised(runs: dict[str, Run], mariadb: MariaDB) -> None:
    for name in CLIENTS:
        for capture in runs[name].captures:
            first = next(data for side, data, _ in capture.chunks if side == "server")
            assert PROTOCOL.greets(first, mariadb.port)  # not port 3306: the shape decides
            assert PROTOCOL.edit_greeting(first) == first  # edited once already, by the relay
            assert not PROTOCOL.sniff(capture.side("client")[:8])
