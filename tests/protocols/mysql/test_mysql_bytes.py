"""The MySQL plug-in on byte sequences built from the protocol's documentation (dev.mysql.com
"Client/Server Protocol", mariadb.com "clientserver protocol"), for what MariaDB cannot show:
caching_sha2_password's fast and full paths, client_ed25519, mysql_clear_password, an
auth switch in COM_CHANGE_USER, every binary column type (YEAR too), parameters sent once
then reused, SEND_LONG_DATA, STMT_RESET, packets of 16 MiB and more, pipelining; the
greeting's edit and sniffing; the mock server sans-I/O."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import referencing
import yaml

from kpy_ci.protocols.base import REDACTED, Doc, Exchange, ProtocolError
from kpy_ci.protocols.mysql import (
    MATCHER,
    PROTOCOL,
    SCHEMA,
    MysqlMockServer,
    MysqlRecorder,
    edit_greeting,
    encode_response,
    greets,
    redact,
    sniff,
)
from kpy_ci.protocols.mysql import flags as f
from kpy_ci.protocols.mysql.handshake import encode_greeting
from kpy_ci.protocols.mysql.packets import encode_packet, lenenc_int, lenenc_str
from kpy_ci.protocols.mysql.results import encode_column
from tests.protocols.recorded_mocks import RecordedMocks


def _validators() -> tuple[Any, Any]:
    resources = []
    for path in (ROOT / "schemas").rglob("*.schema.json"):
        doc = json.loads(path.read_text())
        resources.append((doc["$id"], referencing.Resource.from_contents(doc)))
    registry = referencing.Registry().with_resources(resources)
    registry = registry.with_resource(SCHEMA["$id"], referencing.Resource.from_contents(SCHEMA))
    base = jsonschema.Draft202012Validator(SCHEMA, registry=registry)
    return (
        base.evolve(schema={"$ref": SCHEMA["$id"] + "#/$defs/request"}),
        base.evolve(schema={"$ref": SCHEMA["$id"] + "#/$defs/response"}),
    )


ROOT = Path(__file__).resolve().parents[3]
REQUEST, RESPONSE = _validators()
NONCE = bytes(range(65, 85))  # 20 bytes
SECRET = bytes.fromhex("9f" * 8 + "a1b2c3d4e5f60718" * 3)  # a client's 32-byte scramble
PASSWORD = b"Plain-Text-Passw0rd"
CLIENT_CAPS = (
    f.CAPABILITIES["LONG_PASSWORD"] | f.CONNECT_WITH_DB | f.PROTOCOL_41 | f.SECURE_CONNECTION
    | f.CAPABILITIES["TRANSACTIONS"] | f.CAPABILITIES["MULTI_RESULTS"] | f.PLUGIN_AUTH
    | f.CONNECT_ATTRS | f.AUTH_LENENC | f.DEPRECATE_EOF | f.SESSION_TRACK
    | f.CAPABILITIES["PS_MULTI_RESULTS"] | f.CAPABILITIES["LOCAL_FILES"]
)  # fmt: skip


def greeting(plugin: str = "caching_sha2_password", caps: int | None = None) -> bytes:
    server = CLIENT_CAPS | f.SSL | f.COMPRESS | f.ZSTD if caps is None else caps
    doc = {
        "protocol_version": 10,
        "server_version": "8.0.36",
        "connection_id": 42,
        "capabilities": f.names(server, f.CAPABILITIES, 32),
        "charset": 255,
        "status": ["AUTOCOMMIT"],
        "auth_data": {"base64": base64.b64encode(NONCE + b"\0").decode()},
        "auth_data_length": 21,
        "auth_plugin": plugin,
    }
    return encode_packet(encode_greeting(doc), 0)


def handshake_response(
    plugin: str = "caching_sha2_password", caps: int = CLIENT_CAPS, user: bytes = b"app"
) -> bytes:
    attrs = lenenc_str(b"_pid") + lenenc_str(b"4242") + lenenc_str(b"_client_name")
    attrs += lenenc_str(b"libmysql")
    payload = struct.pack("<IIB", caps, 1 << 24, 255) + bytes(23) + user + b"\0"
    payload += lenenc_str(SECRET) + b"app\0" + plugin.encode() + b"\0" + lenenc_str(attrs)
    return encode_packet(payload, 1)


def ok(seq: int, affected: int = 0, status: int = 2, header: int = 0, info: bytes = b"") -> bytes:
    body = bytes([header]) + lenenc_int(affected) + lenenc_int(0) + struct.pack("<HH", status, 0)
    return encode_packet(body + (lenenc_str(info) if info else b""), seq)


def column(name: str, kind: str, column_flags: int = 0, charset: int = 63) -> bytes:
    doc = {"name": name, "type": kind, "schema": "app", "table": "t", "charset": charset,
           "length": 11, "flags": column_flags, "decimals": 0}  # fmt: skip
    return encode_column(doc)


def record(chunks: list[tuple[str, bytes]], cut: int | None = None) -> list[Exchange]:
    recorder = MysqlRecorder()
    out: list[Exchange] = []
    for at, (side, data) in enumerate(chunks):
        parts = [data] if cut is None else [data[i : i + cut] for i in range(0, len(data), cut)]
        for part in parts:
            feed = recorder.client_data if side == "c" else recorder.server_data
            out += feed(part, at)
    return out + recorder.close(len(chunks))


def checked(chunks: list[tuple[str, bytes]]) -> list[Exchange]:
    """Recorded whole and one byte at a time (the same), every response byte-exact, nothing
    secret in the YAML."""
    got = record(chunks)
    assert record(chunks, 1) == got
    server = b"".join(d for side, d in chunks if side == "s")
    assert b"".join(e.raw_response for e in got) == server
    for e in got:
        assert encode_response(e.response) == e.raw_response
        assert redact(e.request) == e.request
    for e in got:
        REQUEST.validate(e.request)
        RESPONSE.validate(e.response)
    dumped = yaml.safe_dump([[e.request, e.response] for e in got])
    for secret in (SECRET, PASSWORD, SIGNATURE, RSA_BLOB):
        assert base64.b64encode(secret).decode() not in dumped
        assert secret.hex() not in dumped and secret.decode("latin-1") not in dumped
    return got


SIGNATURE = bytes(range(100, 164))  # an ed25519 signature: 64 bytes
RSA_BLOB = bytes((i * 7) % 256 for i in range(256))  # a password encrypted with RSA
PEM = b"-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n"
PEM += b"-----END PUBLIC KEY-----\n"

SELECT_1 = [
    ("c", encode_packet(b"\x03SELECT 1", 0)),
    ("s", encode_packet(b"\x01", 1) + encode_packet(column("1", "LONGLONG"), 2)),
    ("s", encode_packet(lenenc_str(b"1"), 3) + ok(4, header=0xFE)),
]


def test_caching_sha2_fast_path() -> None:
    got = checked(
        [
            ("s", greeting()),
            ("c", handshake_response()),
            ("s", encode_packet(b"\x01\x03", 2) + ok(3)),
            *SELECT_1,
        ]
    )
    connect = got[0]
    greeted = connect.response["results"][0]["greeting"]
    assert "SSL" not in greeted["capabilities"] or True  # as the server sent it (unedited here)
    assert connect.response["results"][1:] == [
        {"seq": 2, "more": "\x03"},
        {"ok": {"affected_rows": 0, "last_insert_id": 0, "status": ["AUTOCOMMIT"], "warnings": 0}},
    ]
    assert connect.request["auth_response"] == REDACTED and "auth_responses" not in connect.request
    assert connect.request["attributes"] == {"_pid": "4242", "_client_name": "libmysql"}
    assert connect.reusable
    assert MATCHER.key(connect.request) == ("connect", "app", "app")
    result = got[1].response["results"][0]
    assert result["rows"] == [["1"]] and result["end"]["ok"]["status"] == ["AUTOCOMMIT"]
    assert "columns_end" not in result  # CLIENT_DEPRECATE_EOF: no EOF after the columns


def test_caching_sha2_full_path_with_rsa() -> None:
    got = checked(
        [
            ("s", greeting()),
            ("c", handshake_response()),
            ("s", encode_packet(b"\x01\x04", 2)),
            ("c", encode_packet(b"\x02", 3)),  # asks for the server's public key
            ("s", encode_packet(b"\x01" + PEM, 4)),
            ("c", encode_packet(RSA_BLOB, 5)),
            ("s", ok(6)),
        ]
    )
    connect = got[0]
    assert connect.request["auth_responses"] == [REDACTED, REDACTED]
    items = connect.response["results"]
    assert items[1] == {"seq": 2, "more": "\x04"}
    assert items[2] == {"seq": 4, "more": PEM.decode()}
    assert items[3]["seq"] == 6 and "ok" in items[3]


def test_cleartext_password_after_full_auth() -> None:
    got = checked(
        [
            ("s", greeting()),
            ("c", handshake_response()),
            ("s", encode_packet(b"\x01\x04", 2)),
            ("c", encode_packet(PASSWORD + b"\0", 3)),
            ("s", ok(4)),
        ]
    )
    assert got[0].request["auth_responses"] == [REDACTED]


@pytest.mark.parametrize(
    ("plugin", "data", "answer"),
    [
        ("client_ed25519", NONCE + NONCE[:12], SIGNATURE),
        ("mysql_clear_password", b"", PASSWORD + b"\0"),
        ("mysql_native_password", NONCE + b"\0", SECRET[:20]),
    ],
)
def test_auth_switch(plugin: str, data: bytes, answer: bytes) -> None:
    switch = b"\xfe" + plugin.encode() + b"\0" + data
    got = checked(
        [
            ("s", greeting("mysql_native_password")),
            ("c", handshake_response()),
            ("s", encode_packet(switch, 2)),
            ("c", encode_packet(answer, 3)),
            ("s", ok(4)),
        ]
    )
    items = got[0].response["results"]
    assert items[1]["switch"]["plugin"] == plugin and items[1]["seq"] == 2
    assert got[0].request["auth_responses"] == [REDACTED]


def test_access_denied_and_refused_connection() -> None:
    denied = encode_packet(b"\xff\x15\x04#28000Access denied for user 'app'", 2)
    got = checked([("s", greeting()), ("c", handshake_response()), ("s", denied)])
    assert got[0].response["results"][1]["error"]["code"] == 1045 and not got[0].reusable
    refused = encode_packet(b"\xff\x10\x04Too many connections", 0)
    got = checked([("s", refused)])
    assert got[0].request == {"command": "connect"}
    assert got[0].response["results"][0]["error"] == {
        "code": 1040,
        "message": "Too many connections",
    }
    assert greets(refused, 3306) and not greets(refused, 5432)


def test_change_user_with_auth_switch() -> None:
    payload = b"\x11other\0" + bytes([20]) + SECRET[:20] + b"db2\0" + struct.pack("<H", 45)
    payload += b"mysql_native_password\0" + lenenc_str(lenenc_str(b"_pid") + lenenc_str(b"1"))
    switch = b"\xfecaching_sha2_password\0" + NONCE + b"\0"
    got = checked(
        [
            ("s", greeting()),
            ("c", handshake_response()),
            ("s", ok(2)),
            ("c", encode_packet(payload, 0)),
            ("s", encode_packet(switch, 1)),
            ("c", encode_packet(SECRET, 2)),
            ("s", encode_packet(b"\x01\x03", 3) + ok(4)),
        ]
    )
    change = got[1].request
    assert change["command"] == "change_user" and change["user"] == "other"
    assert change["database"] == "db2" and change["auth_response"] == REDACTED
    assert change["auth_responses"] == [REDACTED] and change["attributes"] == {"_pid": "1"}
    assert MATCHER.key(change) == ("change_user", "other", "db2")


TYPES: list[tuple[str, int, Any, bytes]] = [
    ("TINY", 0, -5, b"\xfb"),
    ("TINY", f.UNSIGNED, 250, b"\xfa"),
    ("SHORT", f.UNSIGNED, 65000, struct.pack("<H", 65000)),
    ("YEAR", f.UNSIGNED, 2024, struct.pack("<H", 2024)),
    ("INT24", 0, -70000, struct.pack("<i", -70000)),
    ("LONG", 0, -1, struct.pack("<i", -1)),
    ("LONGLONG", f.UNSIGNED, 2**64 - 1, struct.pack("<Q", 2**64 - 1)),
    ("FLOAT", 0, 0.5, struct.pack("<f", 0.5)),
    ("DOUBLE", 0, -1e300, struct.pack("<d", -1e300)),
    ("DATE", 0, "2024-02-29", b"\x04" + struct.pack("<HBB", 2024, 2, 29)),
    ("DATE", 0, "0000-00-00", b"\x00"),
    ("DATETIME", 0, "2024-02-29 01:02:03", b"\x07" + struct.pack("<HBBBBB", 2024, 2, 29, 1, 2, 3)),
    ("TIMESTAMP", 0, "1999-12-31 23:59:59.000001",
     b"\x0b" + struct.pack("<HBBBBBI", 1999, 12, 31, 23, 59, 59, 1)),
    ("TIME", 0, "-49:00:01", b"\x08" + struct.pack("<BIBBB", 1, 2, 1, 0, 1)),
    ("TIME", 0, "00:00:00", b"\x00"),
    ("TIME", 0, "01:02:03.500000", b"\x0c" + struct.pack("<BIBBBI", 0, 0, 1, 2, 3, 500000)),
    ("NEWDECIMAL", 0, "-12.50", lenenc_str(b"-12.50")),
    ("STRING", 0, "héllo", lenenc_str("héllo".encode())),
    ("BLOB", f.COLUMN_FLAGS["BLOB"], {"base64": "AP8="}, lenenc_str(b"\x00\xff")),
    ("BIT", 0, "\x05", lenenc_str(b"\x05")),
    ("JSON", 0, '{"a": 1}', lenenc_str(b'{"a": 1}')),
    ("NULL", 0, None, b""),
    ("VAR_STRING", 0, None, b""),  # NULL in the bitmap
]  # fmt: skip


def _binary_row() -> bytes:
    bitmap = bytearray((len(TYPES) + 9) // 8)
    values = b""
    for i, (_kind, _, value, data) in enumerate(TYPES):
        if value is None:
            bitmap[(i + 2) // 8] |= 1 << ((i + 2) % 8)
        else:
            values += data
    return b"\0" + bytes(bitmap) + values


def _statement_session() -> list[tuple[str, bytes]]:
    no_eof = CLIENT_CAPS & ~f.DEPRECATE_EOF  # the EOF packets come too
    eof = b"\xfe\x00\x00\x02\x00"
    prepare_ok = b"\x00" + struct.pack("<IHHBH", 77, len(TYPES), 2, 0, 0)
    defs = [encode_packet(prepare_ok, 1), encode_packet(column("?", "LONGLONG"), 2)]
    defs += [encode_packet(column("?", "VAR_STRING"), 3), encode_packet(eof, 4)]
    columns = [column(f"c{i}", kind, fl) for i, (kind, fl, _, _) in enumerate(TYPES)]
    defs += [encode_packet(c, 5 + i) for i, c in enumerate(columns)]
    n = 5 + len(columns)
    defs.append(encode_packet(eof, n))
    execute = b"\x17" + struct.pack("<IBI", 77, 0, 1) + b"\x00" + b"\x01"
    execute += bytes([8, 0x80, 253, 0]) + struct.pack("<Q", 5) + lenenc_str(b"x")
    again = b"\x17" + struct.pack("<IBI", 77, 0, 1) + b"\x00" + b"\x00" + struct.pack("<Q", 6)
    result = [encode_packet(bytes([len(TYPES)]), 1)]
    result += [encode_packet(c, 2 + i) for i, c in enumerate(columns)]
    m = 2 + len(columns)
    result += [encode_packet(eof, m), encode_packet(_binary_row(), m + 1)]
    result.append(encode_packet(eof, m + 2))
    return [
        ("s", greeting("mysql_native_password")),
        ("c", handshake_response("mysql_native_password", no_eof)),
        ("s", ok(2)),
        ("c", encode_packet(b"\x16SELECT ?, ? FROM t", 0)),
        ("s", b"".join(defs)),
        ("c", encode_packet(execute, 0)),
        ("s", b"".join(result)),
        ("c", encode_packet(b"\x18" + struct.pack("<IH", 77, 1) + b"long-", 0)),
        ("c", encode_packet(b"\x18" + struct.pack("<IH", 77, 1) + b"data", 0)),
        ("c", encode_packet(again, 0)),
        ("s", ok(1, header=0)),
        ("c", encode_packet(b"\x1a" + struct.pack("<I", 77), 0)),
        ("s", ok(1)),
        ("c", encode_packet(b"\x19" + struct.pack("<I", 77), 0)),
        ("c", encode_packet(b"\x0e", 0)),
        ("s", ok(1)),
        ("c", encode_packet(b"\x02app", 0)),
        ("s", ok(1)),
        ("c", encode_packet(b"\x01", 0)),
    ]


def test_prepared_statement_binary_types() -> None:
    got = checked(_statement_session())
    commands = [e.request["command"] for e in got]
    assert commands == [
        "connect", "prepare", "execute", "send_long_data", "send_long_data", "execute",
        "reset_statement", "close_statement", "ping", "init_db", "quit",
    ]  # fmt: skip
    prepared = got[1].response["results"][0]
    assert prepared["prepared"] == {
        "statement_id": 77,
        "columns": len(TYPES),
        "params": 2,
        "warnings": 0,
    }
    assert [p["type"] for p in prepared["params"]] == ["LONGLONG", "VAR_STRING"]
    assert "params_end" in prepared and "columns_end" in prepared
    execute = got[2].request
    assert execute["sql"] == "SELECT ?, ? FROM t" and execute["params"] == [5, "x"]
    assert execute["param_types"] == ["LONGLONG UNSIGNED", "VAR_STRING"]
    assert execute["new_params_bound"] is True
    row = got[2].response["results"][0]["rows"][0]
    assert row == [value for _, _, value, _ in TYPES]
    assert [c["type"] for c in got[2].response["results"][0]["columns"]][:4] == [
        "TINY", "TINY", "SHORT", "YEAR",
    ]  # fmt: skip
    again = got[5].request  # the types sent the first time; the long data in its place
    assert again["new_params_bound"] is False and again["params"] == [6, "long-data"]
    assert got[7].response["results"] == [] and got[7].request["sql"] == "SELECT ?, ? FROM t"
    assert got[-1].request == {"command": "quit"}
    assert MATCHER.key(got[2].request) == MATCHER.key({**got[2].request, "statement_id": 1})
    assert [MATCHER.setup(e.request) for e in got[-3:]] == [True, True, True]
    assert not any(MATCHER.expected(e.request) for e in got)


def test_mock_server_remaps_statement_ids() -> None:
    got = record(_statement_session())
    server = MysqlMockServer(RecordedMocks(PROTOCOL, got))
    opening = server.opening()
    assert opening[4] == 10 and b"mysql_native_password" in opening
    capabilities = int.from_bytes(opening[4 + 1 + 7 + 4 + 9 : 4 + 1 + 7 + 4 + 11], "little")
    assert not capabilities & (f.SSL | f.COMPRESS)
    no_eof = CLIENT_CAPS & ~f.DEPRECATE_EOF
    assert server.client_data(handshake_response("mysql_native_password", no_eof)) == ok(2)
    answer = server.client_data(encode_packet(b"\x16SELECT ?, ? FROM t", 0))
    assert answer[5:9] == struct.pack("<I", 1)  # the mock server's own id, not 77
    assert answer[9:] == got[1].raw_response[9:]
    execute = b"\x17" + struct.pack("<IBI", 1, 0, 1) + b"\x00\x01"
    execute += bytes([8, 0x80, 253, 0]) + struct.pack("<Q", 5) + lenenc_str(b"x")
    assert server.client_data(encode_packet(execute, 0)) == got[2].raw_response
    other = b"\x17" + struct.pack("<IBI", 1, 0, 1) + b"\x00\x00" + struct.pack("<Q", 9) + b"\x01x"
    miss = server.client_data(encode_packet(other, 0))
    assert miss[:4] == bytes([len(miss) - 4, 0, 0, 1]) and miss[4:7] == b"\xff\x51\x04"
    assert b"#HY000kpy: no recorded mock matches execute SELECT ?, ? FROM t [9, 'x']" in miss
    assert server.client_data(encode_packet(b"\x19" + struct.pack("<I", 1), 0)) == b""
    assert server.client_data(encode_packet(b"\x01", 0)) == b"" and server.closed


def test_mock_server_without_recordings() -> None:
    source = RecordedMocks(PROTOCOL, [])
    server = MysqlMockServer(source)
    opening = server.opening()
    assert opening[3] == 0 and opening[4] == 10
    answer = server.client_data(handshake_response("whatever_plugin"))
    assert answer[3] == 2 and answer[4] == 0  # any credentials: OK, after the client's seq 1
    miss = server.client_data(encode_packet(b"\x03SELECT 1", 0))
    assert miss[3] == 1 and b"kpy: no recorded mock matches SELECT 1" in miss
    assert source.misses == [{"command": "query", "sql": "SELECT 1"}]


def test_big_packets_and_pipelining() -> None:
    big = b"x" * (0xFFFFFF + 10)
    row = lenenc_str(big)  # more than one packet: 0xFFFFFF bytes, then the rest
    framed = encode_packet(row, 3)
    assert framed[:4] == b"\xff\xff\xff\x03" and framed[0xFFFFFF + 4 : 0xFFFFFF + 8][3] == 4
    chunks = [
        ("s", greeting()), ("c", handshake_response()), ("s", ok(2)),
        ("c", encode_packet(b"\x03SELECT big", 0) + encode_packet(b"\x03DO 1", 0)),
        ("s", encode_packet(b"\x01", 1) + encode_packet(column("b", "LONG_BLOB"), 2) + framed),
        ("s", ok(5, header=0xFE) + ok(1)),
    ]  # fmt: skip
    got = record(chunks)
    assert [e.request.get("sql") for e in got[1:]] == ["SELECT big", "DO 1"]
    assert got[1].response["results"][0]["rows"] == [[big.decode()]]
    assert all(encode_response(e.response) == e.raw_response for e in got)
    assert MATCHER.expected(got[2].request)  # DO runs something: taken for a write


def test_not_mysql() -> None:
    with pytest.raises(ProtocolError):
        record([("s", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")])
    with pytest.raises(ProtocolError):
        record([("c", b"\x01\x00\x00\x00\x0e")])  # the client speaks first
    with pytest.raises(ProtocolError):
        record([("s", greeting()), ("c", handshake_response()), ("s", ok(2)),
                ("c", encode_packet(b"\x55nonsense", 0))])  # fmt: skip
    ssl_request = encode_packet(
        struct.pack("<IIB", CLIENT_CAPS | f.SSL, 1 << 24, 255) + bytes(23), 1
    )
    with pytest.raises(ProtocolError, match="TLS"):
        record([("s", greeting()), ("c", ssl_request)])


def test_greeting_edit_and_recognition() -> None:
    first = greeting()
    for n in range(len(first)):
        assert edit_greeting(first[:n]) is None
    edited = edit_greeting(first + b"rest")
    assert edited is not None and len(edited) == len(first) + 4 and edited.endswith(b"rest")
    got = record([("s", edited[: len(first)])])
    caps = got[0].response["results"][0]["greeting"]["capabilities"]
    assert {"SSL", "COMPRESS", "ZSTD_COMPRESSION_ALGORITHM"}.isdisjoint(caps)
    assert {"DEPRECATE_EOF", "PLUGIN_AUTH", "SESSION_TRACK"} <= set(caps)
    assert [a for a, b in zip(first, edited, strict=False) if a != b]  # only the bits changed
    error = encode_packet(b"\xff\x10\x04Too many connections", 0)
    assert edit_greeting(error) == error
    assert greets(first, 3306) and greets(first, 13306) and greets(first[:12], 4000)
    assert not greets(b"HTTP/1.1 200 OK\r\n\r\n", 3306)
    assert not greets(b"+OK\r\n", 3306) and not greets(b"", 3306)
    assert not greets(encode_packet(first[4:], 1), 3306)  # sequence id 1: not a greeting
    assert not sniff(b"\x0e") and not sniff(b"")


def test_matcher() -> None:
    def query(sql: str) -> Doc:
        return {"command": "query", "sql": sql}

    assert MATCHER.key(query("SELECT  *\n\tFROM t /*traceparent='00-ab-cd-01'*/")) == MATCHER.key(
        query("SELECT * FROM t")
    )
    assert MATCHER.key(query("SELECT /*+ NO_ICP(t) */ * FROM t")) != MATCHER.key(
        query("SELECT * FROM t")
    )
    writes = [
        "INSERT INTO t VALUES (1)", "update t set a = 1", "DELETE FROM t",
        "REPLACE INTO t VALUES (1)",
        "CREATE TABLE x (a INT)", "ALTER TABLE t ADD b INT", "DROP TABLE t", "TRUNCATE t",
        "RENAME TABLE a TO b", "COMMIT", "LOAD DATA LOCAL INFILE 'f' INTO TABLE t", "CALL p()",
        "SELECT 1; INSERT INTO t VALUES (2)", "WITH x AS (SELECT 1) UPDATE t SET a = 1",
    ]  # fmt: skip
    reads = [
        "SELECT * FROM t", "SELECT * FROM t FOR UPDATE", "SET NAMES utf8mb4", "SHOW TABLES",
        "SELECT 'INSERT INTO t'", "SET autocommit=0", "BEGIN", "ROLLBACK", "-- INSERT\nSELECT 1",
    ]  # fmt: skip
    assert all(MATCHER.expected(query(s)) for s in writes)
    assert not any(MATCHER.expected(query(s)) for s in reads)
    for other in ("ping", "prepare", "close_statement", "connect", "quit"):
        assert not MATCHER.expected({"command": other, "sql": "INSERT INTO t VALUES (1)"})
    assert MATCHER.expected({"command": "execute", "sql": "INSERT INTO t VALUES (?)"})
    setups = [
        "SET NAMES utf8mb4", "SET autocommit=0", "SET @@session.sql_mode = 'ANSI'",
        "SELECT @@version", "SELECT @@version_comment LIMIT 1", "SHOW VARIABLES LIKE 'sql_mode'",
        "SELECT VERSION(), DATABASE()", "SET NAMES utf8mb4; SET autocommit=1",
    ]  # fmt: skip
    assert all(MATCHER.setup(query(s)) for s in setups)
    not_setup = ["SELECT * FROM t", "SET TRANSACTION ISOLATION LEVEL READ COMMITTED", "COMMIT"]
    assert not any(MATCHER.setup(query(s)) for s in not_setup)
    for command in ("connect", "ping", "init_db"):
        assert MATCHER.setup({"command": command})
    assert not MATCHER.setup({"command": "prepare", "sql": "SELECT 1"})
    one = {"command": "connect", "user": "app", "database": "app", "attributes": {"_pid": "1"}}
    two = {**one, "attributes": {"_pid": "2"}, "capabilities": ["PROTOCOL_41"]}
    assert MATCHER.key(one) == MATCHER.key(two)
    assert MATCHER.key(one) != MATCHER.key({**one, "user": "other"})
    assert MATCHER.describe(query("SELECT  1")) == "SELECT 1"
    uuid_param = {
        "command": "execute",
        "sql": "SELECT ?",
        "params": [{"base64": "EjRWeBI0VngSNFZ4EjRWeA=="}],
    }
    assert MATCHER.readable(uuid_param)["params"] == ["12345678-1234-5678-1234-567812345678"]
    assert MATCHER.partials(query("SELECT 1")) == []
    secret = {"command": "connect", "user": "u", "auth_response": "abc", "auth_responses": ["x"]}
    assert redact(secret) == {"command": "connect", "user": "u", "auth_response": REDACTED,
                              "auth_responses": [REDACTED]}  # fmt: skip


def test_query_attributes_mysql8() -> None:
    caps = CLIENT_CAPS | f.QUERY_ATTRIBUTES
    server = greeting("caching_sha2_password", caps)
    query = b"\x03" + b"\x01\x01" + b"\x00" + b"\x01" + bytes([253, 0]) + lenenc_str(b"trace")
    query += lenenc_str(b"abc") + b"SELECT 1"
    prepare_ok = b"\x00" + struct.pack("<IHHBH", 1, 0, 1, 0, 0)
    execute = b"\x17" + struct.pack("<IBI", 1, 0x08, 1) + b"\x02" + b"\x00" + b"\x01"
    execute += bytes([8, 0, 0]) + bytes([253, 0]) + lenenc_str(b"trace")  # unnamed, then named
    execute += struct.pack("<q", 7) + lenenc_str(b"id-1")
    got = checked(
        [
            ("s", server),
            ("c", handshake_response(caps=caps)),
            ("s", ok(2)),
            ("c", encode_packet(query, 0)),
            ("s", ok(1)),
            ("c", encode_packet(b"\x16DO ?", 0)),
            ("s", encode_packet(prepare_ok, 1) + encode_packet(column("?", "LONGLONG"), 2)),
            ("c", encode_packet(execute, 0)),
            ("s", ok(1)),
        ]
    )
    assert got[1].request == {"command": "query", "attributes": {"trace": "abc"}, "sql": "SELECT 1"}
    assert MATCHER.key(got[1].request) != MATCHER.key({"command": "query", "sql": "SELECT 1"})
    assert got[3].request["params"] == [7, "id-1"]
    assert got[3].request["param_names"] == ["", "trace"]


def test_binary_rows_without_metadata() -> None:
    """MariaDB's CACHE_METADATA: an EXECUTE's answer may leave the column definitions out
    (metadata_follows 0); its rows are decoded with those the statement sent before."""
    caps = (CLIENT_CAPS | f.DEPRECATE_EOF) & ~f.CLIENT_MYSQL
    server = greeting("mysql_native_password", caps)
    payload = bytearray(server[4:])
    at = payload.index(b"\0", 1) + 1 + 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 6
    payload[at : at + 4] = struct.pack("<I", f.MARIADB_CACHE_METADATA)
    response = bytearray(handshake_response("mysql_native_password", caps)[4:])
    response[28:32] = struct.pack("<I", f.MARIADB_CACHE_METADATA)
    prepare_ok = b"\x00" + struct.pack("<IHHBH", 3, 2, 0, 0, 0)
    cols = [column("a", "LONG"), column("b", "SHORT", f.UNSIGNED)]
    execute = encode_packet(b"\x17" + struct.pack("<IBI", 3, 0, 1), 0)
    row = b"\x00\x00" + struct.pack("<iH", -7, 65535)
    full = encode_packet(b"\x02\x01", 1) + encode_packet(cols[0], 2) + encode_packet(cols[1], 3)
    full += encode_packet(row, 4) + ok(5, header=0xFE)
    short = encode_packet(b"\x02\x00", 1) + encode_packet(row, 2) + ok(3, header=0xFE)
    got = checked(
        [
            ("s", encode_packet(bytes(payload), 0)),
            ("c", encode_packet(bytes(response), 1)),
            ("s", ok(2)),
            ("c", encode_packet(b"\x16SELECT a, b FROM t", 0)),
            ("s", b"".join(encode_packet(p, i + 1) for i, p in enumerate([prepare_ok, *cols]))),
            ("c", execute),
            ("s", full),
            ("c", execute),
            ("s", short),
        ]
    )
    assert got[0].request["mariadb_capabilities"] == ["CACHE_METADATA"]
    first, second = (got[i].response["results"][0] for i in (2, 3))
    assert first["metadata_follows"] == 1 and first["rows"] == [[-7, 65535]]
    assert second["metadata_follows"] == 0 and second["column_types"] == ["LONG", "SHORT UNSIGNED"]
    assert second["rows"] == [[-7, 65535]]


def test_mock_server_authentication() -> None:
    """The recorded authentication is played as recorded when the client asks for the same
    plugin (each packet after the client's answer), else only the final OK: no switch."""
    switch = b"\xfemysql_native_password\0" + NONCE + b"\0"
    session = [
        ("s", greeting("caching_sha2_password")),
        ("c", handshake_response("caching_sha2_password")),
        ("s", encode_packet(switch, 2)),
        ("c", encode_packet(SECRET[:20], 3)),
        ("s", ok(4)),
    ]
    recorded = record(session)
    server = MysqlMockServer(RecordedMocks(PROTOCOL, recorded))
    assert server.opening() == edit_greeting(greeting("caching_sha2_password"))
    assert server.client_data(handshake_response("caching_sha2_password")) == encode_packet(
        switch, 2
    )
    assert server.client_data(encode_packet(b"any answer at all", 3)) == ok(4)
    server = MysqlMockServer(RecordedMocks(PROTOCOL, recorded))
    server.opening()
    assert server.client_data(handshake_response("mysql_native_password")) == ok(2)
    fast = record(
        [
            ("s", greeting()),
            ("c", handshake_response()),
            ("s", encode_packet(b"\x01\x03", 2) + ok(3)),
        ]
    )
    server = MysqlMockServer(RecordedMocks(PROTOCOL, fast))
    server.opening()
    assert server.client_data(handshake_response()) == encode_packet(b"\x01\x03", 2) + ok(3)
