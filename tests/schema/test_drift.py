"""drift.compare_postgres on locks made by the real LockBuilder from mock documents shaped as
kpy records them, against schemas built by the real DDL parser: each kind of change, breaking
or harmless, and the statements it names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kpy_ci.errors import UsageError
from kpy_ci.schema import ddl
from kpy_ci.schema.check import Today, _schemas_for
from kpy_ci.schema.drift import compare_postgres, template_matches
from kpy_ci.schema.lock import LockBuilder
from kpy_ci.schema.model import DbSchema, Where

INIT = """
CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2), note text);
CREATE TABLE logs (id serial PRIMARY KEY, line text);
"""
ITEMS_OID = 16400


def field(name: str, column: int, type_oid: int, modifier: int = -1) -> dict[str, Any]:
    return {
        "name": name, "table_oid": ITEMS_OID, "column": column, "type_oid": type_oid,
        "type_size": -1, "type_modifier": modifier, "format": 0,
    }  # fmt: skip


FIELDS = {
    "id": field("id", 1, 23),
    "name": field("name", 2, 25),
    "price": field("price", 3, 1700, 655366),
    "note": field("note", 4, 25),
}


def mock(n: int, sql: str, result: list[str] | None = None) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if result is not None:
        messages.append({"type": "RowDescription", "fields": [FIELDS[c] for c in result]})
    messages += [{"type": "CommandComplete", "tag": "X"}, {"type": "ReadyForQuery", "status": "I"}]
    return {
        "name": f"mock-{n}",
        "protocol": "postgres",
        "destination": "127.0.0.1:5432",
        "connection": 1,
        "order": n,
        "request": {"messages": [{"type": "Query", "sql": sql}], "sql": sql},
        "response": {"messages": messages},
    }


def startup() -> dict[str, Any]:
    start = {"type": "StartupMessage", "parameters": {"user": "u", "database": "shop"}}
    return {
        "name": "mock-0", "protocol": "postgres", "destination": "127.0.0.1:5432",
        "connection": 1, "order": 0, "request": {"messages": [start]}, "response": {"messages": []},
    }  # fmt: skip


def lock_of(*mocks: dict[str, Any]) -> dict[str, Any]:
    builder = LockBuilder()
    for m in (startup(), *mocks):
        builder.add(m)
    [entry] = builder.lock()["postgres"]
    return entry  # type: ignore[no-any-return]


def schema(*migrations: str) -> DbSchema:
    db = DbSchema()
    for k, sql in enumerate([INIT, *migrations], 1):
        ddl.apply(db, sql, f"{k:03}.sql")
    return db


def verdicts(entry: dict[str, Any], today: DbSchema) -> dict[str, tuple[str, ...]]:
    """change -> the statements it breaks (empty: harmless)."""
    return {c.what: c.queries for c in compare_postgres(entry, today, "postgres x", None)}


SELECT_NAME = "SELECT id, name FROM items WHERE id = $1"
SELECT_ALL = "SELECT * FROM items"
INSERT = "INSERT INTO items (name, price) VALUES ($1, $2)"
POSITIONAL = "INSERT INTO items VALUES (DEFAULT, $1, $2, $3)"


def test_the_lock_ties_result_columns_to_their_table_and_types() -> None:
    entry = lock_of(mock(1, SELECT_NAME, ["id", "name"]), mock(2, INSERT))
    columns = entry["tables"]["items"]["columns"]
    assert columns["id"] == {"type": "integer", "attnum": 1}
    assert columns["name"] == {"type": "text", "attnum": 2}
    assert columns["price"] == {"type": None, "attnum": None}  # only written, never shown
    assert entry["tables"]["items"]["complete"] is False
    [select, insert] = entry["queries"]
    assert select["reads"] == {"items": ["id", "name"]} and select["mocks"] == 1
    assert insert["inserts"] == {"items": ["name", "price"]}


def test_a_dropped_column_breaks_exactly_the_queries_that_use_it() -> None:
    entry = lock_of(mock(1, SELECT_NAME, ["id", "name"]), mock(2, INSERT))
    today = schema("ALTER TABLE items DROP COLUMN price;")
    assert verdicts(entry, today) == {"items.price dropped": (INSERT,)}
    [change] = compare_postgres(entry, today, "postgres x", None)
    assert change.where == Where("002.sql", 1) and change.breaking


def test_a_live_rename_is_told_from_a_drop_by_its_attribute_number() -> None:
    entry = lock_of(mock(1, SELECT_NAME, ["id", "name"]))
    live = schema("ALTER TABLE items RENAME COLUMN name TO title;")
    live.removed_columns.clear()  # a live database keeps no history: only attnum tells
    assert verdicts(entry, live) == {"items.name renamed to title": (SELECT_NAME,)}


def test_a_type_change_breaks_what_reads_the_column() -> None:
    entry = lock_of(
        mock(1, "SELECT price FROM items", ["price"]), mock(2, SELECT_NAME, ["id", "name"])
    )
    today = schema("ALTER TABLE items ALTER COLUMN price TYPE numeric(12,3);")
    assert verdicts(entry, today) == {
        "items.price type changed: numeric(10,2) -> numeric(12,3)": ("SELECT price FROM items",)
    }


def test_select_star_and_positional_inserts_break_when_the_table_gains_a_column() -> None:
    star = mock(1, SELECT_ALL, ["id", "name", "price", "note"])
    entry = lock_of(star, mock(2, POSITIONAL), mock(3, SELECT_NAME, ["id", "name"]))
    assert entry["tables"]["items"]["complete"] is True
    today = schema("ALTER TABLE items ADD COLUMN color text;")
    assert verdicts(entry, today) == {"items.color added": (SELECT_ALL, POSITIONAL)}
    # without the star, nothing recorded can see the new column
    assert verdicts(lock_of(mock(3, SELECT_NAME, ["id", "name"])), today) == {}


def test_not_null_breaks_the_inserts_that_leave_the_column_out() -> None:
    entry = lock_of(mock(1, INSERT), mock(2, SELECT_NAME, ["id", "name"]))
    today = schema("ALTER TABLE items ALTER COLUMN note SET NOT NULL;")
    assert verdicts(entry, today) == {"items.note is NOT NULL with no default": (INSERT,)}
    with_default = schema(
        "ALTER TABLE items ALTER COLUMN note SET DEFAULT '';",
        "ALTER TABLE items ALTER COLUMN note SET NOT NULL;",
    )
    assert verdicts(entry, with_default) == {}


def test_harmless_statements_after_the_recorded_schema_are_listed_with_their_line() -> None:
    entry = lock_of(mock(1, SELECT_NAME, ["id", "name"]))
    today = schema("CREATE INDEX items_name_idx ON items (name);\nCREATE TABLE other (id int);")
    since = [w for w, *_ in today.changes if w.file == "002.sql"]
    changes = compare_postgres(entry, today, "postgres x", since)
    assert [(c.breaking, c.where) for c in changes] == [
        (False, Where("002.sql", 1)),
        (False, Where("002.sql", 2)),
    ]
    assert "no recorded query uses the table" in changes[1].what


def test_a_schema_of_another_service_is_refused_not_called_a_drop_of_everything() -> None:
    entry = lock_of(mock(1, SELECT_NAME, ["id", "name"]))
    other = DbSchema()
    ddl.apply(other, "CREATE TABLE users (id int);", "001.sql")
    with pytest.raises(UsageError, match="none of the tables this set uses"):
        _schemas_for(entry, Today(live=other, database="users"), True, Path("kpy/users"))


def test_paths_fit_their_templates() -> None:
    assert template_matches("/rates/{code}", "/rates/EUR")
    assert not template_matches("/rates/{code}", "/rates/EUR/x")
    assert template_matches("/rates", "/rates") and not template_matches("/rates", "/ratesx")
