"""migrations.find / load: each tool's layout in its order, one step per migration with the
schema after it, Where.file as the user named the directory; mixed or empty directories
refused. The shop's migrations and an Alembic offline script also run on a real PostgreSQL,
whose catalog must be what load() made of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpy_ci.errors import UsageError
from kpy_ci.schema.migrations import find, load
from kpy_ci.schema.model import Removal, Where
from tests.schema.test_ddl import SEED, SHOP_MIGRATIONS, catalog, modelled, run, scratch
from tests.servers import Postgres

__all__ = ["scratch"]  # the fixture, shared with test_ddl


def write(directory: Path, files: dict[str, str | bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = directory / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return directory


def shop_directory(root: Path) -> Path:
    files: dict[str, str | bytes] = {"001_seed.sql": SEED.read_text(), **SHOP_MIGRATIONS}
    return write(root / "db" / "migrations", files)


def test_plain_files_in_natural_order_named_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "m", {"10_b.sql": "", "2_a.sql": "", "1_x.sql": "", "README.md": "# no"})
    monkeypatch.chdir(tmp_path)
    assert [f.name for f in find(Path("m"))] == ["m/1_x.sql", "m/2_a.sql", "m/10_b.sql"]
    assert {f.layout for f in find(Path("m"))} == {"plain"}


def test_the_shop_step_by_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shop_directory(tmp_path)
    monkeypatch.chdir(tmp_path)
    loaded = load(Path("db/migrations"))
    names = ["001_seed.sql", *SHOP_MIGRATIONS]
    assert [s.name for s in loaded.steps] == [f"db/migrations/{n}" for n in names]
    assert loaded.steps[0].where == Where("db/migrations/001_seed.sql", 1)
    assert loaded.notes == []
    columns = [list(s.tables["products"].columns) for s in loaded.snapshots]
    assert columns == [
        ["id", "sku", "name", "price", "stock"],
        ["id", "sku", "name", "price", "stock", "color"],
        ["id", "sku", "name", "price", "color"],
        ["id", "code", "name", "price", "color"],
        ["id", "code", "name", "price", "color"],
        ["id", "code", "name", "price", "color"],
        ["id", "code", "name", "price", "color"],
    ]
    # each snapshot is its own: later steps did not change the earlier ones
    assert loaded.snapshots[1].tables["products"].columns["color"].nullable is True
    assert loaded.schema.tables["products"].columns["color"].nullable is False
    assert loaded.ends == [2, 3, 4, 5, 6, 7, 8]
    after = loaded.schema.changes[loaded.ends[2] :]  # what the steps after the third made
    assert [w.file for w, *_ in after] == [f"db/migrations/{n}" for n in names[3:]]
    assert loaded.schema.removed_columns[("products", "sku")] == Removal(
        Where("db/migrations/004_code.sql", 3), "code"
    )


def test_golang_migrate_up_files_by_version(tmp_path: Path) -> None:
    directory = write(
        tmp_path,
        {
            "20240101120000_init.up.sql": "CREATE TABLE t (a int);",
            "20240101120000_init.down.sql": "DROP TABLE t;",
            "20240301000000_more.up.sql": "ALTER TABLE t ADD COLUMN c int;",
            "20240201000000_b.up.sql": "ALTER TABLE t ADD COLUMN b int;",
            "20240201000000_b.down.sql": "ALTER TABLE t DROP COLUMN b;",
        },
    )
    files = find(directory)
    assert [f.path.name for f in files] == [
        "20240101120000_init.up.sql",
        "20240201000000_b.up.sql",
        "20240301000000_more.up.sql",
    ]
    assert {f.layout for f in files} == {"golang-migrate"}
    assert list(load(directory).schema.tables["t"].columns) == ["a", "b", "c"]


def test_golang_migrate_small_versions(tmp_path: Path) -> None:
    names = ["1_a.up.sql", "2_b.up.sql", "10_c.up.sql", "1_a.down.sql"]
    directory = write(tmp_path, dict.fromkeys(names, ""))
    assert [f.path.name for f in find(directory)] == ["1_a.up.sql", "2_b.up.sql", "10_c.up.sql"]


def test_flyway_versions_then_repeatables_and_no_undo(tmp_path: Path) -> None:
    directory = write(
        tmp_path,
        {
            "V1__init.sql": "CREATE TABLE t (a int);",
            "V1.1__add.sql": "ALTER TABLE t ADD COLUMN b int;",
            "V1.10__later.sql": "ALTER TABLE t ADD COLUMN d int;",
            "V1.2__add.sql": "ALTER TABLE t ADD COLUMN c int;",
            "V2_1__x.sql": "ALTER TABLE t ADD COLUMN e int;",
            "R__views.sql": "CREATE OR REPLACE VIEW v AS SELECT a FROM t;",
            "R__a_first.sql": "",
            "U2_1__x.sql": "ALTER TABLE t DROP COLUMN e;",
        },
    )
    assert [f.path.name for f in find(directory)] == [
        "V1__init.sql",
        "V1.1__add.sql",
        "V1.2__add.sql",
        "V1.10__later.sql",
        "V2_1__x.sql",
        "R__a_first.sql",
        "R__views.sql",
    ]
    assert list(load(directory).schema.tables["t"].columns) == ["a", "b", "c", "d", "e"]


# What `alembic upgrade head --sql` writes (Alembic 1.13, PostgreSQL dialect).
ALEMBIC = """BEGIN;

CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL, 
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

-- Running upgrade  -> 1975ea83b712

CREATE TABLE account (
    id SERIAL NOT NULL, 
    name VARCHAR(50) NOT NULL, 
    description VARCHAR(200), 
    PRIMARY KEY (id)
);

INSERT INTO alembic_version (version_num) VALUES ('1975ea83b712') RETURNING alembic_version.version_num;

-- Running upgrade 1975ea83b712 -> ae1027a6acf

ALTER TABLE account ADD COLUMN last_transaction_date TIMESTAMP WITHOUT TIME ZONE;

CREATE INDEX ix_account_name ON account (name);

UPDATE alembic_version SET version_num='ae1027a6acf' WHERE alembic_version.version_num = '1975ea83b712';

-- Running upgrade ae1027a6acf -> 27c6a30d7c24

ALTER TABLE account ALTER COLUMN description TYPE TEXT;

ALTER TABLE account RENAME COLUMN name TO username;

UPDATE alembic_version SET version_num='27c6a30d7c24' WHERE alembic_version.version_num = 'ae1027a6acf';

COMMIT;

"""  # noqa: E501, W291 (as Alembic writes it, trailing spaces too)


def test_alembic_offline_sections_are_steps(tmp_path: Path) -> None:
    directory = write(tmp_path / "sql", {"upgrade.sql": ALEMBIC})
    loaded = load(directory)
    file = str(directory / "upgrade.sql")
    assert [(s.name, s.where) for s in loaded.steps] == [
        (f"{file}:  -> 1975ea83b712", Where(file, 1)),
        (f"{file}: 1975ea83b712 -> ae1027a6acf", Where(file, 19)),
        (f"{file}: ae1027a6acf -> 27c6a30d7c24", Where(file, 27)),
    ]
    assert list(loaded.schema.tables) == ["account"]  # no alembic_version
    assert all("alembic_version" not in s.tables for s in loaded.snapshots)
    assert [c[2] for c in loaded.schema.changes] == ["account"] * 5
    account = loaded.schema.tables["account"]
    assert account.where == Where(file, 10)
    assert list(loaded.snapshots[0].tables["account"].columns) == ["id", "name", "description"]
    assert account.columns["username"].type == "character varying(50)"
    assert account.columns["description"].where == Where(file, 29)
    assert account.indexes["ix_account_name"].endswith("USING btree (username)")
    assert loaded.ends == [1, 3, 5]


def test_a_single_file_may_be_given(tmp_path: Path) -> None:
    path = write(tmp_path, {"schema.sql": "CREATE TABLE t (a int);"}) / "schema.sql"
    assert [s.where for s in load(path).steps] == [Where(str(path), 1)]


def test_dbmate_and_goose_files_count_up_to_their_down_part(tmp_path: Path) -> None:
    directory = write(
        tmp_path,
        {
            "20240101_a.sql": "-- migrate:up\nCREATE TABLE a (x int);\n\n"
            "-- migrate:down\nDROP TABLE a;\n",
            "20240102_b.sql": "-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE b (y int);\n"
            "-- +goose StatementEnd\n-- +goose Down\nDROP TABLE b;\n",
        },
    )
    assert list(load(directory).schema.tables) == ["a", "b"]


def test_psql_backslash_commands_are_skipped(tmp_path: Path) -> None:
    sql = "\\set ON_ERROR_STOP on\n\\connect app\nCREATE TABLE t (a int);\n\\i more.sql\n"
    directory = write(tmp_path, {"1.sql": sql})
    loaded = load(directory)
    assert loaded.schema.tables["t"].where == Where(str(directory / "1.sql"), 3)
    assert loaded.notes == [f"{directory / '1.sql'}:4: psql's \\i is not followed"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no .sql migration files in it"),
        ({"notes.txt": "x"}, "no .sql migration files in it"),
        (
            {"1_init.up.sql": "", "V2__more.sql": ""},
            "migration files of more than one tool: 1_init.up.sql is golang-migrate, "
            "V2__more.sql is flyway; give one tool's directory",
        ),
        (
            {"1_init.up.sql": "", "2_more.sql": ""},
            "1_init.up.sql is golang-migrate, 2_more.sql is plain",
        ),
        ({"1_a.up.sql": "", "1_b.up.sql": ""}, "1_a.up.sql and 1_b.up.sql have the same version"),
        ({"1.sql": b"CREATE TABLE \xff (a int);"}, "1.sql: not UTF-8 text (byte 13)"),
        ({"1.sql": "SELECT 1;\nCREATE TABLE (a int);"}, "1.sql:2: not valid SQL: syntax error"),
    ],
)
def test_what_is_refused(tmp_path: Path, files: dict[str, str | bytes], message: str) -> None:
    directory = write(tmp_path / "m", files)
    with pytest.raises(UsageError) as caught:
        load(directory)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_no_such_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such directory of migrations"):
        load(tmp_path / "nowhere")


def test_the_shop_directory_makes_what_postgresql_makes(tmp_path: Path, scratch: Postgres) -> None:
    directory = shop_directory(tmp_path)
    run(scratch, *(p.read_text() for p in sorted(directory.iterdir())))
    assert modelled(load(directory).schema) == catalog(scratch)


def test_the_alembic_script_makes_what_postgresql_makes(tmp_path: Path, scratch: Postgres) -> None:
    directory = write(tmp_path, {"upgrade.sql": ALEMBIC})
    run(scratch, ALEMBIC)
    server = catalog(scratch)
    assert list(server) == ["account", "alembic_version"]
    del server["alembic_version"]
    assert modelled(load(directory).schema) == server
