"""pgtypes against a real PostgreSQL: for each column definition, the server's own
format_type(atttypid, atttypmod), spell() of the parsed DDL type, and format_type() of the
server's OID and modifier must be one and the same string."""

from __future__ import annotations

import psycopg
import pytest
from pglast import ast, parse_sql

from kpy_ci.schema.pgtypes import _TYPES, format_type, spell
from tests.servers import Postgres

DEFINITIONS = [
    "int", "integer", "int4", "pg_catalog.int4", "smallint", "int2", "bigint", "int8",
    "serial", "bigserial", "smallserial", "serial8", "bool", "boolean", "text", "bytea",
    '"char"', "char", "character(3)", "national char(2)", "bpchar", "bpchar(5)",
    "varchar", "varchar(40)", "character varying(7)", "char varying", "name", "oid",
    "json", "jsonb", "xml", "real", "float4", "float(10)", "float(30)", "double precision",
    "float8", "money", "numeric", "decimal", "numeric(10, 2)", "numeric(5)", "dec(7,3)",
    "numeric(4,-2)", "date", "time", "time(3)", "time with time zone", "timetz(2)",
    "timestamp", "timestamp(3)", "timestamp(0)", "timestamp(9)", "timestamptz",
    "timestamp with time zone", "timestamp(3) with time zone", "timestamp without time zone",
    "interval", "interval(3)", "interval year", "interval day to second",
    "interval minute to second(2)", "interval hour to minute", "uuid", "inet", "cidr",
    "macaddr", "macaddr8", "bit", "bit(5)", '"bit"', "varbit", "bit varying(8)", "tsvector",
    "tsquery", "point", "int4range", "tstzrange", "pg_lsn", "text[]", "int[]", "int[][]",
    "integer[3]", "_int4", "varchar(20)[]", "numeric(10,2)[]", "timestamptz[]", "uuid[]",
    "jsonb[]", '"char"[]', "bit(3)[]", "boolean[]", "double precision[]",
]  # fmt: skip


def parsed_type(definition: str) -> ast.TypeName:
    create = parse_sql(f"CREATE TABLE t (c {definition})")[0].stmt
    assert isinstance(create, ast.CreateStmt) and create.tableElts
    column = create.tableElts[0]
    assert isinstance(column, ast.ColumnDef) and column.typeName
    return column.typeName


def test_spell_and_format_type_agree_with_the_server(postgres: Postgres) -> None:
    columns = ", ".join(f"c{i} {d}" for i, d in enumerate(DEFINITIONS))
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE TEMP TABLE spelled ({columns})")
        rows = conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod), atttypid, atttypmod"
            " FROM pg_attribute WHERE attrelid = 'spelled'::regclass AND attnum > 0"
            " ORDER BY attnum"
        ).fetchall()
    assert len(rows) == len(DEFINITIONS)
    for (_, server, oid, mod), definition in zip(rows, DEFINITIONS, strict=True):
        assert (definition, spell(parsed_type(definition))) == (definition, server)
        assert (definition, format_type(oid, mod)) == (definition, server)


def test_format_type_of_every_known_oid_and_modifiers(postgres: Postgres) -> None:
    pairs = [(oid, -1) for oid in _TYPES] + [(array, -1) for _, array in _TYPES.values()]
    pairs += [(1042, 5), (1042, 4), (1043, 44), (1015, 44), (1700, (10 << 16 | 2) + 4)]
    pairs += [(1700, (5 << 16) + 4 + 2046), (1231, (12 << 16 | 2) + 4), (1083, 7)]
    pairs += [(1114, 3), (1184, 0), (1266, 6), (1186, (7168 << 16) | 0xFFFF)]
    pairs += [(1186, (4096 << 16) | 3), (1186, (0x7FFF << 16) | 2), (1560, 5), (1562, 9)]
    pairs += [(23, 5), (25, 7), (18, 3), (1000, 3)]
    values = ", ".join(f"({oid}, {mod})" for oid, mod in pairs)
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        rows = conn.execute(
            f"SELECT o, m, format_type(o, m) FROM (VALUES {values}) AS v (o, m)"
        ).fetchall()
    assert [(o, m, format_type(o, m)) for o, m, _ in rows] == rows


@pytest.mark.parametrize("oid", [0, 705, 2249, 16384, 99999])
def test_unknown_oids_are_none(oid: int) -> None:
    assert format_type(oid, -1) is None


def test_invalid_interval_modifier_is_none() -> None:
    assert format_type(1186, 3) is None  # no fields: the server refuses it as well


@pytest.mark.parametrize(
    ("definition", "spelled"),
    [
        ("mytype", "mytype"),
        ("Public.Money_Kind", "public.money_kind"),
        ('"MixedCase"', '"MixedCase"'),
        ("geometry(Point, 4326)", "geometry(point,4326)"),
        ("citext[]", "citext[]"),
        ("myschema.status[]", "myschema.status[]"),
    ],
)
def test_custom_types_are_kept_as_written(definition: str, spelled: str) -> None:
    assert spell(parsed_type(definition)) == spelled
