"""The loop a scheduled job runs, end to end on the shop: a migration lands on staging; the PR
gate (`kpy test --check-drift`) fails the stale tests as re-record needed, naming the
migration line, while the rest replay green; `kpy record --from-set` re-records just those
tests on the migrated database; drift is then clean, and `kpy test` passes with every
dependency stopped."""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from junitparser import JUnitXml

from tests import drift_helpers
from tests.examples.shop import SHOP, TRAFFIC_LINES, reset, shop_env
from tests.servers import pg_bin
from tests.test_record import TRAFFIC, kpy_record, shop_stack

RETYPE = "ALTER TABLE products\n    ALTER COLUMN price TYPE numeric(12, 3);\n"


def kpy(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A re-record and a replay of the whole shop may take longer than a drift."""
    return drift_helpers.kpy(*args, env=env, timeout=180)


def stale(report: Path) -> list[str]:
    [shop] = yaml.safe_load(report.read_text())["sets"]
    return list(shop["stale_tests"])


def test_check_drift_then_rerecord_the_stale_tests_then_replay_green(tmp_path: Path) -> None:
    out = tmp_path / "kpy"
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    shutil.copy(SHOP / "seed.sql", migrations / "001_init.sql")
    (migrations / "002_price_precision.sql").write_text(RETYPE)
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\n")
    app = shlex.join([sys.executable, str(SHOP / "app.py")])
    with shop_stack(tmp_path) as (pg, redis, rates_port, dns):
        argv, env = kpy_record(pg, redis, rates_port, out, dns, TRAFFIC, "--set", "shop")
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        port = argv[argv.index("--port") + 1]
        shop = shop_env(pg, redis, int(port), rates_port)

        # the PR gate, before anyone re-records: the stale tests fail as schema drift
        junit = tmp_path / "gate.xml"
        gate = kpy(
            "test", "-c", app, "--path", str(out), "--resolv-conf", str(resolv),
            "--check-drift", "--migrations", str(migrations), "--junit", str(junit), env=shop,
        )  # fmt: skip
        assert gate.returncode == 3, gate.stderr
        assert "products.price type changed: numeric(10,2) -> numeric(12,3)" in gate.stderr
        cases = list(next(iter(JUnitXml.fromfile(str(junit)))))
        drifted = sorted(c.name for c in cases if c.result and c.result[0].type == "schema-drift")
        assert drifted and len(drifted) < TRAFFIC_LINES
        assert all(not c.result for c in cases if c.name not in drifted)  # the rest pass
        message = next(c.result[0].message for c in cases if c.name in drifted)
        assert message.startswith("re-record needed: postgres ")
        assert f"({migrations / '002_price_precision.sql'}:1)" in message

        # staging is migrated; drift against it names the same tests
        db = dataclasses.replace(pg, database="kpy_shop")
        subprocess.run(
            [pg_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", RETYPE],
            env=os.environ | db.env(),
            check=True,
            capture_output=True,
        )
        report = tmp_path / "drift.yaml"
        done = kpy("drift", "--path", str(out), "--dsn", db.dsn(), "--report", str(report), env={})
        assert done.returncode == 3, done.stderr
        names = stale(report)
        assert sorted(names) == drifted

        before = {f.name: f.read_bytes() for f in (out / "shop" / "tests").iterdir()}
        reset(pg, redis)  # staging re-seeded, as before any recording (the migration stays)
        again = kpy(
            "record", "--from-set", str(out / "shop"), "--tests", ",".join(names),
            "-c", app, "--dns-upstream", f"127.0.0.1:{dns.port}", env=shop,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        after = {f.name: f.read_bytes() for f in (out / "shop" / "tests").iterdir()}
        changed = sorted(n.removesuffix(".yaml") for n in before if before[n] != after[n])
        assert changed == drifted  # just those, the others byte for byte
        done = kpy("drift", "--path", str(out), "--dsn", db.dsn(), "--report", str(report), env={})
        assert done.returncode == 0, done.stderr
        assert stale(report) == []
        assert kpy("validate", "--path", str(out), env={}).returncode == 0
    # every dependency is gone now: the re-recorded set replays green
    done = kpy("test", "-c", app, "--path", str(out), "--resolv-conf", str(resolv), env=shop)
    assert done.returncode == 0, done.stderr
    assert f"kpy: {TRAFFIC_LINES} passed, 0 failed" in done.stderr
