"""``kpy record --from-set``: the sample shop recorded against real PostgreSQL, Redis and the
rates API, its data or its code changed, then re-recorded by its own requests. Exactly the
named tests change (the others byte for byte as they were), names, noise and order are
kept, the report says what changed, and the set replays green with every dependency
stopped. A re-recording of every test rebuilds the set; one that fails or is interrupted
leaves the set as it was; a test whose request got no answer keeps its old version."""

from __future__ import annotations

import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import yaml

from kpy_ci.address import Address
from kpy_ci.errors import UsageError
from kpy_ci.protocols.base import Exchange
from kpy_ci.recording import Recorded
from kpy_ci.rerecord import (
    Sent,
    Shift,
    answers,
    change_line,
    dropped,
    kept_new,
    merged_meta,
    merged_test,
    placed,
    selected,
    shift_after,
)
from kpy_ci.store import reader
from tests import test_replay_headers as headers
from tests.conftest import KPY, child_env, leftover_cgroups
from tests.dns_server import DnsServer
from tests.examples.shop import SHOP, reset, shop_env, shop_postgres
from tests.servers import Postgres, Redis, postgres_server, redis_server
from tests.test_record import TRAFFIC, assert_valid, kpy_record, load_set, rates_service
from tests.test_replay import Recorded as ReplaySet
from tests.test_replay import kpy_test


@dataclass(frozen=True)
class Staging:
    """The shop's real dependencies, and what kpy record needs to reach them."""

    pg: Postgres
    redis: Redis
    rates_port: int
    dns: DnsServer
    stack: ExitStack

    def env(self, port: int) -> dict[str, str]:
        return child_env() | shop_env(self.pg, self.redis, port, self.rates_port)


def start_staging(tmp: Path) -> Staging:
    stack = ExitStack()
    pg = stack.enter_context(postgres_server())
    redis = stack.enter_context(redis_server(tmp / "redis"))
    rates_port = stack.enter_context(rates_service(tmp))
    dns = stack.enter_context(DnsServer({}))
    return Staging(pg, redis, rates_port, dns, stack)


def record_shop(staging: Staging, out: Path) -> Path:
    reset(staging.pg, staging.redis)
    argv, env = kpy_record(
        staging.pg, staging.redis, staging.rates_port, out, staging.dns, TRAFFIC, "--set", "shop"
    )
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out / "shop"


def rerecord(
    staging: Staging, set_dir: Path, *extra: str, app: Path = SHOP / "app.py"
) -> list[str]:
    """The argv of ``kpy record --from-set`` of the shop (on the set's own port)."""
    return [
        *KPY, "record", "--from-set", str(set_dir), "-c", shlex.join([sys.executable, str(app)]),
        "--dns-upstream", f"127.0.0.1:{staging.dns.port}", *extra,
    ]  # fmt: skip


def run(staging: Staging, set_dir: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    port = int(yaml.safe_load((set_dir / "test-set.yaml").read_text())["port"])
    env = staging.env(port)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def set_price(pg: Postgres, product: int, price: str) -> None:
    with psycopg.connect(shop_postgres(pg).dsn(), autocommit=True) as conn:
        conn.execute("UPDATE products SET price = %s WHERE id = %s", (price, product))


def add_noise(test_file: Path, noise: str) -> None:
    test_file.write_text(test_file.read_text() + f"noise: [{noise}]\n")


def app_with(tmp_path: Path, old: str, new: str) -> Path:
    source = (SHOP / "app.py").read_text()
    assert source.count(old) == 1, old
    app = tmp_path / "app.py"
    app.write_text(source.replace(old, new))
    return app


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Staging]:
    staging = start_staging(tmp_path_factory.mktemp("staging"))
    with staging.stack:
        yield staging


@pytest.fixture(scope="module")
def base(staging: Staging, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shop recorded once; each test re-records a copy."""
    return record_shop(staging, tmp_path_factory.mktemp("base") / "kpy")


def copy_of(base: Path, tmp_path: Path) -> Path:
    shutil.copytree(base.parent, tmp_path / "kpy")
    return tmp_path / "kpy" / base.name


# -- end to end ---------------------------------------------------------------------------


def test_two_named_tests_rerecorded_and_the_set_replays_with_dependencies_gone(
    tmp_path: Path,
) -> None:
    staging = start_staging(tmp_path)
    with staging.stack:
        shop = record_shop(staging, tmp_path / "kpy")
        add_noise(shop / "tests" / "test-4.yaml", "header.X-Trace")
        before = files(shop)
        _, old_tests, old_mocks = load_set(shop)

        # the staging data moved on: the T-shirt (GET /products/2, test-4) costs more
        reset(staging.pg, staging.redis)
        set_price(staging.pg, 2, "29.99")
        done = run(
            staging, shop, rerecord(staging, shop, "--tests", "test-4", "--tests", "shop/test-6")
        )
        assert done.returncode == 0, done.stderr
        env = staging.env(int(yaml.safe_load((shop / "test-set.yaml").read_text())["port"]))
        closed = [staging.pg.port, staging.redis.port, staging.rates_port]
    assert "kpy: test-4: response changed: body.price: '19.99' -> '29.99' (mocks: " in done.stderr
    assert "kpy: test-6: unchanged (mocks: 1 -> 1)" in done.stderr

    after = files(shop)
    assert set(after) == set(before)
    changed = {name for name in before if before[name] != after[name]}
    # exactly the two tests (and the set's own files); every other test byte for byte
    assert changed - {"schema.lock.yaml"} == {
        "tests/test-4.yaml", "tests/test-6.yaml", "mocks.yaml", "test-set.yaml",
    }  # fmt: skip
    meta, tests, mocks = load_set(shop)
    assert [t["name"] for t in tests] == [t["name"] for t in old_tests]
    assert tests[3]["noise"] == ["header.X-Trace"]
    assert tests[3]["response"]["body"]["json"]["price"] == "29.99"
    assert tests[3]["request"] == old_tests[3]["request"]
    # the old mocks of other tests stay as they were; the new ones come after them
    highest = max(int(m["name"].split("-")[1]) for m in old_mocks)
    last = max(max(m["ended"] for m in old_mocks), max(t["ended"] for t in old_tests))
    by_name = {m["name"]: m for m in mocks}
    for test in (tests[3], tests[5]):
        assert test["mocks"] and test["started"] > last
        for name in test["mocks"]:
            assert int(name.split("-")[1]) > highest and by_name[name]["started"] > last
    old_by_name = {m["name"]: m for m in old_mocks}
    kept = [m for m in mocks if m["name"] in old_by_name]
    assert all(m == old_by_name[m["name"]] for m in kept)
    assert not set(old_tests[3]["mocks"]) & set(by_name)  # listed by test-4 alone: dropped
    assert meta["tests"] == len(tests) and meta["mocks"] == len(mocks)
    assert len({(m["connection"], m["order"]) for m in mocks}) == len(mocks)
    assert_valid(shop)

    # replayed with PostgreSQL, Redis and the rates API stopped
    replay = kpy_test(ReplaySet(shop.parent, env, closed), tmp_path)
    assert replay.returncode == 0, replay.stderr
    assert f"kpy: {len(tests)} passed, 0 failed" in replay.stderr
    assert leftover_cgroups() == []


def test_every_test_rerecorded_rebuilds_the_set(
    staging: Staging, base: Path, tmp_path: Path
) -> None:
    shop = copy_of(base, tmp_path)
    add_noise(shop / "tests" / "test-2.yaml", "header.X-Cache")
    _, old_tests, _ = load_set(shop)
    reset(staging.pg, staging.redis)
    app = app_with(tmp_path, '"status": "ok"', '"status": "fine"')
    done = run(staging, shop, rerecord(staging, shop, app=app))
    assert done.returncode == 0, done.stderr
    assert (
        "kpy: test-1: response changed: body.status: 'ok' -> 'fine' (mocks: 0 -> 0)" in done.stderr
    )
    assert "kpy: test-4: unchanged" in done.stderr
    meta, tests, mocks = load_set(shop)
    assert [t["name"] for t in tests] == [t["name"] for t in old_tests]
    assert tests[1]["noise"] == ["header.X-Cache"]
    assert [m["name"] for m in mocks] == [f"mock-{n}" for n in range(1, len(mocks) + 1)]
    assert meta["complete"] is True and meta["mocks"] == len(mocks)
    assert all(t["started"] < 60 for t in tests)  # a fresh recording's clock, not shifted
    assert (shop / "schema.lock.yaml").is_file()
    assert_valid(shop)


def test_a_request_without_answer_keeps_its_old_test(
    staging: Staging, base: Path, tmp_path: Path
) -> None:
    shop = copy_of(base, tmp_path)
    before = files(shop)
    reset(staging.pg, staging.redis)
    # /stats (test-15) now takes longer than the request may
    app = app_with(
        tmp_path,
        "def stats() -> Response:\n",
        "def stats() -> Response:\n    import time; time.sleep(3)\n",
    )
    argv = rerecord(staging, shop, "--tests", "test-1,test-15", "--request-timeout", "0.5", app=app)
    done = run(staging, shop, argv)
    assert done.returncode == 1, done.stderr
    assert (
        "kpy: test-15: FAILED, its old version is kept: the service did not answer: ReadTimeout"
        in done.stderr
    )
    assert "1 of 2 tests got no answer" in done.stderr
    after = files(shop)
    assert after["tests/test-15.yaml"] == before["tests/test-15.yaml"]
    assert after["tests/test-1.yaml"] != before["tests/test-1.yaml"]


def test_a_failed_or_interrupted_rerecording_leaves_the_set_untouched(
    staging: Staging, base: Path, tmp_path: Path
) -> None:
    shop = copy_of(base, tmp_path)
    before = files(shop)
    # the service dies on the first request
    app = app_with(
        tmp_path, "def health() -> Response:\n", "def health() -> Response:\n    os._exit(3)\n"
    )
    done = run(staging, shop, rerecord(staging, shop, app=app))
    assert done.returncode == 1, done.stderr
    assert f"the service exited with code 3 during the traffic; {shop} untouched" in done.stderr
    assert files(shop) == before

    # ^C while the first request (a slow one now) is being served
    slow = app_with(
        tmp_path,
        "def health() -> Response:\n",
        "def health() -> Response:\n    import time; time.sleep(5)\n",
    )
    port = int(yaml.safe_load((shop / "test-set.yaml").read_text())["port"])
    proc = subprocess.Popen(
        rerecord(staging, shop, app=slow), env=staging.env(port), stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("kpy: re-recording"):
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert files(shop) == before
    assert sorted(p.name for p in shop.parent.iterdir()) == ["shop"]  # no temporary left
    assert leftover_cgroups() == []


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--tests", "test-99"], "--tests 'test-99': the set shop has no test 'test-99'"),
        (["--tests", "other/test-1"], "--tests 'other/test-1': not a test of the set shop"),
        (["--traffic", "true"], "--traffic does not go with --from-set"),
    ],
)
def test_bad_options_stop_before_anything_runs(
    base: Path, tmp_path: Path, extra: list[str], said: str
) -> None:
    argv = [*KPY, "record", "--from-set", str(base), "-c", "false", *extra]
    done = subprocess.run(argv, env=child_env(), capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    assert said in done.stderr


def test_a_redacted_header_is_given_by_header_and_never_written(tmp_path: Path) -> None:
    (tmp_path / "service.py").write_text(headers.SERVICE)
    command = shlex.join([sys.executable, str(tmp_path / "service.py")])
    traffic = shlex.join([sys.executable, "-c", headers.TRAFFIC])
    done = headers.run(tmp_path, "record", "-c", command, "--port", str(headers.PORT),
                       "--traffic", traffic, "--set", "me")  # fmt: skip
    assert done.returncode == 0, done.stderr
    me = tmp_path / "kpy" / "me"
    before = files(me)
    resolv = tmp_path / "resolv.conf"
    argv = [*KPY, "record", "--from-set", str(me), "-c", command, "--resolv-conf", str(resolv)]
    env = child_env() | {"PORT": str(headers.PORT)}
    # without it, the request would be refused (401): not sent, the test kept
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "test-1: FAILED, its old version is kept: its Authorization was redacted" in done.stderr
    assert files(me) == before
    given = ["--header", f"Authorization: Bearer {headers.TOKEN}"]
    done = subprocess.run([*argv, *given], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "kpy: test-1: unchanged (mocks: 0 -> 0)" in done.stderr
    written = b"".join(files(me).values())
    assert files(me) != before and headers.TOKEN.encode() not in written


# -- the merge, piece by piece ------------------------------------------------------------


def case(name: str, mocks: list[str]) -> reader.TestCase:
    return reader.TestCase(name, Path(f"{name}.yaml"), {"name": name, "mocks": mocks})


def inbound(started: int, ended: int) -> Recorded:
    ex = Exchange("http", {}, {}, started, ended)
    return Recorded(ex, "inbound", 1, 1, Address("127.0.0.1", 1))


def test_selected_names_in_the_sets_order() -> None:
    names = ["test-1", "test-2", "test-3", "test-10"]
    assert selected([], "shop", names) == names
    assert selected(["test-10,test-2", "kpy/shop/test-1"], "shop", names) == [
        "test-1", "test-2", "test-10",
    ]  # fmt: skip
    # as `kpy drift` writes them to $GITHUB_OUTPUT (stale-tests)
    assert selected(["shop/test-3 shop/test-1"], "shop", names) == ["test-1", "test-3"]
    with pytest.raises(UsageError, match="no test named"):
        selected([","], "shop", names)
    with pytest.raises(UsageError, match="not a test of the set shop"):
        selected(["users/test-1"], "shop", names)


def test_old_mocks_dropped_only_when_no_other_test_lists_them() -> None:
    tests = [case("test-1", ["mock-1", "mock-2"]), case("test-2", ["mock-2", "mock-3"])]
    assert dropped(tests, {"test-1"}) == {"mock-1"}
    assert dropped(tests, {"test-1", "test-2"}) == {"mock-1", "mock-2", "mock-3"}


def test_new_mocks_kept_when_listed_or_reusable() -> None:
    assert kept_new([False, True, False, False], {"mock-3"}, whole=False) == [2, 3]
    assert kept_new([False, True, False], set(), whole=True) == [1, 2, 3]


def test_new_mocks_placed_past_the_old_set() -> None:
    old = [
        {"name": "mock-7", "connection": 12, "ended": 3.5},
        {"name": "mock-2", "connection": 4, "ended": 1.0},
    ]
    shift = shift_after(old, [{"ended": 4.25}])
    assert shift == Shift(7, 12, 5.0)
    doc = {"name": "mock-1", "connection": 3, "started": 0.25, "ended": 0.5, "order": 1}
    assert placed(doc, "mock-8", shift) == {
        "name": "mock-8", "connection": 15, "started": 5.25, "ended": 5.5, "order": 1,
    }  # fmt: skip


def test_a_merged_test_keeps_its_name_request_and_noise() -> None:
    old = {"name": "test-4", "started": 1.0, "ended": 1.1, "request": {"url": "/a"},
           "response": {"status": 200}, "mocks": ["mock-1"], "noise": ["body.at"]}  # fmt: skip
    new = {"name": "test-1", "started": 0.5, "ended": 0.75, "request": {"url": "/b"},
           "response": {"status": 201}, "mocks": ["mock-2"]}  # fmt: skip
    merged = merged_test(old, new, Shift(9, 9, 10.0), {"mock-2": "mock-11"})
    assert merged == {**old, "started": 10.5, "ended": 10.75, "response": {"status": 201},
                      "mocks": ["mock-11"]}  # fmt: skip
    assert list(merged) == list(old)
    assert change_line("test-4", old, merged, []) == (
        "test-4: response changed: status: 200 -> 201 (mocks: 1 -> 1)"
    )
    assert change_line("test-4", old, merged, ["status"]) == "test-4: unchanged (mocks: 1 -> 1)"
    # the token its sign-in issued now replaces the recorded one; a redacted one never does
    for sent, kept in (("Bearer new-token-0123456789", "Bearer new-token-0123456789"),
                       ("Bearer [redacted by kpy]", "Bearer old-token-0123456789")):  # fmt: skip
        old["request"] = {
            "url": "/a",
            "headers": [["Authorization", "Bearer old-token-0123456789"]],
        }
        new["request"] = {"url": "/b", "headers": [["Authorization", sent]]}
        merged = merged_test(old, new, Shift(9, 9, 10.0), {"mock-2": "mock-11"})
        assert merged["request"] == {"url": "/a", "headers": [["Authorization", kept]]}


def test_each_answer_is_the_exchange_its_request_started() -> None:
    sent = [Sent("test-1", 10, 20), Sent("test-2", 30, 40), Sent("test-3", 50, 60, "timeout")]
    sent.append(Sent("test-4", 70, 80))
    got, failed = answers(sent, [inbound(35, 39), inbound(12, 18), inbound(55, 90)])
    assert {k: v.exchange.started for k, v in got.items()} == {"test-1": 12, "test-2": 35}
    assert failed == {"test-3": "timeout", "test-4": "kpy recorded no exchange for its request"}


def test_the_sets_header_keeps_its_history_unless_rebuilt() -> None:
    old = {"name": "shop", "started_at": "a", "recorded_at": "b", "port": 1, "complete": False,
           "interrupted": "x", "tests": 2, "mocks": 5, "warnings": ["w1"]}  # fmt: skip
    new = {"started_at": "c", "recorded_at": "d", "port": 2, "complete": True,
           "interrupted": None, "tests": 2, "mocks": 6, "warnings": ["w1", "w2"]}  # fmt: skip
    assert merged_meta(old, new, whole=False) == {
        **old, "recorded_at": "d", "port": 2, "mocks": 6, "warnings": ["w1", "w2"],
    }  # fmt: skip
    assert merged_meta(old, new, whole=True) == {"name": "shop", **new}
