"""Benchmark of kpy's recording proxy: what relaying and recording a service's traffic costs,
against the same traffic direct and through a minimal C relay, side by side in one run.

Run as root from the project root, on a quiet machine (docs/BENCHMARKS.md, "Recording
proxy", has the figures; the defaults take about 6 minutes):

    python3 bench/record_bench.py [--seconds 4] [--request-seconds 3] [--latency-seconds 2]
                                  [--rounds 2] [--memory-seconds 60] [--json F]

Variants, alternating (their order rotating from round to round) so that noise on the
machine hits each alike:

- **direct**: the client dials the server;
- **relay**: the client dials bench/relay.c (compiled with gcc -O2 into a temporary
  directory), a one-thread epoll relay with a userspace buffer per direction and no
  recording, which dials the server;
- **kpy**: the client runs in a ``Session`` (``session.spawn``) whose proxy is kpy's
  ``Egress`` on a ``ProxyLoop`` with a ``Recording``, as tests/proxy/test_egress.py sets it
  up: eBPF redirects each of its connections to the proxy, which relays and records it. For
  HTTP, kpy's ``Ingress`` stands on a public port in front of the service, as ``kpy record``
  puts it. A fresh Recording per run; ``finish()`` is timed too (the recorder's backlog);
- **splice** ("kpy, no rec."): the same Session, eBPF redirect, ProxyLoop and kpy's own
  ``splice``, with no Tap and no Recording: what kpy's relaying costs apart from recording
  (not run for redis-benchmark, to keep the run short).

Measured: pgbench -S (PostgreSQL from tests/servers.py, ``pgbench -i -s 10``) at -c 4 and
-c 16, -M simple and extended; redis-benchmark SET and GET, plain and -P 16; wrk against a
tiny C HTTP server (bench/http_server.c); the latency one client sees (pgbench -c 1, pinned:
all on one CPU, and client + relay on one CPU with the server on the other); the CPU time of
the C relay and of kpy's two threads (the loop's, the recorder's) per transaction; and, in
a child process of its own, the RSS of the process holding the Recording through a long
pgbench run through kpy.

Traffic goes to 127.0.0.1 only; every client runs for a bounded time or count under a
timeout; the C programs exit by themselves after a deadline; every Session is closed by
``with``, the servers are stopped at the end, and the run checks that it left no kpy
program or cgroup behind. ``--only`` and ``--variants`` narrow a run (to profile one
variant under py-spy, say).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.servers, when run as bench/record_bench.py

from children import measured, run_to_end  # noqa: E402  (bench/, the script's own folder)

from kpy_ci.address import Address  # noqa: E402
from kpy_ci.ebpf import cgroup  # noqa: E402
from kpy_ci.ebpf.session import Session  # noqa: E402
from kpy_ci.errors import EnvironmentProblem  # noqa: E402
from kpy_ci.proxy.server import CHUNK, Egress, Ingress, ProxyLoop, splice  # noqa: E402
from kpy_ci.recording import Recording  # noqa: E402
from tests.servers import Postgres, postgres_server, redis_server  # noqa: E402

HERE = Path(__file__).resolve().parent
C_SOURCES = ("relay", "http_server")
VARIANTS = ("direct", "relay", "splice", "kpy")
PARTS = ("pgbench", "redis", "http", "latency", "memory")
C_DEADLINE = 1800  # seconds: the C relay and server exit by themselves after this
CHILD_SLACK = 60.0  # seconds a client may overrun its own duration before it is killed
PG_SCALE = 10
ALL_CPUS = sorted(os.sched_getaffinity(0))
PLACEMENTS = {  # for the latency part: (CPU of the client and its relay, CPU of the server)
    "one CPU": (ALL_CPUS[-1], ALL_CPUS[-1]),
    "two CPUs": (ALL_CPUS[0], ALL_CPUS[-1]),
}
REDIS_CLIENTS = 50  # redis-benchmark's default
WRK_CONNECTIONS = 16


# --- processes ---------------------------------------------------------------------------


def build(tmp: Path) -> dict[str, Path]:
    """The C programs, compiled now: the repository carries no binaries."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise EnvironmentProblem("gcc not found: scripts/install.sh installs it")
    built = {}
    for name in C_SOURCES:
        exe = tmp / name
        subprocess.run(
            [gcc, "-O2", "-Wall", "-o", str(exe), str(HERE / f"{name}.c")], check=True, timeout=60
        )
        built[name] = exe
    return built


@dataclass(frozen=True)
class CProcess:
    port: int
    pid: int

    def cpu_s(self) -> float:
        """Its CPU time so far (user + system), seconds, at the kernel's tick."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def c_server(argv: list[str]) -> Iterator[CProcess]:
    """One of the C programs, listening on the port it printed. Killed by its pid on exit."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield CProcess(int(proc.stdout.readline()), proc.pid)
    finally:
        proc.kill()
        proc.wait(10)


def cpu_ticks() -> tuple[int, int]:
    """All CPUs' (busy, total) ticks so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    total = sum(fields[:8])  # user .. steal; guest time is counted within user
    return total - idle, total


def busy_since(start: tuple[int, int]) -> float:
    """The fraction of the machine's CPU time that was busy since ``start``."""
    busy, total = cpu_ticks()
    return (busy - start[0]) / max(1, total - start[1])


def rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# --- where a client's traffic goes -------------------------------------------------------


@dataclass
class KpyRun:
    """What a kpy run left: CPU time of its two threads, the recorder's state when the
    client ended, and how long it took to drain."""

    loop_cpu_s: float = 0.0  # the ProxyLoop thread's CPU time (user + system)
    recorder_cpu_s: float = 0.0  # the Recording worker's, up to the client's end
    settle_s: float = 0.0  # from the client's end until the proxy had closed every connection
    exchanges: int = 0
    backlog_chunks: int = 0  # chunks still queued for the recorder when the client ended
    drain_s: float = 0.0  # Recording.finish() from the proxy's last connection's end
    warnings: int = 0


def thread_cpu(thread: threading.Thread) -> float:
    """A live thread's CPU time, seconds."""
    assert thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


@contextmanager
def recording_session(
    stats: KpyRun, record: bool = True, cpu: int | None = None
) -> Iterator[tuple[Session, Recording | None]]:
    """As tests/proxy/test_egress.py: Egress on a ProxyLoop with a Recording, in a Session.
    Without ``record``, kpy's relay path alone: the same eBPF redirect, destination lookup,
    loop and ``splice``, with no Tap (no Recording at all). With ``cpu``, the loop's and
    the recorder's threads run on that CPU only."""
    recording = Recording() if record else None
    loop = ProxyLoop()
    if cpu is not None:
        for thread in (loop._thread,):
            if thread.native_id is not None:
                os.sched_setaffinity(thread.native_id, {cpu})
    session: Session | None = None

    def lookup(peer: tuple[str, int]) -> Address | None:
        return session.original_destination(peer) if session else None

    async def splice_only(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        destination = lookup(writer.get_extra_info("peername")[:2])
        if destination is not None:
            upstream = await asyncio.open_connection(
                destination.host, destination.port, limit=CHUNK
            )
            await splice((reader, writer), upstream, None)

    try:
        handler = Egress(recording, lookup).handle if recording is not None else splice_only
        egress = loop.listen(Address("127.0.0.1", 0), handler)
        session = Session(egress)
        loop_cpu = thread_cpu(loop._thread)
        with session:
            yield session, recording
        stats.settle_s = settle(loop)
        stats.loop_cpu_s = thread_cpu(loop._thread) - loop_cpu
    finally:
        loop.close()


def settle(loop: ProxyLoop, timeout: float = 5.0) -> float:
    """Wait until the proxy has seen every connection end (the client has exited, but the
    loop may still be relaying its last bytes); the seconds that took. ProxyLoop.close()
    waits for its handlers too (since d4c6757; before, it cut them short and their Taps
    were never closed): waiting here keeps that out of the CPU figures."""
    t0 = time.perf_counter()
    while loop._writers and time.perf_counter() - t0 < timeout:  # read only
        time.sleep(0.005)
    return time.perf_counter() - t0


# The Recording's state, read only. Since it captures while the service runs and decodes in
# finish(), nothing is queued behind a recorder thread: the backlog and recorder-CPU columns
# (which told the cost of decoding live, before) are 0, and finish() is the decoding.


def kept(recording: Recording) -> int:
    """How many exchanges the recording holds so far."""
    return len(recording.inbound) + len(recording.outbound_started)


def queued(recording: Recording) -> int:
    """Chunks waiting for a recorder thread: none, there is none."""
    return 0


def spooled_bytes(recording: Recording) -> int:
    """The size of the recording's two temporary files (capture and decoded mocks)."""
    files = (recording._capture, recording._spool)
    return sum(os.fstat(f.fileno()).st_size for f in files if not f.closed)


def drop(recording: Recording) -> None:
    """Let go of what the recording holds."""
    recording.close()


def finish(recording: Recording, out: KpyRun) -> None:
    t0 = time.perf_counter()
    recording.finish()
    out.drain_s = time.perf_counter() - t0
    out.exchanges = kept(recording)
    out.warnings = len(recording.warnings)


@dataclass
class Target:
    """The ways to one server: its port, and the C relay in front of it."""

    port: int
    relay: CProcess

    def run(
        self,
        variant: str,
        argv_for: Callable[[int], list[str]],
        env: dict[str, str],
        limit: float,
        cpu: int | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Run the client built by ``argv_for(port)`` through ``variant``; its stdout, and
        the CPU time of what relayed it (kpy's figures under "kpy"), and how busy the
        machine's CPUs were meanwhile. With ``cpu``, the client and what relays it (the C
        relay, or kpy's threads) run on that CPU only."""
        if cpu is not None:
            client = argv_for
            argv_for = lambda port: ["taskset", "-c", str(cpu), *client(port)]  # noqa: E731
        start = cpu_ticks()
        if variant == "direct":
            out = run_to_end(subprocess.Popen, argv_for(self.port), limit, env)
            return out, {"busy": busy_since(start)}
        if variant == "relay":
            used = self.relay.cpu_s()
            os.sched_setaffinity(self.relay.pid, {cpu} if cpu is not None else ALL_CPUS)
            out = run_to_end(subprocess.Popen, argv_for(self.relay.port), limit, env)
            return out, {"relay_cpu_s": self.relay.cpu_s() - used, "busy": busy_since(start)}
        kpy = KpyRun()
        with recording_session(kpy, variant == "kpy", cpu) as (session, recording):
            start = cpu_ticks()
            out = run_to_end(session.spawn, argv_for(self.port), limit, env)
            busy = busy_since(start)
        if recording is not None:
            finish(recording, kpy)
            drop(recording)
        del recording
        gc.collect()
        return out, {"kpy": vars(kpy), "busy": busy}


def rotated(variants: Sequence[str], r: int) -> list[str]:
    k = r % len(variants)
    return [*variants[k:], *variants[:k]]


# --- clients -----------------------------------------------------------------------------

_TPS = re.compile(r"^tps = ([\d.]+)", re.M)
_LAT = re.compile(r"^latency average = ([\d.]+) ms", re.M)
_XACTS = re.compile(r"^number of transactions actually processed: (\d+)", re.M)


def pgbench(
    target: Target,
    pg: Postgres,
    variant: str,
    clients: int,
    mode: str,
    seconds: int,
    cpu: int | None = None,
) -> dict[str, Any]:
    def argv(port: int) -> list[str]:
        jobs = "2" if clients > 1 else "1"
        return ["pgbench", "-n", "-S", "-c", str(clients), "-j", jobs, "-T", str(seconds),
                "-M", mode, "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip

    out, extra = target.run(variant, argv, pg.env(), seconds + CHILD_SLACK, cpu)
    tps = float(_TPS.search(out)[1])  # type: ignore[index]
    return {
        "tps": tps,
        # pgbench prints it to the µs; clients / tps is the same mean, to the ns
        "latency_us": clients / tps * 1e6,
        "latency_ms_printed": float(_LAT.search(out)[1]),  # type: ignore[index]
        "transactions": int(_XACTS.search(out)[1]),  # type: ignore[index]
        **extra,
    }


def redis_bench(
    target: Target, variant: str, test: str, pipeline: int, requests: int, clients: int
) -> dict[str, Any]:
    def argv(port: int) -> list[str]:
        return ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", test,
                "-n", str(requests), "-P", str(pipeline), "-c", str(clients), "--csv"]  # fmt: skip

    t0 = time.perf_counter()
    out, extra = target.run(variant, argv, {}, 120.0)
    wall = time.perf_counter() - t0
    rows = [line.replace('"', "").split(",") for line in out.strip().splitlines()]
    row = next(r for r in rows if r[0].upper() == test.upper())
    return {"rps": float(row[1]), "requests": requests, "wall_s": wall, **extra}


def wrk(port: int, seconds: int) -> dict[str, Any]:
    argv = ["wrk", "-t", "1", "-c", str(WRK_CONNECTIONS), "-d", f"{seconds}s",
            f"http://127.0.0.1:{port}/items"]  # fmt: skip
    start = cpu_ticks()
    out = run_to_end(subprocess.Popen, argv, seconds + CHILD_SLACK, {})
    busy = busy_since(start)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    requests = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    return {"rps": rps, "requests": requests, "busy": busy}


def wrk_through_ingress(service: int, seconds: int, record: bool) -> dict[str, Any]:
    """wrk against kpy's Ingress (a ProxyLoop listener on a public port in front of the
    service, with a fresh Recording), or, without ``record``, against the same loop running
    ``splice`` with no Tap."""
    kpy = KpyRun()
    recording = Recording() if record else None
    loop = ProxyLoop()
    targets = [Address("127.0.0.1", service)]

    async def splice_only(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await asyncio.open_connection("127.0.0.1", service, limit=CHUNK)
        await splice((reader, writer), upstream, None)

    try:
        handler = Ingress(recording, targets).handle if recording is not None else splice_only
        public = loop.listen(Address("127.0.0.1", 0), handler)
        loop_cpu = thread_cpu(loop._thread)
        res = wrk(public.port, seconds)
        kpy.settle_s = settle(loop)
        kpy.loop_cpu_s = thread_cpu(loop._thread) - loop_cpu
    finally:
        loop.close()
    if recording is not None:
        finish(recording, kpy)
        drop(recording)
    res["kpy"] = vars(kpy)
    del recording
    gc.collect()
    return res


# --- the parts ---------------------------------------------------------------------------


def part_pgbench(
    target: Target, pg: Postgres, variants: Sequence[str], args: argparse.Namespace
) -> dict[str, Any]:
    """Throughput: -c 4 and -c 16 (-j 2), -M simple and extended."""
    cells = [(c, m) for c in (4, 16) for m in ("simple", "extended")]
    found: dict[str, dict[str, list[dict[str, Any]]]] = {
        f"c{c}_{m}": {v: [] for v in variants} for c, m in cells
    }
    for r in range(args.rounds):
        for c, m in cells:
            for v in rotated(variants, r):
                res = pgbench(target, pg, v, c, m, args.seconds)
                found[f"c{c}_{m}"][v].append(res)
                progress(f"pgbench -c {c} -M {m} {v}: {res['tps']:.0f} tps", res)
    return found


def postmaster(pg: Postgres) -> int:
    """The pid of the server's postmaster, whose affinity its new backends inherit."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[0].endswith(b"/postgres") and f"port={pg.port}".encode() in argv:
                return int(entry.name)
    raise RuntimeError(f"no postmaster for port {pg.port}")


def part_latency(
    target: Target, pg: Postgres, variants: Sequence[str], args: argparse.Namespace
) -> dict[str, Any]:
    """One client: pgbench -c 1, each transaction one round trip through the relay. Pinned,
    since on this VM a wake-up of a process on the other CPU costs tens of µs and decides a
    run's figure: on one CPU (all on one: the CPU work each round trip adds), and on two
    (client and relay on one CPU, the server on the other), -M simple only."""
    cells = [("one CPU", "simple"), ("one CPU", "extended"), ("two CPUs", "simple")]
    found: dict[str, dict[str, list[dict[str, Any]]]] = {
        f"{p}, {m}": {v: [] for v in variants} for p, m in cells
    }
    server = postmaster(pg)
    try:
        for r in range(args.rounds):
            for placement, mode in cells:
                client, db = PLACEMENTS[placement]
                os.sched_setaffinity(server, {db})  # new backends inherit it
                for v in rotated(variants, r):
                    res = pgbench(target, pg, v, 1, mode, args.latency_seconds, client)
                    found[f"{placement}, {mode}"][v].append(res)
                    progress(f"pgbench -c 1 -M {mode} {placement} {v}: "
                             f"{res['latency_us']:.1f} µs", res)  # fmt: skip
    finally:
        os.sched_setaffinity(server, ALL_CPUS)
        os.sched_setaffinity(target.relay.pid, ALL_CPUS)
    return found


def part_redis(target: Target, variants: Sequence[str], args: argparse.Namespace) -> dict[str, Any]:
    """GET and SET, plain and -P 16. Each variant's -n is sized from a short calibration
    run of its own (which warms it up too), for about --request-seconds of traffic."""
    cells = [(t, p) for p in (1, 16) for t in ("set", "get")]
    found: dict[str, dict[str, list[dict[str, Any]]]] = {
        f"{t}_P{p}": {v: [] for v in variants} for t, p in cells
    }
    sizes: dict[tuple[str, int, str], int] = {}
    for t, p in cells:
        for v in variants:
            probe = 5_000 * (1 if p == 1 else 8)
            res = redis_bench(target, v, t, p, probe, REDIS_CLIENTS)
            sizes[(t, p, v)] = max(probe, round(res["rps"] * args.request_seconds, -3))
    for r in range(args.rounds):
        for t, p in cells:
            for v in rotated(variants, r):
                res = redis_bench(target, v, t, p, int(sizes[(t, p, v)]), REDIS_CLIENTS)
                found[f"{t}_P{p}"][v].append(res)
                progress(f"redis {t} -P {p} {v}: {res['rps']:.0f} rps", res)
    return found


def part_http(
    tools: dict[str, Path], variants: Sequence[str], args: argparse.Namespace
) -> dict[str, Any]:
    """wrk -t 1 -c 16 against bench/http_server.c: direct, through the C relay, through
    kpy's Ingress with a Recording (a fresh one per run; finish() timed), and through the
    same loop without recording."""
    found: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    deadline = str(C_DEADLINE)
    with (
        c_server([str(tools["http_server"]), "0", deadline]) as service,
        c_server([str(tools["relay"]), "0", str(service.port), deadline]) as relay,
    ):
        for r in range(args.rounds):
            for v in rotated(variants, r):
                if v == "direct":
                    res = wrk(service.port, args.request_seconds)
                elif v == "relay":
                    cpu = relay.cpu_s()
                    res = wrk(relay.port, args.request_seconds)
                    res["relay_cpu_s"] = relay.cpu_s() - cpu
                else:
                    res = wrk_through_ingress(service.port, args.request_seconds, v == "kpy")
                found[v].append(res)
                progress(f"http {v}: {res['rps']:.0f} req/s", res)
    return found


def part_memory(pg: Postgres, args: argparse.Namespace) -> dict[str, Any]:
    """The memory child: a process of its own, so that its RSS is the Recording's and kpy's
    alone (Python keeps freed memory from the earlier parts' recordings)."""
    argv = [sys.executable, str(Path(__file__).resolve()), "_memory",
            str(pg.port), str(args.memory_seconds)]  # fmt: skip
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=args.memory_seconds + 3 * CHILD_SLACK
    )
    if out.returncode != 0:
        raise RuntimeError(f"memory child: exit {out.returncode}: {out.stderr[-3000:]}")
    res = json.loads(out.stdout)
    progress(
        f"memory: RSS {res['rss_start_kib'] / 1024:.0f} -> peak {res['rss_peak_kib'] / 1024:.0f}"
        f" -> end {res['rss_after_finish_kib'] / 1024:.0f} MiB, {res['exchanges']} exchanges",
        {},
    )
    return dict(res)


def memory_child(pg_port: int, seconds: int) -> dict[str, Any]:
    """Run in the child: pgbench -S -c 4 through kpy for ``seconds``, RSS every second."""
    pg = Postgres(pg_port)
    samples: list[dict[str, float]] = []
    res: dict[str, Any] = {"seconds": seconds, "samples": samples}
    gc.collect()
    res["rss_start_kib"] = rss_kib()
    kpy = KpyRun()
    with recording_session(kpy) as (session, recording):
        assert recording is not None
        res["rss_session_kib"] = rss_kib()
        argv = ["pgbench", "-n", "-S", "-c", "4", "-j", "2", "-T", str(seconds), "-M", "simple",
                "-h", "127.0.0.1", "-p", str(pg.port)]  # fmt: skip
        proc = session.spawn(
            argv, env=os.environ | pg.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        t0 = time.perf_counter()
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(1.0):
                samples.append({
                    "t": round(time.perf_counter() - t0, 2),
                    "rss_kib": rss_kib(),
                    "recorded": kept(recording),
                    "queued": queued(recording),
                })  # fmt: skip

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            out, err = proc.communicate(timeout=seconds + CHILD_SLACK)
        finally:
            stop.set()
            sampler.join()
        if proc.returncode != 0:
            raise RuntimeError(f"pgbench: {err}")
        res["tps"] = float(_TPS.search(out)[1])  # type: ignore[index]
        res["transactions"] = int(_XACTS.search(out)[1])  # type: ignore[index]
        res["rss_client_end_kib"] = rss_kib()
    finish(recording, kpy)
    res["kpy"] = vars(kpy)
    res["exchanges"] = kpy.exchanges
    res["rss_after_finish_kib"] = rss_kib()
    res["rss_peak_kib"] = max([res["rss_after_finish_kib"], *(s["rss_kib"] for s in samples)])
    res["sample_exchange_bytes"] = sample_size(recording)
    res["spool_bytes"] = spooled_bytes(recording)
    drop(recording)
    gc.collect()
    res["rss_after_clear_kib"] = rss_kib()
    return res


def sample_size(recording: Recording, n: int = 2000) -> float | None:
    """Mean deep size (sys.getsizeof over the object graph) of the last ``n`` exchanges kept
    in memory, the Recorded wrapper and raw_response included (None: none are)."""
    seen: set[int] = set()

    def size(o: Any) -> int:
        if id(o) in seen:
            return 0
        seen.add(id(o))
        s = sys.getsizeof(o)
        if isinstance(o, dict):
            s += sum(size(k) + size(v) for k, v in o.items())
        elif isinstance(o, (list, tuple, set, frozenset)):
            s += sum(size(x) for x in o)
        elif hasattr(o, "__dataclass_fields__"):
            s += sum(size(getattr(o, f)) for f in o.__dataclass_fields__)
        return s

    last = recording.inbound[-n:]  # the exchanges it keeps in memory (mocks are spooled)
    return sum(size(r) for r in last) / len(last) if last else None


# --- report ------------------------------------------------------------------------------

_T0 = time.perf_counter()


def progress(line: str, res: dict[str, Any]) -> None:
    if "busy" in res:
        line += f", CPUs {res['busy']:.0%} busy"
    kpy = res.get("kpy")
    if kpy:
        line += f"  [loop CPU {kpy['loop_cpu_s']:.2f} s"
        if kpy["exchanges"]:
            line += (
                f", recorder CPU {kpy['recorder_cpu_s']:.2f} s, recorded {kpy['exchanges']}, "
                f"backlog {kpy['backlog_chunks']} chunks, drain {kpy['drain_s']:.2f} s"
            )
        line += "]"
    print(f"{time.perf_counter() - _T0:6.1f}s  {line}", file=sys.stderr, flush=True)


Runs = list[dict[str, Any]]


def med(runs: Runs, key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def paired(a: Runs, b: Runs, key: str) -> tuple[float, float, float]:
    """Ratios a/b paired by round: median, min, max."""
    ratios = [x[key] / y[key] for x, y in zip(a, b, strict=True)]
    return statistics.median(ratios), min(ratios), max(ratios)


def fmt_ratio(a: Runs, b: Runs, key: str) -> str:
    m, lo, hi = paired(a, b, key)
    return f"{m:.2f}x" if len(a) == 1 else f"{m:.2f}x ({lo:.2f}-{hi:.2f})"


def per_unit(runs: Runs, what: str, per: str) -> float:
    """Median over runs of a CPU figure (``relay_cpu_s``, or kpy's ``loop_cpu_s`` or
    ``recorder_cpu_s``) per transaction or request, µs."""

    def cpu(r: dict[str, Any]) -> float:
        return float(r[what] if what in r else r["kpy"][what])

    return float(statistics.median(cpu(r) / max(1, r[per]) * 1e6 for r in runs))


def recorder_note(runs: Runs, per: str) -> str:
    backlog = max(r["kpy"]["backlog_chunks"] for r in runs)
    drain = max(r["kpy"]["drain_s"] for r in runs)
    ratio = statistics.median(r["kpy"]["exchanges"] / max(1, r[per]) for r in runs)
    note = f"{ratio:.2f} exch./{'txn' if per == 'transactions' else 'req'}, "
    note += f"backlog ≤{backlog}, drain ≤{drain:.2f} s"
    if all("wall_s" in r for r in runs):  # redis-benchmark: the rate counting the drain
        whole = statistics.median(r[per] / r["wall_s"] for r in runs)
        note += f", {whole:,.0f} {'txn' if per == 'transactions' else 'req'}/s end to end"
    if warn := sum(r["kpy"]["warnings"] for r in runs):
        note += f", {warn} warnings"
    return note


def throughput_table(found: dict[str, dict[str, Runs]], key: str, per: str) -> list[str]:
    """One row per cell: each variant's median, the ratios, kpy's CPU per unit."""
    unit = "txn" if per == "transactions" else "req"
    lines = [
        f"| cell | direct | C relay | kpy, no rec. | kpy | relay/direct | kpy/direct "
        f"| kpy/relay | kpy no rec./relay | CPU µs/{unit}: C relay · kpy no rec. (loop) "
        "· kpy (loop + recorder) | CPUs busy | kpy's recorder |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell, by in found.items():
        have = {v for v in VARIANTS if by.get(v)}
        cols = [f"{med(by[v], key):,.0f}" if v in have else "" for v in VARIANTS]
        ratios = []
        for a, b in (("relay", "direct"), ("kpy", "direct"), ("kpy", "relay"), ("splice", "relay")):
            ratios.append(fmt_ratio(by[a], by[b], key) if {a, b} <= have else "")
        cpus = [
            f"{per_unit(by['relay'], 'relay_cpu_s', per):.1f}" if "relay" in have else "",
            f"{per_unit(by['splice'], 'loop_cpu_s', per):.1f}" if "splice" in have else "",
        ]
        if "kpy" in have:
            k = by["kpy"]
            loop, rec = per_unit(k, "loop_cpu_s", per), per_unit(k, "recorder_cpu_s", per)
            cpus.append(f"{loop:.1f} + {rec:.1f}")
        cpu = " · ".join(cpus)
        busy = " · ".join(f"{med(by[v], 'busy'):.0%}" for v in VARIANTS if v in have)
        note = recorder_note(by["kpy"], per) if "kpy" in have else ""
        lines.append(
            f"| {cell} | {' | '.join(cols)} | {' | '.join(ratios)} | {cpu} | {busy} | {note} |"
        )
    return lines


def report(res: dict[str, Any]) -> str:
    out: list[str] = []
    m = res["machine"]
    out.append(
        f"kernel {m['kernel']}, Python {m['python']}, {m['cpus']} CPUs ({m['cpu_model']}), "
        f"pgbench {m['pgbench']}, settings {res['settings']}\n"
    )
    head = "(median over rounds; ratios paired by round: median (min-max))\n"
    if "pgbench" in res:
        out.append("pgbench -S -j 2, transactions/s " + head)
        out += throughput_table(res["pgbench"], "tps", "transactions")
        out.append("")
    if "redis" in res:
        out.append(f"redis-benchmark -c {REDIS_CLIENTS}, requests/s " + head)
        out += throughput_table(res["redis"], "rps", "requests")
        out.append("")
    if "http" in res:
        out.append(f"wrk -t 1 -c {WRK_CONNECTIONS}, requests/s " + head)
        out += throughput_table({"http": res["http"]}, "rps", "requests")
        out.append("")
    if "latency" in res:
        out.append(
            "pgbench -S -c 1: latency average per transaction (one round trip), µs: median "
            "(min-max) over rounds; what each adds to direct, from the medians\n"
        )
        out.append(
            "| placement, mode | direct | C relay | kpy, no rec. | kpy | relay adds "
            "| kpy no rec. adds | kpy adds | kpy adds over relay "
            "| kpy CPU µs/txn: no rec. · loop + recorder |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for mode, by in res["latency"].items():
            lat = {v: med(by[v], "latency_us") for v in VARIANTS if by.get(v)}
            d = lat.get("direct")
            cols = []
            for v in VARIANTS:
                values = [r["latency_us"] for r in by.get(v, [])]
                span = f" ({min(values):.0f}-{max(values):.0f})" if len(values) > 1 else ""
                cols.append(f"{lat[v]:.1f}{span}" if v in lat else "")

            def adds(v: str, base: float | None, lat: dict[str, float] = lat) -> str:
                return f"+{lat[v] - base:.1f}" if v in lat and base is not None else ""

            cpu = []
            if by.get("splice"):
                cpu.append(f"{per_unit(by['splice'], 'loop_cpu_s', 'transactions'):.1f}")
            if by.get("kpy"):
                loop = per_unit(by["kpy"], "loop_cpu_s", "transactions")
                rec = per_unit(by["kpy"], "recorder_cpu_s", "transactions")
                cpu.append(f"{loop:.1f} + {rec:.1f}")
            out.append(
                f"| {mode} | {' | '.join(cols)} | {adds('relay', d)} | {adds('splice', d)} "
                f"| {adds('kpy', d)} | {adds('kpy', lat.get('relay'))} | {' · '.join(cpu)} |"
            )
        out.append("")
    if "memory" in res:
        mem = res["memory"]
        mib = 1024.0
        grown = mem["rss_after_finish_kib"] - mem["rss_session_kib"]
        freed = mem["rss_after_finish_kib"] - mem["rss_after_clear_kib"]
        out.append(f"memory: pgbench -S -c 4 through kpy for {mem['seconds']} s "
                   f"({mem['tps']:.0f} tps, {mem['exchanges']:,} exchanges recorded)")  # fmt: skip
        out.append(
            f"RSS start {mem['rss_start_kib'] / mib:.1f} MiB, with session "
            f"{mem['rss_session_kib'] / mib:.1f}, peak {mem['rss_peak_kib'] / mib:.1f}, "
            f"at client end {mem['rss_client_end_kib'] / mib:.1f}, after finish() "
            f"{mem['rss_after_finish_kib'] / mib:.1f}, after dropping the exchanges "
            f"{mem['rss_after_clear_kib'] / mib:.1f}"
        )
        per = max(1, mem["exchanges"])
        line = f"growth {grown * 1024 / per:.0f} B of RSS per exchange; "
        if mem.get("sample_exchange_bytes"):
            line += f"deep size of one exchange kept {mem['sample_exchange_bytes']:.0f} B; "
        if mem.get("spool_bytes") is not None:
            line += f"spooled {mem['spool_bytes'] / per:.0f} B per exchange to a file; "
        out.append(line + f"{freed / mib:.1f} MiB given back when the recording is dropped\n")
        out.append("| t (s) | RSS (MiB) | exchanges kept | chunks queued |")
        out.append("|---|---|---|---|")
        for s in mem["samples"][:: max(1, len(mem["samples"]) // 12)]:
            out.append(
                f"| {s['t']:.0f} | {s['rss_kib'] / mib:.1f} | {s['recorded']:,} | {s['queued']} |"
            )
    return "\n".join(out)


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    version = subprocess.run(["pgbench", "--version"], capture_output=True, text=True).stdout
    return {
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "pgbench": version.split()[-3] if version else "?",
    }


def leftovers(timeout: float = 10.0) -> list[str]:
    """What this run left: kpy cgroups of this process, and kpy programs still loaded once
    the kernel has had up to ``timeout`` seconds to free the last session's (it does so
    after their links and file descriptors are closed). Programs are only counted while no
    other live process has a kpy cgroup: another kpy (a test run, say) may hold its own."""
    deadline = time.monotonic() + timeout
    root = cgroup.parent_dir(cgroup.hierarchy())
    while True:
        groups = list(root.glob(cgroup.PREFIX + "*"))
        found = [str(p) for p in groups if cgroup.owner(p) == os.getpid()]
        others = [p for p in groups if cgroup.owner(p) not in (None, os.getpid())]
        out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True)
        if out.returncode == 0 and not any(cgroup.alive(cgroup.owner(p) or 0) for p in others):
            found += [
                p["name"] for p in json.loads(out.stdout) if p.get("name", "").startswith("kpy_")
            ]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def others_running() -> list[str]:
    """Other kpy sessions alive now, and how busy the CPUs were over the last second: a
    benchmark shares the machine with them."""
    root = cgroup.parent_dir(cgroup.hierarchy())
    found = [
        p.name
        for p in root.glob(cgroup.PREFIX + "*")
        if cgroup.owner(p) not in (None, os.getpid()) and cgroup.alive(cgroup.owner(p) or 0)
    ]
    start = cpu_ticks()
    time.sleep(1.0)
    if (busy := busy_since(start)) > 0.1:
        found.append(f"CPUs {busy:.0%} busy before the run")
    return found


def run(args: argparse.Namespace) -> dict[str, Any]:
    if noise := others_running():
        print(f"record_bench: WARNING, the machine is not quiet: {noise}", file=sys.stderr)
    res: dict[str, Any] = {"machine": machine(), "noise_at_start": noise, "settings": {
        k: v for k, v in vars(args).items() if k not in ("json", "report")}}  # fmt: skip
    variants = [v for v in VARIANTS if v in args.variants]
    parts = [p for p in PARTS if p in args.only]
    deadline = str(C_DEADLINE)
    with tempfile.TemporaryDirectory(prefix="kpy-bench-") as tmp:
        tools = build(Path(tmp))
        if {"pgbench", "latency", "memory"} & set(parts):
            with postgres_server() as pg:
                t0 = time.perf_counter()
                init = ["pgbench", "-i", "-q", "-s", str(PG_SCALE),
                        "-h", "127.0.0.1", "-p", str(pg.port)]  # fmt: skip
                run_to_end(subprocess.Popen, init, 300, pg.env())
                progress(f"pgbench -i -s {PG_SCALE}: {time.perf_counter() - t0:.1f} s", {})
                with c_server([str(tools["relay"]), "0", str(pg.port), deadline]) as relay:
                    target = Target(pg.port, relay)
                    if "pgbench" in parts:
                        res["pgbench"] = part_pgbench(target, pg, variants, args)
                    if "latency" in parts:
                        res["latency"] = part_latency(target, pg, variants, args)
                if "memory" in parts:
                    res["memory"] = part_memory(pg, args)
        if "redis" in parts:
            with (
                redis_server(Path(tmp) / "redis", password=None) as rd,
                c_server([str(tools["relay"]), "0", str(rd.port), deadline]) as relay,
            ):
                redis_variants = [v for v in variants if v != "splice"]  # time: see the docs
                res["redis"] = part_redis(Target(rd.port, relay), redis_variants, args)
        if "http" in parts:
            res["http"] = part_http(tools, variants, args)
    res["leftovers"] = leftovers()
    res["noise_at_end"] = [n for n in others_running() if not n.startswith("CPUs")]
    return res


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_memory"]:  # the memory child (see part_memory)
        print(json.dumps(memory_child(int(argv[1]), int(argv[2]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=4, help="per pgbench run")
    parser.add_argument("--latency-seconds", type=int, default=2, help="per -c 1 run")
    parser.add_argument(
        "--request-seconds", type=int, default=3, help="per redis-benchmark, wrk run"
    )
    parser.add_argument("--rounds", type=int, default=2, help="runs of each variant per cell")
    parser.add_argument("--memory-seconds", type=int, default=60, help="the RSS run")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--report", type=Path, help="print the tables of an earlier --json")
    args = parser.parse_args(argv)
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return 0
    if min(args.seconds, args.request_seconds, args.latency_seconds, args.rounds) < 1 or (
        args.memory_seconds < 1
    ):
        parser.error("durations and counts must be at least 1")
    return measured("record_bench", lambda: run(args), report, args.json)


if __name__ == "__main__":
    sys.exit(main())
