"""The mocks of a set at replay (MockStore) on small mocks.yaml files written as kpy
writes them: the three tiers a call is matched in, mocks served once or without limit,
misses with their nearest candidates, writes not made, a bad file named by line and field;
and which PostgreSQL statements are writes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kpy_ci.errors import UsageError
from kpy_ci.mock_store import MockStore, line_of
from kpy_ci.protocols.base import REDACTED
from kpy_ci.protocols.postgres.replay import expected, is_write
from kpy_ci.store.reader import ReRecordNeeded
from kpy_ci.store.serializer import document, dump_all

REDIS = "127.0.0.1:6379"
PG = "127.0.0.1:5432"
HTTP = "127.0.0.1:8081"


class Mocks:
    """mock-1, mock-2, ... in the order added; ``write`` makes mocks.yaml of them."""

    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []

    def add(
        self,
        protocol: str,
        request: dict[str, Any],
        response: dict[str, Any],
        *,
        reusable: bool = False,
        connection: int = 1,
        order: int | None = None,
    ) -> str:
        name = f"mock-{len(self.docs) + 1}"
        same = [d for d in self.docs if d["connection"] == connection]
        destination = {"redis": REDIS, "postgres": PG, "http": HTTP}.get(protocol, "127.0.0.1:9")
        self.docs.append(
            document(
                "Mock",
                {
                    "name": name,
                    "protocol": protocol,
                    "destination": destination,
                    "connection": connection,
                    "order": order or len(same) + 1,
                    "reusable": reusable,
                    "started": 0.1 * len(self.docs),
                    "ended": 0.1 * len(self.docs) + 0.01,
                    "request": request,
                    "response": response,
                },
            )
        )
        return name

    def redis(self, *command: str, reply: Any = None, **kw: Any) -> str:
        return self.add("redis", {"command": list(command)}, {"reply": reply}, **kw)

    def sql(self, sql: str, **kw: Any) -> str:
        request = {"messages": [{"type": "Query", "sql": sql}], "sql": sql}
        response = {"messages": [{"type": "ReadyForQuery", "status": "I"}]}
        return self.add("postgres", request, response, **kw)

    def http(self, method: str, url: str, body: Any = None, **kw: Any) -> str:
        request: dict[str, Any] = {
            "method": method,
            "url": url,
            "version": "1.1",
            "headers": [["Host", HTTP], ["Content-Type", "application/json"]],
        }
        if body is not None:
            request["body"] = {"json": body}
        response = {"status": 200, "reason": "OK", "version": "1.1", "headers": []}
        return self.add("http", request, response, **kw)

    def write(self, path: Path) -> Path:
        file = path / "mocks.yaml"
        file.write_text(dump_all(self.docs))
        return file


@pytest.fixture
def mocks() -> Mocks:
    return Mocks()


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[Any]:
    stores: list[MockStore] = []

    def make(m: Mocks) -> MockStore:
        stores.append(MockStore(m.write(tmp_path)))
        return stores[-1]

    yield make
    for store in stores:
        store.close()


def redis_call(store: MockStore, *command: str, optional: bool = False) -> str | None:
    """The name of the mock that answers this command, None on a miss."""
    mock = store.serve("redis", REDIS, 7, {"command": list(command)}, optional)
    return None if mock is None else str(mock["name"])


def test_tiers_the_tests_own_then_any_unused_then_reusable(mocks: Mocks, open_store: Any) -> None:
    one = mocks.redis("GET", "k", reply="one", connection=1)
    two = mocks.redis("GET", "k", reply="two", connection=1)
    three = mocks.redis("GET", "k", reply="three", connection=2)
    ping = mocks.redis("PING", reply={"simple": "PONG"}, reusable=True, connection=3)
    other_ping = mocks.redis("PING", reply={"simple": "PONG"}, connection=4)
    store = open_store(mocks)
    store.begin_test([three, other_ping])
    # 1. the running test's own unused mock, though another comes first in the file
    assert redis_call(store, "GET", "k") == three
    # 2. then any unused one, in the order recorded
    assert redis_call(store, "GET", "k") == one
    assert redis_call(store, "GET", "k") == two
    # a mock not reusable is never served twice
    assert redis_call(store, "GET", "k") is None
    assert redis_call(store, "PING") == other_ping
    assert redis_call(store, "PING") == ping
    # 3. a reusable mock, used or not, without limit
    assert [redis_call(store, "ping") for _ in range(50)] == [ping] * 50
    misses, served = store.end_test()
    assert [m.call for m in misses] == ["GET k"]
    assert served == [three, one, two, other_ping, ping] + [ping] * 50
    assert store.unused() == []


def test_unused_before_reused(mocks: Mocks, open_store: Any) -> None:
    ping = mocks.redis("PING", reply={"simple": "PONG"}, reusable=True)
    later = mocks.redis("PING", reply={"simple": "PONG"})
    store = open_store(mocks)
    assert redis_call(store, "PING") == ping
    assert redis_call(store, "PING") == later  # unused, though the reusable one matches too
    assert redis_call(store, "PING") == ping


def query(sql: str) -> dict[str, Any]:
    return {"messages": [{"type": "Query", "sql": sql}], "sql": sql}


def test_connection_set_up_is_reused_whatever_the_recording_marked(
    mocks: Mocks, open_store: Any
) -> None:
    """A pool may open more connections at replay than were recorded: what a driver asks on
    each new one is served again (redis-py's CLIENT MAINT_NOTIFICATIONS, SQLAlchemy's
    version and schema, a pre-ping), though the recording did not mark it reusable."""
    mocks.redis("CLIENT", "MAINT_NOTIFICATIONS", "ON", reply={"error": "ERR unknown"})
    mocks.sql("select pg_catalog.version()")
    mocks.sql("SHOW standard_conforming_strings")
    mocks.sql("SELECT 1")
    mocks.sql("SELECT count(*) FROM orders")
    store = open_store(mocks)
    for _ in range(3):
        assert redis_call(store, "CLIENT", "MAINT_NOTIFICATIONS", "ON") is not None
        for sql in ("select pg_catalog.version()", "SHOW standard_conforming_strings", "SELECT 1"):
            assert store.serve("postgres", PG, 1, query(sql), False) is not None
    data = query("SELECT count(*) FROM orders")
    assert store.serve("postgres", PG, 1, data, False) is not None
    assert store.serve("postgres", PG, 1, data, False) is None  # data is served once


def test_a_mock_is_served_once_across_tests(mocks: Mocks, open_store: Any) -> None:
    name = mocks.redis("INCR", "views", reply=1)
    store = open_store(mocks)
    store.begin_test([name])
    assert redis_call(store, "INCR", "views") == name
    assert store.end_test() == ([], [name])
    store.begin_test([name])
    assert redis_call(store, "INCR", "views") is None
    misses, served = store.end_test()
    assert served == []
    assert [m.line() for m in misses] == [f"redis call to {REDIS} matched no mock: INCR views"]
    # nothing is noted once the test has ended
    assert store.end_test() == ([], [])


def test_the_whole_document_is_served(mocks: Mocks, open_store: Any) -> None:
    mocks.redis("GET", "k", reply="one")
    store = open_store(mocks)
    mock = store.serve("redis", REDIS, 1, {"command": ["GET", "k"]}, False)
    assert mock is not None
    assert mock == {k: v for k, v in mocks.docs[0].items()}
    assert mock["response"] == {"reply": "one"}


def test_an_optional_call_that_misses_is_no_failure(mocks: Mocks, open_store: Any) -> None:
    store = open_store(mocks)
    assert store.serve("generic", "127.0.0.1:9", 1, {"data": ""}, True) is None
    assert store.end_test() == ([], [])


def test_a_miss_names_its_nearest_candidates(mocks: Mocks, open_store: Any) -> None:
    first = mocks.redis("GET", "shop:product:1", reply="a")
    second = mocks.redis("GET", "shop:product:2", reply="b")
    mocks.redis("SET", "shop:views", "1", reply={"simple": "OK"})
    mocks.redis("HGETALL", "something:else:entirely", reply=[])
    mocks.sql("SELECT * FROM products WHERE id = 3")  # another protocol: never a candidate
    store = open_store(mocks)
    store.begin_test([second])
    assert redis_call(store, "GET", "shop:product:3") is None
    [miss], _ = store.end_test()
    assert (miss.protocol, miss.destination, miss.connection) == ("redis", REDIS, 7)
    assert miss.call == "GET shop:product:3"
    names = [c.name for c in miss.candidates]
    assert len(names) <= 3
    assert names[:2] == [second, first]  # the running test's first
    best = miss.candidates[0]
    assert best.summary == "GET shop:product:2"
    assert best.diff.splitlines() == [
        f"--- {second} (recorded)",
        "+++ the call (now)",
        "@@ -1 +1 @@",
        "-command: [GET, 'shop:product:2']",
        "+command: [GET, 'shop:product:3']",
    ]


def test_a_miss_diff_names_the_changed_part(mocks: Mocks, open_store: Any) -> None:
    name = mocks.http("POST", "/orders", {"sku": "tea", "qty": 1, "note": "gift"})
    store = open_store(mocks)
    request = dict(mocks.docs[0]["request"])
    request["body"] = {"json": {"sku": "tea", "qty": 2, "note": "gift"}}
    assert store.serve("http", HTTP, 3, request, False) is None
    [miss], _ = store.end_test()
    [candidate] = miss.candidates
    assert candidate.name == name
    changed = [
        line
        for line in candidate.diff.splitlines()[2:]
        if line[:1] in "+-" and not line.startswith("@@")
    ]
    assert changed == ["-    qty: 1", "+    qty: 2"]


def test_a_miss_with_nothing_like_it(mocks: Mocks, open_store: Any) -> None:
    mocks.redis("GET", "k", reply="v")
    store = open_store(mocks)
    request = {"messages": [{"type": "Query", "sql": "SELECT 1"}], "sql": "SELECT 1"}
    assert store.serve("postgres", PG, 2, request, False) is None
    [miss], _ = store.end_test()
    assert miss.call == "SELECT 1" and miss.candidates == ()


WRITES = {
    "INSERT INTO orders (sku) VALUES ('tea')",
    "UPDATE products SET stock = stock - 1 WHERE id = 1",
    "DELETE FROM carts WHERE id = 9",
}
READS = {
    "SELECT price FROM products WHERE id = 1",
    "SELECT stock FROM products WHERE id = 1 FOR UPDATE",
}


def test_not_made_lists_unused_writes_only(mocks: Mocks, open_store: Any) -> None:
    writes = [mocks.sql(sql) for sql in sorted(WRITES)]
    reads = [mocks.sql(sql) for sql in sorted(READS)]
    writes += [mocks.redis("SET", "k", "v", reply={"simple": "OK"})]
    writes += [mocks.redis("INCR", "views", reply=2)]
    reads += [mocks.redis("GET", "k", reply="v")]
    reads += [mocks.redis("HELLO", "3", "AUTH", "default", REDACTED, reply=[], reusable=True)]
    writes += [mocks.http("POST", "/orders", {"sku": "tea"})]
    reads += [mocks.http("GET", "/rates?from=USD")]
    store = open_store(mocks)
    everything = [d["name"] for d in mocks.docs]
    assert sorted(e.name for e in store.not_made([*everything, "mock-99"])) == sorted(writes)
    assert store.not_made(reads) == []
    # made: no longer listed
    insert = sorted(WRITES)[1]
    assert insert.startswith("INSERT")
    request = {"messages": [{"type": "Query", "sql": insert}], "sql": insert}
    assert store.serve("postgres", PG, 1, request, False) is not None
    assert redis_call(store, "INCR", "views") is not None
    made = {writes[1], writes[4]}
    assert {e.name for e in store.not_made(everything)} == set(writes) - made
    # a reusable mock is never a write to make, whatever its command
    hello = mocks.docs[int(reads[-2].split("-")[1]) - 1]
    assert hello["reusable"] and store.entries[hello["name"]].expected is False


def test_forget_makes_mocks_usable_again(mocks: Mocks, open_store: Any) -> None:
    one = mocks.redis("SET", "k", "v", reply={"simple": "OK"})
    two = mocks.redis("SET", "k", "v", reply={"simple": "OK"})
    store = open_store(mocks)
    assert redis_call(store, "SET", "k", "v") == one
    assert redis_call(store, "SET", "k", "v") == two
    assert redis_call(store, "SET", "k", "v") is None
    store.end_test()
    assert store.not_made([one, two]) == []
    store.forget([one, "mock-42"])
    assert [e.name for e in store.not_made([one, two])] == [one]
    assert [e.name for e in store.unused()] == [one]
    assert redis_call(store, "SET", "k", "v") == one
    assert redis_call(store, "SET", "k", "v") is None
    store.forget([one, two])
    assert redis_call(store, "SET", "k", "v") == one
    assert redis_call(store, "SET", "k", "v") == two


def test_line_of(mocks: Mocks, open_store: Any) -> None:
    name = mocks.redis("GET", "shop:products", reply="[]")
    store = open_store(mocks)
    assert line_of(store.entries[name]) == f"{name} redis GET shop:products"


def line_with(text: str, needle: str, after: int = 0) -> int:
    """The number (from 1) of the first line holding ``needle`` after line ``after``."""
    for n, line in enumerate(text.splitlines(), 1):
        if n > after and needle in line:
            return n
    raise AssertionError(f"{needle!r} not in {text!r}")


def test_a_bad_document_names_the_file_line_and_field(tmp_path: Path, mocks: Mocks) -> None:
    mocks.redis("GET", "a", reply="1")
    mocks.redis("GET", "b", reply="2")
    mocks.redis("GET", "c", reply="3")
    mocks.docs[1]["connection"] = 0
    file = mocks.write(tmp_path)
    text = file.read_text()
    second = line_with(text, "name: mock-2")
    with pytest.raises(UsageError) as caught:
        MockStore(file)
    message = str(caught.value)
    line = line_with(text, "connection: 0", after=second)
    assert message.startswith(f"{file}:{line}: connection: ")
    assert "0 is less than the minimum of 1" in message
    assert caught.value.exit_code == 2


def test_a_bad_nested_value_and_a_missing_field(tmp_path: Path, mocks: Mocks) -> None:
    mocks.redis("GET", "a", reply="1")
    mocks.redis("GET", "b", reply="2")
    mocks.docs[1]["protocol"] = "smtp"
    file = mocks.write(tmp_path)
    text = file.read_text()
    with pytest.raises(UsageError, match=r"protocol: 'smtp' is not one of") as caught:
        MockStore(file)
    assert str(caught.value).startswith(f"{file}:{line_with(text, 'protocol: smtp')}: protocol:")

    mocks.docs[1]["protocol"] = "redis"
    mocks.docs[1]["reusable"] = "yes"
    file = mocks.write(tmp_path)
    text = file.read_text()
    with pytest.raises(UsageError, match=r"reusable: 'yes' is not of type 'boolean'") as caught:
        MockStore(file)
    line = line_with(text, "reusable: 'yes'")
    assert str(caught.value).startswith(f"{file}:{line}: reusable:")

    mocks.docs[1]["reusable"] = False
    del mocks.docs[1]["request"]
    file = mocks.write(tmp_path)
    text = file.read_text()
    with pytest.raises(UsageError, match=r"'request' is a required property") as caught:
        MockStore(file)
    start = line_with(text, "version: kpy/v1", after=line_with(text, "name: mock-1"))
    assert str(caught.value).startswith(f"{file}:{start}: (top level): ")


def test_not_yaml_names_the_line(tmp_path: Path, mocks: Mocks) -> None:
    mocks.redis("GET", "a", reply="1")
    file = mocks.write(tmp_path)
    file.write_text(file.read_text() + "---\nversion: kpy/v1\nkind: Mock: oops\n")
    line = line_with(file.read_text(), "kind: Mock: oops")
    with pytest.raises(UsageError, match=r"not valid YAML: mapping values") as caught:
        MockStore(file)
    assert str(caught.value).startswith(f"{file}:{line}: ")


def test_another_format_version_needs_re_recording(tmp_path: Path, mocks: Mocks) -> None:
    mocks.redis("GET", "a", reply="1")
    mocks.redis("GET", "b", reply="2")
    mocks.docs[1]["version"] = "kpy/v9"
    file = mocks.write(tmp_path)
    with pytest.raises(ReRecordNeeded) as caught:
        MockStore(file)
    assert caught.value.exit_code == 3
    message = str(caught.value)
    assert message.startswith(f"{file}:") and "kpy/v9 is not kpy/v1" in message
    assert "record the set again" in message
    # it names the second document, at its version line
    assert message.startswith(f"{file}:{line_with(file.read_text(), 'kpy/v9')}: ")


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO t VALUES (1)",
        "  insert into t values (1)",
        "UPDATE t SET a = 1",
        "delete from t",
        "(INSERT INTO t VALUES (1))",
        "/* tag */ UPDATE t SET a = 1",
        "-- first\nDELETE FROM t",
        "TRUNCATE t",
        "CREATE TABLE t (a int)",
        "WITH moved AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM moved",
        "WITH x AS (SELECT 1) UPDATE t SET a = 1",
        "with x as (select 1) insert into t select * from x",
        "WITH gone AS (DELETE FROM a RETURNING id) SELECT count(*) FROM gone",
        "COPY t FROM STDIN",
        "copy t (a, b) from stdin with (format csv)",
        "COPY t(a,b) FROM '/tmp/file'",
    ],
)
def test_is_write(sql: str) -> None:
    assert is_write(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "",
        "SELECT 1",
        "SELECT * FROM t FOR UPDATE",
        "select * from t for no key update",
        "SELECT * FROM t FOR SHARE",
        "SELECT * FROM t FOR KEY SHARE SKIP LOCKED",
        "SELECT 'UPDATE t SET a = 1' AS x",
        "SELECT 'it''s; DELETE FROM t' AS x",
        'SELECT "update" FROM t',
        "SELECT 1 -- UPDATE t",
        "/* DELETE FROM t */ SELECT 1",
        "/* multi\nline INSERT */\nSELECT 1",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "WITH updated AS (SELECT 1) SELECT * FROM updated",
        "WITH x AS (SELECT 'INSERT') SELECT * FROM x",
        "WITH x AS (SELECT id FROM t FOR UPDATE) SELECT * FROM x",
        "COPY t TO STDOUT",
        "copy t (a, b) to stdout with (format csv)",
        "COPY (SELECT * FROM t) TO STDOUT",
        "COPY (SELECT a FROM t WHERE b IN (SELECT c FROM d)) TO STDOUT",
        "BEGIN",
        "ROLLBACK",
        "PREPARE get_one (int) AS SELECT * FROM t WHERE id = $1",
        "SET search_path TO shop",
        "SHOW server_version",
    ],
)
def test_is_not_write(sql: str) -> None:
    assert not is_write(sql)


RUNS = [{"type": "Execute", "portal": "", "max_rows": 0}, {"type": "Sync"}]


def test_expected_from_the_requests_sql() -> None:
    assert expected({"messages": RUNS, "sql": "INSERT INTO t VALUES (1)"})
    assert expected({"messages": RUNS, "sql": ["SELECT 1", "UPDATE t SET a = 1"]})
    assert not expected({"messages": RUNS, "sql": ["SELECT 1", "ROLLBACK"]})
    # a transaction's writes last only once it commits: a COMMIT not made is a write lost
    assert expected({"messages": RUNS, "sql": "COMMIT"}) and expected(
        {"messages": RUNS, "sql": "PREPARE TRANSACTION 'tx1'"}
    )
    assert not expected(
        {"messages": RUNS, "sql": {"base64": "AAE="}}
    )  # SQL that is not text: not known
    # a unit that only prepares runs nothing: whether it is prepared again is the pool's
    prepared = [{"type": "Parse", "statement": "s1", "sql": "INSERT INTO t VALUES ($1)"}]
    assert not expected({"messages": [*prepared, {"type": "Sync"}], "sql": "INSERT INTO t"})
    assert not expected({"messages": [{"type": "Sync"}]})
