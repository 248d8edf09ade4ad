"""What changed in a dependency's schema since a set was recorded, and which recorded queries,
mocks and tests it makes stale. Pure: the lock, today's schema and the set's mocks in;
changes out, each breaking or harmless, each with what it touches.

Breaking, for PostgreSQL: a table or a column a recorded query uses is gone (dropped or
renamed), a column it uses changed type, a column became NOT NULL without a default where a
recorded INSERT leaves it out, a table read with ``SELECT *`` (or filled by an INSERT that
names no columns) gained a column. Harmless: the rest that changed (an index, a constraint,
a column or table no recorded query uses), listed as such.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from kpy_ci.schema import sql
from kpy_ci.schema.lock import complete_tables, schema_of
from kpy_ci.schema.model import Column, DbSchema, Removal, Table, Where

Doc = dict[str, Any]


@dataclass(frozen=True)
class Change:
    dependency: str
    """``postgres 127.0.0.1:5432/shop``, ``http 127.0.0.1:8081``"""
    what: str
    """One line: ``products.stock dropped``, ``GET /rates 200: response field 'rate' removed``."""
    breaking: bool
    where: Where | None = None
    """The migration statement that made it, when drift read migrations."""
    queries: tuple[str, ...] = ()
    """The recorded statements (or HTTP operations) it breaks."""
    mocks: tuple[str, ...] = ()
    tests: tuple[str, ...] = ()

    def line(self) -> str:
        at = f" ({self.where})" if self.where else ""
        verdict = "breaking" if self.breaking else "harmless"
        return f"{verdict}: {self.dependency}: {self.what}{at}"


@dataclass
class Uses:
    """Which lock queries touch a table or one of its columns, by how."""

    queries: list[Doc]

    def of_table(self, table: str) -> list[Doc]:
        return [q for q in self.queries if table in _tables(q)]

    def of_column(self, table: str, column: str) -> list[Doc]:
        return [
            q
            for q in self.queries
            if column in q["reads"].get(table, ())
            or column in q["writes"].get(table, ())
            or column in (q["inserts"].get(table) or ())
            or table in q["star"]
        ]

    def star(self, table: str) -> list[Doc]:
        positional = [
            q for q in self.queries if table in q["inserts"] and q["inserts"][table] is None
        ]
        return [q for q in self.queries if table in q["star"]] + positional

    def inserts_omitting(self, table: str, column: str) -> list[Doc]:
        return [
            q
            for q in self.queries
            if table in q["inserts"]
            and q["inserts"][table] is not None
            and column not in q["inserts"][table]
        ]


def _tables(query: Doc) -> set[str]:
    return {*query["reads"], *query["writes"], *query["inserts"], *query["star"], *query["deletes"]}


def compare_postgres(
    entry: Doc, today: DbSchema, dependency: str, since: Sequence[Where] | None = None
) -> list[Change]:
    """The lock's database ``entry`` against ``today``'s schema. ``since``: from migrations,
    the statements applied after the lock's schema was reached (the candidates for harmless
    changes); None for a live database."""
    locked = schema_of(entry)
    complete = complete_tables(entry)
    uses = Uses([q for q in entry["queries"] if not q.get("error")])
    changes: list[Change] = []
    for name, table in locked.tables.items():
        now = today.tables.get(name)
        if now is None:
            changes.append(_table_gone(name, today.removed_tables.get(name), uses, dependency))
            continue
        changes += _columns(table, now, today, name in complete, uses, dependency)
        if entry["introspected"] and since is None:  # migrations list their statements
            changes += _extras(table, now, dependency)
    explained = {c.where for c in changes if c.where is not None}
    if since is not None:
        changes += _harmless_statements(today, since, explained, set(locked.tables), dependency)
    return changes


def _change(dependency: str, what: str, queries: Iterable[Doc], where: Where | None) -> Change:
    sqls = tuple(dict.fromkeys(q["sql"] for q in queries))
    return Change(dependency, what, bool(sqls), where, sqls)


def _table_gone(name: str, removal: Removal | None, uses: Uses, dependency: str) -> Change:
    how = f"renamed to {removal.renamed_to}" if removal and removal.renamed_to else "dropped"
    return _change(dependency, f"table {name} {how}", uses.of_table(name), _at(removal))


def _at(removal: Removal | None) -> Where | None:
    return removal.where if removal is not None else None


def _columns(
    table: Table, now: Table, today: DbSchema, complete: bool, uses: Uses, dependency: str
) -> list[Change]:
    name = table.name
    changes = []
    by_attnum = {c.attnum: c for c in now.columns.values() if c.attnum is not None}
    renamed_to: set[str] = set()
    for col in table.columns.values():
        current = now.columns.get(col.name)
        if current is None:
            removal = today.removed_columns.get((name, col.name))
            target = removal.renamed_to if removal else _renamed_live(col, by_attnum, table)
            if target:
                renamed_to.add(target)
            how = f"renamed to {target}" if target else "dropped"
            queries = uses.of_column(name, col.name)
            changes.append(_change(dependency, f"{name}.{col.name} {how}", queries, _at(removal)))
            continue
        if col.type and current.type and col.type != current.type:
            what = f"{name}.{col.name} type changed: {col.type} -> {current.type}"
            changes.append(_change(dependency, what, uses.of_column(name, col.name), current.where))
        changes += _not_null(name, col, current, uses, dependency)
    for col in now.columns.values():
        if col.name in table.columns or col.name in renamed_to:
            continue
        omitting = uses.inserts_omitting(name, col.name) if _required(col) else []
        required = " is NOT NULL with no default"
        if complete:  # the lock saw every column: this one is new
            what = f"{name}.{col.name} added" + (f" (and{required[3:]})" if omitting else "")
            queries = [*uses.star(name), *omitting]
            changes.append(_change(dependency, what, queries, col.where))
        elif omitting:  # new, or made NOT NULL since: the INSERTs worked when recorded
            changes.append(
                _change(dependency, name + "." + col.name + required, omitting, col.where)
            )
    return changes


def _renamed_live(col: Column, by_attnum: Mapping[int, Column], table: Table) -> str | None:
    """A live database does not say what was renamed, but a renamed column keeps its
    attribute number."""
    other = by_attnum.get(col.attnum) if col.attnum is not None else None
    return other.name if other is not None and other.name not in table.columns else None


def _required(col: Column) -> bool:
    return col.nullable is False and col.default is None


def _not_null(name: str, was: Column, now: Column, uses: Uses, dependency: str) -> list[Change]:
    """NOT NULL with no default breaks the INSERTs that leave the column out (they worked
    when recorded, so it was nullable or had a default then)."""
    if not _required(now) or (was.nullable is False and was.default is None):
        return []
    omitting = uses.inserts_omitting(name, was.name)
    what = f"{name}.{was.name} is NOT NULL with no default"
    return [_change(dependency, what, omitting, now.where)] if omitting else []


def _extras(table: Table, now: Table, dependency: str) -> list[Change]:
    """What an introspected lock knows beyond the columns: indexes and constraints."""
    changes = []
    for kind, was, is_ in (
        ("index", table.indexes, now.indexes),
        ("constraint", table.constraints, now.constraints),
    ):
        for key in is_.keys() - was.keys():
            changes.append(Change(dependency, f"{table.name}: {kind} {key} added", False))
        for key in was.keys() - is_.keys():
            changes.append(Change(dependency, f"{table.name}: {kind} {key} removed", False))
    return sorted(changes, key=lambda c: c.what)


def _harmless_statements(
    today: DbSchema, since: Sequence[Where], explained: set[Where], used: set[str], dep: str
) -> list[Change]:
    """Each statement applied after the lock's schema that no breaking change came from."""
    wanted = set(since) - explained
    out = []
    for where, what, table, column in today.changes:
        if where in wanted:
            target = f"{table}.{column}" if column else table
            unused = "" if table in used else " (no recorded query uses the table)"
            out.append(Change(dep, f"{what} {target}{unused}", False, where))
            wanted.discard(where)
    return out


def holds(entry: Doc, schema: DbSchema) -> bool:
    """Whether a schema has every table and column the lock saw, with the same types: the
    lock could have been recorded on it."""
    for name, t in entry["tables"].items():
        table = schema.tables.get(name)
        if table is None:
            return False
        for cname, c in t["columns"].items():
            now = table.columns.get(cname)
            if now is None or (c["type"] and now.type and c["type"] != now.type):
                return False
    return True


@dataclass
class Impact:
    """Mocks by what they ran, and tests by the mocks they list: how a change reaches tests."""

    mocks_by_query: dict[str, list[str]] = field(default_factory=dict)
    """By the statement's ``sql.fingerprint``."""
    tests_by_mock: dict[str, list[str]] = field(default_factory=dict)
    test_order: dict[str, int] = field(default_factory=dict)
    """Each test's place in its set: stale tests are named in that order."""

    def apply(self, change: Change, mocks_by_key: Mapping[str, list[str]] | None = None) -> Change:
        if mocks_by_key is None:  # statements
            keys = [sql.fingerprint(q) for q in change.queries]
            source: Mapping[str, list[str]] = self.mocks_by_query
        else:
            keys, source = list(change.queries), mocks_by_key
        mocks = tuple(dict.fromkeys(m for k in keys for m in source.get(k, ())))
        tests = {t for m in mocks for t in self.tests_by_mock.get(m, ())}
        ordered = tuple(sorted(tests, key=lambda t: self.test_order.get(t, 0)))
        return replace(change, mocks=mocks, tests=ordered)


def template_matches(template: str, path: str) -> bool:
    """Whether a URL path fits an OpenAPI path template (``/rates/{code}``)."""
    pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
    return re.fullmatch(pattern, path) is not None
