"""ddl.apply: DDL replayed on a DbSchema with no database. Each change of the sample shop's
migrations is checked exactly, with the Where of the statement that made it; then the same
migrations run on a real PostgreSQL, and its catalog (columns, types, nullability, attnum,
constraint and index names) must be what apply() made of them."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from kpy_ci.errors import UsageError
from kpy_ci.schema.ddl import apply
from kpy_ci.schema.model import Column, DbSchema, Removal, Where
from tests.servers import Postgres

SEED = Path(__file__).resolve().parents[2] / "examples" / "shop" / "seed.sql"

# The shop's later migrations: one kind of change each (file name -> SQL).
SHOP_MIGRATIONS = {
    "002_color.sql": "-- a nullable column\nALTER TABLE products ADD COLUMN color text;\n",
    "003_stock.sql": "ALTER TABLE products\n    DROP COLUMN stock;\n",
    "004_code.sql": "\n\nALTER TABLE products RENAME COLUMN sku TO code;\n",
    "005_qty.sql": "ALTER TABLE orders ALTER COLUMN quantity TYPE bigint USING quantity::bigint;",
    "006_index.sql": "CREATE INDEX CONCURRENTLY ON products (name);\n",
    "007_color.sql": "UPDATE products SET color = 'red';\n"
    "ALTER TABLE products ALTER COLUMN color SET NOT NULL;\n",
}


def shop() -> tuple[DbSchema, list[str]]:
    schema = DbSchema()
    notes = apply(schema, SEED.read_text(), "examples/shop/seed.sql")
    for name, sql in SHOP_MIGRATIONS.items():
        notes += apply(schema, sql, f"migrations/{name}")
    return schema, notes


def test_the_shop_seed_as_a_first_migration() -> None:
    schema = DbSchema()
    assert apply(schema, SEED.read_text(), "seed.sql") == []  # SET, BEGIN, TRUNCATE, INSERT...
    products, orders = schema.tables["products"], schema.tables["orders"]
    at9, at17 = Where("seed.sql", 9), Where("seed.sql", 17)
    serial = "nextval('products_id_seq'::regclass)"
    assert list(products.columns.values()) == [
        Column("id", "integer", False, serial, 1, at9),
        Column("sku", "text", False, None, 2, at9),
        Column("name", "text", False, None, 3, at9),
        Column("price", "numeric(10,2)", False, None, 4, at9),
        Column("stock", "integer", False, None, 5, at9),
    ]
    assert products.constraints == {
        "products_pkey": "PRIMARY KEY (id)",
        "products_sku_key": "UNIQUE (sku)",
        "products_price_check": "CHECK ((price >= 0))",
        "products_stock_check": "CHECK ((stock >= 0))",
    }
    assert products.indexes == {
        "products_pkey": "CREATE UNIQUE INDEX products_pkey ON public.products USING btree (id)",
        "products_sku_key": "CREATE UNIQUE INDEX products_sku_key ON public.products "
        "USING btree (sku)",
    }
    assert orders.constraints["orders_product_id_fkey"] == (
        "FOREIGN KEY (product_id) REFERENCES products(id)"
    )
    assert orders.columns["created_at"] == Column(
        "created_at", "timestamp with time zone", False, "now()", 7, at17
    )
    assert products.where == at9 and orders.where == at17
    assert schema.changes == [(at9, "CREATE TABLE", "products", None),
                              (at17, "CREATE TABLE", "orders", None)]  # fmt: skip


def test_each_migration_of_the_shop() -> None:
    schema, notes = shop()
    assert notes == []
    products = schema.tables["products"]
    m = "migrations/"
    # a nullable column, then made NOT NULL: its Where is the last statement that changed it
    assert products.columns["color"] == Column(
        "color", "text", False, None, 6, Where(f"{m}007_color.sql", 2)
    )
    # a dropped column: gone, with its CHECK; its attnum is never given again
    assert "stock" not in products.columns and "products_stock_check" not in products.constraints
    assert schema.removed_columns[("products", "stock")] == Removal(Where(f"{m}003_stock.sql", 1))
    # a renamed column keeps its attnum; its constraint and index follow it
    assert products.columns["code"] == Column(
        "code", "text", False, None, 2, Where(f"{m}004_code.sql", 3)
    )
    assert schema.removed_columns[("products", "sku")] == Removal(
        Where(f"{m}004_code.sql", 3), "code"
    )
    assert products.constraints["products_sku_key"] == "UNIQUE (code)"
    # a changed type
    quantity = schema.tables["orders"].columns["quantity"]
    assert (quantity.type, quantity.attnum, quantity.where) == (
        "bigint",
        3,
        Where(f"{m}005_qty.sql", 1),
    )
    # an index, named as PostgreSQL names it
    assert products.indexes["products_name_idx"] == (
        "CREATE INDEX products_name_idx ON public.products USING btree (name)"
    )
    assert [c.name for c in products.columns.values()] == ["id", "code", "name", "price", "color"]
    assert schema.changes[2:] == [
        (Where(f"{m}002_color.sql", 2), "ALTER TABLE ADD COLUMN", "products", "color"),
        (Where(f"{m}003_stock.sql", 1), "ALTER TABLE DROP COLUMN", "products", "stock"),
        (Where(f"{m}004_code.sql", 3), "RENAME COLUMN sku TO", "products", "code"),
        (Where(f"{m}005_qty.sql", 1), "ALTER COLUMN TYPE", "orders", "quantity"),
        (Where(f"{m}006_index.sql", 1), "CREATE INDEX products_name_idx ON", "products", None),
        (Where(f"{m}007_color.sql", 2), "ALTER COLUMN SET NOT NULL", "products", "color"),
    ]  # fmt: skip


def test_lines_count_characters_not_bytes_and_skip_comments() -> None:
    schema = DbSchema()
    sql = "-- prix en €, été\n/* é\n é */\nCREATE TABLE é (a int);  SELECT 'ééé';\n\n\n"
    sql += "  -- x\n  CREATE TABLE b (c text);"
    apply(schema, sql, "f.sql", first_line=10)
    assert [w for w, *_ in schema.changes] == [Where("f.sql", 13), Where("f.sql", 17)]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT 1;\nCREATE TABLE (a int);", 'm.sql:6: not valid SQL: syntax error at or near "("'),
        ("-- é\nCREATE TABLE t (a int", "m.sql:6: not valid SQL: syntax error at end of input"),
        ("SELECT 'é';\n\n  selec 1", 'm.sql:7: not valid SQL: syntax error at or near "selec"'),
    ],
)
def test_a_syntax_error_names_file_and_line(sql: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        apply(DbSchema(), sql, "m.sql", first_line=5)
    assert str(caught.value) == message


def test_what_is_skipped_and_what_is_noted() -> None:
    schema = DbSchema()
    notes = apply(schema, """CREATE TABLE t (a int, b int);
GRANT SELECT ON t TO public; COMMENT ON TABLE t IS 'x'; CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'; CREATE SEQUENCE s; CREATE VIEW v AS
  SELECT a FROM t;
ALTER TABLE t OWNER TO kpy; ALTER TABLE t ALTER COLUMN a SET STATISTICS 100; ANALYZE t;
ALTER TABLE t ATTACH PARTITION p FOR VALUES IN (1);
ALTER TABLE missing ADD COLUMN c int;
ALTER TABLE IF EXISTS missing ADD COLUMN c int;
DROP TABLE IF EXISTS gone; DROP INDEX IF EXISTS gone_idx;
CREATE TABLE copy AS SELECT * FROM t;
DO $$ BEGIN ALTER TABLE t ADD COLUMN z int; END $$;
SET search_path TO app, public;
""", "n.sql")  # fmt: skip
    assert notes == [
        "n.sql:6: ALTER TABLE t: ATTACH PARTITION is not followed",
        "n.sql:7: ALTER TABLE missing: no such table",
        "n.sql:10: CREATE TABLE copy AS: columns made by a query are not followed",
        "n.sql:11: DO block: what it runs is not followed",
        "n.sql:12: SET search_path is not followed: unqualified names are taken to be in public",
    ]
    assert list(schema.tables) == ["t"] and list(schema.tables["t"].columns) == ["a", "b"]


def test_tables_outside_public_and_table_renames() -> None:
    schema = DbSchema()
    apply(schema, """
CREATE SCHEMA sales;
CREATE TABLE public.items (id int PRIMARY KEY);
CREATE TABLE sales.orders (id bigserial PRIMARY KEY, ref int REFERENCES public.items);
ALTER TABLE items RENAME TO products;
ALTER TABLE sales.orders RENAME TO purchases;""", "s.sql")  # fmt: skip
    purchases = schema.tables["sales.purchases"]
    assert purchases.constraints["orders_ref_fkey"] == "FOREIGN KEY (ref) REFERENCES products(id)"
    assert purchases.columns["id"].default == "nextval('sales.orders_id_seq'::regclass)"
    assert purchases.indexes == {
        "orders_pkey": "CREATE UNIQUE INDEX orders_pkey ON sales.purchases USING btree (id)"
    }
    assert schema.tables["products"].constraints == {"items_pkey": "PRIMARY KEY (id)"}
    assert schema.removed_tables == {
        "items": Removal(Where("s.sql", 5), "products"),
        "sales.orders": Removal(Where("s.sql", 6), "sales.purchases"),
    }
    assert apply(schema, "-- cleanup\nDROP TABLE products CASCADE;", "t.sql") == []
    assert purchases.constraints == {"orders_pkey": "PRIMARY KEY (id)"}  # its foreign key went
    assert list(schema.tables) == ["sales.purchases"]
    assert schema.removed_tables["products"] == Removal(Where("t.sql", 2))
    assert schema.changes[-1] == (Where("t.sql", 2), "DROP TABLE", "products", None)


# The strongest check: PostgreSQL's own catalog after the same statements.

NAMING = """
CREATE TABLE accounts (
    id int GENERATED ALWAYS AS IDENTITY,
    org int, email varchar(200), login text, during tstzrange,
    a_very_long_column_name_that_goes_on_and_on_and_on_for_ever int UNIQUE,
    PRIMARY KEY (id), UNIQUE (org, email), UNIQUE (org, email),
    CHECK (org > 0 AND email <> ''), CHECK (length(login) > 2),
    EXCLUDE USING gist (during WITH &&)
);
CREATE TABLE a_table_whose_name_is_long_enough_to_be_cut_by_postgresql_itself (
    x serial, y int REFERENCES accounts, z int CHECK (z > y), UNIQUE (x, y, z)
);
CREATE INDEX ON accounts (login);
CREATE INDEX ON accounts (login);
CREATE INDEX ON accounts (lower(login), (org + 1));
CREATE UNIQUE INDEX IF NOT EXISTS accounts_login_key ON accounts (login) WHERE org IS NULL;
ALTER TABLE accounts ADD COLUMN note text DEFAULT 'n/a', ADD COLUMN IF NOT EXISTS org int,
    ADD CONSTRAINT positive CHECK (org > 0) NOT VALID, ALTER COLUMN login SET NOT NULL,
    ALTER email TYPE text;
ALTER TABLE accounts ALTER COLUMN note DROP DEFAULT;
"""
NAMING_LATER = """
ALTER TABLE accounts DROP COLUMN org;
ALTER TABLE accounts RENAME COLUMN login TO username;
ALTER INDEX accounts_login_idx1 RENAME TO accounts_username_idx;
ALTER TABLE accounts RENAME CONSTRAINT accounts_pkey TO accounts_pk;
CREATE SCHEMA app;
CREATE TABLE app.events (id bigserial PRIMARY KEY, at timestamp(3) NOT NULL, kind "char");
ALTER TABLE app.events ADD COLUMN payload jsonb NOT NULL DEFAULT '{}', DROP COLUMN kind;
ALTER TABLE app.events RENAME TO happenings;
CREATE TABLE dropped (a int); DROP TABLE dropped CASCADE;
DROP INDEX accounts_login_idx;
DROP INDEX IF EXISTS accounts_login_idx;
ALTER TABLE accounts DROP CONSTRAINT accounts_during_excl, DROP CONSTRAINT IF EXISTS nope;
ALTER TABLE accounts DROP COLUMN id CASCADE;
"""
NAMING_LAST = """
CREATE TABLE app.log (LIKE app.happenings);
ALTER TABLE app.happenings SET SCHEMA public;
DROP TABLE a_table_whose_name_is_long_enough_to_be_cut_by_postgresql_itself;
DROP SCHEMA app CASCADE;
"""

_counter = itertools.count()


@pytest.fixture
def scratch(postgres: Postgres) -> Iterator[Postgres]:
    """An empty database of its own on the test server (its public schema is ours)."""
    name = f"kpy_ddl_{next(_counter)}"
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    yield dataclasses.replace(postgres, database=name)
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def catalog(server: Postgres) -> dict[str, dict[str, object]]:
    """The server's tables as the test compares them."""
    tables: dict[str, dict[str, object]] = {}
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        for schema, table, column, type_, notnull, attnum in conn.execute(
            "SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod),"
            " a.attnotnull, a.attnum FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r'"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, 2, a.attnum"
        ):
            entry = tables.setdefault(
                _key(schema, table), {"columns": [], "constraints": [], "indexes": []}
            )
            entry["columns"].append((column, type_, not notnull, attnum))  # type: ignore[attr-defined]
        for schema, table, name, kind in conn.execute(
            "SELECT n.nspname, c.relname, o.conname, 'constraints' FROM pg_constraint o"
            " JOIN pg_class c ON c.oid = o.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE o.contype <> 'n' UNION ALL"
            " SELECT n.nspname, c.relname, i.relname, 'indexes' FROM pg_index x"
            " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace ORDER BY 3"
        ):
            if _key(schema, table) in tables:
                tables[_key(schema, table)][kind].append(name)  # type: ignore[attr-defined]
    return tables


def _key(schema: str, table: str) -> str:
    return table if schema == "public" else f"{schema}.{table}"


def modelled(schema: DbSchema) -> dict[str, dict[str, object]]:
    """The same view of apply()'s result."""
    return {
        key: {
            "columns": [(c.name, c.type, c.nullable, c.attnum) for c in t.columns.values()],
            "constraints": sorted(t.constraints),
            "indexes": sorted(t.indexes),
        }
        for key, t in sorted(schema.tables.items())
    }


def run(server: Postgres, *scripts: str) -> None:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        for sql in scripts:
            conn.execute(sql)  # type: ignore[call-overload]


def test_the_shop_migrations_make_what_postgresql_makes(scratch: Postgres) -> None:
    run(scratch, SEED.read_text(), *SHOP_MIGRATIONS.values())
    assert modelled(shop()[0]) == catalog(scratch)


def test_names_attnums_and_types_are_postgresqls(scratch: Postgres) -> None:
    schema = DbSchema()
    for sql in (NAMING, NAMING_LATER, NAMING_LAST):  # before and after drops that take much
        assert apply(schema, sql, "naming.sql") == []
        run(scratch, sql)
        assert modelled(schema) == catalog(scratch)


def test_defaults_are_the_servers_where_the_text_can_be(scratch: Postgres) -> None:
    """Serial and identity columns, now(): spelled as pg_get_expr and introspect.py do."""
    sql = (
        "CREATE SCHEMA app; CREATE TABLE app.t (id serial, b bigint GENERATED BY DEFAULT AS"
        " IDENTITY, at timestamptz DEFAULT now(), n int DEFAULT 0, g int GENERATED ALWAYS AS"
        " (n * 2) STORED)"
    )
    schema = DbSchema()
    apply(schema, sql, "d.sql")
    run(scratch, sql)
    with psycopg.connect(scratch.dsn()) as conn:
        rows = conn.execute(
            "SELECT a.attname, CASE a.attidentity WHEN 'a' THEN 'generated always as identity'"
            " WHEN 'd' THEN 'generated by default as identity' ELSE CASE a.attgenerated"
            " WHEN 's' THEN 'generated always as (' || pg_get_expr(d.adbin, d.adrelid)"
            " || ') stored'"
            " ELSE pg_get_expr(d.adbin, d.adrelid) END END FROM pg_attribute a LEFT JOIN"
            " pg_attrdef d ON (d.adrelid, d.adnum) = (a.attrelid, a.attnum)"
            " WHERE a.attrelid = 'app.t'::regclass AND a.attnum > 0 ORDER BY a.attnum"
        ).fetchall()
    ours = {c.name: c.default for c in schema.tables["app.t"].columns.values()}
    assert ours == dict(rows) | {"g": "generated always as (n * 2) stored"}
    assert dict(rows)["g"] == "generated always as ((n * 2)) stored"  # the server's parentheses


DEFINITIONS = """
CREATE TABLE p (id int PRIMARY KEY, code text UNIQUE, s text DEFAULT 'x',
    j jsonb DEFAULT '{}'::jsonb, d date DEFAULT CURRENT_DATE, t timestamptz DEFAULT now(),
    v varchar(10) DEFAULT 'new', n int DEFAULT 0, b boolean DEFAULT true);
CREATE TABLE c (
    id bigserial PRIMARY KEY, pid int REFERENCES p ON DELETE CASCADE ON UPDATE SET NULL,
    r int, during tstzrange, q int, "Mixed Case" text,
    FOREIGN KEY (r) REFERENCES p (id) MATCH FULL DEFERRABLE INITIALLY DEFERRED,
    UNIQUE (q) INCLUDE (r), CHECK (q IS NOT NULL), EXCLUDE USING gist (during WITH &&)
);
CREATE INDEX ON c (q DESC NULLS LAST, r) INCLUDE (pid) WHERE q > 1;
CREATE INDEX ON c USING hash (q);
CREATE INDEX ON c (lower("Mixed Case"), (q + r));
ALTER TABLE c ADD CONSTRAINT c_pid_fkey2 FOREIGN KEY (pid) REFERENCES p (id) ON DELETE RESTRICT;
ALTER TABLE p RENAME COLUMN id TO pid;
ALTER TABLE p RENAME TO parent;
"""


def test_definitions_are_the_servers(scratch: Postgres) -> None:
    """Constraint and index definitions as pg_get_constraintdef / pg_get_indexdef print
    them, and defaults as pg_get_expr does, where no cast of the server's own is involved;
    renames followed into them."""
    schema = DbSchema()
    assert apply(schema, DEFINITIONS, "defs.sql") == []
    run(scratch, DEFINITIONS)
    with psycopg.connect(scratch.dsn()) as conn:
        server = conn.execute(
            "SELECT conrelid::regclass::text, 'c ' || conname, pg_get_constraintdef(oid)"
            " FROM pg_constraint WHERE conrelid::regclass::text IN ('parent', 'c')"
            " UNION ALL SELECT indrelid::regclass::text, 'i ' || indexrelid::regclass::text,"
            " pg_get_indexdef(indexrelid) FROM pg_index"
            " WHERE indrelid::regclass::text IN ('parent', 'c')"
            " UNION ALL SELECT adrelid::regclass::text, 'd ' || attname,"
            " pg_get_expr(adbin, adrelid)"
            " FROM pg_attrdef JOIN pg_attribute ON (attrelid, attnum) = (adrelid, adnum)"
            " WHERE adrelid::regclass::text IN ('parent', 'c') ORDER BY 1, 2"
        ).fetchall()
    ours = []
    for name, table in sorted(schema.tables.items()):
        ours += [(name, f"c {k}", v) for k, v in table.constraints.items()]
        ours += [(name, f"i {k}", v) for k, v in table.indexes.items()]
        ours += [(name, f"d {c.name}", c.default) for c in table.columns.values() if c.default]
    assert sorted(ours) == server
