"""The Redis recorder on real conversations (redis_traffic.py: redis-py in RESP2 and RESP3,
redis-cli, redis-benchmark, bare sockets) fed as they came and re-chunked into 1- and
5-byte pieces; sniffing; and hand-made cases the server will not produce on demand."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import yaml

from kpy_ci.protocols.base import REDACTED, Exchange, ProtocolError
from kpy_ci.protocols.redis import PROTOCOL
from kpy_ci.protocols.redis.recorder import RedisRecorder, encode_response, redact, sniff
from tests.capture import CaptureRelay, Connection
from tests.protocols.redis_traffic import BIG_TEXT, BINARY, SCENARIOS, capture, resp
from tests.servers import PG_PASSWORD, REDIS_PASSWORD, Postgres, Redis

Traffic = dict[str, list[Connection]]


@pytest.fixture(scope="module")
def traffic(redis: Redis) -> Traffic:
    return {name: capture(redis, scenario) for name, scenario in SCENARIOS.items()}


def pieces(conn: Connection, size: int | None) -> Iterator[tuple[str, bytes, int]]:
    """The connection's chunks in arrival order, cut into ``size``-byte pieces."""
    for who, data, at in conn.chunks:
        step = size or len(data)
        for i in range(0, len(data), step):
            yield who, data[i : i + step], at


def record(conn: Connection, size: int | None = None) -> list[Exchange]:
    recorder = PROTOCOL.recorder()
    done: list[Exchange] = []
    for who, data, at in pieces(conn, size):
        feed = recorder.client_data if who == "client" else recorder.server_data
        done += feed(data, at)
    return done + recorder.close(conn.chunks[-1][2] + 1)


def recorded(traffic: Traffic, scenario: str) -> list[Exchange]:
    return [e for conn in traffic[scenario] for e in record(conn)]


def pairs(exchanges: list[Exchange]) -> list[tuple[Any, Any]]:
    return [(e.request.get("command", e.request), e.response) for e in exchanges]


def reply(exchanges: list[Exchange], *command: Any) -> Any:
    """The response to the first command equal to this one."""
    for e in exchanges:
        if e.request.get("command") == list(command):
            return e.response
    raise AssertionError(f"no {command!r} among {[e.request for e in exchanges]}")


def ok(value: Any = "OK") -> dict[str, Any]:
    return {"reply": {"simple": value}}


@pytest.mark.parametrize("size", [None, 1, 5])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_replies_re_encode_to_the_servers_bytes(traffic: Traffic, scenario: str, size: int) -> None:
    assert traffic[scenario], "the scenario made no connection"
    for conn in traffic[scenario]:
        exchanges = record(conn, size)
        for e in exchanges:
            assert encode_response(e.response) == e.raw_response
            from_yaml = yaml.safe_load(yaml.safe_dump(e.response))
            assert encode_response(from_yaml) == e.raw_response
            assert e.started <= e.ended
        assert b"".join(e.raw_response for e in exchanges) == conn.side("server")
        if size:  # however the bytes were cut, the same exchanges
            whole = record(conn)
            assert [(e, e.raw_response) for e in exchanges] == [(e, e.raw_response) for e in whole]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_password_is_never_kept(traffic: Traffic, scenario: str) -> None:
    assert any(REDIS_PASSWORD.encode() in conn.side("client") for conn in traffic[scenario])
    for conn in traffic[scenario]:
        for e in record(conn):
            assert REDIS_PASSWORD not in yaml.safe_dump([e.request, e.response])


def test_resp2_replies(traffic: Traffic) -> None:
    got = recorded(traffic, "resp2")
    k = "kpy:2:"
    assert reply(got, "AUTH", REDACTED) == ok()
    assert reply(got, "SET", k + "k", "v") == ok()
    assert reply(got, "GET", k + "k") == {"reply": "v"}
    assert reply(got, "GET", k + "missing") == {"reply": {"null": "bulk"}}
    binary = {"base64": base64.b64encode(BINARY).decode()}
    assert reply(got, "SET", k + "bin", binary) == ok()
    assert reply(got, "GET", k + "bin") == {"reply": binary}
    assert reply(got, "GET", k + "big") == {"reply": BIG_TEXT}
    assert reply(got, "INCRBY", k + "n", "1") == {"reply": 1}
    assert reply(got, "LRANGE", k + "list", "0", "-1") == {"reply": ["a", "b", "c"]}
    assert reply(got, "HGETALL", k + "hash") == {"reply": ["f1", "1", "f2", "two"]}
    assert reply(got, "SMEMBERS", k + "set") == {"reply": ["m"]}
    assert reply(got, "ZSCORE", k + "z", "m") == {"reply": "1.5"}
    assert reply(got, "BLPOP", k + "empty", "0.01") == {"reply": {"null": "array"}}
    assert reply(got, "LPUSH", k + "k", "x")["reply"]["error"].startswith("WRONGTYPE")
    for i in range(40):  # the pipeline: 80 commands sent at once, paired in order
        assert reply(got, "GET", f"{k}pipe{i}") == {"reply": str(i)}
    exec_replies = [e.response for e in got if e.request["command"] == ["EXEC"]]
    assert exec_replies == [{"reply": [{"simple": "OK"}, 2, "2"]}, {"reply": {"null": "array"}}]
    lua = [e.response["reply"] for e in got if e.request["command"][0] == "EVAL"]
    assert lua == [[1, 0, "3.5", "12345678901234567890", ["a", 1], ["x"], "hi"]]
    assert reply(got, "INFO", "keyspace")["reply"].startswith("# Keyspace\r\n")


def test_resp3_replies(traffic: Traffic) -> None:
    got = recorded(traffic, "resp3")
    k = "kpy:3:"
    hello = got[0]
    assert hello.request["command"] == ["HELLO", "3", "AUTH", "default", REDACTED]
    assert ["proto", 3] in hello.response["reply"]["map"]
    assert hello.reusable
    assert reply(got, "GET", k + "missing") == {"reply": {"null": "resp3"}}
    assert reply(got, "HGETALL", k + "hash") == {"reply": {"map": [["f1", "1"], ["f2", "two"]]}}
    assert reply(got, "SMEMBERS", k + "set") == {"reply": {"set": ["m"]}}
    assert reply(got, "ZSCORE", k + "z", "m") == {"reply": {"double": "1.5"}}
    assert reply(got, "BLPOP", k + "empty", "0.01") == {"reply": {"null": "resp3"}}
    assert [e.response for e in got if e.request["command"] == ["EXEC"]][-1] == {
        "reply": {"null": "resp3"}
    }
    lua = [e.response["reply"] for e in got if e.request["command"][0] == "EVAL"]
    assert lua == [
        [
            {"bool": True},
            {"bool": False},
            {"double": "3.5"},
            {"big": "12345678901234567890"},
            {"map": [["a", 1]]},
            {"set": ["x"]},
            {"verbatim": "txt", "text": "hi"},
        ]
    ]
    info = reply(got, "INFO", "keyspace")["reply"]
    assert info["verbatim"] == "txt" and info["text"].startswith("# Keyspace")


@pytest.mark.parametrize("protocol", [2, 3])
def test_pubsub_messages_come_unasked(traffic: Traffic, protocol: int) -> None:
    subscriber = next(c for c in traffic[f"pubsub{protocol}"] if b"SUBSCRIBE" in c.side("client"))
    got = record(subscriber)

    def frame(*items: Any) -> Any:
        return {"push": list(items)} if protocol == 3 else list(items)

    news, sport, weather = f"news{protocol}", f"sport{protocol}", f"weather{protocol}.*"
    rain = {"base64": base64.b64encode(b"\xffrain").decode()}
    *_, subscribe, psubscribe, message, pmessage, unsubscribe, punsubscribe = pairs(got)
    assert subscribe == (
        ["SUBSCRIBE", news, sport],
        {"replies": [frame("subscribe", news, 1), frame("subscribe", sport, 2)]},
    )
    assert psubscribe == (["PSUBSCRIBE", weather], {"reply": frame("psubscribe", weather, 3)})
    assert message == ({"push": True}, {"reply": frame("message", news, "hello")})
    paris = frame("pmessage", weather, f"weather{protocol}.paris", rain)
    assert pmessage == ({"push": True}, {"reply": paris})
    # no channel named: one confirmation per channel dropped, in the server's hash order
    assert unsubscribe == (["UNSUBSCRIBE"], {"replies": unsubscribe[1]["replies"]})
    assert unsubscribe[1]["replies"] in (
        [frame("unsubscribe", news, 2), frame("unsubscribe", sport, 1)],
        [frame("unsubscribe", sport, 2), frame("unsubscribe", news, 1)],
    )
    assert punsubscribe == (["PUNSUBSCRIBE"], {"reply": frame("punsubscribe", weather, 0)})


def test_tracking_invalidations_do_not_shift_the_pairing(traffic: Traffic) -> None:
    conn = next(c for c in traffic["tracking"] if b"TRACKING" in c.side("client"))
    invalidation = ({"push": True}, {"reply": {"push": ["invalidate", ["kpy:tracked"]]}})
    assert pairs(record(conn))[1:] == [
        (["CLIENT", "TRACKING", "on"], ok()),
        (["GET", "kpy:tracked"], {"reply": {"null": "resp3"}}),
        invalidation,
        (["GET", "kpy:tracked"], {"reply": "elsewhere"}),
        (["SET", "kpy:tracked", "mine"], ok()),
        invalidation,
        (["PING"], ok("PONG")),
    ]


def test_inline_commands(traffic: Traffic) -> None:
    [conn] = traffic["inline"]
    got = record(conn)
    assert [e.request for e in got[:5]] == [
        {"command": ["AUTH", REDACTED], "inline": True},
        {"command": ["PING"], "inline": True},
        {"command": ["SET", "kpy:inline", "hello world!"], "inline": True},
        {"command": ["get", "kpy:inline"], "inline": True},  # the empty line before: nothing
        {"command": ["ping"], "inline": True},
    ]
    assert [e.response for e in got[2:5]] == [ok(), {"reply": "hello world!"}, ok("PONG")]
    # unbalanced quotes: no command; the server's error comes unasked, and it closes
    assert pairs(got[5:]) == [
        ({"push": True}, {"reply": {"error": "ERR Protocol error: unbalanced quotes in request"}})
    ]


def test_monitor_lines_come_unasked_until_reset(traffic: Traffic) -> None:
    conn = next(c for c in traffic["monitor"] if b"MONITOR" in c.side("client"))
    got = pairs(record(conn))
    assert got[:2] == [(["AUTH", REDACTED], ok()), (["MONITOR"], ok())]
    lines = [response["reply"]["simple"] for request, response in got[2:-3]]
    assert all(request == {"push": True} for request, _ in got[2:-3])
    assert lines[-1].endswith('"SET" "kpy:monitored" "1"')
    assert got[-3:] == [
        (["RESET"], ok("RESET")),
        (["AUTH", REDACTED], ok()),
        (["PING"], ok("PONG")),
    ]


def test_commands_the_server_does_not_answer(traffic: Traffic) -> None:
    [conn] = traffic["client_reply"]
    assert pairs(record(conn)) == [
        (["AUTH", "default", REDACTED], ok()),
        (["CLIENT", "REPLY", "SKIP"], {"replies": []}),
        (["SET", "kpy:quiet", "1"], {"replies": []}),
        (["CLIENT", "REPLY", "OFF"], {"replies": []}),
        (["SET", "kpy:quiet", "2"], {"replies": []}),
        (["CLIENT", "REPLY", "ON"], ok()),
        (["GET", "kpy:quiet"], {"reply": "2"}),
    ]


def test_a_command_unanswered_at_close_is_kept_incomplete(traffic: Traffic) -> None:
    [conn] = traffic["unanswered"]
    *_, blpop = record(conn)
    assert blpop.request == {"command": ["BLPOP", "kpy:never", "0"]}
    assert blpop.response == {"replies": [], "incomplete": True}
    assert blpop.ended == conn.chunks[-1][2] + 1 and blpop.raw_response == b""


def test_redis_cli(traffic: Traffic) -> None:
    got = recorded(traffic, "cli")
    assert reply(got, "SET", "kpy:cli", "from cli") == ok()
    assert reply(got, "GET", "kpy:cli") == {"reply": "from cli"}
    assert reply(got, "LRANGE", "kpy:cli:list", "0", "-1") == {"reply": ["x", "y"]}
    assert reply(got, "HGETALL", "kpy:3:hash") == {"reply": {"map": [["f1", "1"], ["f2", "two"]]}}
    assert reply(got, "CONFIG", "SET", "masterauth", REDACTED) == ok()
    setup = [e for e in got if e.request["command"][0] in ("AUTH", "HELLO", "SELECT", "PING")]
    assert {e.request["command"][0] for e in setup} == {"AUTH", "HELLO", "SELECT", "PING"}
    assert all(e.reusable for e in setup)
    assert not any(e.reusable for e in got if e.request["command"][0] in ("GET", "SET"))


def test_redis_benchmark_pipelines(traffic: Traffic) -> None:
    got = recorded(traffic, "benchmark")
    sets = [e.response for e in got if e.request["command"][0] == "SET"]
    gets = [e.response for e in got if e.request["command"][0] == "GET"]
    assert len(sets) >= 200 and len(gets) >= 200
    assert all(r == ok() for r in sets) and all(r == {"reply": "VXK"} for r in gets)


def arrival(conn: Connection, who: str, offset: int) -> int:
    """When the byte at ``offset`` of one side's stream arrived."""
    for side, data, at in conn.chunks:
        if side == who:
            if offset < len(data):
                return at
            offset -= len(data)
    raise AssertionError("past the end")


def test_times_are_those_of_the_first_request_and_last_reply_bytes(traffic: Traffic) -> None:
    conn = next(c for c in traffic["resp2"] if b"kpy:2:big" in c.side("client"))
    get_big = next(e for e in record(conn) if e.request["command"] == ["GET", "kpy:2:big"])
    first = conn.side("client").index(resp("GET", "kpy:2:big"))
    head = b"$%d\r\n" % len(BIG_TEXT)
    last = conn.side("server").index(head) + len(head) + len(BIG_TEXT) + 1
    assert get_big.started == arrival(conn, "client", first)
    assert get_big.ended == arrival(conn, "server", last)  # 210 KB: several chunks, the last


# sniffing


@pytest.fixture(scope="module")
def postgres_first_bytes(postgres: Postgres) -> list[bytes]:
    """What psycopg sends first, with TLS (an SSLRequest) and without (a StartupMessage)."""
    with CaptureRelay(postgres.port) as relay:
        for sslmode in ("disable", "prefer"):
            dsn = f"host=127.0.0.1 port={relay.port} dbname=kpy user=kpy sslmode={sslmode}"
            psycopg.connect(dsn, password=PG_PASSWORD).close()
    return [c.chunks[0][1] for c in relay.connections]


def test_sniff_takes_what_redis_clients_send(traffic: Traffic) -> None:
    firsts = [conn.chunks[0][1] for conns in traffic.values() for conn in conns]
    assert all(sniff(first) for first in firsts)
    resp_first = traffic["resp2"][0].chunks[0][1]
    assert all(sniff(resp_first[:n]) for n in range(1, 30))  # a few bytes are enough
    for inline in (b"PING\r\n", b"ping\n", b"AUTH secret\r\n", b"GET key\r\n", b"SET k v\r\n"):
        assert sniff(inline), inline


HTTP = [
    b"GET / HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: identity\r\n\r\n",
    b"GET /index.html HTTP/1.0\r\n\r\n",
    b"GET http://example.com/ HTTP/1.1\r\n",  # to a proxy
    b"GET /api/items?q=1",  # the request line not yet whole
    b"GET",
    b"POST /api HTTP/1.1\r\n",
    b"DELETE /item/1 HTTP/1.1\r\n",
    b"MOVE /a HTTP/1.1\r\nDestination: /b\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
]


@pytest.mark.parametrize("first", HTTP)
def test_sniff_leaves_http_alone(first: bytes) -> None:
    assert not sniff(first)


def test_sniff_leaves_postgres_and_others_alone(postgres_first_bytes: list[bytes]) -> None:
    assert len(postgres_first_bytes) == 2
    others = [b"", b"P", b"PING", b"*x", b"*0\r\n", b"\x16\x03\x01\x02\x00", b"SSH-2.0-x\r\n"]
    for first in [*postgres_first_bytes, *others]:
        assert not sniff(first), first


# hand-made: what a server will not send on demand


def talk(*turns: tuple[str, bytes], close: bool = True) -> list[Exchange]:
    recorder = RedisRecorder()
    done: list[Exchange] = []
    for at, (who, data) in enumerate(turns):
        done += (recorder.client_data if who == "client" else recorder.server_data)(data, at)
    return done + (recorder.close(len(turns)) if close else [])


def test_resp3_attribute_goes_with_the_reply() -> None:
    attribute = b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.1923\r\n"
    [e] = talk(("client", resp("GET", "a")), ("server", attribute + b"$1\r\n1\r\n"))
    popularity = [{"simple": "key-popularity"}, {"map": [["a", {"double": "0.1923"}]]}]
    assert e.response == {"reply": {"attributes": [popularity], "value": "1"}}
    assert e.raw_response == attribute + b"$1\r\n1\r\n"


def test_a_push_between_pipelined_replies_is_its_own_exchange() -> None:
    got = talk(
        ("client", resp("GET", "a") + resp("GET", "b")),
        ("server", b"$1\r\n1\r\n>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\na\r\n$1\r"),
        ("server", b"\n2\r\n"),
    )
    assert pairs(got) == [
        (["GET", "a"], {"reply": "1"}),
        ({"push": True}, {"reply": {"push": ["invalidate", ["a"]]}}),
        (["GET", "b"], {"reply": "2"}),
    ]
    assert [(e.started, e.ended) for e in got] == [(0, 1), (1, 1), (0, 2)]


def test_a_message_like_reply_outside_pubsub_is_a_reply() -> None:
    [e] = talk(("client", resp("LRANGE", "l", "0", "-1")), ("server", resp("message", "a", "b")))
    assert pairs([e]) == [(["LRANGE", "l", "0", "-1"], {"reply": ["message", "a", "b"]})]


def test_resp3_subscribed_connections_still_get_plain_replies() -> None:
    hello = b"%1\r\n$5\r\nproto\r\n:3\r\n"
    got = talk(
        ("client", resp("HELLO", "3") + resp("SUBSCRIBE", "ch") + resp("LRANGE", "l", "0", "1")),
        ("server", hello + b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"),
        ("server", resp("message", "a", "b")),  # a list that looks like a message: a reply
    )
    assert pairs(got)[1:] == [
        (["SUBSCRIBE", "ch"], {"reply": {"push": ["subscribe", "ch", 1]}}),
        (["LRANGE", "l", "0", "1"], {"reply": ["message", "a", "b"]}),
    ]


def test_unsubscribe_from_nothing_gets_one_confirmation() -> None:
    nothing = b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
    got = talk(("client", resp("UNSUBSCRIBE") + resp("PING")), ("server", nothing + b"+PONG\r\n"))
    assert pairs(got) == [
        (["UNSUBSCRIBE"], {"reply": ["unsubscribe", {"null": "bulk"}, 0]}),
        (["PING"], ok("PONG")),
    ]


def test_close_keeps_what_came_of_a_partial_answer() -> None:
    confirmation = b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
    got = talk(
        ("client", resp("SUBSCRIBE", "a", "b") + resp("GET", "k")),
        ("server", confirmation + b"*3\r\n$9\r\nsub"),  # cut short by the close
    )
    assert pairs(got) == [
        (["SUBSCRIBE", "a", "b"], {"replies": [["subscribe", "a", 1]], "incomplete": True}),
        (["GET", "k"], {"replies": [], "incomplete": True}),
    ]
    assert got[0].raw_response == confirmation


def test_a_reply_in_a_non_canonical_form_is_kept_raw() -> None:
    [e] = talk(("client", resp("INCR", "n")), ("server", b":007\r\n"))
    assert e.response == {"reply": {"raw": ":007\r\n"}} and e.raw_response == b":007\r\n"


def test_a_response_kept_raw_by_the_recording_is_served_raw() -> None:
    assert encode_response({"reply": {"simple": "OK"}, "raw": "+OK\r\n"}) == b"+OK\r\n"
    assert encode_response({"raw": {"base64": "K09LDQo="}}) == b"+OK\r\n"
    with pytest.raises(ValueError):
        encode_response({"nothing": 1})


def test_a_non_redis_server_is_a_protocol_error_that_keeps_the_exchanges_before() -> None:
    recorder = RedisRecorder()
    recorder.client_data(resp("PING") + resp("PING"), 1)
    with pytest.raises(ProtocolError) as fault:
        recorder.server_data(b"+PONG\r\nHTTP/1.1 400 Bad Request\r\n", 2)
    assert pairs(fault.value.exchanges) == [(["PING"], ok("PONG"))]
    with pytest.raises(ProtocolError) as fault:
        RedisRecorder().client_data(resp("PING") + b"*1\r\n?\r\n", 3)
    assert fault.value.exchanges == []


@pytest.mark.parametrize(
    ("command", "kept"),  # "*" stands for REDACTED
    [
        ("AUTH pw", "AUTH *"),
        ("auth user pw", "auth user *"),  # user names are no secret
        ("AUTH a b c", "AUTH * * *"),  # a wrong arity: all of it
        ("HELLO 3 SETNAME AUTH AUTH u pw", "HELLO 3 SETNAME AUTH AUTH u *"),
        ("MIGRATE h 6379 k 0 5000 AUTH pw", "MIGRATE h 6379 k 0 5000 AUTH *"),
        (
            "MIGRATE h 6379 '' 0 5000 COPY AUTH2 u pw KEYS AUTH k",
            "MIGRATE h 6379 '' 0 5000 COPY AUTH2 u * KEYS AUTH k",
        ),
        (
            "CONFIG SET maxmemory 1mb requirepass pw MASTERAUTH pw",
            "CONFIG SET maxmemory 1mb requirepass * MASTERAUTH *",
        ),
        ("ACL SETUSER u on >pw #ab12 ~* +@all", "ACL SETUSER u on * * ~* +@all"),
        ("GET AUTH", "GET AUTH"),
    ],
)
def test_redact(command: str, kept: str) -> None:
    assert redact(command.split()) == [REDACTED if w == "*" else w for w in kept.split()]


def test_redact_a_binary_password() -> None:
    secret = {"base64": base64.b64encode(b">\xff").decode()}
    assert redact(["ACL", "SETUSER", "u", secret]) == ["ACL", "SETUSER", "u", REDACTED]
    assert redact(["AUTH", secret]) == ["AUTH", REDACTED]
    assert redact(["ACL", "SETUSER", "u", "", 7]) == ["ACL", "SETUSER", "u", "", 7]
