"""Benchmark of kpy's TLS interception while recording: HTTPS and PostgreSQL over TLS
through kpy's recording proxy against the same clients direct, side by side in one run.

Run as root from the project root, on a quiet machine (docs/BENCHMARKS.md, "TLS", has the
figures; the defaults take about 4 minutes on 2 CPUs):

    python3 bench/tls_bench.py [--rounds 3] [--seconds 3] [--warmup 0.5] [--pg-seconds 4]
                               [--only https pgbench bio] [--json F]   # --report F reprints

Variants, alternating (their order rotating from round to round) so that noise on the
machine hits each alike:

- **direct**: the client dials the server;
- **kpy**: the client runs in a ``Session`` (``session.spawn``) whose proxy is kpy's
  ``Egress`` on a ``ProxyLoop`` with a ``Recording`` and an ``Interception``, as
  ``kpy record`` sets them up (kpy_ci/record.py): a fresh ``Termination`` (kpy's CA for the
  session), ``trusting()`` the client's environment so that its ``SSL_CERT_FILE`` is a
  bundle of the server's CA and kpy's, and the Interception built on that ``ServiceTrust``,
  so kpy checks the real server against the server's CA as the client would have. eBPF
  redirects each connection to the proxy, which ends the client's TLS with a leaf of its
  CA, begins its own to the server, and relays and records what flows between. A fresh
  Recording, Termination and Session per run; ``finish()`` is timed after it;
- for pgbench, also **direct, plain** and **kpy, plain** (``sslmode=disable``): the same
  without TLS, so that TLS's own share shows.

Measured:

- **HTTPS**, one client (a Python child: ``ssl.create_default_context()``, which reads
  SSL_CERT_FILE, a raw socket and a minimal HTTP/1.1 parser, its own timings by
  ``perf_counter_ns``) against a loopback HTTPS server in a process of its own (threaded,
  TLS by Python's ``ssl``, a certificate of a throwaway CA made with ``cryptography`` in a
  temporary directory, EC P-256, a 27-byte JSON answer), for ``--seconds`` after
  ``--warmup`` seconds that are not counted: **keep-alive** (one TLS connection, GET after
  GET) and **new connection** per request (connect, TLS handshake, GET, close: through kpy,
  two handshakes, the client's with kpy and kpy's with the server). Requests per second,
  and the latency of each request: median and p90.
- **pgbench -S -M simple** (PostgreSQL from tests/servers.py with ``tls=True``: ssl=on, a
  self-signed certificate; ``pgbench -i -s 10``) at ``-c 1`` and ``-c 4 -j 2`` for
  ``--pg-seconds``, ``PGSSLMODE=require`` and ``PGCHANNELBINDING=disable`` (as kpy's
  ``trusting()`` sets it: channel binding would bind SCRAM to kpy's certificate). The
  server's certificate is self-signed, so kpy's check of it against the service's trust
  fails and kpy takes its path for a client that does not verify: it connects again
  unchecked and shows the client a self-signed leaf (the "leaves" figure says which kind
  kpy showed). pgbench connects once per client, so that is start-up cost only.
- **bio**: kpy's TLS work alone, in this process over memory BIOs with kpy's own contexts:
  a handshake in each of its two roles, one small record each way, and what making the
  contexts costs (the first connection pays it).

Beside the figures: the CPU time of kpy's loop thread per request or transaction
(``pthread_getcpuclockid``), and how busy the machine's CPUs were (``/proc/stat``).

Traffic goes to 127.0.0.1 only; every client runs for a bounded time under a timeout; the
HTTPS server exits by itself after a deadline and is killed at the end; every Session is
closed by ``with``, and the run checks that it left no kpy program or cgroup behind.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

CHILD_DEADLINE = 1800  # seconds: the HTTPS server exits by itself after this
BODY = b'{"items":[1,2,3],"ok":true}'  # 27 bytes, as bench/http_server.c answers
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)
_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)", re.I)


# --- the children: the HTTPS server and client (stdlib only: no kpy imported) ----------


def upstream_main(cert: str | None, key: str | None) -> int:
    """The HTTPS server (plain HTTP without ``cert``): a thread per connection, keep-alive,
    a GET answered with BODY. Prints its port; exits after CHILD_DEADLINE seconds, or when
    killed."""
    context = None
    if cert is not None and key is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    print(listener.getsockname()[1], flush=True)
    threading.Timer(CHILD_DEADLINE, os._exit, (0,)).start()

    def serve(sock: socket.socket) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = context.wrap_socket(sock, server_side=True) if context else sock
            buf = b""
            while True:
                while (end := buf.find(b"\r\n\r\n")) < 0:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                buf = buf[end + 4 :]  # a GET: no body
                conn.sendall(RESPONSE)
        except OSError:  # ssl.SSLError among them
            return
        finally:
            sock.close()

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def client_main(port: int, mode: str, seconds: float, warmup: float, tls: bool) -> int:
    """The HTTPS client (plain HTTP without ``tls``): GETs for ``warmup`` seconds (not
    counted), then for ``seconds``; prints what it measured as JSON. ``keepalive``: one
    connection for all (its handshake outside the timings); ``new``: each request timed
    from connect() to the close."""
    context = ssl.create_default_context() if tls else None  # $SSL_CERT_FILE; names checked
    request = b"GET /items HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: */*\r\n\r\n" % port

    def connect() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if context is None:
            return sock
        return context.wrap_socket(sock, server_hostname="127.0.0.1")

    def exchange(conn: socket.socket) -> None:
        conn.sendall(request)
        buf = b""
        while (end := buf.find(b"\r\n\r\n")) < 0:
            data = conn.recv(65536)
            if not data:
                raise ConnectionError("the server closed before answering")
            buf += data
        head, body = buf[:end], buf[end + 4 :]
        if not head.startswith(b"HTTP/1.1 200 "):
            raise RuntimeError(f"unexpected answer: {head[:80]!r}")
        match = _LENGTH.search(head)
        length = int(match[1]) if match else 0
        while len(body) < length:
            data = conn.recv(65536)
            if not data:
                raise ConnectionError("the server closed inside the body")
            body += data

    clock = time.perf_counter_ns
    latencies: list[int] = []
    total = 0
    first_ns = 0
    t_start = clock()
    warm_end = t_start + int(warmup * 1e9)
    end = warm_end + int(seconds * 1e9)
    kept = connect() if mode == "keepalive" else None
    if kept is not None:
        first_ns = clock() - t_start  # the handshake, and kpy's set-up for the first name
    measured_from = 0
    now = clock()
    while now < end:
        if kept is not None:
            exchange(kept)
        else:
            with connect() as conn:
                exchange(conn)
        done = clock()
        if total == 0 and kept is None:
            first_ns = done - now
        total += 1
        if now >= warm_end:
            if not latencies:
                measured_from = now
            latencies.append(done - now)
        now = done
    if kept is not None:
        kept.close()
    elapsed = (now - measured_from) / 1e9
    latencies.sort()
    print(json.dumps({
        "mode": mode,
        "requests": len(latencies),
        "requests_all": total,  # warm-up included: what kpy's loop CPU is divided by
        "elapsed_s": elapsed,
        "rps": len(latencies) / elapsed,
        "median_us": statistics.median(latencies) / 1e3,
        "p90_us": latencies[int(0.9 * (len(latencies) - 1))] / 1e3,
        "p99_us": latencies[int(0.99 * (len(latencies) - 1))] / 1e3,
        "mean_us": statistics.fmean(latencies) / 1e3,
        "first_us": first_ns / 1e3,
    }))  # fmt: skip
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["_upstream"]:  # [cert key]
    sys.exit(upstream_main(*(sys.argv[2:4] if len(sys.argv) > 3 else (None, None))))
if __name__ == "__main__" and sys.argv[1:2] == ["_client"]:  # port mode seconds warmup tls
    argv = sys.argv[2:]
    sys.exit(client_main(int(argv[0]), argv[1], float(argv[2]), float(argv[3]), argv[4] == "tls"))


# --- the benchmark (kpy imported from here on) -------------------------------------------

import argparse  # noqa: E402
import gc  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.servers, when run as bench/tls_bench.py

from children import commit, measured, run_to_end  # noqa: E402  (bench/, the script's own folder)
from record_bench import (  # noqa: E402  (the recording proxy's benchmark: same method)
    CProcess,
    KpyRun,
    busy_since,
    c_server,
    cpu_ticks,
    drop,
    finish,
    leftovers,
    machine,
    others_running,
    rotated,
    settle,
    thread_cpu,
)

from kpy_ci.address import Address  # noqa: E402
from kpy_ci.ebpf.session import Session  # noqa: E402
from kpy_ci.proxy.server import Egress, ProxyLoop  # noqa: E402
from kpy_ci.proxy.tls import Interception, Termination  # noqa: E402
from kpy_ci.recording import Recording  # noqa: E402
from kpy_ci.trust import trusting  # noqa: E402
from tests.servers import Postgres, postgres_server  # noqa: E402
from tests.tls_certs import TestCA  # noqa: E402

VARIANTS = ("direct", "kpy", "direct_plain", "kpy_plain")
LABELS = {
    "direct": "direct, TLS",
    "kpy": "kpy, TLS",
    "direct_plain": "direct, plain",
    "kpy_plain": "kpy, plain",
}
MODES = ("keepalive", "new")
MODE_LABELS = {"keepalive": "keep-alive", "new": "new connection per request"}
PARTS = ("https", "pgbench", "bio")
BIO_RECORDS = 2000  # request/response pairs timed in the "bio" part
BIO_HANDSHAKES = 100
PG_SCALE = 10
CHILD_SLACK = 60.0  # seconds a client may overrun its own duration before it is killed


# --- the server's PKI: a throwaway CA, as a real API's own ---------------------------------


def throwaway_pki(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate it signs for 127.0.0.1 (EC P-256, tests/tls_certs.py),
    written to ``directory``: (CA certificate, server certificate, server key)."""
    ca = TestCA(directory, "tls_bench throwaway CA")
    server = ca.issue((), ("127.0.0.1",))
    return ca.cert_path, server.cert_path, server.key_path


# --- where a client's traffic goes -------------------------------------------------------


@contextmanager
def intercepting_session(
    stats: KpyRun, env: dict[str, str]
) -> Iterator[tuple[Session, Recording, dict[str, str], Termination]]:
    """As kpy_ci/record.py sets it up: a Termination (kpy's CA), the client's environment
    made to trust it (``trusting``), an Interception on that trust, Egress with a fresh
    Recording on a ProxyLoop, in a Session. Yields the session, the recording, the
    environment the client is to be started with, and the Termination."""
    recording = Recording()
    termination = Termination()
    loop = ProxyLoop()
    session: Session | None = None

    def lookup(peer: tuple[str, int]) -> Address | None:
        return session.original_destination(peer) if session else None

    try:
        with trusting(env, termination.authority.certificate_pem) as trusted:
            interception = Interception(trusted.trust, termination)
            egress = loop.listen(
                Address("127.0.0.1", 0), Egress(recording, lookup, interception).handle
            )
            session = Session(egress)
            loop_cpu = thread_cpu(loop._thread)
            with session:
                yield session, recording, trusted.env, termination
            stats.settle_s = settle(loop)
            stats.loop_cpu_s = thread_cpu(loop._thread) - loop_cpu
    finally:
        loop.close()


def run_client(
    argv: list[str], env: dict[str, str], through_kpy: bool, limit: float
) -> tuple[str, dict[str, Any]]:
    """Run a client direct, or inside an intercepting session; its stdout, and kpy's
    figures and how busy the CPUs were meanwhile."""
    if not through_kpy:
        start = cpu_ticks()
        out = run_to_end(subprocess.Popen, argv, limit, env)
        return out, {"busy": busy_since(start)}
    kpy = KpyRun()
    with intercepting_session(kpy, env) as (session, recording, client_env, termination):
        start = cpu_ticks()
        out = run_to_end(session.spawn, argv, limit, client_env)
        busy = busy_since(start)
    finish(recording, kpy)
    warnings = list(recording.warnings)
    drop(recording)
    del recording
    gc.collect()
    leaves = sorted({leaf.issuer for leaf, _ in termination._contexts})  # read only
    return out, {
        "kpy": vars(kpy),
        "busy": busy,
        "warning_samples": warnings[:3],
        "leaves": leaves,  # who signed what the client was shown: "kpy" or "self"
    }


# --- the parts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Upstreams:
    """The loopback HTTP server twice, each in a process of its own: over TLS (its
    certificate signed by ``ca``), and plain."""

    tls: CProcess
    plain: CProcess
    ca: Path


def https_run(
    upstreams: Upstreams, variant: str, mode: str, args: argparse.Namespace
) -> dict[str, Any]:
    tls = not variant.endswith("_plain")
    server = upstreams.tls if tls else upstreams.plain
    argv = [sys.executable, str(Path(__file__).resolve()), "_client", str(server.port), mode,
            str(args.seconds), str(args.warmup), "tls" if tls else "plain"]  # fmt: skip
    limit = args.seconds + args.warmup + CHILD_SLACK
    used = server.cpu_s()
    out, extra = run_client(
        argv, {"SSL_CERT_FILE": str(upstreams.ca)}, variant.startswith("kpy"), limit
    )
    res = json.loads(out)
    res["upstream_cpu_s"] = server.cpu_s() - used
    return {**res, **extra}


def part_https(upstreams: Upstreams, args: argparse.Namespace) -> dict[str, Any]:
    """One client, keep-alive and a new connection per request, each variant in turn."""
    found: dict[str, dict[str, list[dict[str, Any]]]] = {
        m: {v: [] for v in VARIANTS} for m in MODES
    }
    for r in range(args.rounds):
        for mode in MODES:
            for v in rotated(VARIANTS, r):
                res = https_run(upstreams, v, mode, args)
                found[mode][v].append(res)
                progress(
                    f"https {mode} {LABELS[v]}: {res['rps']:,.0f} req/s, median "
                    f"{res['median_us']:.0f} µs, p90 {res['p90_us']:.0f} µs",
                    res,
                )
    return found


_TPS = re.compile(r"^tps = ([\d.]+)", re.M)
_XACTS = re.compile(r"^number of transactions actually processed: (\d+)", re.M)


def pgbench(pg: Postgres, variant: str, clients: int, seconds: int) -> dict[str, Any]:
    jobs = "2" if clients > 1 else "1"
    argv = ["pgbench", "-n", "-S", "-M", "simple", "-c", str(clients), "-j", jobs,
            "-T", str(seconds), "-h", "127.0.0.1", "-p", str(pg.port)]  # fmt: skip
    tls = not variant.endswith("_plain")
    env = pg.env() | {
        "PGSSLMODE": "require" if tls else "disable",
        "PGCHANNELBINDING": "disable",
    }
    out, extra = run_client(argv, env, variant.startswith("kpy"), seconds + CHILD_SLACK)
    tps = float(_TPS.search(out)[1])  # type: ignore[index]
    return {
        "tps": tps,
        "latency_us": clients / tps * 1e6,
        "transactions": int(_XACTS.search(out)[1]),  # type: ignore[index]
        **extra,
    }


def check_pg_tls(pg: Postgres) -> None:
    """That the server speaks TLS and that PGSSLMODE reaches pgbench's libpq: psql, direct,
    asked what its connection is."""
    query = "select ssl from pg_stat_ssl where pid = pg_backend_pid()"
    for mode, want in (("require", "t"), ("disable", "f")):
        env = pg.env() | {"PGSSLMODE": mode, "PGCHANNELBINDING": "disable"}
        out = run_to_end(subprocess.Popen, ["psql", "-XAtc", query], 30, env).strip()
        if out != want:
            raise RuntimeError(f"PGSSLMODE={mode}: pg_stat_ssl.ssl is {out!r}, not {want!r}")


def part_pgbench(pg: Postgres, args: argparse.Namespace) -> dict[str, Any]:
    found: dict[str, dict[str, list[dict[str, Any]]]] = {
        f"c{c}": {v: [] for v in VARIANTS} for c in (1, 4)
    }
    for r in range(args.rounds):
        for c in (1, 4):
            for v in rotated(VARIANTS, r):
                res = pgbench(pg, v, c, args.pg_seconds)
                found[f"c{c}"][v].append(res)
                progress(
                    f"pgbench -c {c} {LABELS[v]}: {res['tps']:,.0f} tps, "
                    f"{res['latency_us']:.1f} µs",
                    res,
                )
    return found


def _pump(
    client: ssl.SSLObject,
    server: ssl.SSLObject,
    bios: tuple[ssl.MemoryBIO, ssl.MemoryBIO, ssl.MemoryBIO, ssl.MemoryBIO],
) -> tuple[int, int]:
    """A TLS handshake between two SSLObjects in this thread, over memory BIOs; the ns
    each side's do_handshake() took."""
    c_in, c_out, s_in, s_out = bios
    clock = time.perf_counter_ns
    spent = [0, 0]
    done = [False, False]
    while not all(done):
        for i, (obj, out, peer_in) in enumerate(((client, c_out, s_in), (server, s_out, c_in))):
            if not done[i]:
                t = clock()
                try:
                    obj.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
                spent[i] += clock() - t
            peer_in.write(out.read())
    return spent[0], spent[1]


def _pair(
    client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext
) -> tuple[ssl.SSLObject, ssl.SSLObject, tuple[ssl.MemoryBIO, ...], tuple[int, int]]:
    bios = tuple(ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(bios[0], bios[1], server_side=False, server_hostname="127.0.0.1")
    server = server_ctx.wrap_bio(bios[2], bios[3], server_side=True)
    return client, server, bios, _pump(client, server, bios)  # type: ignore[arg-type]


def part_bio(ca: Path, cert: Path, key: Path, args: argparse.Namespace) -> dict[str, Any]:
    """kpy's TLS work alone, in this process, with kpy's own contexts: what making them
    costs (the first connection to a name pays it), a handshake in each of kpy's two roles
    (server to the client with a leaf of the session's CA; client to the server, checking
    it against the service's trust: its CA file and the system's bundle), and one small
    record each way (the request, 60 B, and the answer, 110 B, as the HTTPS part sends)."""
    clock = time.perf_counter_ns
    res: dict[str, Any] = {}
    t = clock()
    termination = Termination()
    res["authority_us"] = (clock() - t) / 1e3
    t = clock()
    kpy_server = termination.for_name("127.0.0.1", ())  # the leaf, minted, and its context
    res["leaf_context_us"] = (clock() - t) / 1e3
    with trusting({"SSL_CERT_FILE": str(ca)}, termination.authority.certificate_pem) as trusted:
        t = clock()
        kpy_client = trusted.trust.verifying_context()  # ca.pem and the system's bundle
        res["verifying_context_us"] = (clock() - t) / 1e3
        res["trust_files"] = [str(f) for f in trusted.trust.files()]
        service = ssl.create_default_context(cafile=trusted.env["SSL_CERT_FILE"])
    upstream = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    upstream.load_cert_chain(cert, key)
    as_server, as_client = [], []
    for _ in range(BIO_HANDSHAKES):
        as_server.append(_pair(service, kpy_server)[3][1])  # kpy ends the service's TLS
        as_client.append(_pair(kpy_client, upstream)[3][0])  # kpy begins its own
    res["handshake_as_server_us"] = statistics.median(as_server) / 1e3
    res["handshake_as_client_us"] = statistics.median(as_client) / 1e3
    client, server, bios, _ = _pair(service, kpy_server)
    c_in, c_out, s_in, s_out = bios
    request = b"GET /items HTTP/1.1\r\nHost: 127.0.0.1:40000\r\nAccept: */*\r\n\r\n"
    decrypt, encrypt = [], []
    for _ in range(BIO_RECORDS):
        client.write(request)
        s_in.write(c_out.read())
        t = clock()
        # 16 KiB, a record's most. kpy asks for CHUNK (256 KiB): in a fresh process, glibc
        # then maps and unmaps the buffer on every read (+9 µs); in kpy's loop, once its
        # mmap threshold has risen, it does not (no mremap per request was counted there)
        got = server.read(16384)
        decrypt.append(clock() - t)
        assert got == request
        t = clock()
        server.write(RESPONSE)
        sent = s_out.read()
        encrypt.append(clock() - t)
        c_in.write(sent)
        client.read(16384)
    res["decrypt_us"] = statistics.median(decrypt) / 1e3
    res["encrypt_us"] = statistics.median(encrypt) / 1e3
    res["records"] = BIO_RECORDS
    res["handshakes"] = BIO_HANDSHAKES
    progress(
        f"bio: handshake as server {res['handshake_as_server_us']:.0f} µs, as client "
        f"{res['handshake_as_client_us']:.0f} µs; record decrypt {res['decrypt_us']:.1f} µs, "
        f"encrypt {res['encrypt_us']:.1f} µs; verifying context "
        f"{res['verifying_context_us'] / 1e3:.1f} ms, leaf + context "
        f"{res['leaf_context_us'] / 1e3:.1f} ms",
        {},
    )
    return res


# --- report ------------------------------------------------------------------------------

_T0 = time.perf_counter()


def progress(line: str, res: dict[str, Any]) -> None:
    if "busy" in res:
        line += f", CPUs {res['busy']:.0%} busy"
    kpy = res.get("kpy")
    if kpy:
        line += (
            f"  [loop CPU {kpy['loop_cpu_s']:.2f} s, recorded {kpy['exchanges']}, "
            f"finish {kpy['drain_s']:.2f} s, {kpy['warnings']} warnings]"
        )
    print(f"{time.perf_counter() - _T0:6.1f}s  {line}", file=sys.stderr, flush=True)


Runs = list[dict[str, Any]]


def med(runs: Runs, key: str) -> float:
    return float(statistics.median(r[key] for r in runs))


def spread(values: Sequence[float], fmt: str) -> str:
    m = statistics.median(values)
    if len(values) == 1:
        return format(m, fmt)
    return f"{format(m, fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def ratio(a: Runs, b: Runs, key: str) -> str:
    """a/b paired by round: median (min-max)."""
    values = [x[key] / y[key] for x, y in zip(a, b, strict=True)]
    m = statistics.median(values)
    return f"{m:.2f}x" if len(values) == 1 else f"{m:.2f}x ({min(values):.2f}-{max(values):.2f})"


def adds(a: Runs, b: Runs, key: str) -> str:
    """a - b paired by round, µs: median (min-max)."""
    return "+" + spread([x[key] - y[key] for x, y in zip(a, b, strict=True)], ".0f")


def cpu_per(runs: Runs, per: str) -> float:
    """kpy's loop CPU per request or transaction, µs, median over runs."""
    return float(statistics.median(r["kpy"]["loop_cpu_s"] / max(1, r[per]) * 1e6 for r in runs))


def report(res: dict[str, Any]) -> str:
    out: list[str] = []
    m = res["machine"]
    out.append(
        f"kernel {m['kernel']}, Python {m['python']}, {m['cpus']} CPUs ({m['cpu_model']}), "
        f"{m.get('openssl', '')}, pgbench {m['pgbench']}, commit {res.get('commit', '?')}, "
        f"settings {res['settings']}\n"
    )
    if "https" in res:
        out.append(
            "HTTP(S), one client: requests/s (medians over rounds; ratios paired by round: "
            "median (min-max))\n"
        )
        out.append(
            "| mode | direct, TLS | kpy, TLS | direct, plain | kpy, plain | kpy/direct, TLS "
            "| kpy/direct, plain | kpy TLS / kpy plain | kpy loop CPU µs/req: TLS · plain "
            "| server CPU µs/req: direct TLS · kpy TLS | CPUs busy |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for mode, by in res["https"].items():
            d, k, dp, kp = (by[v] for v in VARIANTS)
            rps = " | ".join(f"{med(by[v], 'rps'):,.0f}" for v in VARIANTS)
            server = " · ".join(
                f"{statistics.median(r['upstream_cpu_s'] / r['requests_all'] * 1e6 for r in x):.0f}"
                for x in (d, k)
            )
            busy = " · ".join(f"{med(by[v], 'busy'):.0%}" for v in VARIANTS)
            out.append(
                f"| {MODE_LABELS[mode]} | {rps} | {ratio(k, d, 'rps')} | {ratio(kp, dp, 'rps')} "
                f"| {ratio(k, kp, 'rps')} "
                f"| {cpu_per(k, 'requests_all'):,.0f} · {cpu_per(kp, 'requests_all'):,.0f} "
                f"| {server} | {busy} |"
            )
        out.append(
            "\nHTTP(S), one client: µs per request, median · p90 (medians over rounds); what "
            "kpy adds, paired by round: median (min-max)\n"
        )
        out.append(
            "| mode | direct, TLS | kpy, TLS | direct, plain | kpy, plain | kpy adds, TLS: "
            "median | p90 | kpy adds, plain: median | p90 | TLS adds in kpy (over kpy plain): "
            "median | first request, µs: direct TLS · kpy TLS |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for mode, by in res["https"].items():
            d, k, dp, kp = (by[v] for v in VARIANTS)
            lat = " | ".join(
                f"{med(by[v], 'median_us'):,.0f} · {med(by[v], 'p90_us'):,.0f}" for v in VARIANTS
            )
            out.append(
                f"| {MODE_LABELS[mode]} | {lat} | {adds(k, d, 'median_us')} "
                f"| {adds(k, d, 'p90_us')} | {adds(kp, dp, 'median_us')} "
                f"| {adds(kp, dp, 'p90_us')} | {adds(k, kp, 'median_us')} "
                f"| {med(d, 'first_us'):,.0f} · {med(k, 'first_us'):,.0f} |"
            )
        notes = []
        for mode, by in res["https"].items():
            k = by["kpy"]
            exchanges = statistics.median(r["kpy"]["exchanges"] / r["requests_all"] for r in k)
            drain = max(r["kpy"]["drain_s"] for r in k)
            warn = sum(r["kpy"]["warnings"] for v in ("kpy", "kpy_plain") for r in by[v])
            leaves = sorted({x for r in k for x in r["leaves"]})
            notes.append(
                f"{MODE_LABELS[mode]}: leaves signed by {leaves}, "
                f"{exchanges:.2f} exchanges recorded per request, "
                f"finish() ≤{drain:.2f} s, {warn} warnings"
            )
        out.append("\nkpy, TLS: " + "; ".join(notes) + "\n")
    if "bio" in res:
        b = res["bio"]
        out.append(
            "kpy's TLS work alone, in one thread over memory BIOs (median of "
            f"{b['handshakes']} handshakes, {b['records']} records):\n"
        )
        out.append("| what | µs |")
        out.append("|---|---|")
        rows = [
            ("a handshake as server, with the client (kpy's leaf, EC P-256)",
             b["handshake_as_server_us"]),
            ("a handshake as client, with the server (verified against the service's trust)",
             b["handshake_as_client_us"]),
            ("decrypting one request record (60 B)", b["decrypt_us"]),
            ("encrypting one answer record (110 B) and reading it off the BIO", b["encrypt_us"]),
            ("once per session: kpy's CA (three EC keys)", b["authority_us"]),
            ("once per name: the leaf, signed, and its server context", b["leaf_context_us"]),
            (f"once per ALPN: the verifying context ({len(b['trust_files'])} CA files)",
             b["verifying_context_us"]),
        ]  # fmt: skip
        out += [f"| {what} | {us:,.1f} |" for what, us in rows]
        out.append("")
    if "pgbench" in res:
        out.append(
            "pgbench -S -M simple: transactions/s, and µs per transaction (clients / tps); "
            "ratios and differences paired by round: median (min-max)\n"
        )
        out.append(
            "| cell | direct, TLS | kpy, TLS | direct, plain | kpy, plain | kpy/direct, TLS "
            "| kpy/direct, plain | kpy TLS / kpy plain | µs/txn: direct TLS · kpy TLS · "
            "direct plain · kpy plain | kpy adds, TLS | kpy adds, plain | TLS adds, direct "
            "| TLS adds, in kpy | kpy loop CPU µs/txn: TLS · plain | CPUs busy |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for cell, by in res["pgbench"].items():
            d, k, dp, kp = (by[v] for v in VARIANTS)
            tps = " | ".join(f"{med(by[v], 'tps'):,.0f}" for v in VARIANTS)
            lat = " · ".join(f"{med(by[v], 'latency_us'):.1f}" for v in VARIANTS)
            busy = " · ".join(f"{med(by[v], 'busy'):.0%}" for v in VARIANTS)
            out.append(
                f"| -c {cell[1:]} | {tps} | {ratio(k, d, 'tps')} | {ratio(kp, dp, 'tps')} "
                f"| {ratio(k, kp, 'tps')} | {lat} | {adds(k, d, 'latency_us')} "
                f"| {adds(kp, dp, 'latency_us')} | {adds(d, dp, 'latency_us')} "
                f"| {adds(k, kp, 'latency_us')} "
                f"| {cpu_per(k, 'transactions'):.1f} · {cpu_per(kp, 'transactions'):.1f} "
                f"| {busy} |"
            )
        warn = {
            v: sum(r["kpy"]["warnings"] for c in res["pgbench"].values() for r in c[v])
            for v in ("kpy", "kpy_plain")
        }
        sample = next(
            (w for c in res["pgbench"].values() for r in c["kpy"] for w in r["warning_samples"]),
            None,
        )
        leaves = sorted({x for c in res["pgbench"].values() for r in c["kpy"] for x in r["leaves"]})
        line = f"\nkpy, TLS: leaves shown signed by {leaves}; warnings: TLS {warn['kpy']}, "
        line += f"plain {warn['kpy_plain']}" + (f"; e.g. {sample}" if sample else "")
        out.append(line)
    return "\n".join(out)


def run(args: argparse.Namespace) -> dict[str, Any]:
    if noise := others_running():
        print(f"tls_bench: WARNING, the machine is not quiet: {noise}", file=sys.stderr)
    res: dict[str, Any] = {
        "machine": machine() | {"openssl": ssl.OPENSSL_VERSION},
        "commit": commit(ROOT),
        "noise_at_start": noise,
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "report")},
    }
    parts = [p for p in PARTS if p in args.only]
    with tempfile.TemporaryDirectory(prefix="kpy-tls-bench-") as tmp:
        if "https" in parts:
            ca, cert, key = throwaway_pki(Path(tmp))
            server = [sys.executable, str(Path(__file__).resolve()), "_upstream"]
            with (
                c_server([*server, str(cert), str(key)]) as tls,
                c_server(server) as plain,
            ):
                res["https"] = part_https(Upstreams(tls, plain, ca), args)
        if "bio" in parts:
            res["bio"] = part_bio(*throwaway_pki(Path(tmp)), args)
        if "pgbench" in parts:
            with postgres_server(tls=True) as pg:
                check_pg_tls(pg)
                t0 = time.perf_counter()
                init = ["pgbench", "-i", "-q", "-s", str(PG_SCALE),
                        "-h", "127.0.0.1", "-p", str(pg.port)]  # fmt: skip
                run_to_end(subprocess.Popen, init, 300, pg.env())
                progress(f"pgbench -i -s {PG_SCALE}: {time.perf_counter() - t0:.1f} s", {})
                res["pgbench"] = part_pgbench(pg, args)
    res["leftovers"] = leftovers()
    res["noise_at_end"] = [n for n in others_running() if not n.startswith("CPUs")]
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each variant per cell")
    parser.add_argument("--seconds", type=float, default=3.0, help="per HTTPS run, measured")
    parser.add_argument("--warmup", type=float, default=0.5, help="per HTTPS run, not counted")
    parser.add_argument("--pg-seconds", type=int, default=4, help="per pgbench run")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--report", type=Path, help="print the tables of an earlier --json")
    args = parser.parse_args(argv)
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return 0
    if min(args.seconds, args.pg_seconds, args.rounds) < 1 or args.warmup < 0:
        parser.error("durations and counts must be at least 1 (warm-up at least 0)")
    return measured("tls_bench", lambda: run(args), report, args.json)


if __name__ == "__main__":
    sys.exit(main())
