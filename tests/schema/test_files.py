"""check_set on a set recorded from real traffic (PostgreSQL, Redis, HTTP in and out, DNS,
generic TCP, fed to kpy's Recording and written by record's own writer, schema lock
included): no problem, and the reader takes it. Hand-broken copies: every problem at once,
each as file:line: field: why, the line counted from the file's start; and the reader, and
``kpy test``, stop at a bad file with one line and exit code 2, never a traceback."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import dns.message
import pytest
import yaml

from kpy_ci.address import Address
from kpy_ci.errors import UsageError
from kpy_ci.protocols import dns as kpy_dns
from kpy_ci.protocols import generic, http, registry
from kpy_ci.protocols.base import Exchange
from kpy_ci.protocols.registry import greeting, sniff
from kpy_ci.record import RecordOptions, _write
from kpy_ci.recording import Recording
from kpy_ci.schema.files import check_config, check_set
from kpy_ci.store.reader import MocksFile, load_set
from tests.capture import CaptureRelay, Connection
from tests.conftest import KPY, child_env
from tests.dns_server import DnsServer
from tests.protocols import http_peers, pg_sessions, redis_traffic
from tests.servers import Postgres, Redis


def http_capture(port: int, scenario: Callable[[int], None]) -> list[Connection]:
    with CaptureRelay(port) as relay:
        scenario(relay.port)
    return relay.connections


def dns_exchange(server: DnsServer, name: str) -> Exchange:
    query = dns.message.make_query(name, "A").to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(query, ("127.0.0.1", server.port))
        answer = s.recv(4096)
    return Exchange(
        "dns", kpy_dns.decode_query(query), kpy_dns.decode_answer(answer), 0, 0, reusable=True
    )


def replay_into(recording: Recording, conn: Connection, port: int) -> None:
    """An outbound connection, as the proxy hands it over: its protocol known from who
    spoke first, then its chunks in order."""
    who, first, _ = conn.chunks[0]
    protocol = sniff(first) if who == "client" else greeting(first, port)
    tap = recording.open(protocol, "outbound", Address("127.0.0.1", port))
    for who, data, _ in conn.chunks:
        (tap.client if who == "client" else tap.server)(data)
    tap.close()


@pytest.fixture(scope="module")
def recorded(postgres: Postgres, redis: Redis, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A set as kpy record writes it: the service's requests (HTTP keep-alive) with, while
    the first is served, its PostgreSQL session, Redis, an HTTP API, a DNS query and a
    server-first TCP exchange."""
    pg = pg_sessions.capture(postgres, pg_sessions.psycopg_session)
    rd = redis_traffic.capture(redis, redis_traffic.SCENARIOS["resp3"])
    with http_peers.http_server() as port:
        [inbound] = http_capture(port, http_peers.keep_alive)
        api = http_capture(port, http_peers.encodings)
    recording = Recording()
    service = recording.open(http.PROTOCOL, "inbound", Address("127.0.0.1", 8080))
    first, *rest = inbound.chunks
    service.client(first[1])
    for conns, to in ((pg, postgres.port), (rd, redis.port), (api, port)):
        for conn in conns:
            replay_into(recording, conn, to)
    with DnsServer({"api.staging.kpy.test": "127.0.0.42"}) as resolver:
        recording.add(dns_exchange(resolver, "api.staging.kpy.test."), Address("127.0.0.1", 53))
    greeter = recording.open(generic.PROTOCOL, "outbound", Address("127.0.0.1", 25))
    greeter.server(b"220 greeter ready\r\n")
    greeter.client(b"QUIT\r\n")
    greeter.server(b"221 bye \xff\r\n")
    greeter.close()
    for who, data, _ in rest:
        (service.client if who == "client" else service.server)(data)
    service.close()
    root = tmp_path_factory.mktemp("kpy")
    options = RecordOptions(command="service", port=8080, path=root, set_name="shop")
    return _write(recording, options, None).path


def test_a_recorded_set_has_no_problem(recorded: Path) -> None:
    assert sorted(p.name for p in recorded.iterdir()) == [
        "mocks.yaml",
        "schema.lock.yaml",
        "test-set.yaml",
        "tests",
    ]
    assert check_set(recorded) == []
    assert check_config(recorded.parent) == []
    test_set = load_set(recorded)  # and the reader takes it
    assert [t.name for t in test_set.tests] == ["test-1", "test-2", "test-3"]
    assert len(test_set.tests[0].mocks) > 20 and test_set.tests[1].mocks == []
    mocks = MocksFile(test_set.mocks_file)
    protocols = {doc["protocol"] for _, doc in mocks.scan()}
    mocks.close()
    assert protocols == {"postgres", "redis", "http", "dns", "generic"}


# --- broken copies ----------------------------------------------------------------------------


def line_with(file: Path, needle: str, after: int = 0) -> int:
    """The number (from 1) of the first line holding ``needle`` past line ``after``."""
    lines = file.read_bytes().split(b"\n")
    return next(i for i, line in enumerate(lines, 1) if i > after and needle.encode() in line)


def edit(file: Path, old: str, new: str | bytes) -> None:
    """The first ``old`` in the file becomes ``new`` (bytes: as they are, UTF-8 or not)."""
    text = file.read_bytes()
    assert old.encode() in text, old
    file.write_bytes(text.replace(old.encode(), new.encode() if isinstance(new, str) else new, 1))


@pytest.fixture
def broken(recorded: Path, tmp_path: Path) -> Path:
    shutil.copytree(recorded.parent, tmp_path / "kpy")
    return tmp_path / "kpy" / recorded.name


def lines(set_dir: Path) -> list[str]:
    return [str(p) for p in check_set(set_dir)]


def test_a_wrong_type_in_a_test(broken: Path) -> None:
    test = broken / "tests" / "test-2.yaml"
    edit(test, "status: 200", "status: two hundred")
    line = line_with(test, "status: two hundred")
    assert lines(broken) == [
        f"{test}:{line}: response.status: 'two hundred' is not of type 'integer'"
    ]


def test_a_missing_field_names_the_mapping_that_lacks_it(broken: Path) -> None:
    test = broken / "tests" / "test-3.yaml"
    edit(test, "  reason: OK\n", "")
    line = line_with(test, "  status: 200")  # the response mapping begins there
    assert lines(broken) == [f"{test}:{line}: response: 'reason' is a required property"]


def test_mocks_yaml_problems_carry_the_file_s_own_lines(broken: Path) -> None:
    mocks = broken / "mocks.yaml"
    edit(mocks, "protocol: redis", "protocol: kafka")  # the first Redis mock
    edit(mocks, "    status: I\n", "    status: 5\n")  # the first ReadyForQuery
    edit(mocks, "kind: Mock\nname: mock-7\n", "kind: Mocks\nname: mock-7\n")
    edit(
        mocks,
        "version: kpy/v1\nkind: Mock\nname: mock-9\n",
        "version: kpy/v0\nkind: Mock\nname: mock-9\n",
    )
    kafka, status = line_with(mocks, "protocol: kafka"), line_with(mocks, "    status: 5")
    names = [p.name for p in registry.REGISTRY]
    got = lines(broken)
    assert sorted(got, key=lambda p: int(p.split(":")[1])) == sorted(
        [
            f"{mocks}:{status}: response.messages.{message_index(mocks, status)}.status: "
            "5 is not of type 'string'",
            f"{mocks}:{kafka}: protocol: 'kafka' is not one of {names}",
            f"{mocks}:{line_with(mocks, 'kind: Mocks')}: kind: 'Mocks' is not 'Mock': mocks.yaml "
            "holds Mock documents",
            f"{mocks}:{line_with(mocks, 'version: kpy/v0')}: version: kpy/v0 is not kpy/v1, the "
            "format this kpy reads: record the set again",
        ],
        key=lambda p: int(p.split(":")[1]),
    )


def message_index(mocks: Path, line: int) -> int:
    """Which message of its response the ReadyForQuery at ``line`` is."""
    text = mocks.read_text().split("\n")
    start = max(i for i in range(line) if text[i] == "response:")
    return sum(t.startswith("  - type: ") for t in text[start:line]) - 1


def test_bytes_yaml_and_shapes_that_are_no_document(broken: Path) -> None:
    mocks, test, meta = (
        broken / "mocks.yaml",
        broken / "tests" / "test-1.yaml",
        broken / "test-set.yaml",
    )
    edit(mocks, "name: mock-2\n", b"name: mock-2 \xff\n")  # not UTF-8
    edit(mocks, "name: mock-4\n", "name: [mock-4\n")
    with open(mocks, "ab") as f:
        f.write(b"---\n- a list\n")
    edit(test, "url: /hello?n=1", "url: /hello?n=1\n  : oops")
    meta.write_text("just text\n")
    byte = mocks.read_bytes().index(b"\xff")
    got = lines(broken)
    assert got == [
        f"{meta}:1: (top level): not a mapping: it is a string",
        f"{test}:{line_with(test, ': oops')}: (top level): not valid YAML: did not find "
        "expected key",
        f"{mocks}:{line_with(mocks, 'mock-2 ')}: (top level): not UTF-8 text at byte {byte}",
        f"{mocks}:{line_with(mocks, 'name: [mock-4') + 1}: (top level): not valid YAML: did not "
        "find expected ',' or ']'",
        f"{mocks}:{line_with(mocks, '- a list')}: (top level): not a mapping: it is a list",
    ]


def test_missing_files(broken: Path) -> None:
    (broken / "mocks.yaml").unlink()
    (broken / "test-set.yaml").unlink()
    assert lines(broken) == [
        f"{broken}/test-set.yaml:1: (top level): missing (every test-set has one)",
        f"{broken}/mocks.yaml:1: (top level): missing (a test-set has one, even empty)",
    ]


def test_what_one_file_says_of_another(broken: Path) -> None:
    test, meta = broken / "tests" / "test-2.yaml", broken / "test-set.yaml"
    edit(test, "mocks: []", "mocks: [mock-1, mock-999]")
    edit(meta, "tests: 3", "tests: 4")
    mocks = broken / "mocks.yaml"
    edit(mocks, "name: mock-3\n", "name: mock-2\n")
    count = mocks.read_text().count("\nkind: Mock\n")
    first = broken / "tests" / "test-1.yaml"
    listed = yaml.safe_load(first.read_text())["mocks"]
    assert lines(broken) == [
        f"{mocks}:{line_with(mocks, 'name: mock-2', line_with(mocks, 'name: mock-2'))}: name: "
        "mock-2 is there twice",
        f"{first}:{line_with(first, 'mock-3')}: mocks.{listed.index('mock-3')}: mock-3 is not in "
        "mocks.yaml",
        f"{test}:{line_with(test, 'mocks: [')}: mocks.1: mock-999 is not in mocks.yaml",
        f"{meta}:{line_with(meta, 'tests: 4')}: tests: 4 but the set has 3 tests/*.yaml",
    ]
    edit(meta, f"mocks: {count}", f"mocks: {count + 1}")
    assert lines(broken)[-1] == (
        f"{meta}:{line_with(meta, 'mocks: ')}: mocks: {count + 1} but the set has {count} "
        "documents in mocks.yaml"
    )


def test_a_broken_lock(broken: Path) -> None:
    lock = broken / "schema.lock.yaml"
    edit(lock, "  introspected: false\n", "  introspected: 'no'\n")
    line = line_with(lock, "introspected: 'no'")
    assert lines(broken) == [
        f"{lock}:{line}: postgres.0.introspected: 'no' is not of type 'boolean'"
    ]
    edit(lock, "kind: SchemaLock", "kind: Lock")
    assert lines(broken) == [
        f"{lock}:2: kind: 'Lock' is not 'SchemaLock': schema.lock.yaml holds SchemaLock documents"
    ]


def test_kpy_yml(broken: Path) -> None:
    config = broken.parent / "kpy.yml"
    config.write_text("version: kpy/v1\nkind: Config\nredact:\n  headers: X-Key\n")
    assert [str(p) for p in check_config(broken.parent)] == [
        f"{config}:4: redact.headers: 'X-Key' is not of type 'array'"
    ]
    assert check_set(broken) == []  # the set's own files are check_set's, kpy.yml is not


# --- the reader, and kpy test, stop at a bad file ------------------------------------------


def test_the_reader_refuses_bytes_that_are_not_utf8(broken: Path) -> None:
    mocks = broken / "mocks.yaml"
    edit(mocks, "name: mock-5\n", b"name: mock-5\xe9\n")
    byte = mocks.read_bytes().index(b"\xe9")
    reader = MocksFile(mocks)
    with pytest.raises(UsageError) as caught:
        list(reader.scan())
    reader.close()
    assert str(caught.value) == f"{mocks}: not UTF-8 text at byte {byte}"
    test = broken / "tests" / "test-1.yaml"
    test.write_bytes(test.read_bytes().replace(b"GET", b"G\x80T", 1))
    with pytest.raises(UsageError) as caught:
        load_set(broken)
    byte = test.read_bytes().index(b"\x80")
    assert str(caught.value) == f"{test}: not UTF-8 text at byte {byte}"


def test_the_reader_places_a_character_yaml_refuses(broken: Path) -> None:
    test = broken / "tests" / "test-1.yaml"
    edit(test, "url: /hello?n=1", "url: /hello?n=1\x01")
    with pytest.raises(UsageError) as caught:
        load_set(broken)
    line = line_with(test, "url: /hello")
    assert str(caught.value) == (
        f"{test}:{line}: not valid YAML: unacceptable character #x0001: control characters "
        "are not allowed"
    )
    assert [str(p) for p in check_set(broken)] == [
        f"{test}:{line}: (top level): not valid YAML: unacceptable character #x0001: control "
        "characters are not allowed"
    ]


def test_kpy_test_exits_2_on_a_bad_mock(broken: Path) -> None:
    mocks = broken / "mocks.yaml"
    edit(mocks, "protocol: redis", "protocol: kafka")
    argv = [*KPY, "test", "-c", "true", "--path", str(broken.parent)]
    done = subprocess.run(argv, env=child_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    line = line_with(mocks, "protocol: kafka")
    assert done.stderr.strip().splitlines()[-1] == (
        f"kpy: {mocks}:{line}: protocol: 'kafka' is not one of "
        f"{[p.name for p in registry.REGISTRY]}"
    )
    assert "Traceback" not in done.stderr
