"""Benchmark of the replay clock in ``kpy test``: what ``--clock recorded`` (libfaketime
preloaded into the service, kpy_ci/clock.py) costs per request against ``--clock real``,
why kpy turns libfaketime's monotonic fix off, and whether learning made-up values sends a
test more than once, side by side in one run.

Run as root from the project root, after scripts/install.sh (docs/BENCHMARKS.md, "The
replay clock", has the figures; the defaults take about 3 minutes, ``--smoke`` 20 s):

    .venv/bin/python bench/clock_bench.py [--rounds 5] [--tests 200] [--calls 100000]
                                          [--only calls service replay login] [--smoke]
                                          [--json F]   # --report F reprints the tables

The services are tests/clock_services/tokens.py and tokens.js, run as they are behind a
``runpy`` / ``node --require`` prelude that prints one line per answer: the requests the
service answered, counted from kpy's ``service |`` lines, are the sendings of tests.

- **calls**: ``--calls`` clock reads in a loop, in a Python and a Node.js child, with the
  environment ``clock.ReplayClock().env()`` gives (the clock a day back) and without; and
  ``clock.ReplayClock()`` itself (it builds kpy's sleep fix with cc, once per set).
- **service**: each service alone, no kpy, ``--tests`` ``GET /check`` one after another
  (a new connection each): without libfaketime, with kpy's preload (its monotonic fix off,
  kpy's default), and with ``FAKETIME_FORCE_MONOTONIC_FIX=1`` put back.
- **replay**: per service, a set of ``--tests`` ``GET /check`` with tokens valid for a day,
  recorded once; it passes on both clocks. ``--rounds`` times, the order rotating: ``kpy
  test --junit`` with ``--clock recorded``, ``--clock real``, and ``--clock recorded`` with
  the service's command prefixed by ``FAKETIME_FORCE_MONOTONIC_FIX=1`` (kpy's environment
  would not do: ``ReplayClock.env`` sets the variable). Every run must answer as many
  requests as there are tests and print no "made-up values learned" and no "passed when
  sent again": learning then sent nothing more.
- **login**: per service, ``--tests / 2`` login-and-check pairs (tokens live 3 s; the
  ``issued`` times are generated values), ``kpy test`` ``--rounds`` times: the tests sent
  more than once (named in a FAIL, "passed when sent again" or "made-up values learned"
  line) and the requests answered beyond one a test. Last, once, a control: the Python
  login set with ``--clock real``, its tokens expired, where tests must be sent again.

Traffic goes to 127.0.0.1 only; every child has a timeout. kpy's private functions are not
patched. At the end the run reads ``bpftool cgroup tree`` and ``bpftool prog`` for kpy.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import hmac
import http.client
import json
import os
import platform
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.clock_services, when run as bench/clock_bench.py

from children import commit, measured  # noqa: E402  (bench/, the script's own folder)
from record_bench import leftovers, others_running  # noqa: E402

from kpy_ci import clock  # noqa: E402
from kpy_ci.ebpf import cgroup  # noqa: E402
from kpy_ci.errors import EnvironmentProblem  # noqa: E402
from tests.clock_services import HERE as SERVICES_DIR  # noqa: E402
from tests.clock_services import SERVICES as SERVICE_ARGV  # noqa: E402

_kpy_script = Path(sys.executable).with_name("kpy")
KPY = [str(_kpy_script)] if _kpy_script.exists() else [sys.executable, "-m", "kpy_ci"]
PARTS = ("calls", "service", "replay", "login")
SERVICES = ("python", "node")
FIX_ON = {"FAKETIME_FORCE_MONOTONIC_FIX": "1"}
CLOCKS = ("recorded", "real", "recorded, fix on")
CHILD_TIMEOUT = 180.0  # seconds for one kpy run, one recording or one timing child
SECRET = b"clock-test-secret"  # tokens.py's and tokens.js's, to mint tokens for /check
LIFETIME = 3  # the services' default: a login's token expires 3 s later
OFFSET = -86_400.0  # the replay clock a day back for the timing children
ANSWERED = "clock-bench: answered"
T = TypeVar("T")
VERDICT = re.compile(r"(PASS|FAIL) \S+/(test-\d+) \S+ \S+ \d+\.\d{3}s")
AGAIN = re.compile(r"kpy: (test-\d+): passed when sent again[^;]*; the first sending: (.*)")
LEARNED = re.compile(r"kpy: (test-\d+): made-up values learned: (.*)")

# the preludes that count the service's answers, one line each, without touching it
PY_PRELUDE = f"""\
import runpy, sys
from http.server import BaseHTTPRequestHandler

_send = BaseHTTPRequestHandler.send_response


def send_response(self, code, message=None):
    print(f"{ANSWERED} {{self.command}} {{self.path}} {{code}}", flush=True)
    _send(self, code, message)


BaseHTTPRequestHandler.send_response = send_response
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
NODE_PRELUDE = f"""\
const http = require("http");
const writeHead = http.ServerResponse.prototype.writeHead;
http.ServerResponse.prototype.writeHead = function (status, ...rest) {{
  process.stdout.write(`{ANSWERED} ${{this.req.method}} ${{this.req.url}} ${{status}}\\n`);
  return writeHead.call(this, status, ...rest);
}};
"""
PY_CALLS = """\
import datetime, json, sys, time
n = int(sys.argv[1])
utc = datetime.timezone.utc
def per_call(f):
    t = time.perf_counter_ns()
    for _ in range(n):
        f()
    return (time.perf_counter_ns() - t) / n
print(json.dumps({
    "python time.time()": per_call(time.time),
    "python time.monotonic()": per_call(time.monotonic),
    "python datetime.now(utc)": per_call(lambda: datetime.datetime.now(utc)),
    "wall": time.time(),
}))
"""
NODE_CALLS = """\
const n = Number(process.argv[1]);
function perCall(f) {
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f();
  return Number(process.hrtime.bigint() - t) / n;
}
console.log(JSON.stringify({
  "node Date.now()": perCall(() => Date.now()),
  "node new Date().toISOString()": perCall(() => new Date().toISOString()),
  "node performance.now()": perCall(() => performance.now()),
  "wall": Date.now() / 1000,
}));
"""


def now() -> float:
    return time.perf_counter()


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def progress(message: str) -> None:
    print(f"clock_bench: {message}", file=sys.stderr, flush=True)


def rotated(items: Sequence[T], r: int) -> list[T]:
    k = r % len(items)
    return [*items[k:], *items[:k]]


def sign(exp: int) -> str:
    return hmac.new(SECRET, str(exp).encode(), hashlib.sha256).hexdigest()[:16]


def traffic(kind: str, count: int) -> None:
    """kpy record's traffic. ``check``: ``count`` GET /check, each with a token valid for
    a day; ``login``: ``count`` pairs of POST /login and GET /check of its token."""
    base = os.environ["BASE_URL"]
    for i in range(count):
        if kind == "check":
            exp = int(time.time()) + 86_400 + i
            token = f"{exp}.{sign(exp)}"
        else:
            login = urllib.request.Request(f"{base}/login", b"{}", method="POST")
            with urllib.request.urlopen(login, timeout=30) as r:
                token = json.load(r)["token"]
        check = urllib.request.Request(f"{base}/check", headers={"X-Token": token})
        with urllib.request.urlopen(check, timeout=30) as r:
            assert json.load(r) == {"ok": True}


def clean_env() -> dict[str, str]:
    drop = (*clock.FAKETIME_VARIABLES, "LD_PRELOAD")
    return {k: v for k, v in os.environ.items() if k not in drop}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- calls: a clock read under libfaketime -----------------------------------------------


def part_calls(rounds: int, calls: int) -> dict[str, Any]:
    per: dict[str, dict[str, list[float]]] = {"without": {}, "with": {}}
    with clock.ReplayClock() as replay_clock:
        replay_clock.set_offset(OFFSET)
        envs = {"without": clean_env(), "with": replay_clock.env(clean_env())}
        for r in range(rounds):
            for variant in rotated(list(envs), r):
                for argv in (
                    [sys.executable, "-c", PY_CALLS, str(calls)],
                    ["node", "-e", NODE_CALLS, str(calls)],
                ):
                    started = time.time()
                    done = subprocess.run(
                        argv, env=envs[variant], capture_output=True, text=True,
                        timeout=CHILD_TIMEOUT, check=True,
                    )  # fmt: skip
                    found = json.loads(done.stdout.splitlines()[-1])
                    moved = found.pop("wall") - started
                    if abs(moved - (OFFSET if variant == "with" else 0)) > 60:
                        raise RuntimeError(f"{argv[0]} {variant}: the clock moved by {moved:.0f} s")
                    for key, ns in found.items():
                        per[variant].setdefault(key, []).append(ns)
            progress(f"calls round {r + 1}/{rounds}")
    built = []
    for _ in range(rounds):
        t0 = now()
        with clock.ReplayClock():
            built.append(1e3 * (now() - t0))
    return {"calls": calls, "per_round": per, "replay_clock_ms": built}


# --- service: alone, without kpy ---------------------------------------------------------


def service_latencies(argv: list[str], env: dict[str, str], count: int) -> list[float]:
    """Seconds of each of ``count`` GET /check sent one after another, a connection each."""
    port = free_port()
    proc = subprocess.Popen(
        argv, env=env | {"PORT": str(port), "LIFETIME": str(LIFETIME)}, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{argv}: not ready (exit {proc.poll()})") from None
                time.sleep(0.02)
        exp = int(time.time()) + 86_400
        headers = {"X-Token": f"{exp}.{sign(exp)}"}
        took = []
        for _ in range(count):
            t0 = now()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                connection.request("GET", "/check", headers=headers)
                response = connection.getresponse()
                body = response.read()
            finally:
                connection.close()
            took.append(now() - t0)
            if response.status != 200 or json.loads(body) != {"ok": True}:
                raise RuntimeError(f"{argv}: {response.status} {body!r}")
        return took
    finally:
        proc.kill()
        proc.wait()


SERVICE_VARIANTS = ("without", "with", "with, fix on")


def part_service(rounds: int, count: int) -> dict[str, Any]:
    runs: dict[str, list[list[float]]] = {
        f"{s} {v}": [] for s in SERVICES for v in SERVICE_VARIANTS
    }
    with clock.ReplayClock() as replay_clock:
        replay_clock.set_offset(OFFSET)
        with_clock = replay_clock.env(clean_env())
        envs = {"without": clean_env(), "with": with_clock, "with, fix on": with_clock | FIX_ON}
        variants = [(s, v) for s in SERVICES for v in SERVICE_VARIANTS]
        for r in range(rounds):
            for service, variant in rotated(variants, r):
                took = service_latencies(SERVICE_ARGV[service], envs[variant], count)
                runs[f"{service} {variant}"].append(took)
            means = " / ".join(f"{1e3 * statistics.mean(v[-1]):.2f}" for v in runs.values())
            progress(f"service round {r + 1}/{rounds}: mean ms {means}")
    return {"requests": count, "runs": runs}


# --- recording, and kpy test in a child --------------------------------------------------


class Services:
    """The two services' shell commands, each behind its counting prelude."""

    def __init__(self, tmp: Path) -> None:
        self.preludes = {"python": tmp / "count_answers.py", "node": tmp / "count_answers.js"}
        self.preludes["python"].write_text(PY_PRELUDE)
        self.preludes["node"].write_text(NODE_PRELUDE)

    def command(self, service: str, fix_on: bool = False) -> str:
        prelude = str(self.preludes[service])
        if service == "python":
            argv = [sys.executable, prelude, str(SERVICES_DIR / "tokens.py")]
        else:
            argv = ["node", "--require", prelude, str(SERVICES_DIR / "tokens.js")]
        prefix = "".join(f"{k}={v} " for k, v in FIX_ON.items()) if fix_on else ""
        return prefix + shlex.join(argv)


def record(services: Services, service: str, kind: str, count: int, tmp: Path) -> dict[str, Any]:
    """``kpy record`` of the service while this script's traffic runs."""
    port, name = free_port(), f"{service}-{kind}"
    env = {"PORT": str(port), "LIFETIME": str(LIFETIME)}
    traffic_cmd = shlex.join(
        [sys.executable, str(Path(__file__).resolve()), "_traffic", kind, str(count)]
    )
    argv = [
        *KPY, "record", "-c", services.command(service), "--port", str(port),
        "--path", str(tmp / "kpy"), "--set", name, "--traffic", traffic_cmd,
    ]  # fmt: skip
    t0 = now()
    done = subprocess.run(
        argv, env=os.environ | env, capture_output=True, text=True, timeout=CHILD_TIMEOUT
    )
    tests = count if kind == "check" else 2 * count
    if done.returncode != 0 or f"{tests} tests" not in done.stderr:
        raise RuntimeError(f"kpy record failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {
        "set": str(tmp / "kpy" / name), "tests": tests, "env": env,
        "record_s": now() - t0, "recorded_at": time.time(),
    }  # fmt: skip


def run_kpy_test(
    services: Services, service: str, recorded: dict[str, Any], variant: str, tmp: Path
) -> dict[str, Any]:
    """``kpy test --clock C --junit`` of one set in a child, its stderr read as it comes."""
    test_set, report = Path(recorded["set"]), tmp / "junit.xml"
    report.unlink(missing_ok=True)
    argv = [
        *KPY, "test", "-c", services.command(service, fix_on=variant.endswith("fix on")),
        "--path", str(test_set.parent), "--set", test_set.name,
        "--clock", variant.split(",")[0], "--junit", str(report),
        "--resolv-conf", str(tmp / "resolv.conf"),
    ]  # fmt: skip
    t0 = now()
    proc = subprocess.Popen(
        argv,
        env=os.environ | recorded["env"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(CHILD_TIMEOUT, proc.kill)
    watchdog.start()
    ready = last = None
    verdicts: dict[str, str] = {}
    again: dict[str, str] = {}
    learned: dict[str, str] = {}
    answered = 0
    tail: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # the service's lines and kpy's: sometimes on one line
            tail = [*tail[-40:], line]
            if ready is None and "kpy: replaying" in line:
                ready = now()
            for status, name in VERDICT.findall(line):
                last, verdicts[name] = now(), status
            answered += line.count(ANSWERED)
            again.update(AGAIN.findall(line))
            learned.update(LEARNED.findall(line))
        proc.wait()
    finally:
        watchdog.cancel()
    end = now()
    tests = recorded["tests"]
    if ready is None or last is None or len(verdicts) != tests:
        raise RuntimeError(
            f"kpy test: exit {proc.returncode}, {len(verdicts)} verdicts:\n{''.join(tail)}"
        )
    cases = list(ET.parse(report).getroot().iter("testcase"))
    each = [float(c.get("time", "0")) for c in cases]
    failed = sorted(n for n, v in verdicts.items() if v == "FAIL")
    return {
        "exit": proc.returncode,
        "tests": tests,
        "passed": tests - len(failed),
        "answered": answered,
        "failed": failed,
        "again": again,
        "learned": learned,
        "again_junit": sum(
            "passed when sent again" in (c.findtext("system-out") or "") for c in cases
        ),
        "sent_more": sorted({*failed, *again, *learned}),
        "start_s": ready - t0,
        "wall_s": end - t0,
        "phase_per_test_s": (last - ready) / tests,
        "junit_per_test_s": sum(each) / len(each),
        "each_s": each,
    }


def outcome(run: dict[str, Any]) -> str:
    """passed / requests answered / tests sent more than once / 'passed when sent again'
    lines (console, JUnit) / 'made-up values learned' lines."""
    return (
        f"{run['passed']}/{run['answered']}/{len(run['sent_more'])}/"
        f"{len(run['again'])},{run['again_junit']}/{len(run['learned'])}"
    )


def part_replay(services: Services, sets: dict[str, Any], rounds: int, tmp: Path) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {f"{s} {c}": [] for s in SERVICES for c in CLOCKS}
    variants = [(s, c) for s in SERVICES for c in CLOCKS]
    for r in range(rounds):
        for service, variant in rotated(variants, r):
            run = run_kpy_test(services, service, sets[f"{service}-check"], variant, tmp)
            tests = run["tests"]
            if run["exit"] != 0 or outcome(run) != f"{tests}/{tests}/0/0,0/0":
                progress(f"NOTE: {service} {variant}: {outcome(run)}, failed: {run['failed']}")
            runs[f"{service} {variant}"].append(run)
        means = " / ".join(f"{1e3 * v[-1]['junit_per_test_s']:.2f}" for v in runs.values())
        progress(f"replay round {r + 1}/{rounds}: per test, ms {means}")
    return {"runs": runs}


def part_login(services: Services, sets: dict[str, Any], rounds: int, tmp: Path) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in SERVICES}
    for r in range(rounds):
        for service in rotated(SERVICES, r):
            run = run_kpy_test(services, service, sets[f"{service}-login"], "recorded", tmp)
            runs[service].append(run)
        said = ", ".join(f"{s} {outcome(v[-1])}" for s, v in runs.items())
        progress(f"login round {r + 1}/{rounds}: {said}")
    # the control: today's clock, the tokens long expired; what fails is sent again
    recorded = sets["python-login"]
    time.sleep(max(0.0, recorded["recorded_at"] + LIFETIME + 1 - time.time()))
    control = run_kpy_test(services, "python", recorded, "real", tmp)
    progress(f"control (--clock real): {outcome(control)}")
    return {"runs": runs, "control": control}


# --- the report --------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{1e3 * seconds:,.2f} ms"


def ratio_range(ratios: Sequence[float]) -> str:
    return f"{median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


def over(a: Sequence[Any], b: Sequence[Any], key: str | None = None) -> list[float]:
    """Round by round, ``a / b`` (of their ``key``)."""
    return [(x[key] / y[key]) if key else x / y for x, y in zip(a, b, strict=True)]


def spread(values: Sequence[float]) -> str:
    """p50 / p90 / max (nearest rank)."""
    ordered = sorted(values)
    return " / ".join(
        ms(ordered[min(len(ordered) - 1, int(q * len(ordered)))]) for q in (0.5, 0.9, 1.0)
    )


def title(service: str) -> str:
    return "Python (tokens.py)" if service == "python" else "Node.js (tokens.js)"


def calls_table(res: dict[str, Any]) -> str:
    wo_all, w_all = res["per_round"]["without"], res["per_round"]["with"]
    lines = [
        f"| A clock read, {res['calls']:,} in a loop, median of {len(w_all['python time.time()'])} "
        "rounds | without libfaketime | with kpy's preload | added | with / without (rounds) |",
        "|---|---|---|---|---|",
    ]
    for key in w_all:
        wo, w = wo_all[key], w_all[key]
        runtime, call = key.split(" ", 1)
        lines.append(
            f"| `{call}` ({runtime}) | {median(wo):,.0f} ns | {median(w):,.0f} ns "
            f"| {median(w) - median(wo):,.0f} ns | {ratio_range(over(w, wo))} |"
        )
    built = res["replay_clock_ms"]
    lines.append(
        f"| `clock.ReplayClock()` (cc builds clock_sleep.c), once per set | "
        f"| {median(built):.1f} ms | | |"
    )
    return "\n".join(lines)


def service_table(res: dict[str, Any]) -> str:
    runs = res["runs"]
    lines = [
        f"| The service alone, {res['requests']} x GET /check, "
        f"{len(runs['python without'])} rounds "
        "| without libfaketime | kpy's preload (fix off) | FAKETIME_FORCE_MONOTONIC_FIX=1 |",
        "|---|---|---|---|",
    ]
    for service in SERVICES:
        means = {v: [statistics.mean(r) for r in runs[f"{service} {v}"]] for v in SERVICE_VARIANTS}
        cells, spreads = [], []
        for v in SERVICE_VARIANTS:
            ratios = over(means[v], means["without"])
            cells.append(
                ms(median(means[v])) + ("" if v == "without" else f", {ratio_range(ratios)}")
            )
            spreads.append(spread([t for r in runs[f"{service} {v}"] for t in r]))
        lines += [
            f"| **{title(service)}**: a request, mean (x without) | {' | '.join(cells)} |",
            f"| p50 / p90 / max, all rounds | {' | '.join(spreads)} |",
        ]
    return "\n".join(lines)


def replay_table(res: dict[str, Any]) -> str:
    runs = res["runs"]
    lines = [
        f"| kpy test, median of {len(runs['python real'])} rounds | --clock recorded "
        "| --clock real "
        "| recorded / real (rounds) | recorded, fix on | fix on / real (rounds) |",
        "|---|---|---|---|---|---|",
    ]
    rows = (
        ("per test (JUnit times, mean)", "junit_per_test_s"),
        ("per test (the replay phase / tests)", "phase_per_test_s"),
        ("start-up: kpy, set, session, service ready", "start_s"),
        ("end to end", "wall_s"),
    )
    for service in SERVICES:
        rec, real, fix = (runs[f"{service} {c}"] for c in CLOCKS)
        lines.append(f"| **{title(service)}, {rec[0]['tests']} x GET /check** | | | | | |")
        for what, key in rows:
            a, b, c = (median([x[key] for x in v]) for v in (rec, real, fix))
            r1 = ratio_range(over(rec, real, key))
            r2 = ratio_range(over(fix, real, key))
            lines.append(f"| {what} | {ms(a)} | {ms(b)} | {r1} | {ms(c)} | {r2} |")
        p = [spread([t for x in v for t in x["each_s"]]) for v in (rec, real, fix)]
        lines.append(f"| a test (JUnit): p50 / p90 / max | {p[0]} | {p[1]} | | {p[2]} | |")
    every = collections.Counter(outcome(x) for v in runs.values() for x in v)
    lines += ["", f"Every run, {OUTCOME}: {tally(every)}."]
    return "\n".join(lines)


OUTCOME = (
    "passed / requests answered / tests sent more than once / 'passed when sent again' lines "
    "(console, JUnit) / 'made-up values learned' lines (runs)"
)


def tally(counted: collections.Counter[str]) -> str:
    return ", ".join(f"{v} ({n})" for v, n in counted.most_common())


def login_table(res: dict[str, Any], limit: int = 20) -> str:
    runs = res["runs"]
    lines = [
        f"| Login set, kpy test --clock recorded, {len(runs['python'])} rounds | tests | per test "
        f"(JUnit, median) | {OUTCOME} |",
        "|---|---|---|---|",
    ]
    for service in SERVICES:
        v = runs[service]
        lines.append(
            f"| {title(service)}, {v[0]['tests'] // 2} x (POST /login, GET /check) "
            f"| {v[0]['tests']} "
            f"| {ms(median([x['junit_per_test_s'] for x in v]))} "
            f"| {tally(collections.Counter(outcome(x) for x in v))} |"
        )
    said = []
    for service in SERVICES:
        for r, run in enumerate(runs[service]):
            for name in run["sent_more"]:
                why = run["again"].get(name) or run["learned"].get(name) or ""
                verdict = "FAIL" if name in run["failed"] else "PASS"
                said.append(f"- {service}, round {r + 1}: {name} {verdict}: {why}".rstrip(": "))
    if said:
        lines += ["", "Tests sent more than once:", "", *said[:limit]]
        lines += [f"- ... and {len(said) - limit} more"] if len(said) > limit else []
    c = res["control"]
    lines += [
        "",
        f"Control, the Python login set with `--clock real` (tokens expired): {outcome(c)}; "
        f"made-up values learned: {sorted(set(c['learned'].values())) or 'none'}.",
    ]
    return "\n".join(lines)


def report(res: dict[str, Any]) -> str:
    m = res["machine"]
    out = [
        f"{m['cpus']} CPUs ({m['cpu_model']}), kernel {m['kernel']}, Python {m['python']}, "
        f"Node.js {m['node']}, libfaketime {m['libfaketime']}; commit {m['commit']}; "
        f"{res['seconds']:.0f} s"
    ]
    for part, table in (
        ("calls", calls_table),
        ("service", service_table),
        ("replay", replay_table),
        ("login", login_table),
    ):
        if part in res:
            out += ["", table(res[part])]
    out += ["", f"After the run, kpy in bpftool cgroup tree / bpftool prog: {res['bpftool_after']}"]
    return "\n".join(out)


# --- the run -----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = Path("/proc/cpuinfo").read_text()
    model = next(
        (x.split(":", 1)[1].strip() for x in cpu.splitlines() if x.startswith("model name")), "?"
    )

    def version(argv: list[str]) -> str:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()

    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": version(["node", "--version"]).lstrip("v"),
        "libfaketime": version(["dpkg-query", "-W", "-f", "${Version}", "libfaketime"]) or "?",
        "commit": commit(ROOT),
    }


def bpftool_kpy() -> dict[str, list[str]]:
    """kpy's in ``bpftool cgroup tree`` (attached programs) and ``bpftool prog``."""
    tree = subprocess.run(["bpftool", "cgroup", "tree"], capture_output=True, text=True, timeout=30)
    progs = subprocess.run(
        ["bpftool", "-j", "prog", "show"], capture_output=True, text=True, timeout=30
    )
    return {
        "cgroup tree": [x.strip() for x in tree.stdout.splitlines() if "kpy" in x],
        "prog": [p["name"] for p in json.loads(progs.stdout or "[]") if "kpy" in p.get("name", "")],
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    if why := clock.unavailable():
        raise EnvironmentProblem(f"the replay clock cannot run here: {why}")
    if noise := others_running():
        progress(f"WARNING, the machine is not quiet: {noise}")
    res: dict[str, Any] = {"machine": machine(), "noise_at_start": noise, "settings": vars(args)}
    t0 = now()
    with tempfile.TemporaryDirectory(prefix="kpy-clock-bench-") as name:
        tmp = Path(name)
        tmp.chmod(0o755)
        (tmp / "resolv.conf").write_text("nameserver 127.0.0.53\n")  # nothing is resolved
        if "calls" in args.only:
            res["calls"] = part_calls(args.rounds, args.calls)
        if "service" in args.only:
            res["service"] = part_service(args.rounds, args.tests)
        services, sets = Services(tmp), {}
        for kind, part in (("check", "replay"), ("login", "login")):
            if part in args.only:
                count = args.tests if kind == "check" else args.tests // 2
                for s in SERVICES:
                    sets[f"{s}-{kind}"] = record(services, s, kind, count, tmp)
        if "replay" in args.only:
            res["replay"] = part_replay(services, sets, args.rounds, tmp)
        if "login" in args.only:
            res["login"] = part_login(services, sets, args.rounds, tmp)
    res["seconds"] = now() - t0
    root = cgroup.parent_dir(cgroup.hierarchy())
    dead = [
        p.name for p in root.glob(cgroup.PREFIX + "*") if not cgroup.alive(cgroup.owner(p) or 0)
    ]
    res["leftovers"] = leftovers() + [f"cgroup {g} (its kpy is gone)" for g in dead]
    res["noise_at_end"] = [n for n in others_running() if not n.startswith("CPUs")]
    res["bpftool_after"] = bpftool_kpy()
    return res


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_traffic"]:  # kpy record's --traffic
        traffic(argv[1], int(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="of each variant, interleaved")
    parser.add_argument("--tests", type=int, default=200, help="tests in each recorded set")
    parser.add_argument("--calls", type=int, default=100_000, help="clock reads per loop")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--smoke", action="store_true", help="1 round, 20 tests, 10,000 calls")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--report", type=Path, help="print the tables of an earlier --json")
    args = parser.parse_args(argv)
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return 0
    if args.smoke:
        args.rounds, args.tests, args.calls = 1, 20, 10_000
    if min(args.rounds, args.calls) < 1 or args.tests < 2:
        parser.error("--rounds and --calls must be at least 1, --tests at least 2")
    return measured("clock_bench", lambda: measure(args), report, args.json)


if __name__ == "__main__":
    sys.exit(main())
