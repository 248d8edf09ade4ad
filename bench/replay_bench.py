"""Benchmark of ``kpy test``: the sample suite replayed against the same requests sent to the
service on its real databases, side by side in one run; then what the mock index
(``kpy_ci/mock_store.py``) costs per lookup, to build and in memory as a test-set grows.

Run as root from the project root, after scripts/install.sh (docs/BENCHMARKS.md, "kpy test
(replay)", has the figures; the defaults take about 2.5 minutes, most of it writing and
building the 100,000-mock file):

    .venv/bin/python bench/replay_bench.py [--rounds 5] [--sizes 100 1000 10000 100000]
                                           [--lookups 2000] [--misses 3] [--only shop index]
                                           [--json F]   # --report F reprints the tables

**The shop.** Real PostgreSQL and Redis on loopback ports (tests/servers.py), seeded, and
the rates API; ``kpy record`` of examples/shop/app.py with traffic.py, once, as
tests/test_record.py does. Then, ``--rounds`` times, their order rotating from round to
round so that noise on the machine hits each alike:

- **kpy test**: ``kpy test -c 'python app.py' --path ... --junit ...`` in a child, timed
  from its start to its exit, its stderr read line by line as it comes: start-up (kpy, the
  set, the session, the service) until "kpy: replaying", the tests, then the stop; and the
  per-test times the JUnit report gives, summed;
- **kpy, in process**: the same replay by ``kpy_ci.replay.replay`` in this process, with
  ``_Runner._send``, ``_Runner._settle`` and ``MockStore.serve`` timed, to split a test's
  time into its request, the quiet wait after it, and the mock lookups inside;
- **real**: the shop on its real PostgreSQL, Redis and rates API (``reset`` first, not
  timed), the 15 recorded requests (tests/*.yaml) sent with httpx exactly as kpy sends
  them; start (rates, app, GET /health), requests and stop timed apart.

**The index.** mocks.yaml files of ``--sizes`` mocks, written with the project's serializer
in the shapes of docs/FORMAT.md and the shop's mix (PostgreSQL start-ups, extended queries
with parameters, BEGIN/COMMIT; Redis INCRBY/GET/SET and HELLO; HTTP GETs; 60/30/10). Each
size in a fresh child: VmRSS before and after ``MockStore(path)`` (and VmHWM), its build
time, then ``store.serve(...)`` timed call by call for ``--lookups`` calls of each kind:
a running test's own mocks (tier 1), any unused mock with no test running (tier 2),
reusable mocks once every copy is used (tier 3), with the part spent reading the document
back from the file apart; and ``--misses`` misses per protocol, each ranking candidates.

Traffic goes to 127.0.0.1 only; every child has a timeout; the servers are stopped at the
end and the run checks that no kpy cgroup of its own is left.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gc
import io
import itertools
import json
import os
import platform
import random
import re
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.servers, when run as bench/replay_bench.py

import httpx  # noqa: E402
from children import commit  # noqa: E402  (bench/, the script's own folder)

from kpy_ci import replay as replay_mod  # noqa: E402
from kpy_ci import resend  # noqa: E402
from kpy_ci.config import load as load_config  # noqa: E402
from kpy_ci.ebpf import cgroup  # noqa: E402
from kpy_ci.ebpf.session import check_privileges  # noqa: E402
from kpy_ci.errors import EnvironmentProblem  # noqa: E402
from kpy_ci.mock_store import MockStore  # noqa: E402
from kpy_ci.protocols.http import message as http  # noqa: E402
from kpy_ci.store import reader  # noqa: E402
from kpy_ci.store.reader import MocksFile, load_set  # noqa: E402
from kpy_ci.store.serializer import document, dump_all  # noqa: E402
from tests.dns_server import DnsServer  # noqa: E402
from tests.examples.shop import (  # noqa: E402
    TRAFFIC_LINES,
    app_argv,
    reset,
    shop_env,
    start_rates,
    start_shop,
    traffic_argv,
)
from tests.servers import (  # noqa: E402
    Postgres,
    Redis,
    free_port,
    pg_bin,
    postgres_server,
    redis_server,
)

_kpy_script = Path(sys.executable).with_name("kpy")
KPY = [str(_kpy_script)] if _kpy_script.exists() else [sys.executable, "-m", "kpy_ci"]
PARTS = ("shop", "index")
VARIANTS = ("kpy test", "in process", "real")
CHILD_TIMEOUT = 300.0  # seconds for one kpy run, one recording or one index child
SLOTS = 10  # mocks per synthetic "request" (a group: one PostgreSQL connection, ...)
CHUNK = 500  # mocks dumped per call when writing the files
VERDICT = re.compile(r"(PASS|FAIL) \S+/test-\d+ ")


def now() -> float:
    return time.perf_counter()


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def proc_status_kib(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


# --- part 1: the shop, replayed and on its real databases --------------------------------


def record_shop(pg: Postgres, redis: Redis, tmp: Path) -> tuple[Path, dict[str, str], float]:
    """``kpy record`` of the shop with traffic.py, the rates API running; the set, the
    environment it was recorded with (its port included), and how long recording took."""
    out = tmp / "kpy"
    reset(pg, redis)
    rates_port, app_port = free_port(), free_port()
    with DnsServer({}) as dns, start_rates(rates_port, tmp / "rates.log"):
        env = shop_env(pg, redis, app_port, rates_port)
        argv = [
            *KPY, "record", "-c", shlex.join(app_argv()), "--port", str(app_port),
            "--path", str(out), "--set", "shop", "--traffic", shlex.join(traffic_argv()),
            "--dns-upstream", f"127.0.0.1:{dns.port}",
        ]  # fmt: skip
        t0 = now()
        done = subprocess.run(
            argv, env=os.environ | env, capture_output=True, text=True, timeout=CHILD_TIMEOUT
        )
        took = now() - t0
    if done.returncode != 0 or f"{TRAFFIC_LINES} tests" not in done.stderr:
        raise RuntimeError(f"kpy record failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return out / "shop", env, took


def junit_seconds(report: Path) -> list[float]:
    return [float(case.get("time", "0")) for case in ET.parse(report).getroot().iter("testcase")]


def run_kpy_test(test_set: Path, env: dict[str, str], tmp: Path) -> dict[str, Any]:
    """``kpy test`` in a child, its stderr timestamped line by line."""
    report = tmp / "junit.xml"
    report.unlink(missing_ok=True)
    argv = [
        *KPY, "test", "-c", shlex.join(app_argv()), "--path", str(test_set.parent),
        "--set", test_set.name, "--junit", str(report), "--resolv-conf", str(tmp / "resolv.conf"),
    ]  # fmt: skip
    t0 = now()
    proc = subprocess.Popen(
        argv, env=os.environ | env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    watchdog = threading.Timer(CHILD_TIMEOUT, proc.kill)
    watchdog.start()
    ready = last = None
    passed, tail = 0, []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            # the service's lines and kpy's come from two threads, sometimes on one line
            tail = [*tail[-40:], line]
            if ready is None and "kpy: replaying" in line:
                ready = now()
            if verdicts := VERDICT.findall(line):
                last = now()
                passed += verdicts.count("PASS")
        proc.wait()
    finally:
        watchdog.cancel()
    end = now()
    if proc.returncode != 0 or ready is None or last is None or passed != TRAFFIC_LINES:
        raise RuntimeError(f"kpy test: exit {proc.returncode}, {passed} passed:\n{''.join(tail)}")
    per_test = junit_seconds(report)
    return {
        "wall_s": end - t0,
        "start_s": ready - t0,
        "tests_s": last - ready,
        "stop_s": end - last,
        "junit_sum_s": sum(per_test),
        "per_request_s": sum(per_test) / len(per_test),
        "each_s": per_test,
    }


def timing(spent: list[float], fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, appending the seconds of each call to ``spent``."""

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = now()
        try:
            return fn(*args, **kwargs)
        finally:
            spent.append(now() - t0)

    return timed


def run_in_process(test_set: Path, env: dict[str, str], tmp: Path) -> dict[str, Any]:
    """The same replay through ``kpy_ci.replay.replay`` here, its parts timed."""
    send: list[float] = []
    settle: list[float] = []
    serve: list[float] = []
    runner = replay_mod._Runner
    options = replay_mod.TestOptions(
        command=shlex.join(app_argv()),
        path=test_set.parent,
        set_name=test_set.name,
        config=load_config(test_set.parent),
        resolv_conf=tmp / "resolv.conf",
    )
    saved = dict(os.environ)
    os.environ.update(env)  # the service inherits it, as from kpy test's own environment
    try:
        with (
            mock.patch.object(runner, "_send", timing(send, runner._send)),
            mock.patch.object(runner, "_settle", timing(settle, runner._settle)),
            mock.patch.object(MockStore, "serve", timing(serve, MockStore.serve)),
        ):
            t0 = now()
            result = replay_mod.replay(options, io.StringIO())
            wall = now() - t0
    finally:
        os.environ.clear()
        os.environ.update(saved)
    tests = [t for s in result.sets for t in s.tests]
    if len(tests) != TRAFFIC_LINES or result.failed:
        raise RuntimeError(f"in-process replay: {[(t.name, t.message) for t in tests]}")
    seconds = sum(t.seconds for t in tests)
    return {
        "wall_s": wall,
        "per_request_s": seconds / len(tests),
        "send_s": sum(send) / len(tests),
        "settle_s": sum(settle) / len(tests),
        "other_s": (seconds - sum(send) - sum(settle)) / len(tests),
        "serves": len(serve),
        "serve_us": 1e6 * sum(serve) / max(1, len(serve)),
        "serve_per_request_s": sum(serve) / len(tests),
        "each_s": [t.seconds for t in tests],
        "each_send_s": send,
    }


def send_recorded(client: httpx.Client, base_url: str, request: dict[str, Any]) -> int:
    """One recorded request, sent as kpy's runner sends it (recorded headers, no others)."""
    headers = resend.headers_to_send(request, {})
    body = request.get("body")
    content = http.encode_body(body, request["headers"]) if body is not None else b""
    sent = client.build_request(
        request["method"], base_url + request["url"], headers=headers, content=content
    )
    response = client.send(sent, stream=True)
    try:
        b"".join(response.iter_raw())
    finally:
        response.close()
    return response.status_code


def run_real(pg: Postgres, redis: Redis, test_set: Path, tmp: Path) -> dict[str, Any]:
    """The shop on its real stack, the recorded requests sent to it; start-up excluded."""
    tests = load_set(test_set).tests
    reset(pg, redis)  # the seeded state the recording started from; not timed
    per_request: list[float] = []
    same_status = 0
    t0 = now()
    with start_shop(pg, redis, log_dir=tmp) as shop:
        started = now()
        with httpx.Client(timeout=30, headers={}) as client:
            client.headers.clear()
            for test in tests:
                t = now()
                status = send_recorded(client, shop.base_url, test.doc["request"])
                per_request.append(now() - t)
                same_status += status == test.doc["response"]["status"]
        stopping = now()
    end = now()
    if same_status != len(tests):
        raise RuntimeError(f"the real shop answered {same_status}/{len(tests)} as recorded")
    return {
        "wall_s": end - t0,
        "start_s": started - t0,
        "tests_s": stopping - started,
        "stop_s": end - stopping,
        "per_request_s": sum(per_request) / len(per_request),
        "each_s": per_request,
        "requests": [f"{t.doc['request']['method']} {t.doc['request']['url']}" for t in tests],
    }


def part_shop(rounds: int, tmp: Path) -> dict[str, Any]:
    res: dict[str, Any] = {"rounds": {v: [] for v in VARIANTS}}
    (tmp / "resolv.conf").write_text("nameserver 127.0.0.53\n")  # nothing is resolved
    with postgres_server() as pg, redis_server(tmp / "redis") as redis:
        test_set, env, res["record_s"] = record_shop(pg, redis, tmp)
        store = MockStore(test_set / "mocks.yaml")
        res["mocks"] = len(store.entries)
        store.close()
        progress(f"recorded the shop in {res['record_s']:.1f} s: {res['mocks']} mocks")
        runs: dict[str, Callable[[], dict[str, Any]]] = {
            "kpy test": lambda: run_kpy_test(test_set, env, tmp),
            "in process": lambda: run_in_process(test_set, env, tmp),
            "real": lambda: run_real(pg, redis, test_set, tmp),
        }
        for r in range(rounds):
            order = VARIANTS[r % 3 :] + VARIANTS[: r % 3]
            for variant in order:
                res["rounds"][variant].append(runs[variant]())
            kpy, real = res["rounds"]["kpy test"][-1], res["rounds"]["real"][-1]
            progress(
                f"round {r + 1}/{rounds}: kpy test {kpy['wall_s']:.2f} s "
                f"({1e3 * kpy['per_request_s']:.1f} ms/request), real "
                f"{1e3 * real['per_request_s']:.2f} ms/request"
            )
    return res


# --- part 2: synthetic test-sets ---------------------------------------------------------

PG, REDIS, WEB = "127.0.0.1:5432", "127.0.0.1:6379", "127.0.0.1:8081"
STARTUP_PARAMETERS = [
    ("application_name", ""), ("client_encoding", "UTF8"), ("DateStyle", "ISO, MDY"),
    ("default_transaction_read_only", "off"), ("in_hot_standby", "off"),
    ("integer_datetimes", "on"), ("IntervalStyle", "postgres"), ("is_superuser", "off"),
    ("server_encoding", "UTF8"), ("server_version", "15.18"),
    ("session_authorization", "shop"), ("standard_conforming_strings", "on"),
    ("TimeZone", "Etc/UTC"),
]  # fmt: skip
PRODUCT_FIELDS = [("id", 23, 4), ("sku", 25, -1), ("name", 25, -1), ("price", 1700, -1),
                  ("stock", 23, 4)]  # fmt: skip
SELECT_PRODUCT = "SELECT id, sku, name, price, stock FROM products WHERE id = $1"
INSERT_ORDER = (
    "INSERT INTO orders (product_id, quantity, total_usd, currency, total)"
    " VALUES ($1, $2, $3, $4, $5) RETURNING id"
)
UPDATE_STOCK = "UPDATE products SET stock = stock - $1 WHERE id = $2"


def _int4(value: int) -> dict[str, str]:
    return {"base64": base64.b64encode(struct.pack(">i", value)).decode()}


def _extended(sql: str, params: list[Any], types: list[int], formats: list[int]) -> dict[str, Any]:
    return {
        "messages": [
            {"type": "Parse", "statement": "", "sql": sql, "param_types": types},
            {"type": "Bind", "portal": "", "statement": "", "param_formats": formats,
             "params": params, "result_formats": [0]},
            {"type": "Describe", "portal": ""},
            {"type": "Execute", "portal": "", "max_rows": 0},
            {"type": "Sync"},
        ],
        "sql": sql,
    }  # fmt: skip


def _rows(fields: list[tuple[str, int, int]], rows: list[list[Any]], tag: str) -> dict[str, Any]:
    described = [
        {"name": n, "table_oid": 16387, "column": c + 1, "type_oid": oid, "type_size": size,
         "type_modifier": -1, "format": 0}
        for c, (n, oid, size) in enumerate(fields)
    ]  # fmt: skip
    return {
        "messages": [
            {"type": "ParseComplete"},
            {"type": "BindComplete"},
            {"type": "RowDescription", "fields": described},
            *({"type": "DataRow", "values": row} for row in rows),
            {"type": "CommandComplete", "tag": tag},
            {"type": "ReadyForQuery", "status": "T" if tag.startswith(("INSERT", "UP")) else "I"},
        ]
    }


def _simple(sql: str, tag: str, status: str) -> tuple[dict[str, Any], dict[str, Any]]:
    request = {"messages": [{"type": "Query", "sql": sql}], "sql": sql}
    reply = {"messages": [{"type": "CommandComplete", "tag": tag},
                          {"type": "ReadyForQuery", "status": status}]}  # fmt: skip
    return request, reply


def _startup() -> tuple[dict[str, Any], dict[str, Any]]:
    request = {
        "messages": [{"type": "StartupMessage", "protocol": "3.0",
                      "parameters": {"user": "shop", "database": "shop"}}],
        "auth": {"method": "scram-sha-256"},
        "ssl_requested": True,
        "gssenc_requested": False,
    }  # fmt: skip
    messages: list[dict[str, Any]] = [{"type": "AuthenticationOk"}]
    messages += [{"type": "ParameterStatus", "name": n, "value": v} for n, v in STARTUP_PARAMETERS]
    messages += [{"type": "BackendKeyData", "process_id": 14386, "secret_key": 1058532976},
                 {"type": "ReadyForQuery", "status": "I"}]  # fmt: skip
    return request, {"messages": messages}


def _rates(at: int) -> tuple[dict[str, Any], dict[str, Any]]:
    request = {
        "method": "GET", "url": f"/rates?from=USD&to=EUR&at={at}", "version": "1.1",
        "headers": [["Host", WEB], ["Accept-Encoding", "identity"],
                    ["Authorization", "Bearer [redacted by kpy]"], ["Accept", "application/json"]],
    }  # fmt: skip
    response = {
        "status": 200, "reason": "OK", "version": "1.1",
        "headers": [["Server", "rates/1.0 Python/3.11.7"],
                    ["Date", "Wed, 25 Nov 2026 14:31:47 GMT"],
                    ["Content-Type", "application/json"], ["Content-Length", "42"]],
        "body": {"json": {"from": "USD", "rate": 0.92, "to": "EUR"}},
    }  # fmt: skip
    return request, response


def _redis(g: int, slot: int) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """The Redis slots of group ``g``: INCRBY (one key for every group), GET, SET; every
    tenth group's last slot is its connection's HELLO (reusable)."""
    if slot == 2:
        return {"command": ["INCRBY", "shop:views:products", "1"]}, {"reply": g + 1}, False
    if slot == 3:
        return {"command": ["GET", f"shop:product:{g}"]}, {"reply": {"null": "resp3"}}, False
    if g % 10 == 0:
        command = ["HELLO", "3", "AUTH", "default", "[redacted by kpy]"]
        reply = {"map": [["server", "redis"], ["version", "7.0.15"], ["proto", 3],
                         ["id", g // 10 + 4], ["mode", "standalone"], ["role", "master"],
                         ["modules", []]]}  # fmt: skip
        return {"command": command}, {"reply": reply}, True
    value = json.dumps({"id": g + 1, "sku": f"SKU-{g}", "name": "Coffee mug", "price": "12.50"})
    return (
        {"command": ["SET", f"shop:product:{g}", value, "EX", "60"]},
        {"reply": {"simple": "OK"}},
        False,
    )


def synthetic(i: int) -> dict[str, Any]:
    """Mock ``i`` (from 1) of a synthetic set: group ``(i - 1) // 10`` is one request's
    calls, as the shop makes them, its values (ids, keys, URLs) its own."""
    g, slot = divmod(i - 1, SLOTS)
    reusable = False
    if slot in (0, 1, 4, 5, 6, 7):
        protocol, destination, connection = "postgres", PG, 4 * g + 1
        order = (0, 1, 4, 5, 6, 7).index(slot) + 1
        if slot == 0:
            (request, response), reusable = _startup(), True
        elif slot == 1:
            request = _extended(SELECT_PRODUCT, [_int4(g + 1)], [23], [1])
            row = [str(g + 1), f"SKU-{g}", "Coffee mug", "12.50", str(g % 50)]
            response = _rows(PRODUCT_FIELDS, [row], "SELECT 1")
        elif slot == 4:
            request, response = _simple("BEGIN", "BEGIN", "T")
        elif slot == 7:
            request, response = _simple("COMMIT", "COMMIT", "I")
        elif slot == 5:
            quantity = g % 5 + 1
            params = [str(g % 3 + 1), str(quantity), f"{12.5 * quantity:.2f}", "EUR", f"{g}.00"]
            request = _extended(INSERT_ORDER, params, [0, 0, 0, 0, 0], [0, 0, 0, 0, 0])
            response = _rows([("id", 23, 4)], [[str(g + 1)]], "INSERT 0 1")
        else:
            params = [str(g % 5 + 1), str(g % 3 + 1)]  # few values: keys repeat across groups
            request = _extended(UPDATE_STOCK, params, [0, 0], [0, 0])
            response = _rows([], [], "UPDATE 1")
            response["messages"][2:3] = [{"type": "NoData"}]
    elif slot in (2, 3, 9):
        protocol, destination, connection = "redis", REDIS, 4 * (g // 10) + 3
        order = (g % 10) * 3 + (2, 3, 9).index(slot) + 1
        request, response, reusable = _redis(g, slot)
    else:
        protocol, destination, connection, order = "http", WEB, 4 * g + 2, 1
        request, response = _rates(g)
    return document("Mock", {
        "name": f"mock-{i}", "protocol": protocol, "destination": destination,
        "connection": connection, "order": order, "reusable": reusable,
        "started": round(i * 0.001, 6), "ended": round(i * 0.001 + 0.0004, 6),
        "request": request, "response": response,
    })  # fmt: skip


def _dump_range(span: tuple[int, int]) -> str:
    return dump_all(synthetic(i) for i in range(*span))


def write_sets(sizes: Sequence[int], tmp: Path) -> dict[int, Path]:
    """One mocks.yaml per size, each a prefix of the next, dumped on every CPU."""
    paths = {n: tmp / f"mocks-{n}.yaml" for n in sizes}
    bounds = sorted({1, *(n + 1 for n in sizes)})
    spans = [
        (s, min(s + CHUNK, end))
        for start, end in itertools.pairwise(bounds)
        for s in range(start, end, CHUNK)
    ]
    with contextlib.ExitStack() as stack:
        files = {n: stack.enter_context(paths[n].open("w")) for n in sizes}
        workers = len(os.sched_getaffinity(0))
        with ProcessPoolExecutor(workers) as pool:
            for (_, end), text in zip(
                spans, pool.map(_dump_range, spans, chunksize=4), strict=True
            ):
                for n, f in files.items():
                    if end - 1 <= n:
                        f.write(text)
    return paths


class Spent:
    """Nanoseconds this process has spent in ``MocksFile.read`` (a document read back), in
    ``MocksFile._parse`` (YAML and the JSON Schema check, at build and at read) and in
    ``yaml.load`` alone: those three patched in place, in an index child only."""

    def __init__(self) -> None:
        self.ns = {"read": 0, "parse": 0, "yaml": 0}
        for name, owner, attr in (
            ("read", MocksFile, "read"),
            ("parse", MocksFile, "_parse"),
            ("yaml", reader.yaml, "load"),
        ):
            mock.patch.object(owner, attr, self._timed(name, getattr(owner, attr))).start()

    def _timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter_ns()
            try:
                return fn(*args, **kwargs)
            finally:
                self.ns[name] += time.perf_counter_ns() - t0

        return timed


Call = tuple[str, str, int, dict[str, Any]]


def call_of(doc: dict[str, Any]) -> Call:
    return doc["protocol"], doc["destination"], doc["connection"], doc["request"]


def timed_serves(store: MockStore, spent: Spent, calls: Sequence[Call]) -> list[list[float]]:
    """``[serve, of which reading back, of which YAML, of which parsing]`` µs per call;
    every call must be a hit."""
    out = []
    for protocol, destination, connection, request in calls:
        before = dict(spent.ns)
        t0 = time.perf_counter_ns()
        found = store.serve(protocol, destination, connection, request, optional=False)
        took = time.perf_counter_ns() - t0
        if found is None:
            raise RuntimeError(f"a recorded call missed: {protocol} {request}")
        parts = [(spent.ns[k] - before[k]) / 1e3 for k in ("read", "yaml", "parse")]
        out.append([took / 1e3, *parts])
    return out


def summary(samples: list[list[float]]) -> dict[str, float]:
    serve = [s[0] for s in samples]
    return {
        "n": len(samples),
        "serve_us": median(serve),
        "serve_mean_us": statistics.fmean(serve),
        "read_us": median([s[1] for s in samples]),
        "yaml_us": median([s[2] for s in samples]),
        "index_us": median([s[0] - s[1] for s in samples]),
    }


def hits(store: MockStore, spent: Spent, size: int, lookups: int, seed: int) -> dict[str, Any]:
    """Tier 1 (a test's own mocks, in a test) and tier 2 (any unused mock, in no test), on
    disjoint halves of the groups; every mock used is made unused again after a pass, so a
    small set is walked as often as needed."""
    rng = random.Random(seed)
    groups = [list(range(10 * g + 1, min(10 * g + 10, size) + 1)) for g in range(-(-size // 10))]
    docs = {}
    tier1: list[list[float]] = []
    tier2: list[list[float]] = []
    begin: list[float] = []
    half = max(1, min(len(groups) // 2, -(-lookups // SLOTS)))
    while len(tier1) < lookups or len(tier2) < lookups:
        chosen = rng.sample(groups, min(len(groups), 2 * half))
        for members in chosen:
            for i in members:
                if i not in docs:
                    docs[i] = synthetic(i)
        for members in chosen[:half]:  # tier 1: in a test listing them
            t0 = time.perf_counter_ns()
            store.begin_test(f"mock-{i}" for i in members)
            begin.append((time.perf_counter_ns() - t0) / 1e3)
            tier1 += timed_serves(store, spent, [call_of(docs[i]) for i in members])
            store.forget(store.end_test()[1])
        loose = [i for members in chosen[half:] for i in members if not docs[i]["reusable"]]
        rng.shuffle(loose)
        tier2 += timed_serves(store, spent, [call_of(docs[i]) for i in loose])
        store.forget(store.end_test()[1])
    return {"tier1": summary(tier1), "tier2": summary(tier2), "begin_test_us": median(begin)}


def reusable(store: MockStore, spent: Spent, size: int, lookups: int) -> dict[str, Any]:
    """Start-ups and HELLOs: first until every recorded copy is used (they are served
    unused first), then ``lookups`` more, which only tier 3 answers."""
    copies = list(range(1, size + 1, SLOTS))  # PostgreSQL start-ups: slot 0 of every group
    copies += list(range(SLOTS, size + 1, 10 * SLOTS))  # HELLO: slot 9 of every tenth group
    first = [call_of(synthetic(i)) for i in copies]
    samples = [first[0], first[-1]]  # a start-up and a HELLO (or two start-ups)
    used_up = timed_serves(store, spent, first)
    tier3 = timed_serves(store, spent, [samples[k % 2] for k in range(lookups)])
    return {"copies": len(copies), "unused": summary(used_up), "tier3": summary(tier3)}


def miss_calls() -> dict[str, Call]:
    """A call per protocol that no synthetic mock matches: an id, a key, a URL never seen."""
    pg = _extended(SELECT_PRODUCT, [_int4(-1)], [23], [1])
    web, _ = _rates(-1)
    return {
        "postgres": ("postgres", PG, 1, pg),
        "redis": ("redis", REDIS, 3, {"command": ["GET", "shop:product:none"]}),
        "http": ("http", WEB, 2, web),
    }


def misses(store: MockStore, count: int) -> dict[str, list[float]]:
    """ms per miss, ``count`` per protocol (each ranks that protocol's mocks as candidates)."""
    out: dict[str, list[float]] = {}
    for protocol, (p, destination, connection, request) in miss_calls().items():
        out[protocol] = []
        for _ in range(count):
            t0 = now()
            found = store.serve(p, destination, connection, request, optional=False)
            out[protocol].append(1e3 * (now() - t0))
            assert found is None
            store.end_test()
    return out


def hit_during_miss(store: MockStore) -> dict[str, float]:
    """A PostgreSQL miss in one thread (as on the proxy's loop) and, 5 ms into it, a hit
    (a reusable start-up) in another: how long the hit waited (ms)."""
    miss = miss_calls()["postgres"]
    hit = call_of(synthetic(1))
    started = threading.Event()
    took: dict[str, float] = {}

    def missing() -> None:
        started.set()
        t0 = now()
        store.serve(*miss, optional=False)
        took["miss_ms"] = 1e3 * (now() - t0)

    thread = threading.Thread(target=missing)
    thread.start()
    started.wait()
    time.sleep(0.005)
    t0 = now()
    store.serve(*hit, optional=False)
    took["hit_ms"] = 1e3 * (now() - t0)
    thread.join()
    store.end_test()
    return took


def index_child(size: int, path: Path, lookups: int, miss_count: int) -> dict[str, Any]:
    """Run in a fresh child per size: memory and build time of the index, then lookups."""
    spent = Spent()
    gc.collect()
    res: dict[str, Any] = {"size": size, "file_bytes": path.stat().st_size}
    res["rss_before_kib"] = proc_status_kib()
    t0 = now()
    store = MockStore(path)
    res["build_s"] = now() - t0
    res["build_yaml_s"] = spent.ns["yaml"] / 1e9
    res["build_schema_s"] = (spent.ns["parse"] - spent.ns["yaml"]) / 1e9
    gc.collect()
    res["rss_after_kib"] = proc_status_kib()
    res["hwm_kib"] = proc_status_kib("VmHWM")
    assert len(store.entries) == size, (len(store.entries), size)
    try:
        res |= hits(store, spent, size, lookups, seed=size)
        res["reusable"] = reusable(store, spent, size, lookups)
        res["misses_ms"] = misses(store, miss_count)
        res["blocked"] = hit_during_miss(store)
    finally:
        store.close()
    return res


def part_index(
    sizes: Sequence[int], lookups: int, miss_count: int, tmp: Path
) -> list[dict[str, Any]]:
    t0 = now()
    paths = write_sets(sizes, tmp)
    progress(f"wrote {len(sizes)} mocks.yaml files in {now() - t0:.1f} s")
    out = []
    for size in sizes:
        argv = [sys.executable, str(Path(__file__).resolve()), "_index", str(size),
                str(paths[size]), str(lookups), str(miss_count)]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
        if done.returncode != 0:
            raise RuntimeError(f"index child for {size} mocks failed:\n{done.stderr[-3000:]}")
        out.append(json.loads(done.stdout.splitlines()[-1]))
        r = out[-1]
        progress(
            f"{size:,} mocks: build {r['build_s']:.2f} s, tier 2 hit {r['tier2']['serve_us']:.0f}"
            f" µs, postgres miss {median(r['misses_ms']['postgres']):.1f} ms"
        )
    return out


# --- the report --------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{1e3 * seconds:,.1f} ms" if seconds < 10 else f"{seconds:,.2f} s"


def shop_table(res: dict[str, Any]) -> str:
    rounds = res["rounds"]
    kpy, inproc, real = (rounds[v] for v in VARIANTS)

    def med(runs: list[dict[str, Any]], key: str) -> float:
        return median([r[key] for r in runs])

    ratios = [k["per_request_s"] / r["per_request_s"] for k, r in zip(kpy, real, strict=True)]
    lines = [
        f"| The shop, {TRAFFIC_LINES} requests, median of {len(kpy)} rounds "
        "| kpy test (replay) | real PostgreSQL, Redis, rates | kpy / real |",
        "|---|---|---|---|",
        f"| per request (JUnit times, summed / {TRAFFIC_LINES}; real: each httpx round trip) "
        f"| {ms(med(kpy, 'per_request_s'))} | {ms(med(real, 'per_request_s'))} "
        f"| **{median(ratios):.1f}x** ({min(ratios):.1f}-{max(ratios):.1f}) |",
        f"| the {TRAFFIC_LINES} requests | {ms(med(kpy, 'tests_s'))} | {ms(med(real, 'tests_s'))} "
        f"| {med(kpy, 'tests_s') / med(real, 'tests_s'):.1f}x |",
        f"| start-up: kpy, set, session, service ready / rates, app, GET /health "
        f"| {ms(med(kpy, 'start_s'))} | {ms(med(real, 'start_s'))} | |",
        f"| stop after the last request | {ms(med(kpy, 'stop_s'))} | {ms(med(real, 'stop_s'))} | |",
        f"| end to end (real: without the reset) | {ms(med(kpy, 'wall_s'))} "
        f"| {ms(med(real, 'wall_s'))} | {med(kpy, 'wall_s') / med(real, 'wall_s'):.1f}x |",
        "",
        "| A replayed test, in process (`kpy_ci.replay.replay`), per request | median |",
        "|---|---|",
        f"| whole test | {ms(med(inproc, 'per_request_s'))} |",
        f"| the request (`_send`: HTTP round trip through the service) "
        f"| {ms(med(inproc, 'send_s'))} ({med(inproc, 'send_s') / med(real, 'per_request_s'):.2f}x"
        " the real one) |",
        f"| quiet wait after it (`_settle`, {replay_mod.QUIET_SECONDS * 1e3:.0f} ms without calls) "
        f"| {ms(med(inproc, 'settle_s'))} |",
        f"| the rest (begin_test, compare, report) | {ms(med(inproc, 'other_s'))} |",
        f"| mock lookups inside (`MockStore.serve`: {med(inproc, 'serves'):.0f} calls, "
        f"{med(inproc, 'serve_us'):.0f} µs each) | {ms(med(inproc, 'serve_per_request_s'))} |",
    ]
    return "\n".join(lines)


def per_test_table(res: dict[str, Any]) -> str:
    kpy, inproc, real = (res["rounds"][v] for v in VARIANTS)

    def each(runs: list[dict[str, Any]], key: str, k: int) -> str:
        return f"{1e3 * median([r[key][k] for r in runs]):.1f}"

    lines = [
        "| test | request | real, ms | replay: the request, ms | replay: the test (JUnit), ms |",
        "|---|---|---|---|---|",
    ]
    for k, request in enumerate(real[0]["requests"]):
        lines.append(
            f"| test-{k + 1} | {request} | {each(real, 'each_s', k)} "
            f"| {each(inproc, 'each_send_s', k)} | {each(kpy, 'each_s', k)} |"
        )
    return "\n".join(lines)


def index_tables(res: list[dict[str, Any]]) -> str:
    def us(s: dict[str, float]) -> str:
        return f"{s['serve_us']:.0f} ({s['index_us']:.0f})"

    lines = [
        "| mocks | hit, test's own (tier 1) | hit, any unused (tier 2) "
        "| reusable, copies unused | reusable, every copy used (tier 3) "
        "| reading the document back (of it, YAML) | miss: postgres / redis / http "
        "| a hit during a miss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res:
        m, t2 = r["misses_ms"], r["tier2"]
        lines.append(
            f"| {r['size']:,} | {us(r['tier1'])} | {us(t2)} | {us(r['reusable']['unused'])} "
            f"| {us(r['reusable']['tier3'])} | {t2['read_us']:.0f} ({t2['yaml_us']:.0f}) "
            f"| {median(m['postgres']):,.1f} / {median(m['redis']):,.1f} / "
            f"{median(m['http']):,.1f} ms | waited {r['blocked']['hit_ms']:,.1f} of "
            f"{r['blocked']['miss_ms']:,.1f} ms |"
        )
    lines += [
        "",
        "| mocks | mocks.yaml | per mock | build | per mock: YAML / schema / rest "
        "| RSS before → after build | added | per mock | peak (VmHWM) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res:
        n, added = r["size"], r["rss_after_kib"] - r["rss_before_kib"]
        rest = r["build_s"] - r["build_yaml_s"] - r["build_schema_s"]
        lines.append(
            f"| {n:,} | {r['file_bytes'] / 2**20:,.1f} MiB | {r['file_bytes'] / n:,.0f} B "
            f"| {ms(r['build_s'])} | {1e6 * r['build_s'] / n:.0f} µs: "
            f"{1e6 * r['build_yaml_s'] / n:.0f} / {1e6 * r['build_schema_s'] / n:.0f} / "
            f"{1e6 * rest / n:.0f} | {r['rss_before_kib'] / 1024:.1f} → "
            f"{r['rss_after_kib'] / 1024:.1f} MiB | {added / 1024:.1f} MiB "
            f"| {1024 * added / n:,.0f} B | {r['hwm_kib'] / 1024:.1f} MiB |"
        )
    return "\n".join(lines)


def report(res: dict[str, Any]) -> str:
    m = res["machine"]
    out = [
        f"{m['cpus']} CPUs ({m['cpu_model']}), kernel {m['kernel']}, Python {m['python']}, "
        f"{m['postgres']}, {m['redis']}; commit {m['commit']}; {res['seconds']:.0f} s",
    ]
    if "shop" in res:
        out += ["", f"Recording the shop: {res['shop']['record_s']:.1f} s, "
                f"{res['shop']['mocks']} mocks.", "", shop_table(res["shop"]), "",
                per_test_table(res["shop"])]  # fmt: skip
    if "index" in res:
        out += ["", "Lookups: µs per `serve()` call, median (in brackets: without reading the "
                "document back, i.e. key, digest and index); misses: ms per call.", "",
                index_tables(res["index"])]  # fmt: skip
    return "\n".join(out)


# --- the run -----------------------------------------------------------------------------


def progress(message: str) -> None:
    print(f"replay_bench: {message}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )

    def version(argv: list[str]) -> str:
        return subprocess.run(argv, capture_output=True, text=True).stdout.strip()

    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgres": "PostgreSQL " + version([pg_bin("postgres"), "--version"]).split()[2],
        "redis": "Redis " + version(["redis-server", "--version"]).split()[2].split("=")[1],
        "commit": commit(ROOT),
    }


class Neighbours:
    """Samples, every second, the kpy sessions of other processes (another kpy test run,
    say): a benchmark shares the machine with them, and its figures are suspect."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        root = cgroup.parent_dir(cgroup.hierarchy())
        while not self._stop.wait(1.0):
            self.samples += 1
            for group in root.glob(cgroup.PREFIX + "*"):
                owner = cgroup.owner(group) or 0
                if cgroup.alive(owner) and owner != os.getpid() and _parent(owner) != os.getpid():
                    self.seen.add(f"{group.name} ({_command(owner)})")

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join()
        return sorted(self.seen)


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:80]
    except OSError:
        return "?"


def leftover_cgroups() -> list[str]:
    """kpy cgroups this process, or a kpy that died, left behind."""
    root = cgroup.parent_dir(cgroup.hierarchy())
    return [
        p.name
        for p in root.glob(cgroup.PREFIX + "*")
        if cgroup.owner(p) == os.getpid() or not cgroup.alive(cgroup.owner(p) or 0)
    ]


def busy(seconds: float = 1.0) -> float:
    """How busy the machine's CPUs were over the next ``seconds`` (/proc/stat)."""

    def ticks() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields[:8]) - fields[3] - fields[4], sum(fields[:8])

    (busy0, total0), _ = ticks(), time.sleep(seconds)
    busy1, total1 = ticks()
    return (busy1 - busy0) / max(1, total1 - total0)


def run(args: argparse.Namespace) -> dict[str, Any]:
    res: dict[str, Any] = {"machine": machine(), "busy_before": busy()}
    if res["busy_before"] > 0.1:
        progress(f"WARNING: the CPUs were {res['busy_before']:.0%} busy before the run")
    t0 = now()
    neighbours = Neighbours()
    tmp = Path(tempfile.mkdtemp(prefix="kpy-replay-bench-"))
    tmp.chmod(0o755)
    try:
        if "shop" in args.only:
            res["shop"] = part_shop(args.rounds, tmp)
        if "index" in args.only:
            res["index"] = part_index(sorted(args.sizes), args.lookups, args.misses, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["seconds"] = now() - t0
    res["neighbours"] = neighbours.stop()
    if (end := commit(ROOT)) != res["machine"]["commit"]:
        progress(f"WARNING: kpy_ci changed during the run: {res['machine']['commit']} -> {end}")
        res["machine"]["commit"] += f" (then {end})"
    res["leftovers"] = leftover_cgroups()
    return res


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_index"]:  # a child of part_index
        size, path, lookups, miss_count = int(argv[1]), Path(argv[2]), int(argv[3]), int(argv[4])
        print(json.dumps(index_child(size, path, lookups, miss_count)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="of each shop variant")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000, 100000])
    parser.add_argument("--lookups", type=int, default=2000, help="timed calls of each kind")
    parser.add_argument("--misses", type=int, default=3, help="timed misses per protocol")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--report", type=Path, help="print the tables of an earlier --json")
    args = parser.parse_args(argv)
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return 0
    if min(args.rounds, args.lookups, args.misses) < 1 or min(args.sizes) < 2 * SLOTS:
        parser.error(f"counts must be at least 1, sizes at least {2 * SLOTS}")
    try:
        if "shop" in args.only:
            check_privileges()
        res = run(args)
    except EnvironmentProblem as e:
        print(f"replay_bench: {e}", file=sys.stderr)
        return 4
    print(report(res))
    if res["leftovers"]:
        print(f"\nLEFT BEHIND: {res['leftovers']}")
    if res["neighbours"] or res["busy_before"] > 0.1:
        print(f"\nNOT QUIET: {res['neighbours']}, {res['busy_before']:.0%} busy before")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 1 if res["leftovers"] else 0


if __name__ == "__main__":
    sys.exit(main())
