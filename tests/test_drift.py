"""kpy drift end to end on the shop: recorded on a real PostgreSQL (with no kpy.yml, and again
with a DSN and the rates API's OpenAPI document named in kpy.yml), then each migration is
applied on its own; drift must flag exactly the tests whose recorded SQL touches the change,
from the live database and from the migration files alone. Which tests those are is found
here independently, by searching each test's mocks' SQL text for the changed column."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.dns_server import DnsServer
from tests.drift_helpers import (
    Step,
    check_verdict,
    drift,
    flagged,
    kpy,
    migrated_copy,
    migrations_dir,
    stale_by_oracle,
    word,
)
from tests.examples.shop import DATABASE, SHOP, reset
from tests.servers import Postgres, postgres_server, redis_server
from tests.test_record import TRAFFIC, kpy_record, rates_service

SEED = SHOP / "seed.sql"


STEPS = [
    Step("add_nullable", "ALTER TABLE products ADD COLUMN color text;\n", lambda sql: False),
    Step("drop_read", "ALTER TABLE products DROP COLUMN stock;\n", word("stock")),
    Step(
        "rename",
        "ALTER TABLE orders\n    RENAME COLUMN currency TO currency_code;\n",
        word("currency"),
    ),
    Step(
        "retype",
        "ALTER TABLE products ALTER COLUMN price TYPE numeric(12, 3);\n",
        lambda sql: word("price")(sql) and "products" in sql,
    ),
    Step("index", "CREATE INDEX products_name_idx ON products (name);\n", lambda sql: False),
    Step(
        "not_null",
        "ALTER TABLE orders ADD COLUMN note text;\nUPDATE orders SET note = '';\n"
        "ALTER TABLE orders ALTER COLUMN note SET NOT NULL;\n",
        lambda sql: sql.startswith("INSERT INTO orders"),
    ),
]


@dataclass(frozen=True)
class Sets:
    plain: Path
    """Recorded with no kpy.yml."""
    configured: Path
    """Recorded with kpy.yml naming the DSN's variable and the rates API's OpenAPI."""
    pg: Postgres
    rates_host: str


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sets]:
    tmp = tmp_path_factory.mktemp("drift")
    with (
        postgres_server() as pg,
        redis_server(tmp / "redis") as redis,
        rates_service(tmp) as rates_port,
        DnsServer({}) as dns,
    ):
        host = f"127.0.0.1:{rates_port}"
        configured = tmp / "configured"
        configured.mkdir()
        shutil.copy(SHOP / "rates.openapi.yaml", configured / "rates.openapi.yaml")
        (configured / "kpy.yml").write_text(
            yaml.safe_dump(
                {
                    "version": "kpy/v1",
                    "kind": "Config",
                    "schemas": {
                        "postgres": {"dsn_env": "DATABASE_URL"},
                        "openapi": {host: "rates.openapi.yaml"},
                    },
                }
            )
        )
        for out in (tmp / "plain", configured):
            reset(pg, redis)
            argv, env = kpy_record(pg, redis, rates_port, out, dns, TRAFFIC, "--set", "shop")
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
            assert done.returncode == 0, done.stderr
        yield Sets(tmp / "plain", configured, replace(pg, database=DATABASE), host)


@pytest.mark.parametrize("step", STEPS, ids=[s.name for s in STEPS])
def test_drift_flags_exactly_the_tests_a_migration_touches(
    sets: Sets, step: Step, tmp_path: Path
) -> None:
    expected = stale_by_oracle(sets.plain / "shop", step.touches)
    breaking = step.name not in ("add_nullable", "index")
    assert bool(expected) == breaking  # the oracle itself sees the change (or rightly not)
    db = migrated_copy(sets.pg, DATABASE, step)
    folder = migrations_dir(tmp_path, SEED, step)
    runs = [
        (sets.plain, ("--dsn", db.dsn())),
        (sets.configured, ("--dsn", db.dsn())),
        (sets.plain, ("--migrations", str(folder))),
        (sets.configured, ("--migrations", str(folder))),
    ]
    for path, source in runs:
        shop = check_verdict(path / "shop", step, breaking, tmp_path, *source)
        if step.name == "index" and path == sets.configured and source[0] == "--dsn":
            assert [c["change"] for c in shop["changes"]] == [
                "products: index products_name_idx added"
            ]


def test_drift_annotates_the_migration_line_and_sets_outputs(sets: Sets, tmp_path: Path) -> None:
    [step] = [s for s in STEPS if s.name == "rename"]
    folder = migrations_dir(tmp_path, SEED, step)
    outputs = tmp_path / "outputs"
    junit = tmp_path / "drift.xml"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(outputs)}
    done = kpy(
        "drift", "--path", str(sets.plain), "--migrations", str(folder), "--junit", str(junit),
        env=env,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    migration = folder / "002_rename.sql"
    assert f"::error file={migration},line=1," in done.stdout
    assert "orders.currency renamed to currency_code" in done.stdout
    expected = stale_by_oracle(sets.plain / "shop", step.touches)
    lines = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert lines["rerecord-needed"] == "true"
    assert set(lines["stale-tests"].split()) == {f"shop/{t}" for t in expected}
    xml = junit.read_text()
    assert xml.count('type="schema-drift"') == len(expected)
    assert "re-record needed" in done.stderr
    # from a live database a change has no line: each stale test's own file is annotated
    db = migrated_copy(sets.pg, DATABASE, step)
    done = kpy("drift", "--path", str(sets.plain), "--dsn", db.dsn(), env=env)
    assert done.returncode == 3, done.stderr
    annotated = {
        Path(line.split("file=", 1)[1].split(",", 1)[0]).stem
        for line in done.stdout.splitlines()
        if line.startswith("::error ")
    }
    assert annotated == expected, done.stdout
    # the same DSN from $KPY_DSN (the action's dsn input), never on the command line
    again = kpy("drift", "--path", str(sets.plain), env={**env, "KPY_DSN": db.dsn()})
    assert (again.returncode, again.stdout) == (3, done.stdout), again.stderr


def test_drift_is_clean_on_the_schema_recorded(sets: Sets, tmp_path: Path) -> None:
    for path in (sets.plain, sets.configured):
        code, report, err = drift(path, tmp_path, "--dsn", sets.pg.dsn())
        assert code == 0 and flagged(report) == set(), err
        folder = tmp_path / "seed-only"
        folder.mkdir(exist_ok=True)
        shutil.copy(SEED, folder / "001_init.sql")
        code, report, err = drift(path, tmp_path, "--migrations", str(folder))
        assert code == 0 and flagged(report) == set(), err


def test_the_lock_needs_no_configuration_and_keeps_no_secret(sets: Sets) -> None:
    plain = yaml.safe_load((sets.plain / "shop" / "schema.lock.yaml").read_text())
    [db] = plain["postgres"]
    assert db["database"] == DATABASE and db["introspected"] is False
    price = db["tables"]["products"]["columns"]["price"]
    assert price["type"] == "numeric(10,2)" and price["attnum"] == 4
    configured = yaml.safe_load((sets.configured / "shop" / "schema.lock.yaml").read_text())
    [db] = configured["postgres"]
    assert db["introspected"] is True
    products = db["tables"]["products"]
    assert products["complete"] is True
    assert products["columns"]["stock"]["nullable"] is False
    assert "products_pkey" in products["indexes"]
    [http] = configured["http"]
    assert http["host"] == sets.rates_host
    [operation] = http["operations"]
    assert operation["operation_id"] == "getRate" and operation["path"] == "/rates"
    assert sorted(operation["responses"]["200"]) == ["from", "rate", "to"]
    from tests.servers import PG_PASSWORD

    for path in (sets.plain, sets.configured):
        for file in (path / "shop").rglob("*"):
            if file.is_file():
                assert PG_PASSWORD.encode() not in file.read_bytes(), file


def openapi_variant(tmp: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    spec = yaml.safe_load((SHOP / "rates.openapi.yaml").read_text())
    edit(spec)
    file = tmp / "rates.new.yaml"
    file.write_text(yaml.safe_dump(spec))
    return file


def test_an_openapi_change_flags_the_tests_that_call_it(sets: Sets, tmp_path: Path) -> None:
    shop = sets.configured / "shop"
    calls = {
        m["name"] for m in yaml.safe_load_all((shop / "mocks.yaml").read_text())
        if m["protocol"] == "http"
    }  # fmt: skip
    expected = {
        doc["name"]
        for f in (shop / "tests").glob("*.yaml")
        if calls & set((doc := yaml.safe_load(f.read_text()))["mocks"])
    }
    assert expected

    def no_rate(spec: dict[str, Any]) -> None:
        schema = spec["paths"]["/rates"]["get"]["responses"]["200"]["content"]
        props = schema["application/json"]["schema"]
        del props["properties"]["rate"]
        props["required"].remove("rate")

    def no_operation(spec: dict[str, Any]) -> None:
        spec["paths"]["/convert-rates"] = spec["paths"].pop("/rates")

    for edit, says in ((no_rate, "'rate'"), (no_operation, "GET /rates")):
        new = openapi_variant(tmp_path, edit)
        code, report, err = drift(
            sets.configured, tmp_path, "--openapi", f"{sets.rates_host}={new}"
        )
        assert code == 3, err
        assert flagged(report) == expected, err
        assert says in err
    wrong = kpy("drift", "--path", str(sets.configured), "--openapi", f"127.0.0.1:1={new}")
    assert wrong.returncode == 2, wrong.stderr  # a host no mock called: said, not "no drift"
    assert "no recorded HTTP mock called that host" in wrong.stderr
    same = openapi_variant(tmp_path, lambda spec: None)
    code, report, err = drift(sets.configured, tmp_path, "--openapi", f"{sets.rates_host}={same}")
    assert code == 0 and flagged(report) == set(), err


def test_validate_passes_a_recorded_set_and_names_a_mock_edited_against_its_openapi(
    sets: Sets, tmp_path: Path
) -> None:
    for path in (sets.plain, sets.configured):
        done = kpy("validate", "--path", str(path))
        assert done.returncode == 0, done.stderr
    copy = tmp_path / "kpy"
    shutil.copytree(sets.configured, copy)
    mocks = copy / "shop" / "mocks.yaml"
    text = mocks.read_text()
    assert "      rate: 0.92\n" in text
    edited = text.replace("      rate: 0.92\n", "      rate: ninety-two\n", 1)
    mocks.write_text(edited)
    line = edited.splitlines().index("      rate: ninety-two") + 1
    done = kpy("validate", "--path", str(copy))
    assert done.returncode == 2, done.stderr
    assert f"{mocks}:{line}: response.body.json.rate: " in done.stderr, done.stderr


def test_validate_checks_mocks_against_the_lock(sets: Sets, tmp_path: Path) -> None:
    copy = tmp_path / "kpy"
    shutil.copytree(sets.plain, copy)
    mocks = copy / "shop" / "mocks.yaml"
    text = mocks.read_text()
    assert "type_oid: 1700\n" in text
    at = text.index("type_oid: 1700\n")
    mocks.write_text(text[:at] + "type_oid: 25\n" + text[at + len("type_oid: 1700\n") :])
    line = text[:at].count("\n") + 1  # numeric -> text, in the first mock that reads one
    done = kpy("validate", "--path", str(copy))
    assert done.returncode == 2, done.stderr
    assert f"{mocks}:{line}: response.messages." in done.stderr, done.stderr
    assert "type_oid: 25; schema.lock.yaml has 'numeric(10,2)'" in done.stderr


def test_validate_checks_test_cases_against_the_services_own_openapi(
    sets: Sets, tmp_path: Path
) -> None:
    copy = tmp_path / "kpy"
    shutil.copytree(sets.plain, copy)
    shutil.copy(SHOP / "openapi.yaml", copy / "openapi.yaml")
    (copy / "kpy.yml").write_text(
        "version: kpy/v1\nkind: Config\nschemas:\n  service_openapi: openapi.yaml\n"
    )
    done = kpy("validate", "--path", str(copy))
    assert done.returncode == 0, done.stderr  # every recorded exchange fits the shop's API
    test = next(
        f
        for f in sorted((copy / "shop" / "tests").glob("*.yaml"))
        if "price: '19.99'" in f.read_text()
    )
    text = test.read_text()
    line = text[: text.index("price: '19.99'")].count("\n") + 1
    test.write_text(text.replace("price: '19.99'", "price: 19.99", 1))
    done = kpy("validate", "--path", str(copy))
    assert done.returncode == 2, done.stderr
    assert f"{test}:{line}: response.body.json." in done.stderr
    assert ".price: 19.99 is not of type 'string'" in done.stderr


def test_validate_says_every_broken_file_in_one_line_each_and_exits_2(
    sets: Sets, tmp_path: Path
) -> None:
    copy = tmp_path / "kpy"
    shutil.copytree(sets.plain, copy)
    shop = copy / "shop"
    mocks = shop / "mocks.yaml"
    text = mocks.read_text()
    mocks.write_text(text.replace("protocol: redis\n", "protocol: kafka\n", 1))
    lock = shop / "schema.lock.yaml"
    lock.write_text(lock.read_text().replace("  introspected: false\n", "  introspected: 'no'\n"))
    test = shop / "tests" / "test-3.yaml"
    test.write_bytes(test.read_bytes().replace(b"version: kpy/v1", b"version: kpy/v1\n# \xff", 1))
    done = kpy("validate", "--path", str(copy))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[-1] == "kpy: 3 problems", done.stderr
    assert any(
        line.startswith(f"kpy: {mocks}:") and "protocol: 'kafka' is not one of" in line
        for line in lines
    ), done.stderr
    assert any(line.startswith(f"kpy: {lock}:") and "introspected" in line for line in lines)
    assert any(line.startswith(f"kpy: {test}") and "UTF-8" in line for line in lines)
    # and kpy test refuses the same set before starting anything, in one line
    done = kpy("test", "-c", "true", "--path", str(copy))
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
