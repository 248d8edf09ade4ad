"""kpy test on the sample shop: recorded against real PostgreSQL, Redis and the rates API,
which are then stopped for real (their ports closed); the replay passes, 20 times in a row,
and each regression injected into the shop fails with a message naming what changed.
The JUnit report validates against Jenkins' XSD (plus testcase file/line) and junitparser
reads it; on GitHub Actions the summary, annotations and outputs are written."""

from __future__ import annotations

import re
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from junitparser import JUnitXml

from kpy_ci.replay import in_shard
from tests.conftest import KPY, child_env, leftover_cgroups, no_kpy_left
from tests.examples.shop import RATES_TOKEN, SHOP, TRAFFIC_LINES, shop_env
from tests.report.test_junit import validates
from tests.test_record import TRAFFIC, kpy_record, shop_stack
from tests.test_replay_generic import line_server


@dataclass(frozen=True)
class Recorded:
    kpy: Path
    env: dict[str, str]
    """The shop's environment as recorded: its dependencies' addresses, now closed."""
    closed: list[int]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """The shop recorded on servers of its own, which are gone when this yields."""
    tmp = tmp_path_factory.mktemp("replay")
    out = tmp / "kpy"
    with shop_stack(tmp) as (pg, redis, rates_port, dns):
        argv, env = kpy_record(pg, redis, rates_port, out, dns, TRAFFIC, "--set", "shop")
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        port = int(argv[argv.index("--port") + 1])
        shop = shop_env(pg, redis, port, rates_port)
        closed = [pg.port, redis.port, rates_port]
    for port in closed:  # stopped for real: nothing answers there any more
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
    yield Recorded(out, shop, closed)


def kpy_test(
    rec: Recorded,
    tmp_path: Path,
    app: Path = SHOP / "app.py",
    *extra: str,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\n")
    argv = [
        *KPY, "test", "-c", shlex.join([sys.executable, str(app)]), "--path", str(rec.kpy),
        "--resolv-conf", str(resolv), *extra,
    ]  # fmt: skip
    run_env = child_env() | rec.env | (env or {})
    for name in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        if env is None or name not in env:
            run_env.pop(name, None)
    return subprocess.run(argv, env=run_env, capture_output=True, text=True, timeout=180)


def test_replay_passes_with_every_dependency_gone(recorded: Recorded, tmp_path: Path) -> None:
    report = tmp_path / "junit.xml"
    done = kpy_test(recorded, tmp_path, SHOP / "app.py", "--junit", str(report))
    assert done.returncode == 0, done.stderr
    assert f"kpy: {TRAFFIC_LINES} passed, 0 failed" in done.stderr
    xml = JUnitXml.fromfile(str(report))
    [suite] = list(xml)
    assert suite.name == "shop" and suite.tests == TRAFFIC_LINES and suite.failures == 0
    validates(report, tmp_path)
    cases = list(suite)
    assert {Path(c._elem.get("file")).name for c in cases} == {
        f"test-{k}.yaml" for k in range(1, TRAFFIC_LINES + 1)
    }
    assert leftover_cgroups() == []
    no_kpy_left()


def test_twenty_replays_in_a_row_pass(recorded: Recorded, tmp_path: Path) -> None:
    for run in range(20):
        done = kpy_test(recorded, tmp_path)
        assert done.returncode == 0, f"replay {run + 1} of 20 failed:\n{done.stderr}"


def regressed(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the shop's app.py with one change."""
    source = (SHOP / "app.py").read_text()
    assert source.count(old) == 1, old
    app = tmp_path / "app.py"
    app.write_text(source.replace(old, new))
    return app


REGRESSIONS = {
    "changed response field": (
        'return {**row, "price": str(row["price"])}',
        'return {**row, "price": str(row["price"]).replace(".", ",")}',
        # GET /products/2 answers the changed field; GET /products also caches it in Redis,
        # whose SET then matches no mock
        [
            "response changed: body.price: '19.99' -> '19,99'",
            "matched no mock: SET shop:products",
        ],
    ),
    "changed SQL query": (
        'sql = f"{PRODUCT_COLUMNS} WHERE id = %s"',
        'sql = f"{PRODUCT_COLUMNS} WHERE id = %s AND stock >= 0"',
        [
            "postgres call to 127.0.0.1:",
            "matched no mock: SELECT id, sku, name, price, stock FROM products WHERE id = $1"
            " AND stock >= 0",
            "-  sql: SELECT id, sku, name, price, stock FROM products WHERE id = $1",
        ],
    ),
    "removed endpoint": (
        '@app.get("/stats")\n',
        "",
        ["GET /stats", "response changed: status: 200 -> 404", "redis GET shop:orders"],
    ),
    "extra outbound call": (
        '    return jsonify({"status": "ok"})',
        '    cache().get("shop:extra")\n    return jsonify({"status": "ok"})',
        ["GET /health", "redis call to 127.0.0.1:", "matched no mock: GET shop:extra"],
    ),
    "dropped database write": (
        '        conn.execute("UPDATE products SET stock = stock - %s WHERE id = %s", '
        "(quantity, product_id))\n",
        "",
        [
            "POST /orders",
            "expected call not made: mock-",
            "postgres UPDATE products SET stock = stock - $1 WHERE id = $2",
        ],
    ),
}


@pytest.mark.parametrize("regression", list(REGRESSIONS))
def test_regressions_fail_and_say_what_changed(
    recorded: Recorded, tmp_path: Path, regression: str
) -> None:
    old, new, said = REGRESSIONS[regression]
    report = tmp_path / "junit.xml"
    done = kpy_test(recorded, tmp_path, regressed(tmp_path, old, new), "--junit", str(report))
    assert done.returncode == 1, done.stderr
    for text in said:
        assert text in done.stderr, f"{text!r} not in:\n{done.stderr}"
    [suite] = list(JUnitXml.fromfile(str(report)))
    failed = [c for c in suite if c.result]
    assert failed and suite.failures == len(failed)
    validates(report, tmp_path)


def test_dropped_write_keeps_the_response_and_still_fails(
    recorded: Recorded, tmp_path: Path
) -> None:
    """The one regression no response shows: only the write the recording expected says it."""
    old, new, _ = REGRESSIONS["dropped database write"]
    done = kpy_test(recorded, tmp_path, regressed(tmp_path, old, new))
    assert done.returncode == 1
    fails = [line for line in done.stderr.splitlines() if line.startswith("FAIL ")]
    assert len(fails) >= 1 and all("expected call not made" in line for line in fails[:1])
    assert "response changed" not in "\n".join(fails)


def test_no_secret_reaches_a_report(recorded: Recorded, tmp_path: Path) -> None:
    """A call that misses is shown in the report with its nearest mocks, redacted as a
    recording is: the rates API's bearer token, which the shop sends, is in no written byte."""
    app = regressed(tmp_path, "/rates?", "/v2/rates?")
    report, summary = tmp_path / "junit.xml", tmp_path / "summary.md"
    github = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    done = kpy_test(recorded, tmp_path, app, "--junit", str(report), env=github)
    assert done.returncode == 1
    assert "http call to 127.0.0.1:" in done.stderr and "GET /v2/rates?from=USD" in done.stderr
    written = report.read_bytes() + summary.read_bytes() + (done.stdout + done.stderr).encode()
    # the nearest mock's diff shows what changed; unredacted, the Authorization line would
    # differ too (recorded redacted, sent with the token) and show the token
    assert b"+url: /v2/rates?from=USD" in report.read_bytes()
    assert RATES_TOKEN.encode() not in written


def test_github_actions_reports(recorded: Recorded, tmp_path: Path) -> None:
    old, new, _ = REGRESSIONS["changed response field"]
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs"
    github = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_WORKSPACE": str(tmp_path),
    }
    junit = tmp_path / "junit.xml"
    done = kpy_test(
        recorded, tmp_path, regressed(tmp_path, old, new), "--junit", str(junit), env=github
    )
    assert done.returncode == 1
    annotations = [line for line in done.stdout.splitlines() if line.startswith("::error ")]
    assert annotations and all("file=" in a and ",line=" in a for a in annotations)
    assert "test-" in annotations[0] and ".yaml" in annotations[0]
    # the annotation of the changed field points at its line in the test file
    [changed] = [a for a in annotations if "test-4.yaml" in a]
    line = int(changed.split(",line=")[1].split(",")[0])
    test_file = recorded.kpy / "shop" / "tests" / "test-4.yaml"
    at = test_file.read_text().splitlines()[line - 1].strip()
    assert at == "price: '19.99'", (changed, done.stderr)
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert values["total"] == str(TRAFFIC_LINES) and int(values["failed"]) >= 1
    assert int(values["passed"]) + int(values["failed"]) == TRAFFIC_LINES
    assert values["junit"] == str(junit)
    text = summary.read_text()
    assert text.count("<details>") == text.count("</details>") >= 1
    assert "price" in text


def test_shards_split_the_suite_and_merge(recorded: Recorded, tmp_path: Path) -> None:
    names: list[set[str]] = []
    reports = []
    for i in (1, 2, 3):
        report = tmp_path / f"shard-{i}.xml"
        done = kpy_test(
            recorded, tmp_path, SHOP / "app.py", "--shard", f"{i}/3", "--junit", str(report)
        )
        assert done.returncode == 0, done.stderr
        if "drew none of the" in done.stderr:  # a shard may draw no test of a small suite
            continue
        reports.append(report)
        [suite] = list(JUnitXml.fromfile(str(report)))
        names.append({c.name for c in suite})
    assert sum(len(n) for n in names) == TRAFFIC_LINES
    assert set().union(*names) == {f"test-{k}" for k in range(1, TRAFFIC_LINES + 1)}
    merged = tmp_path / "merged.xml"
    done = subprocess.run(
        [*KPY, "report", "merge", "-o", str(merged), *map(str, reports)],
        env=child_env(), capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [suite] = list(JUnitXml.fromfile(str(merged)))
    assert suite.tests == TRAFFIC_LINES


def test_a_shard_that_draws_no_test_passes_and_says_so(recorded: Recorded, tmp_path: Path) -> None:
    names = [f"test-{k}" for k in range(1, TRAFFIC_LINES + 1)]
    empty = next(i for i in range(1, 41) if not any(in_shard("shop", n, (i, 40)) for n in names))
    done = kpy_test(recorded, tmp_path, SHOP / "app.py", "--shard", f"{empty}/40")
    assert done.returncode == 0, done.stderr
    assert f"kpy: shard {empty}/40 drew none of the {TRAFFIC_LINES} tests" in done.stderr


def test_bad_test_file_names_file_line_and_field(recorded: Recorded, tmp_path: Path) -> None:
    broken = tmp_path / "kpy"
    shutil.copytree(recorded.kpy, broken)
    test = broken / "shop" / "tests" / "test-3.yaml"
    test.write_text(test.read_text().replace("status: 200", "status: two hundred", 1))
    done = kpy_test(Recorded(broken, recorded.env, recorded.closed), tmp_path)
    assert done.returncode == 2
    [line] = [x for x in done.stderr.splitlines() if x.startswith("kpy: ")]
    assert f"{test}:" in line and "response.status" in line
    assert leftover_cgroups() == []


def test_junit_lists_where_each_tests_traffic_went(recorded: Recorded, tmp_path: Path) -> None:
    """The egress ledger: GET /products/{id} made to read its row from PostgreSQL (served),
    ask Redis for a key never recorded (refused, on a connection the pool opened in an
    earlier test) and talk twice to a real audit server on loopback that a passthrough rule
    lets it reach; the JUnit <system-out> of its test says all three, before the log."""
    source = (SHOP / "app.py").read_text()
    changes = {
        "import signal\n": "import signal\nimport socket\n",
        '    if row is None:\n        raise ApiError(404, f"product {product_id}': (
            "    for _ in range(2):  # an audit log the replay lets it reach (--passthrough)\n"
            '        audit = ("127.0.0.1", int(os.environ["AUDIT_PORT"]))\n'
            "        with socket.create_connection(audit, timeout=5) as s:\n"
            '            s.sendall(b"audit\\n")\n'
            "            s.recv(64)\n"
            '    cache().get("shop:extra")\n'
            '    if row is None:\n        raise ApiError(404, f"product {product_id}'
        ),
    }
    for old, new in changes.items():
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    app = tmp_path / "app.py"
    app.write_text(source)
    report = tmp_path / "junit.xml"
    pg_port, redis_port, _ = recorded.closed
    with line_server(b"") as audit:
        done = kpy_test(
            recorded, tmp_path, app, "--junit", str(report), "--passthrough",
            f"127.0.0.1:{audit}", env={"AUDIT_PORT": str(audit)},
        )  # fmt: skip
    assert done.returncode == 1, done.stderr  # the refused call still fails its test
    validates(report, tmp_path)
    [suite] = list(JUnitXml.fromfile(str(report)))
    outs = {c.name: c.system_out or "" for c in suite}
    assert all(out.startswith("kpy: egress during this test") for out in outs.values()), outs
    [out] = [o for o in outs.values() if "GET /products/2 failed" in o]
    ledger = out[: out.index("\n", out.index("passed through: "))]
    print(ledger)  # shown with -s: what a reader of the report sees
    assert re.search(
        rf"#\d+ postgres 127\.0\.0\.1:{pg_port}: \d+ calls served from mocks \(mock-\d+", ledger
    ), ledger
    assert re.search(
        rf"#\d+ redis 127\.0\.0\.1:{redis_port} \(opened earlier\): "
        r"1 refused: GET shop:extra matched no mock",
        ledger,
    ), ledger
    assert f"passed through: 2 connections to 127.0.0.1:{audit} (passthrough rule)" in ledger
    # the test without outbound calls says so
    assert any(o.startswith("kpy: egress during this test: none\n") for o in outs.values())
