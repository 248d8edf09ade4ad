"""Hand-made edge cases of the PostgreSQL module: what real sessions rarely show. The bytes
are built with ``encode_message``, which the real-traffic tests check against a server."""

from __future__ import annotations

import pytest
import yaml

from kpy_ci.protocols.base import Exchange, ProtocolError
from kpy_ci.protocols.postgres.framing import Framer
from kpy_ci.protocols.postgres.messages import decode_message, encode_message
from kpy_ci.protocols.postgres.recorder import PostgresRecorder, encode_response, sniff


def msg(kind: str, **fields: object) -> bytes:
    return encode_message({"type": kind, **fields})


COLUMN = {"name": "n", "table_oid": 0, "column": 0, "type_oid": 23, "type_size": 4}
STARTUP = msg("StartupMessage", protocol="3.0", parameters={"user": "kpy", "database": "kpy"})
READY = msg("ReadyForQuery", status="I")
WELCOME = msg("AuthenticationOk") + msg("BackendKeyData", process_id=7, secret_key=99) + READY
SELECT = msg("Query", sql="SELECT 1")
ROWS = (
    msg("RowDescription", fields=[{**COLUMN, "type_modifier": -1, "format": 0}])
    + msg("DataRow", values=["1"])
    + msg("CommandComplete", tag="SELECT 1")
    + READY
)


def raw(code: bytes, body: bytes) -> bytes:
    return code + (len(body) + 4).to_bytes(4, "big") + body


def i32(n: int) -> bytes:
    return n.to_bytes(4, "big")


SASL = [  # a SCRAM exchange, as it goes (the values are made up)
    ("server", raw(b"R", i32(10) + b"SCRAM-SHA-256\0\0")),
    ("client", raw(b"p", b"SCRAM-SHA-256\0" + i32(20) + b"n,,n=,r=CLIENTNONCE1")),
    ("server", raw(b"R", i32(11) + b"r=CLIENTNONCE1SERVER,s=SALTSALT,i=4096")),
    ("client", raw(b"p", b"c=biws,r=CLIENTNONCE1SERVER,p=PROOFPROOF")),
    ("server", raw(b"R", i32(12) + b"v=SIGNATURE1")),
]


def connected() -> tuple[PostgresRecorder, Exchange]:
    recorder = PostgresRecorder()
    assert recorder.client_data(STARTUP, 1) == []
    (startup,) = recorder.server_data(WELCOME, 2)
    return recorder, startup


def test_trust_startup() -> None:
    _, startup = connected()
    hello = {
        "type": "StartupMessage",
        "protocol": "3.0",
        "parameters": {"user": "kpy", "database": "kpy"},
    }
    assert startup.request == {
        "messages": [hello],
        "auth": {"method": "trust"},
        "ssl_requested": False,
        "gssenc_requested": False,
    }
    assert startup.raw_response == WELCOME == encode_response(startup.response)
    assert (startup.started, startup.ended, startup.reusable) == (1, 2, True)


def test_split_anywhere_keeps_the_first_and_last_byte_times() -> None:
    recorder, _ = connected()
    assert recorder.client_data(SELECT[:2], 10) == []  # inside the header
    assert recorder.client_data(SELECT[2:7], 11) == []
    assert recorder.client_data(SELECT[7:], 12) == []
    assert recorder.server_data(ROWS[:3], 20) == []
    (e,) = recorder.server_data(ROWS[3:], 21)
    assert (e.started, e.ended) == (10, 21)
    assert e.request == {"messages": [{"type": "Query", "sql": "SELECT 1"}], "sql": "SELECT 1"}
    assert e.raw_response == ROWS == encode_response(e.response)


def test_a_whole_message_chunk_is_not_copied() -> None:
    framer = Framer(client=False)
    (frame,) = framer.feed(READY, 5)
    assert frame.raw is READY and (frame.tag, frame.at) == ("Z", 5)


def test_ssl_gssenc_and_scram_leave_only_notes() -> None:
    recorder = PostgresRecorder()
    asks = [("client", msg("GSSENCRequest")), ("server", b"N")]
    asks += [("client", msg("SSLRequest")), ("server", b"N"), ("client", STARTUP)]
    for at, (who, data) in enumerate(asks + SASL):
        take = recorder.client_data if who == "client" else recorder.server_data
        assert take(data, at) == []
    (startup,) = recorder.server_data(WELCOME, 100)
    assert startup.request["auth"] == {"method": "scram-sha-256"}
    assert startup.request["ssl_requested"] and startup.request["gssenc_requested"]
    assert (startup.started, startup.raw_response) == (0, WELCOME)
    dump = yaml.safe_dump(startup.request) + yaml.safe_dump(startup.response)
    for secret in ("CLIENTNONCE1", "SALTSALT", "PROOFPROOF", "SIGNATURE1", "biws"):
        assert secret not in dump


def test_md5_and_password_methods() -> None:
    for code, method, answer in ((5, "md5", b"md5" + b"0" * 32 + b"\0"), (3, "password", b"pw\0")):
        recorder = PostgresRecorder()
        recorder.client_data(STARTUP, 1)
        recorder.server_data(raw(b"R", i32(code) + (b"SALT" if code == 5 else b"")), 2)
        recorder.client_data(raw(b"p", answer), 3)
        (startup,) = recorder.server_data(WELCOME, 4)
        assert startup.request["auth"] == {"method": method}
        assert startup.raw_response == WELCOME


def test_refused_after_authentication_ends_the_startup() -> None:
    recorder = PostgresRecorder()
    recorder.client_data(STARTUP, 1)
    fatal = msg("ErrorResponse", severity="FATAL", code="3D000", message="no database")
    (startup,) = recorder.server_data(msg("AuthenticationOk") + fatal, 2)
    assert [m["type"] for m in startup.response["messages"]] == [
        "AuthenticationOk",
        "ErrorResponse",
    ]
    assert not startup.reusable and recorder.close(3) == []


def test_not_postgres_or_not_decodable() -> None:
    with pytest.raises(ProtocolError):
        PostgresRecorder().client_data(b"GET / HTTP/1.1\r\n\r\n", 1)
    with pytest.raises(ProtocolError):
        v2 = msg("StartupMessage", protocol="2.0", parameters={"user": "kpy"})
        PostgresRecorder().client_data(v2, 1)
    recorder = PostgresRecorder()
    recorder.client_data(msg("SSLRequest"), 1)
    assert recorder.server_data(b"S", 2) == []  # TLS, which kpy ends: plain inside
    recorder = PostgresRecorder()
    recorder.client_data(msg("SSLRequest"), 1)
    with pytest.raises(ProtocolError):
        recorder.server_data(b"X", 2)  # an answer that is neither yes nor no
    recorder, _ = connected()
    with pytest.raises(ProtocolError):
        recorder.server_data(b"Z\x00\x00\x00\x02", 3)  # a length shorter than itself


def test_unknown_message_types_round_trip() -> None:
    recorder, _ = connected()
    odd = b"y\x00\x00\x00\x07\x00\xffz"
    assert recorder.client_data(odd, 3) == []
    reply = b"Y\x00\x00\x00\x06\x01\x02" + READY
    (e,) = recorder.server_data(reply, 4)
    assert e.request["messages"] == [{"type": "y", "base64": "AP96"}]
    assert e.response["messages"][0] == {"type": "Y", "base64": "AQI="}
    assert encode_response(e.response) == reply == e.raw_response
    assert encode_message(e.request["messages"][0]) == odd


def test_error_fields_are_named_and_kept_in_order() -> None:
    fields = b"SERROR\0C42P01\0Mno such table\0P15\0Yfuture field\0\0"
    error = raw(b"E", fields)
    doc = decode_message(error, frontend=False)
    assert doc == {
        "type": "ErrorResponse",
        "severity": "ERROR",
        "code": "42P01",
        "message": "no such table",
        "position": "15",
        "Y": "future field",  # a code this module does not know keeps its letter
    }
    assert encode_message(yaml.safe_load(yaml.safe_dump(doc))) == error
    odd = raw(b"E", b"Mfirst\0SERROR\0\0")  # an order PostgreSQL never uses: kept whole
    assert decode_message(odd, frontend=False) == {
        "type": "ErrorResponse",
        "base64": "TWZpcnN0AFNFUlJPUgAA",
    }
    assert encode_message(decode_message(odd, frontend=False)) == odd


def test_binary_columns_show_as_base64() -> None:
    recorder, _ = connected()
    recorder.client_data(SELECT, 3)
    binary = msg("RowDescription", fields=[{**COLUMN, "type_modifier": -1, "format": 1}])
    row = b"D\x00\x00\x00\x0e\x00\x01\x00\x00\x00\x04\x00\x00\x00\x41"  # "\0\0\0A": UTF-8 too
    (e,) = recorder.server_data(binary + row + msg("CommandComplete", tag="SELECT 1") + READY, 4)
    assert e.response["messages"][1] == {"type": "DataRow", "values": [{"base64": "AAAAQQ=="}]}


def test_pipelined_units_pair_in_order_and_lone_flush_is_dropped() -> None:
    recorder, _ = connected()
    parse = msg("Parse", statement="s1", sql="SELECT $1", param_types=[23])
    bind = msg(
        "Bind", portal="", statement="s1", param_formats=[0], params=["5"], result_formats=[]
    )
    execute, sync, flush = msg("Execute", portal="", max_rows=0), msg("Sync"), msg("Flush")
    client = parse + sync + bind + execute + sync + flush + SELECT + bind + execute + sync
    assert recorder.client_data(client, 3) == []
    done = (
        msg("BindComplete") + msg("DataRow", values=["5"]) + msg("CommandComplete", tag="SELECT 1")
    )
    first, second, third, fourth = recorder.server_data(
        msg("ParseComplete") + READY + done + READY + ROWS + done + READY, 4
    )
    assert first.request["sql"] == second.request["sql"] == fourth.request["sql"] == "SELECT $1"
    assert [m["type"] for m in second.request["messages"]] == ["Bind", "Execute", "Sync"]
    assert second.request["messages"][0]["params"] == ["5"]
    assert third.request["sql"] == "SELECT 1" and third.raw_response == ROWS
    recorder.client_data(msg("Terminate"), 5)
    assert recorder.close(6) == []


def test_close_returns_what_was_cut_short() -> None:
    recorder, _ = connected()
    recorder.client_data(SELECT, 3)
    partial = ROWS[: ROWS.index(b"C") + 4]  # RowDescription, DataRow, half a CommandComplete
    assert recorder.server_data(partial, 4) == []
    recorder.client_data(msg("Parse", statement="", sql="SELECT 2", param_types=[]), 5)
    cut, unsent = recorder.close(9)
    assert [m["type"] for m in cut.response["messages"]] == ["RowDescription", "DataRow"]
    assert cut.response["incomplete"] is True and not cut.reusable
    assert encode_response(cut.response) == cut.raw_response == partial[: partial.index(b"C")]
    assert (cut.started, cut.ended) == (3, 4)
    assert unsent.response == {"messages": [], "incomplete": True} and unsent.ended == 9


def test_unasked_server_messages_open_the_next_response() -> None:
    recorder, _ = connected()
    note = msg("NotificationResponse", process_id=8, channel="pets", payload="woof")
    assert recorder.server_data(note, 3) == []
    recorder.client_data(SELECT, 4)
    (e,) = recorder.server_data(ROWS, 5)
    assert e.raw_response == note + ROWS and e.started == 4
    assert recorder.server_data(note, 6) == []
    (alone,) = recorder.close(7)
    assert alone.request == {"messages": []} and alone.response["incomplete"] is True
    assert (alone.raw_response, alone.started, alone.ended) == (note, 6, 6)


def test_cancel_request() -> None:
    cancel = msg("CancelRequest", process_id=7, secret_key=99)
    assert sniff(cancel) and len(cancel) == 16
    (e,) = PostgresRecorder().client_data(cancel, 1)
    assert e.request == {"messages": [{"type": "CancelRequest", "process_id": 7, "secret_key": 99}]}
    assert e.response == {"messages": []}


def test_authentication_is_never_decoded() -> None:
    with pytest.raises(ProtocolError):
        decode_message(b"p\x00\x00\x00\x08pw\x00\x00", frontend=True)
    with pytest.raises(ProtocolError):
        decode_message(b"R\x00\x00\x00\x0c\x00\x00\x00\x05SALT", frontend=False)
