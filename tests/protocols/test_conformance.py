"""The conformance kit: what every registered protocol plug-in must do, checked on real
traffic (real clients and servers, through a capturing relay), the same way for each.

- any chunking of the captured bytes decodes to the same exchanges;
- a byte-exact protocol's responses re-encode to exactly the bytes the server sent;
- every exchange, as a mock, survives a YAML round trip and fits the protocol's schema;
- requests come out of the recorder already redacted;
- the mock server, fed the client's bytes, answers what the recording holds;
- a call no mock answers gets the protocol's own error;
- nothing under kpy_ci/protocols/ does I/O.

A protocol joins the kit with a capture (``CAPTURES``) and its miss check (``MISSES``): the
kit fails for a registered protocol that has neither.
"""

from __future__ import annotations

import ast
import random
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import pytest
import yaml

from kpy_ci.protocols import mysql, registry
from kpy_ci.protocols.base import Doc, Exchange, Protocol
from kpy_ci.protocols.registry import greeting, sniff
from kpy_ci.schema.documents import MOCK, first_error
from kpy_ci.store.serializer import document, dump
from tests.capture import CaptureRelay, Connection
from tests.dns_server import DnsServer
from tests.protocols import http_peers, pg_sessions, redis_traffic
from tests.protocols.mysql import clients as mysql_clients
from tests.protocols.recorded_mocks import RecordedMocks
from tests.servers import MariaDB, Postgres, Redis, line_server

Capture = Callable[[pytest.FixtureRequest], list[Connection]]


def _postgres(request: pytest.FixtureRequest) -> list[Connection]:
    pg: Postgres = request.getfixturevalue("postgres")
    return pg_sessions.capture(pg, pg_sessions.psycopg_replayable)


def _redis(request: pytest.FixtureRequest) -> list[Connection]:
    server: Redis = request.getfixturevalue("redis")
    return redis_traffic.capture(server, redis_traffic.SCENARIOS["resp3"])


def _http(request: pytest.FixtureRequest) -> list[Connection]:
    with http_peers.http_server() as port, CaptureRelay(port) as relay:
        http_peers.keep_alive(relay.port)
        http_peers.chunked(relay.port)
        relay.wait_closed()
    return relay.connections


def _dns(request: pytest.FixtureRequest) -> list[Connection]:
    records = {"api.kpy.test": "127.0.0.7", "v6.kpy.test": "::1"}
    with DnsServer(records) as server, CaptureRelay(server.tcp_port) as relay:
        for name, kind in [("api.kpy.test", "A"), ("v6.kpy.test", "AAAA"), ("no.kpy.test", "A")]:
            dns.query.tcp(dns.message.make_query(name, kind), "127.0.0.1", 5, relay.port)
        relay.wait_closed()
    return relay.connections


def _mysql(request: pytest.FixtureRequest) -> list[Connection]:
    """PyMySQL's text protocol and mysql-connector-python's prepared statements, through a
    relay that edits the greeting as kpy's proxy does."""
    server: MariaDB = request.getfixturevalue("mariadb")
    tmp: Path = request.getfixturevalue("tmp_path_factory").mktemp("mysql")
    (tmp / "people.csv").write_text("Zed,3.5\nYan,4\n")
    with CaptureRelay(server.port, edit_greeting=mysql.edit_greeting) as relay:
        mysql_clients.pymysql_session(relay.port, server.password, tmp / "people.csv")
        mysql_clients.connector_session(relay.port, server.password)
        relay.wait_closed()
    return relay.connections


def _generic(request: pytest.FixtureRequest) -> list[Connection]:
    """A line protocol whose server greets first, then answers each line."""
    with line_server(b"220 kpy.test ready\r\n") as port, CaptureRelay(port) as relay:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as s:
            assert s.recv(100).startswith(b"220 ")
            for line in (b"HELO kpy\r\n", b"NOOP\r\n", b"QUIT\r\n"):
                s.sendall(line)
                assert s.recv(100) == b"ok " + line
        relay.wait_closed()
    return relay.connections


CAPTURES: dict[str, Capture] = {
    "postgres": _postgres,
    "redis": _redis,
    "http": _http,
    "mysql": _mysql,
    "dns": _dns,
    "generic": _generic,
}
"""Real traffic of each protocol: the connections a real client had with a real server."""


def _text_error(answer: bytes) -> bool:
    return b"kpy: no recorded " in answer  # mock matches ..., start-up to answer ...


def _servfail(answer: bytes) -> bool:
    return dns.message.from_wire(answer[2:]).rcode() == dns.rcode.SERVFAIL


MISSES: dict[str, Callable[[bytes], bool] | None] = {
    "postgres": _text_error,  # an ErrorResponse, SQLSTATE XX000
    "redis": _text_error,  # -ERR kpy: ...
    "http": _text_error,  # 502 Bad Gateway
    "mysql": _text_error,  # an ERR packet, 1105 HY000
    "dns": _servfail,
    "generic": None,  # unknown bytes have no error to send: the server hangs up
}
"""How each protocol's mock server says that no mock answers (None: it hangs up)."""


PROTOCOLS = [p.name for p in registry.REGISTRY]


@pytest.fixture(scope="module", params=PROTOCOLS)
def captured(request: pytest.FixtureRequest) -> tuple[Protocol, list[Connection]]:
    name = request.param
    assert name in CAPTURES, f"{name} is registered but the conformance kit has no traffic of it"
    connections = [c for c in CAPTURES[name](request) if c.chunks]
    assert connections
    return registry.BY_NAME[name], connections


def protocol_of(conn: Connection, port: int = 0) -> Protocol:
    """As the proxy decides it: by who spoke first."""
    who, first, _ = conn.chunks[0]
    return sniff(first) if who == "client" else greeting(first, port)


def decode(protocol: Protocol, chunks: list[tuple[str, bytes, int]]) -> list[Exchange]:
    recorder = protocol.recorder()
    out: list[Exchange] = []
    for who, data, at in chunks:
        out += (recorder.client_data if who == "client" else recorder.server_data)(data, at)
    return out + recorder.close(chunks[-1][2] if chunks else 0)


def rechunked(
    chunks: list[tuple[str, bytes, int]], cut: Callable[[int], int]
) -> Iterator[tuple[str, bytes, int]]:
    """The same bytes in the same order, each run of one side cut anew."""
    runs: list[tuple[str, bytearray, int]] = []
    for who, data, at in chunks:
        if runs and runs[-1][0] == who:
            runs[-1][1].extend(data)
        else:
            runs.append((who, bytearray(data), at))
    for who, data, at in runs:
        i = 0
        while i < len(data):
            n = max(1, cut(len(data) - i))
            yield who, bytes(data[i : i + n]), at
            i += n


def sides(exchanges: list[Exchange]) -> list[tuple[Doc, Doc]]:
    return [(e.request, e.response) for e in exchanges]


def test_the_protocol_is_known_from_who_spoke_first(
    captured: tuple[Protocol, list[Connection]],
) -> None:
    protocol, connections = captured
    for conn in connections:
        assert protocol_of(conn) is protocol


def test_any_chunking_decodes_the_same(captured: tuple[Protocol, list[Connection]]) -> None:
    protocol, connections = captured
    rng = random.Random(14)
    for conn in connections:
        expected = sides(decode(protocol, conn.chunks))
        assert expected
        assert sides(decode(protocol, list(rechunked(conn.chunks, lambda n: 1)))) == expected
        for _ in range(3):
            cut = list(rechunked(conn.chunks, lambda n: rng.randint(1, max(1, n))))
            assert sides(decode(protocol, cut)) == expected


def test_responses_re_encode_byte_exact(captured: tuple[Protocol, list[Connection]]) -> None:
    protocol, connections = captured
    for conn in connections:
        for exchange in decode(protocol, conn.chunks):
            if protocol.byte_exact:
                assert exchange.raw_response or not protocol.encode_response(exchange.response)
                assert protocol.encode_response(exchange.response) == exchange.raw_response
            else:
                assert exchange.raw_response == b""  # nothing is promised, nothing is kept
                protocol.encode_response(exchange.response)  # but it encodes


def as_mock(protocol: Protocol, exchange: Exchange, n: int) -> Doc:
    return document(
        "Mock",
        {
            "name": f"mock-{n}",
            "protocol": protocol.name,
            "destination": "127.0.0.1:1",
            "connection": 1,
            "order": n,
            "reusable": exchange.reusable,
            "started": 0.1,
            "ended": 0.2,
            "request": exchange.request,
            "response": exchange.response,
        },
    )


def test_mocks_round_trip_through_yaml_and_fit_the_schema(
    captured: tuple[Protocol, list[Connection]],
) -> None:
    protocol, connections = captured
    n = 0
    for conn in connections:
        for exchange in decode(protocol, conn.chunks):
            n += 1
            mock = as_mock(protocol, exchange, n)
            back = yaml.safe_load(dump(mock))
            assert back == mock
            assert first_error(back, MOCK) is None, first_error(back, MOCK)
            if protocol.byte_exact:
                assert protocol.encode_response(back["response"]) == exchange.raw_response


def test_requests_come_out_redacted(captured: tuple[Protocol, list[Connection]]) -> None:
    protocol, connections = captured
    for conn in connections:
        for exchange in decode(protocol, conn.chunks):
            assert protocol.redact(exchange.request) == exchange.request


def replayed(protocol: Protocol, conn: Connection, source: Any) -> list[tuple[str, bytes, int]]:
    """The client's chunks as captured, fed to the mock server, and what it said to each
    (a pause after each run of client chunks, as the client waited there for answers)."""
    server = protocol.mock_server(source)
    said: list[tuple[str, bytes, int]] = []
    if hello := server.opening():
        said.append(("server", hello, 0))
    chunks = conn.chunks
    for i, (who, data, at) in enumerate(chunks):
        if who != "client" or server.closed:
            continue
        said.append(("client", data, at))
        if answer := server.client_data(data):
            said.append(("server", answer, at))
        paused = i + 1 == len(chunks) or chunks[i + 1][0] == "server"
        if paused and (answer := server.idle()):
            said.append(("server", answer, at))
    return said


def test_the_mock_server_answers_the_recording(
    captured: tuple[Protocol, list[Connection]],
) -> None:
    protocol, connections = captured
    for conn in connections:
        recorded = decode(protocol, conn.chunks)
        source = RecordedMocks(protocol, recorded)
        again = decode(protocol, replayed(protocol, conn, source))
        assert source.misses == []
        if protocol.byte_exact:
            assert [e.response for e in again] == [e.response for e in recorded]
        else:  # equal in meaning: what each encodes to (HTTP re-frames a body)
            encode = protocol.encode_response
            assert [encode(e.response) for e in again] == [encode(e.response) for e in recorded]


def test_a_miss_gets_the_protocol_s_own_error(
    captured: tuple[Protocol, list[Connection]],
) -> None:
    protocol, connections = captured
    assert protocol.name in MISSES, f"{protocol.name}: the kit does not know its miss"
    nothing = RecordedMocks(protocol, [])
    said = replayed(protocol, connections[0], nothing)
    answer = b"".join(data for who, data, _ in said if who == "server")
    check = MISSES[protocol.name]
    assert nothing.misses
    if check is None:
        assert answer == b""
    else:
        assert check(answer), answer[:300]


IO_MODULES = {"socket", "asyncio", "selectors", "select", "subprocess", "threading", "ssl"}
IO_MODULES |= {"os", "io", "pathlib", "shutil", "tempfile", "multiprocessing", "urllib"}
IO_MODULES |= {"http", "time", "signal", "mmap"}


def test_protocols_import_no_io_module() -> None:
    """Sans-I/O: bytes in, exchanges out. (A plug-in reads its own schema.json at import,
    through importlib.resources: that is its data, not I/O on a connection.)"""
    root = Path(registry.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found += [
                f"{path.relative_to(root)}: {n}" for n in names if n.split(".")[0] in IO_MODULES
            ]
    assert found == []


def test_a_plug_in_that_lacks_a_part_fails_at_once() -> None:
    parts = {f: getattr(registry.BY_NAME["generic"], f) for f in Protocol.__dataclass_fields__}
    del parts["mock_server"]
    with pytest.raises(TypeError, match="mock_server"):
        Protocol(**parts)


def test_the_registry_is_the_only_list() -> None:
    from kpy_ci.schema.documents import validator

    names = [p.name for p in registry.REGISTRY]
    assert len(set(names)) == len(names) and names[-1] == "generic"
    assert validator(MOCK).schema["properties"]["protocol"]["enum"] == names
    assert set(registry.MATCHERS) == set(names)
