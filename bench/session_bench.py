"""Benchmark of kpy's eBPF session: what setting one up costs, and what it adds to connect().

Run as root from the project root (docs/BENCHMARKS.md has the figures measured so far):

    sudo .venv/bin/python bench/session_bench.py [--rounds 30] [--connects 20000] [--json F]

The connect() figures come from bench/connect_loop.c, compiled with gcc into a temporary
directory, so that they are the kernel's and not an interpreter's. Variants that are compared
run in the same process and alternate round by round, so noise on the machine hits each
alike. Traffic goes to 127.0.0.1 only; every loop is bounded by a count and every child by a
timeout; every Session is closed by ``with``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from children import Spawner, run_to_end  # bench/, the script's own folder

from kpy_ci.ebpf import cgroup, libbpf
from kpy_ci.ebpf.session import PROGRAMS, Address, Session, bpf_object_path, check_privileges
from kpy_ci.errors import EnvironmentProblem

SOURCE = Path(__file__).resolve().parent / "connect_loop.c"
CHILD_TIMEOUT = 120.0  # seconds; 20,000 connects take well under one
SETTLE = 0.2  # seconds a session lives before the "settled" close()
LOOKUPS = 2000
VARIANTS = ("direct", "redirected", "excluded")
PLACEMENTS = {"same": "one CPU", "split": "two CPUs"}  # dialler and listener on


def now() -> int:
    return time.perf_counter_ns()


def summary(samples: Sequence[float]) -> dict[str, float]:
    """Median and p90 (nearest rank), so one slow round cannot move the headline figure."""
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, (len(ordered) * 9) // 10)]
    return {"median": statistics.median(ordered), "p90": p90, "n": len(ordered)}


def build(tmp: Path) -> Path:
    """connect_loop, compiled now: the repository carries no binaries."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise EnvironmentProblem("gcc not found: scripts/install.sh installs it")
    exe = tmp / "connect_loop"
    subprocess.run([gcc, "-O2", "-Wall", "-o", str(exe), str(SOURCE)], check=True, timeout=60)
    return exe


def cpus() -> dict[str, int]:
    """Where each process runs: the listener on the last CPU we may use; the dialler on the
    same one, or on the first (split; absent on one CPU). Unpinned, a connect() takes one of
    two latencies far apart, by where the scheduler happens to put the listener."""
    allowed = sorted(os.sched_getaffinity(0))
    found = {"listener": allowed[-1], "same": allowed[-1]}
    if len(allowed) > 1:
        found["split"] = allowed[0]
    return found


@contextmanager
def listener(tool: Path, cpu: int) -> Iterator[int]:
    """A C accept-and-close loop in its own process, outside the cgroup: it stands for the
    proxy, and is quick enough never to be the bottleneck (backlog 4096)."""
    proc = subprocess.Popen([str(tool), "listen", str(cpu)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()


@contextmanager
def unused_port() -> Iterator[int]:
    """A loopback port bound but never listened on: a connect() that really reached it would
    be refused, so a redirected variant that was not redirected fails loudly."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def dial(tool: Path, spawn: Spawner, port: int, count: int, cpu: int) -> dict[str, float]:
    """One child's connect() figures, in microseconds."""
    out = run_to_end(spawn, [str(tool), "dial", str(port), str(count), str(cpu)], CHILD_TIMEOUT)
    median, p90, low, mean = (int(x) / 1000 for x in out.split())
    return {"median": median, "p90": p90, "min": low, "mean": mean}


def bench_session(rounds: int, proxy: Address) -> dict[str, list[float]]:
    """start() and close(), in ms. close() is timed twice: at once, when it must wait for
    the guard's interpreter to come up, and after SETTLE s, as in any real use."""
    found: dict[str, list[float]] = {"start": [], "close_at_once": [], "close_settled": []}
    for r in range(rounds + 1):  # round 0 warms caches and is dropped
        for settle, key in ((0.0, "close_at_once"), (SETTLE, "close_settled")):
            session = Session(proxy)
            t0 = now()
            with session:
                t1 = now()
                time.sleep(settle)
                t2 = now()
            t3 = now()
            if r:
                found["start"].append((t1 - t0) / 1e6)
                found[key].append((t3 - t2) / 1e6)
    return found


def bench_load_attach(rounds: int) -> dict[str, list[float]]:
    """The kernel's share of start(), in ms: open + load (the verifier) and attach of every
    program, into a cgroup of our own (DESIGN.md quotes 1.4 ms for nine programs). A pause
    between rounds lets the kernel finish freeing the last ones, as between real sessions."""
    path = cgroup.create(cgroup.parent_dir(cgroup.hierarchy()))
    found: dict[str, list[float]] = {"load": [], "attach": [], "both": []}
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for r in range(rounds + 1):
                time.sleep(SETTLE / 4)
                t0 = now()
                obj = libbpf.BpfObject(str(bpf_object_path()))
                try:
                    t1 = now()
                    for name in PROGRAMS:
                        obj.attach_cgroup(name, fd)
                    t2 = now()
                finally:
                    obj.close()
                if r:
                    found["load"].append((t1 - t0) / 1e6)
                    found["attach"].append((t2 - t1) / 1e6)
                    found["both"].append((t2 - t0) / 1e6)
        finally:
            os.close(fd)
    finally:
        cgroup.remove(path)
    return found


def bench_spawn(session: Session, count: int) -> dict[str, list[float]]:
    """Session.spawn (fork + cgroup join + exec) against subprocess.run, in ms, alternating."""
    found: dict[str, list[float]] = {"spawn": [], "run": []}
    for i in range(count):
        for key in ("spawn", "run") if i % 2 else ("run", "spawn"):
            t0 = now()
            if key == "spawn":
                session.spawn(["/bin/true"]).wait(timeout=CHILD_TIMEOUT)
            else:
                subprocess.run(["/bin/true"], check=True, timeout=CHILD_TIMEOUT)
            found[key].append((now() - t0) / 1e6)
    return found


PerRound = dict[str, list[dict[str, float]]]


def bench_connect(
    session: Session, tool: Path, ports: tuple[int, int], rounds: int, count: int
) -> dict[str, PerRound]:
    """Per round and CPU placement, one child per variant, the order rotating: direct
    (outside the session, to the listener), redirected (inside, to the unused port; eBPF
    sends it to the listener), excluded (inside, to the listener, which the program leaves
    alone as the proxy)."""
    listen, unused = ports
    plans: dict[str, tuple[Spawner, int]] = {
        "direct": (subprocess.Popen, listen),
        "redirected": (session.spawn, unused),
        "excluded": (session.spawn, listen),
    }
    where = cpus()
    found: dict[str, PerRound] = {p: {v: [] for v in VARIANTS} for p in PLACEMENTS if p in where}
    for r in range(rounds):
        for placement, per_round in found.items():
            for variant in VARIANTS[r % 3 :] + VARIANTS[: r % 3]:
                spawn, port = plans[variant]
                per_round[variant].append(dial(tool, spawn, port, count, where[placement]))
    return found


def bench_lookup(session: Session, tool: Path, unused: int) -> dict[str, float]:
    """original_destination() per call, in µs: a hit (which also deletes the entry), then a
    miss on the same, now absent, key."""
    out = run_to_end(
        session.spawn, [str(tool), "dial", str(unused), str(LOOKUPS), "-1", "ports"], CHILD_TIMEOUT
    )
    peers = [("127.0.0.1", int(p)) for p in dict.fromkeys(out.split())]
    t0 = now()
    hits = [session.original_destination(p) for p in peers]
    t1 = now()
    misses = [session.original_destination(p) for p in peers]
    t2 = now()
    if any(h != Address("127.0.0.1", unused) for h in hits) or any(misses):
        raise RuntimeError("original_destination() did not give back the dialled address")
    return {"hit": (t1 - t0) / 1e3 / len(peers), "miss": (t2 - t1) / 1e3 / len(peers)}


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {
        "kernel": platform.release(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "libbpf": libbpf.version(),
        "programs": len(PROGRAMS),
    }


def ratio_stats(per_round: PerRound, variant: str) -> dict[str, float]:
    """Ratios to ``direct``, paired by round: of medians (its median over rounds, min, max),
    and of means, steadier where the latencies are bimodal (split CPUs)."""
    pairs = list(zip(per_round[variant], per_round["direct"], strict=True))
    ratios = [a["median"] / b["median"] for a, b in pairs]
    means = [a["mean"] / b["mean"] for a, b in pairs]
    return {
        "median": statistics.median(ratios),
        "min": min(ratios),
        "max": max(ratios),
        "of_means": statistics.median(means),
    }


def table(res: dict[str, Any]) -> str:
    """The Markdown table of docs/BENCHMARKS.md."""

    def row(what: str, s: dict[str, float], unit: str, note: str = "") -> str:
        return f"| {what} | {s['median']:.2f} {unit} | {s['p90']:.2f} {unit} | {note} |"

    se, sp, co, la = res["session"], res["spawn"], res["connect"], res["load_attach"]
    spawn_ratio = summary(sp["spawn"])["median"] / summary(sp["run"])["median"]
    n = len(PROGRAMS)
    lines = [
        "| Measure | median | p90 | note |",
        "|---|---|---|---|",
        row("`Session.start()`", summary(se["start"]), "ms", f"{n} programs"),
        row(f"open + load + attach of {n} programs", summary(la["both"]), "ms", "libbpf alone"),
        row("of which open + load", summary(la["load"]), "ms", "ELF, maps, verifier"),
        row(f"of which attach ({n} bpf_links)", summary(la["attach"]), "ms"),
        row(
            "`Session.close()` right after start",
            summary(se["close_at_once"]),
            "ms",
            "waits for the guard's interpreter",
        ),
        row(f"`Session.close()` after {SETTLE} s", summary(se["close_settled"]), "ms"),
        row(
            "`Session.spawn(['/bin/true'])` until exit",
            summary(sp["spawn"]),
            "ms",
            f"{spawn_ratio:.2f}x `subprocess.run`",
        ),
        row("`subprocess.run(['/bin/true'])`", summary(sp["run"]), "ms"),
    ]
    for placement, per_round in co["per_round"].items():
        for variant, what in (
            ("direct", "direct (no session)"),
            ("redirected", "redirected by eBPF"),
            ("excluded", "in the session, not redirected"),
        ):
            s = {k: statistics.median(x[k] for x in per_round[variant]) for k in ("median", "p90")}
            note = f"dialler and listener on {PLACEMENTS[placement]}"
            if variant != "direct":
                r = co["ratios"][placement][variant]
                note = (
                    f"{r['median']:.2f}x direct (rounds {r['min']:.2f}-{r['max']:.2f}); "
                    f"means {r['of_means']:.2f}x"
                )
            lines.append(row(f"connect(), {what}, {PLACEMENTS[placement]}", s, "µs", note))
    lk = res["lookup"]
    lines.append(f"| `original_destination()`, hit | {lk['hit']:.2f} µs | | mean of a call |")
    lines.append(f"| `original_destination()`, miss | {lk['miss']:.2f} µs | | mean of a call |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    res: dict[str, Any] = {"machine": machine(), "settings": vars(args) | {"settle_s": SETTLE}}
    with tempfile.TemporaryDirectory(prefix="kpy-bench-") as tmp:
        tool = build(Path(tmp))
        with listener(tool, cpus()["listener"]) as listen, unused_port() as unused:
            proxy = Address("127.0.0.1", listen)
            res["session"] = bench_session(args.rounds, proxy)
            res["load_attach"] = bench_load_attach(args.rounds)
            with Session(proxy) as session:
                res["spawn"] = bench_spawn(session, args.spawns)
                found = bench_connect(
                    session, tool, (listen, unused), args.connect_rounds, args.connects
                )
                res["connect"] = {
                    "unit": "µs",
                    "cpus": cpus(),
                    "per_round": found,
                    "ratios": {
                        p: {v: ratio_stats(per_round, v) for v in VARIANTS[1:]}
                        for p, per_round in found.items()
                    },
                }
                res["lookup"] = bench_lookup(session, tool, unused)
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="sessions set up and torn down")
    parser.add_argument("--connects", type=int, default=20000, help="connect()s per child")
    parser.add_argument("--connect-rounds", type=int, default=6, help="children per variant")
    parser.add_argument("--spawns", type=int, default=200, help="/bin/true runs per variant")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args(argv)
    if min(args.rounds, args.connects, args.connect_rounds, args.spawns) < 1:
        parser.error("counts must be at least 1")
    try:
        check_privileges()
        res = run(args)
    except EnvironmentProblem as e:
        print(f"session_bench: {e}", file=sys.stderr)
        return 4
    m = res["machine"]
    print(
        f"kernel {m['kernel']}, Python {m['python']}, {m['cpus']} CPUs ({m['cpu_model']}), "
        f"libbpf {m['libbpf']}\n"
    )
    print(table(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
