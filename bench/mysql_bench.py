"""Benchmark of kpy's recording proxy on MySQL traffic: a real MariaDB on loopback, its
clients direct, through a minimal C relay and through kpy, side by side in one run.

Run as root from the project root, on a quiet machine (docs/BENCHMARKS.md, "MySQL", has the
figures; the defaults take about 6 minutes, ``--smoke`` about 15 s):

    python3 bench/mysql_bench.py [--rounds 3] [--queries 40000] [--iterations 3]
                                 [--latency-seconds 2] [--smoke] [--json F]  # --report F

It is bench/record_bench.py's method and code (imported from there, not copied): the same
variants, alternating with their order rotating from round to round so that noise on the
machine hits each alike:

- **direct**: the client dials MariaDB;
- **relay**: the client dials bench/relay.c (compiled with gcc -O2 into a temporary
  directory by record_bench's ``build``), a one-thread epoll relay with no recording;
- **kpy**: the client runs in a ``Session`` (``session.spawn``) whose proxy is kpy's
  ``Egress`` on a ``ProxyLoop`` with a fresh ``Recording`` (record_bench's
  ``recording_session``): eBPF redirects each of its connections to the proxy, which relays
  and records it, as under ``kpy record``; ``finish()`` is timed after the client's end.
  Which protocol kpy decoded the bytes as is printed (``mysql``, or ``generic`` until kpy
  has a MySQL plug-in).

Measured:

- **throughput**: ``mysqlslap --concurrency=4 --iterations=I --number-of-queries=Q`` (and
  at -c 16), text protocol, a primary-key read ``SELECT v FROM bench WHERE id = 42`` on a
  1,000-row InnoDB table; queries per second from mysqlslap's average time of an iteration.
  Each iteration connects its clients anew (and authenticates), as mysqlslap does.
- **latency**: one client, one connection (PyMySQL, in a child process), ``SELECT 1`` in a
  loop for ``--latency-seconds``, each round trip timed by ``perf_counter_ns``: the mean
  and median per round trip, µs, and what the relay and kpy add to direct. Pinned as
  record_bench's latency part is: everything on one CPU, and client + relay on one CPU with
  the server on the other.

Traffic goes to 127.0.0.1 only; every client runs under a timeout; the C relay exits by
itself after a deadline; every Session is closed by ``with``; MariaDB (tests/servers.py's
``mariadb_server``) is stopped at the end, and the run checks that it left no kpy program
or cgroup behind.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.servers, when run as bench/mysql_bench.py


def rtt_client(port: int, password: str, seconds: float) -> int:
    """Run in the child: one PyMySQL connection, ``SELECT 1`` for ``seconds``; JSON out."""
    import pymysql  # type: ignore[import-untyped]

    conn = pymysql.connect(
        host="127.0.0.1", port=port, user="app", password=password, database="app"
    )
    times: list[int] = []
    with conn.cursor() as cursor:
        for _ in range(200):  # warm-up, not counted
            cursor.execute("SELECT 1")
            cursor.fetchall()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter_ns()
            cursor.execute("SELECT 1")
            cursor.fetchall()
            times.append(time.perf_counter_ns() - t0)
    conn.close()
    print(json.dumps({
        "round_trips": len(times),
        "mean_us": statistics.fmean(times) / 1e3,
        "median_us": statistics.median(times) / 1e3,
        "p90_us": statistics.quantiles(times, n=10)[-1] / 1e3,
    }))  # fmt: skip
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["_rtt"]:  # port password seconds
    sys.exit(rtt_client(int(sys.argv[2]), sys.argv[3], float(sys.argv[4])))


# --- the benchmark (kpy imported from here on) -------------------------------------------

from children import measured  # noqa: E402  (bench/, the script's own folder)
from record_bench import (  # noqa: E402  (the recording proxy's benchmark: same method)
    ALL_CPUS,
    C_DEADLINE,
    CHILD_SLACK,
    PLACEMENTS,
    Runs,
    Target,
    build,
    c_server,
    leftovers,
    machine,
    med,
    others_running,
    progress,
    rotated,
    throughput_table,
)

from tests.servers import MariaDB, mariadb_server  # noqa: E402

VARIANTS = ("direct", "relay", "kpy")
PARTS = ("mysqlslap", "latency")
QUERY = "SELECT v FROM bench WHERE id = 42"
ROWS = 1000
CONCURRENCY = (4, 16)

_AVG = re.compile(r"Average number of seconds to run all queries: ([\d.]+) seconds")
_CLIENTS = re.compile(r"Number of clients running queries: (\d+)")
_PER_CLIENT = re.compile(r"Average number of queries per client: (\d+)")


def checked(out: str, variant: str, valid: Callable[[str], bool]) -> str:
    """A client's output, if it says the run went through (mysqlslap exits 0 even when its
    connections are cut)."""
    if not valid(out):
        raise RuntimeError(f"{variant}: the client said: {out[-2000:]}")
    return out


def mysqlslap(
    target: Target, db: MariaDB, variant: str, clients: int, args: argparse.Namespace
) -> dict[str, Any]:
    def argv(port: int) -> list[str]:
        return [
            "mysqlslap", "--no-defaults", "--protocol=TCP", "--host=127.0.0.1",
            f"--port={port}", f"--user={db.user}", f"--password={db.password}",
            f"--create-schema={db.database}", f"--query={QUERY}",
            f"--concurrency={clients}", f"--iterations={args.iterations}",
            f"--number-of-queries={args.queries}",
        ]  # fmt: skip

    out, extra = target.run(variant, argv, {}, 300.0)
    checked(out, variant, lambda said: bool(_AVG.search(said)))
    seconds = float(_AVG.search(out)[1])  # type: ignore[index]
    queries = int(_CLIENTS.search(out)[1]) * int(_PER_CLIENT.search(out)[1])  # type: ignore[index]
    return {
        "qps": queries / seconds,
        "seconds_per_iteration": seconds,
        "requests": queries * args.iterations,  # what kpy's CPU figures are divided by
        **extra,
    }


def latency(target: Target, db: MariaDB, variant: str, seconds: float, cpu: int) -> dict[str, Any]:
    def argv(port: int) -> list[str]:
        me = str(Path(__file__).resolve())
        return [sys.executable, me, "_rtt", str(port), db.password, str(seconds)]

    out, extra = target.run(variant, argv, {}, seconds + CHILD_SLACK, cpu)
    res = json.loads(out)
    res["requests"] = res["round_trips"]
    return {**res, **extra}


def mariadbd_pid(db: MariaDB) -> int:
    """The server's pid, from the pid file beside its socket."""
    return int((Path(db.socket).parent / "mysqld.pid").read_text().split()[0])


def pin(pid: int, cpus: list[int] | set[int]) -> None:
    """Every thread of ``pid`` (MariaDB runs a thread per connection) on ``cpus``."""
    subprocess.run(
        ["taskset", "-a", "-p", "-c", ",".join(map(str, sorted(cpus))), str(pid)],
        check=True,
        capture_output=True,
    )


def part_mysqlslap(
    target: Target, db: MariaDB, variants: list[str], args: argparse.Namespace
) -> dict[str, dict[str, Runs]]:
    found: dict[str, dict[str, Runs]] = {f"c{c}": {v: [] for v in variants} for c in CONCURRENCY}
    for r in range(args.rounds):
        for c in CONCURRENCY:
            for v in rotated(variants, r):
                res = mysqlslap(target, db, v, c, args)
                found[f"c{c}"][v].append(res)
                progress(f"mysqlslap -c {c} {v}: {res['qps']:.0f} queries/s", res)
    return found


def part_latency(
    target: Target, db: MariaDB, variants: list[str], args: argparse.Namespace
) -> dict[str, dict[str, Runs]]:
    found: dict[str, dict[str, Runs]] = {p: {v: [] for v in variants} for p in PLACEMENTS}
    server = mariadbd_pid(db)
    try:
        for r in range(args.rounds):
            for placement, (client, db_cpu) in PLACEMENTS.items():
                pin(server, {db_cpu})
                for v in rotated(variants, r):
                    res = latency(target, db, v, args.latency_seconds, client)
                    found[placement][v].append(res)
                    progress(f"SELECT 1, {placement}, {v}: {res['mean_us']:.1f} µs", res)
    finally:
        pin(server, ALL_CPUS)
    return found


def latency_table(found: dict[str, dict[str, Runs]], variants: list[str]) -> list[str]:
    lines = [
        "| placement | " + " | ".join(f"{v}: median (mean)" for v in variants)
        + " | relay adds | kpy adds | kpy adds over relay | round trips per run |",
        "|---|" + "---|" * len(variants) + "---|---|---|---|",
    ]  # fmt: skip
    for placement, by in found.items():
        have = [v for v in variants if by.get(v)]
        median = {v: med(by[v], "median_us") for v in have}
        mean = {v: med(by[v], "mean_us") for v in have}
        cols = [f"{median[v]:.1f} ({mean[v]:.1f})" for v in have]

        def adds(
            a: str, b: str, median: dict[str, float] = median, mean: dict[str, float] = mean
        ) -> str:
            if a not in median or b not in median:
                return ""
            return f"{median[a] - median[b]:+.1f} ({mean[a] - mean[b]:+.1f})"

        trips = min(int(r["round_trips"]) for v in have for r in by[v])
        lines.append(
            f"| {placement} | {' | '.join(cols)} | {adds('relay', 'direct')} "
            f"| {adds('kpy', 'direct')} | {adds('kpy', 'relay')} | ≥{trips:,} |"
        )
    return lines


def report(res: dict[str, Any]) -> str:
    m = res["machine"]
    out = [
        f"kernel {m['kernel']}, Python {m['python']}, {m['cpus']} CPUs ({m['cpu_model']}), "
        f"{res['server']}, mysqlslap {res['mysqlslap_version']}, kpy decoded it as "
        f"{res.get('kpy_protocols', '?')}, settings {res['settings']}\n"
    ]
    head = "(median over rounds; ratios paired by round: median (min-max))\n"
    if "mysqlslap" in res:
        out.append(f"mysqlslap, {QUERY!r}, queries/s " + head)
        out += throughput_table(res["mysqlslap"], "qps", "requests")
        out.append("")
    if "latency" in res:
        out.append(
            "one PyMySQL client, SELECT 1 in a loop: µs per round trip, median over rounds "
            "of each run's median (and mean); what each adds, from those\n"
        )
        out += latency_table(res["latency"], list(res["variants"]))
        out.append("")
    return "\n".join(out)


def seed(db: MariaDB) -> None:
    fill = (
        "CREATE TABLE bench (id INT PRIMARY KEY, v VARCHAR(32)) ENGINE=InnoDB; "
        f"INSERT INTO bench SELECT seq, CONCAT('row-', seq) FROM seq_1_to_{ROWS}"
    )
    subprocess.run(db.cli("-e", fill), check=True, capture_output=True, timeout=60)


def recorded_protocols(db: MariaDB) -> list[str]:
    """What kpy's recorder makes of one MySQL connection (the ``mysql`` client's
    ``SELECT 1``): its mocks' protocols."""
    from record_bench import KpyRun, recording_session

    seen: list[str] = []
    with recording_session(KpyRun()) as (session, recording):
        assert recording is not None
        proc = session.spawn(db.cli("-e", "SELECT 1"), stdout=subprocess.DEVNULL)
        proc.wait(30)
    recording.finish()
    for recorded in recording.outbound():
        if recorded.exchange.protocol not in seen:
            seen.append(recorded.exchange.protocol)
    recording.close()
    return seen


def run(args: argparse.Namespace) -> dict[str, Any]:
    if noise := others_running():
        print(f"mysql_bench: WARNING, the machine is not quiet: {noise}", file=sys.stderr)
    res: dict[str, Any] = {"machine": machine(), "noise_at_start": noise, "settings": {
        k: v for k, v in vars(args).items() if k not in ("json", "report")}}  # fmt: skip
    variants = [v for v in VARIANTS if v in args.variants]
    res["variants"] = variants
    slap = subprocess.run(["mysqlslap", "--version"], capture_output=True, text=True).stdout
    res["mysqlslap_version"] = " ".join(slap.split()[1:3])
    with tempfile.TemporaryDirectory(prefix="kpy-bench-") as tmp, mariadb_server() as db:
        tools = build(Path(tmp))
        seed(db)
        version = subprocess.run(
            db.cli("-N", "-e", "SELECT VERSION()"), capture_output=True, text=True, check=True
        )
        res["server"] = f"MariaDB {version.stdout.strip()}"
        try:
            res["kpy_protocols"] = ",".join(recorded_protocols(db))
        except Exception as e:  # the figures stand without it
            res["kpy_protocols"] = f"? ({type(e).__name__}: {e})"
        progress(f"{res['server']}, seeded {ROWS} rows; kpy records it as "
                 f"{res['kpy_protocols']}", {})  # fmt: skip
        with c_server([str(tools["relay"]), "0", str(db.port), str(C_DEADLINE)]) as relay:
            target = Target(db.port, relay)
            if "mysqlslap" in args.only:
                res["mysqlslap"] = part_mysqlslap(target, db, variants, args)
            if "latency" in args.only:
                res["latency"] = part_latency(target, db, variants, args)
    res["leftovers"] = leftovers()
    res["noise_at_end"] = [n for n in others_running() if not n.startswith("CPUs")]
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each variant per cell")
    parser.add_argument("--queries", type=int, default=40000, help="mysqlslap's per iteration")
    parser.add_argument("--iterations", type=int, default=3, help="mysqlslap's")
    parser.add_argument("--latency-seconds", type=float, default=2.0, help="per -c 1 run")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--smoke", action="store_true", help="one short round of each")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--report", type=Path, help="print the tables of an earlier --json")
    args = parser.parse_args(argv)
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return 0
    if args.smoke:
        args.rounds, args.queries, args.iterations, args.latency_seconds = 1, 4000, 1, 0.5
    if min(args.rounds, args.queries, args.iterations) < 1 or args.latency_seconds <= 0:
        parser.error("durations and counts must be at least 1")
    return measured("mysql_bench", lambda: run(args), report, args.json)


if __name__ == "__main__":
    sys.exit(main())
