"""Benchmark of ``kpy validate`` and ``kpy drift --migrations DIR`` on large test-sets, side
by side in one run with what they should cost little more than: reading the set once.

Run as root from the project root, after scripts/install.sh (docs/BENCHMARKS.md, "kpy
validate and kpy drift", has the figures). The defaults take about 7.5 minutes, 6 of them the
three 100,000-mock children (about 2 minutes each: kpy reads a mock in about 1.2 ms);
``--sizes 10000`` takes about 1.5 minutes, ``--profile`` adds about 1.5:

    .venv/bin/python bench/schema_bench.py [--from DIR] [--sizes 10000 100000]
                                           [--rounds 2 1] [--profile] [--tree DIR] [--json F]
                                           # --report F reprints the tables of a --json

``--tree DIR`` runs the kpy_ci of another copy of the tree (kpy_ci/ and schemas/ copied
there: a before/after, or a snapshot that other people's edits cannot change mid-run).
No kpy.yml is given (as examples/shop/demo.sh gives none): the OpenAPI checks of HTTP
mocks and test cases are not in the figures; the lock check of every PostgreSQL mock is.

**The sets.** Nothing is recorded for them: one real recording is the template, the shop's
(``examples/shop/demo.sh`` into a temporary directory, or ``--from`` a set it wrote), and its
mocks.yaml is replicated, document by document as text, to N mocks: copy c of mock-K is
mock-(47c+K), its connection numbers moved past the copies before it, its times later by
the recording's length; copy c of each test lists its copies of the test's mocks (a last
partial copy keeps only the tests whose mocks all made it). test-set.yaml counts what is
there; schema.lock.yaml is the recording's with each statement's mock count scaled. The
smallest size is checked to pass ``kpy validate`` (exit 0) before anything is timed.

**Today's schema** for drift: examples/shop/seed.sql as 001_init.sql, then
``ALTER TABLE products DROP COLUMN stock;``: every test that read ``stock`` is stale (exit 3).

**The runs.** Each in its own child, one at a time, ``--rounds`` times per size (the order
rotating from round to round): ``python -m kpy_ci validate --path P``, ``python -m kpy_ci
drift --path P --migrations M``, and the baseline, a ``python -c`` child that reads the set
once as ``kpy test`` does (``load_set``: every test file, with its schema check; then
``MocksFile(path).scan()`` over every document). Wall time from spawn to exit; user and
system CPU and peak RSS (``ru_maxrss``) from ``os.wait4``. The same three on the template
itself (47 mocks) give the fixed part: start-up, imports, the validators. ``--profile``
then runs each once more under cProfile on the smallest size and prints where the time went.
"""

from __future__ import annotations

import argparse
import copy
import cProfile  # noqa: F401  # the children run it with -m; imported here so it is there
import json
import os
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # kpy_ci from the tree, when run as bench/schema_bench.py

import yaml  # noqa: E402
from children import commit  # noqa: E402  (bench/, the script's own folder)

from kpy_ci.config import Loader  # noqa: E402
from kpy_ci.schema import sql  # noqa: E402
from kpy_ci.schema.lock import LOCK_FILE, LockBuilder  # noqa: E402
from kpy_ci.store.reader import documents  # noqa: E402
from kpy_ci.store.serializer import document, dump  # noqa: E402

PYTHON = sys.executable
VARIANTS = ("read once", "validate", "drift")
CHILD_TIMEOUT = 600.0  # seconds for one child
DEMO = ROOT / "examples" / "shop" / "demo.sh"
SEED = ROOT / "examples" / "shop" / "seed.sql"
DROP = "ALTER TABLE products DROP COLUMN stock;\n"
FLOW_MAX = 80  # as kpy_ci/store/serializer.py: a short list of names goes on one line

# the baseline: the set read once, as kpy test reads it (tests whole, then every mock)
READ_ONCE = """
import sys
from pathlib import Path
from kpy_ci.store.reader import MocksFile, find_sets, load_set
tests = mocks = 0
for path in find_sets(Path(sys.argv[1])):
    test_set = load_set(path)
    tests += len(test_set.tests)
    file = MocksFile(test_set.mocks_file)
    try:
        mocks += sum(1 for _ in file.scan())
    finally:
        file.close()
print(f"read {tests} tests, {mocks} mocks", file=sys.stderr)
"""


def now() -> float:
    return time.perf_counter()


def progress(message: str) -> None:
    print(f"schema_bench: {message}", file=sys.stderr, flush=True)


# --- the template and the synthetic sets -------------------------------------------------

_MOCK_FIELDS = re.compile(rb"^(name|connection|started|ended): (.*)$", re.M)
_TEST_FIELDS = re.compile(r"^(name|started|ended): (.*)$", re.M)
_TEST_MOCKS = re.compile(r"^mocks:.*(?:\n- .*)*\n?", re.M)


@dataclass
class Template:
    """A recorded set, read once: its documents' text and what each copy renames."""

    path: Path
    mocks: list[bytes]  # each mock's text, from its ``---`` line
    tests: list[tuple[str, list[int]]]  # each test's text and its mocks (by index in mocks)
    meta: dict[str, Any]
    lock: dict[str, Any]
    sql_mocks: dict[str, list[int]]  # each locked statement's mocks (by index), by fingerprint
    host_mocks: dict[str, list[int]]  # each HTTP host's mocks (by index)
    connections: int  # the highest connection number: copy c adds c times this
    span: float  # seconds: copy c starts c times this later

    @classmethod
    def read(cls, path: Path) -> Template:
        with open(path / "mocks.yaml", "rb") as f:
            mocks = [text for _, text in documents(f)]
        parsed = [yaml.load(text, Loader=Loader) for text in mocks]
        index = {m["name"]: i for i, m in enumerate(parsed)}
        tests = []
        for file in sorted((path / "tests").glob("*.yaml"), key=_numbered):
            text = file.read_text()
            names = yaml.load(text, Loader=Loader).get("mocks", [])
            tests.append((text, [index[n] for n in names]))
        builder = LockBuilder(keep_names=True)
        for mock in parsed:
            builder.add(mock)
        sql_mocks = {
            key: [index[n] for n in names] for key, names in builder.mocks_by_query().items()
        }
        host_mocks: dict[str, list[int]] = {}
        for i, mock in enumerate(parsed):
            if mock["protocol"] == "http":
                headers = mock["request"].get("headers", [])
                host = next((v for n, v in headers if n.lower() == "host"), mock["destination"])
                host_mocks.setdefault(host, []).append(i)
        return cls(
            path=path,
            mocks=mocks,
            tests=tests,
            meta=yaml.load((path / "test-set.yaml").read_text(), Loader=Loader),
            lock=yaml.load((path / LOCK_FILE).read_text(), Loader=Loader),
            sql_mocks=sql_mocks,
            host_mocks=host_mocks,
            connections=max(m["connection"] for m in parsed),
            span=float(int(max(m["ended"] for m in parsed)) + 1),
        )


def _numbered(path: Path) -> tuple[int, str]:
    m = re.search(r"(\d+)$", path.stem)
    return (int(m.group(1)) if m else 0, path.name)


def _mock_copy(text: bytes, c: int, number: int, t: Template) -> bytes:
    def field(m: re.Match[bytes]) -> bytes:
        key, value = m.group(1), m.group(2)
        if key == b"name":
            return b"name: mock-%d" % number
        if key == b"connection":
            return b"connection: %d" % (int(value) + c * t.connections)
        return key + b": " + repr(round(float(value) + c * t.span, 6)).encode()

    return _MOCK_FIELDS.sub(field, text)


def _mocks_list(names: list[str]) -> str:
    """The test's ``mocks:`` as the serializer writes it."""
    if not names:
        return "mocks: []\n"
    if sum(len(n) + 2 for n in names) <= FLOW_MAX:
        return f"mocks: [{', '.join(names)}]\n"
    return "mocks:\n" + "".join(f"- {n}\n" for n in names)


def _test_copy(text: str, c: int, number: int, mocks: list[int], t: Template) -> str:
    def field(m: re.Match[str]) -> str:
        key, value = m.group(1), m.group(2)
        if key == "name":
            return f"name: test-{number}"
        return f"{key}: {round(float(value) + c * t.span, 6)!r}"

    names = [f"mock-{c * len(t.mocks) + i + 1}" for i in mocks]
    return _TEST_MOCKS.sub(lambda _: _mocks_list(names), _TEST_FIELDS.sub(field, text), count=1)


def write_set(t: Template, size: int, root: Path) -> Path:
    """``root``/shop: ``size`` mocks, copies of the template's, and their tests."""
    out = root / t.path.name
    (out / "tests").mkdir(parents=True)
    per_copy = len(t.mocks)
    copies, rest = divmod(size, per_copy)
    with open(out / "mocks.yaml", "wb") as f:
        for n in range(size):
            c, i = divmod(n, per_copy)
            f.write(_mock_copy(t.mocks[i], c, n + 1, t))
    tests = 0
    for c in range(copies + (rest > 0)):
        kept = per_copy if c < copies else rest
        for text, mocks in t.tests:
            if all(i < kept for i in mocks):
                tests += 1
                test = _test_copy(text, c, tests, mocks, t)
                (out / "tests" / f"test-{tests}.yaml").write_text(test)
    meta = {k: v for k, v in t.meta.items() if k not in ("version", "kind")}
    counts = {"tests": tests, "mocks": size}
    (out / "test-set.yaml").write_text(dump(document("TestSet", meta | counts)))
    lock = copy.deepcopy(t.lock)
    for entry in lock["postgres"]:
        for query in entry["queries"]:
            mocks = t.sql_mocks.get(sql.fingerprint(query["sql"]), [])
            query["mocks"] = sum(copies + (i < rest) for i in mocks)
    for entry in lock["http"]:  # each operation's count scaled as its host's mocks are
        mocks = t.host_mocks.get(entry["host"], [])
        scale = sum(copies + (i < rest) for i in mocks) / max(1, len(mocks))
        for op in entry["operations"]:
            op["mocks"] = round(op["mocks"] * scale)
    (out / LOCK_FILE).write_text(dump(lock))
    return out


def template_set(source: Path | None, tmp: Path) -> Path:
    """The recorded set to copy: ``source``, or the shop recorded now by demo.sh."""
    if source is not None:
        return source
    out = tmp / "demo"
    t0 = now()
    done = subprocess.run(
        [str(DEMO)],
        env=os.environ | {"KPY_DEMO_OUT": str(out)},
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"demo.sh failed ({done.returncode}):\n{done.stderr[-3000:]}")
    progress(f"recorded the shop with demo.sh in {now() - t0:.1f} s")
    return out / "shop"


def migrations_dir(tmp: Path) -> Path:
    out = tmp / "migrations"
    out.mkdir()
    shutil.copyfile(SEED, out / "001_init.sql")
    (out / "002_drop_stock.sql").write_text(DROP)
    return out


# --- one child, measured -----------------------------------------------------------------


def argv_of(variant: str, sets: Path, migrations: Path) -> list[str]:
    if variant == "read once":
        return [PYTHON, "-c", READ_ONCE, str(sets)]
    if variant == "validate":
        return [PYTHON, "-m", "kpy_ci", "validate", "--path", str(sets)]
    return [PYTHON, "-m", "kpy_ci", "drift", "--path", str(sets), "--migrations", str(migrations)]


EXPECTED = {"read once": 0, "validate": 0, "drift": 3}  # drift: products.stock was dropped


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (/proc/stat: all but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def measure(argv: list[str], log: Path, expected: int | None, tree: Path) -> dict[str, Any]:
    """One child from spawn to exit: wall, CPU and peak RSS (its own, from wait4), and
    how many CPUs the rest of the machine kept busy meanwhile (noise: others' tests)."""
    env = os.environ | {"PYTHONPATH": str(tree)}  # kpy_ci from ``tree``, before the venv's
    with open(log, "wb") as out:
        busy0, t0 = busy_seconds(), now()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=tree, env=env)
        watchdog = threading.Timer(CHILD_TIMEOUT, proc.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            wall, busy = now() - t0, busy_seconds() - busy0
        finally:
            watchdog.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if expected is not None and proc.returncode != expected:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{argv[1:5]}: exit {proc.returncode}, not {expected}:\n{tail}")
    return {
        "wall_s": wall,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "maxrss_kib": usage.ru_maxrss,  # KiB on Linux
        "others_cpus": max(0.0, busy - usage.ru_utime - usage.ru_stime) / wall,
        "said": log.read_text(errors="replace").strip().splitlines()[-1][:200],
    }


def run_size(
    label: str, sets: Path, migrations: Path, rounds: int, tmp: Path, tree: Path
) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    for r in range(rounds):
        order = VARIANTS[r % 3 :] + VARIANTS[: r % 3]
        for variant in order:
            argv = argv_of(variant, sets, migrations)
            runs[variant].append(measure(argv, tmp / "child.log", EXPECTED[variant], tree))
        walls = ", ".join(f"{v} {runs[v][-1]['wall_s']:.2f} s" for v in VARIANTS)
        progress(f"{label}, round {r + 1}/{rounds}: {walls}")
    return runs


# --- where the time goes -----------------------------------------------------------------

BUCKETS = (  # first match wins: where a function's own time (tottime) is counted
    ("YAML (PyYAML, libyaml)", ("/yaml/", "_yaml")),
    ("JSON Schema (jsonschema, referencing)", ("/jsonschema", "/referencing/", "rpds")),
    ("pglast", ("/pglast/",)),
    ("kpy_ci/schema/files.py", ("kpy_ci/schema/files.py",)),
    ("kpy_ci/schema/validate.py", ("kpy_ci/schema/validate.py",)),
    ("kpy_ci/schema/check.py", ("kpy_ci/schema/check.py",)),
    ("kpy_ci/schema/lock.py, sql.py", ("kpy_ci/schema/lock.py", "kpy_ci/schema/sql")),
    ("kpy_ci/store/reader.py", ("kpy_ci/store/reader.py",)),
    ("kpy_ci/config.py", ("kpy_ci/config.py",)),
    ("kpy_ci, the rest", ("kpy_ci/",)),
    ("imports (frozen importlib)", ("<frozen",)),
    ("builtins, I/O, re", ("~",)),
)


def profile(variant: str, sets: Path, migrations: Path, tmp: Path, tree: Path) -> dict[str, Any]:
    """The child once more under cProfile: its time by bucket, and its top functions."""
    out = tmp / f"{variant.replace(' ', '-')}.prof"
    argv = argv_of(variant, sets, migrations)
    if variant == "read once":
        script = tmp / "read_once.py"
        script.write_text(READ_ONCE)
        argv = [PYTHON, "-m", "cProfile", "-o", str(out), str(script), str(sets)]
    else:
        argv = [PYTHON, "-m", "cProfile", "-o", str(out), *argv[1:]]
    measure(argv, tmp / "child.log", None, tree)  # under cProfile, kpy's exit code is lost
    stats = pstats.Stats(str(out))
    table: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for _, _, tt, _, _ in table.values())
    buckets = dict.fromkeys([name for name, _ in BUCKETS] + ["other"], 0.0)
    for (file, _, _), (_, _, tt, _, _) in table.items():
        name = next((n for n, marks in BUCKETS if any(m in file for m in marks)), "other")
        buckets[name] += tt

    def where(key: tuple[str, int, str]) -> str:
        file, line, func = key
        short = file.split("site-packages/")[-1]
        short = "kpy_ci/" + short.split("kpy_ci/", 1)[1] if "kpy_ci/" in short else short
        return f"{short}:{line}({func})" if file != "~" else func

    by = sorted(table.items(), key=lambda kv: kv[1][2], reverse=True)[:12]
    cum = sorted(
        (kv for kv in table.items() if "kpy_ci/" in kv[0][0]),
        key=lambda kv: kv[1][3],
        reverse=True,
    )[:15]
    return {
        "total_s": total,
        "buckets_s": {k: v for k, v in buckets.items() if v > 0},
        "top_tottime": [(where(k), v[1], v[2]) for k, v in by],
        "top_kpy_cumtime": [(where(k), v[1], v[3]) for k, v in cum],
    }


# --- the report --------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def secs(s: float) -> str:
    return f"{s:,.2f} s" if s < 100 else f"{s:,.0f} s"


def _medians(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Per variant: median wall, CPU (user + system) and peak RSS (MiB) of its rounds."""
    return {
        v: {
            "wall": median([r["wall_s"] for r in runs[v]]),
            "cpu": median([r["user_s"] + r["sys_s"] for r in runs[v]]),
            "rss": median([r["maxrss_kib"] for r in runs[v]]) / 1024,
        }
        for v in VARIANTS
    }


def _cell(m: dict[str, float]) -> str:
    return f"{secs(m['wall'])} / {secs(m['cpu'])} / {m['rss']:,.0f} MiB"


def _ratio(runs: dict[str, list[dict[str, Any]]], variant: str) -> str:
    """Wall (the median's, and each round's range) and peak RSS, over reading once."""
    m = _medians(runs)
    base, it = m["read once"], m[variant]
    pairs = zip(runs[variant], runs["read once"], strict=True)
    each = [a["wall_s"] / b["wall_s"] for a, b in pairs]
    spread = f" ({min(each):.2f}-{max(each):.2f})" if len(each) > 1 else ""
    cpu, rss = it["cpu"] / base["cpu"], it["rss"] / base["rss"]
    return f"**{it['wall'] / base['wall']:.2f}x**{spread}, CPU {cpu:.2f}x, RSS {rss:.2f}x"


def _others(runs: dict[str, list[dict[str, Any]]]) -> str:
    """CPUs the rest of the machine kept busy during these children: median, max."""
    loads = [r["others_cpus"] for v in VARIANTS for r in runs[v]]
    return f"{median(loads):.2f}, max {max(loads):.2f} CPUs"


def table(res: dict[str, Any]) -> str:
    lines = [
        "| mocks (tests) | files | rounds | read once: wall / CPU / peak RSS "
        "| kpy validate | kpy drift --migrations | validate / read once | drift / read once "
        "| others' load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size in res["sizes"]:
        runs = size["runs"]
        m = _medians(runs)
        lines.append(
            f"| {size['mocks']:,} ({size['tests']:,}) | {size['mocks_mib']:,.1f} MiB mocks.yaml, "
            f"{size['tests_mib']:,.1f} MiB tests | {len(runs['read once'])} "
            f"| {_cell(m['read once'])} | {_cell(m['validate'])} | {_cell(m['drift'])} "
            f"| {_ratio(runs, 'validate')} | {_ratio(runs, 'drift')} | {_others(runs)} |"
        )
    return "\n".join(lines)


def profile_text(res: dict[str, Any]) -> str:
    out = []
    for variant, p in res.get("profile", {}).items():
        out += ["", f"cProfile of {variant} on {res['profiled_mocks']:,} mocks: "
                f"{p['total_s']:.2f} s of own time"]  # fmt: skip
        out += [f"  {s:7.2f} s {100 * s / p['total_s']:5.1f}%  {name}"
                for name, s in sorted(p["buckets_s"].items(), key=lambda kv: -kv[1])]  # fmt: skip
        out += ["  top functions by own time (calls, seconds):"]
        out += [f"    {tt:7.2f} s {calls:>9,}  {w}" for w, calls, tt in p["top_tottime"]]
        out += ["  kpy_ci functions by cumulative time (calls, seconds):"]
        out += [f"    {ct:7.2f} s {calls:>9,}  {w}" for w, calls, ct in p["top_kpy_cumtime"]]
    return "\n".join(out)


def report(res: dict[str, Any]) -> str:
    m = res["machine"]
    head = (
        f"{m['cpus']} CPUs ({m['cpu_model']}), kernel {m['kernel']}, Python {m['python']}; "
        f"commit {m['commit']}; {res['seconds']:.0f} s; template: {res['template']}; "
        f"others kept {res['others_before_cpus']:.2f} CPUs busy before the run"
    )
    return "\n".join([head, "", table(res), profile_text(res)])


# --- the run -----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": commit(ROOT),
    }


def dir_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def run(args: argparse.Namespace) -> dict[str, Any]:
    tree = args.tree.resolve()
    res: dict[str, Any] = {"machine": machine(), "tree": str(tree), "sizes": []}
    if tree != ROOT:
        res["machine"]["commit"] += f", kpy_ci from {tree}"
    t0, busy0 = now(), busy_seconds()
    time.sleep(1.0)  # how busy the machine is before anything starts: CPUs over one second
    res["others_before_cpus"] = busy_seconds() - busy0
    tmp = Path(tempfile.mkdtemp(prefix="kpy-schema-bench-"))
    tmp.chmod(0o755)
    try:
        template = Template.read(template_set(args.source, tmp))
        res["template"] = (
            f"{template.path.name}, {len(template.mocks)} mocks, {len(template.tests)} tests"
        )
        migrations = migrations_dir(tmp)
        label = f"{len(template.mocks)} mocks"
        base = run_size(label, template.path.parent, migrations, max(args.rounds), tmp, tree)
        res["sizes"].append(_size_result(template.path, base))
        for k, size in enumerate(sorted(args.sizes)):
            sets = tmp / f"sets-{size}"
            t = now()
            made = write_set(template, size, sets)
            progress(f"wrote {size:,} mocks in {now() - t:.1f} s ({dir_mib(made):,.1f} MiB)")
            # every validate run must exit 0: the figures are of a set whose files all pass
            rounds = args.rounds[min(k, len(args.rounds) - 1)]
            runs = run_size(f"{size:,} mocks", sets, migrations, rounds, tmp, tree)
            res["sizes"].append(_size_result(made, runs))
            if args.profile and k == 0:
                res["profiled_mocks"] = size
                res["profile"] = {v: profile(v, sets, migrations, tmp, tree) for v in VARIANTS}
            shutil.rmtree(sets)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["seconds"] = now() - t0
    if (end := commit(ROOT)) != res["machine"]["commit"].split(",")[0]:
        progress(f"WARNING: kpy_ci changed during the run: {res['machine']['commit']} -> {end}")
        res["machine"]["commit"] += f" (then {end})"
    return res


def _size_result(set_dir: Path, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    with open(set_dir / "mocks.yaml", "rb") as f:
        mocks = sum(1 for _ in documents(f))
    return {
        "mocks": mocks,
        "tests": len(list((set_dir / "tests").glob("*.yaml"))),
        "mocks_mib": (set_dir / "mocks.yaml").stat().st_size / 2**20,
        "tests_mib": dir_mib(set_dir / "tests"),
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="source", type=Path, help="a recorded set to copy")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--rounds", type=int, nargs="+", default=[2, 1],
                        help="per size, smallest first (the last applies to the rest)")  # fmt: skip
    parser.add_argument("--profile", action="store_true", help="cProfile on the smallest size")
    parser.add_argument("--tree", type=Path, default=ROOT,
                        help="run the kpy_ci of this copy of the tree")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--report", type=Path, help="print the tables of an earlier --json")
    args = parser.parse_args(argv)
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return 0
    if min(args.rounds) < 1 or min(args.sizes) < 1:
        parser.error("rounds and sizes must be at least 1")
    if args.source is None and os.geteuid() != 0:
        parser.error("demo.sh needs root to start PostgreSQL (or give --from a recorded set)")
    res = run(args)
    print(report(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
