"""The names a query level sees while sql.py walks a statement (tables, CTEs, subqueries, in
nested scopes), and what the walk has found so far. Internal to sql.py; pure data."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

Col = tuple[str, str]
"""(table, column)"""


@dataclass(frozen=True)
class Source:
    """One name in a FROM list: a table, or a derived relation (CTE, subquery, function, VALUES)
    with the column names it is known to have and the tables whose ``*`` shows through it."""

    table: str | None = None
    columns: tuple[str, ...] = ()
    through: tuple[str, ...] = ()
    members: tuple[Source, ...] = ()
    """A join's alias: the sources it hides."""

    def lookup(self, column: str) -> list[Col] | None:
        """Where its ``column`` comes from: ``[]`` for a derived relation's own column (read
        already), None when it has no such column as far as is known."""
        if self.table is not None:
            return [(self.table, column)]
        if self.members:
            return among(self.members, column)
        if column in self.columns:
            return []
        return [(t, column) for t in self.through] or None

    def stars(self) -> tuple[str, ...]:
        if self.table is not None:
            return (self.table,)
        return self.through + tuple(t for m in self.members for t in m.stars())


def among(sources: Iterable[Source], column: str) -> list[Col] | None:
    found = [s.lookup(column) for s in sources]
    if any(f == [] for f in found):
        return []  # a subquery's or CTE's own output column, not a table's
    hits = [c for f in found if f for c in f]
    return hits or None


@dataclass(frozen=True)
class Scope:
    """The names one query level sees: its FROM items, its CTEs, and the enclosing level."""

    sources: tuple[tuple[str, Source], ...] = ()
    parent: Scope | None = None
    ctes: dict[str, Source] = field(default_factory=dict)

    def child(self) -> Scope:
        return Scope(parent=self, ctes=self.ctes)

    def plus(self, more: Iterable[tuple[str, Source]]) -> Scope:
        return replace(self, sources=self.sources + tuple(more))

    def named(self, name: str) -> Source | None:
        scope: Scope | None = self
        while scope is not None:
            for alias, source in reversed(scope.sources):
                if alias == name:
                    return source
            scope = scope.parent
        return None

    def unqualified(self, column: str) -> list[Col]:
        scope: Scope | None = self
        while scope is not None:
            found = among((s for _, s in scope.sources), column)
            if found is not None:
                return found
            scope = scope.parent
        return []


def first(seen: dict[str, int], name: str, location: int) -> None:
    seen[name] = min(seen.get(name, location), location)


def in_order(seen: dict[str, int]) -> tuple[str, ...]:
    return tuple(sorted(seen, key=seen.__getitem__))


class Uses:
    """What the walk found, each name with the text offset it first appeared at."""

    def __init__(self) -> None:
        self.reads: dict[str, dict[str, int]] = {}
        self.writes: dict[str, dict[str, int]] = {}
        self.inserts: dict[str, dict[str, int] | None] = {}
        self.star: dict[str, int] = {}
        self.deletes: dict[str, int] = {}
        self.tables: dict[str, int] = {}

    def read(self, columns: Iterable[Col], location: int) -> None:
        for table, column in columns:
            first(self.reads.setdefault(table, {}), column, location)

    def write(self, table: str, column: str, location: int) -> None:
        first(self.writes.setdefault(table, {}), column, location)

    def insert(self, table: str, columns: Sequence[tuple[str, int]] | None) -> None:
        self.writes.setdefault(table, {})
        if columns is None:
            self.inserts[table] = None  # one positional INSERT makes the table's list unknown
            return
        named = self.inserts.setdefault(table, {})
        for name, location in columns:
            self.write(table, name, location)
            if named is not None:
                first(named, name, location)
