"""A PostgreSQL schema as kpy compares it: tables by name, their columns, constraints and
indexes; built from a live database (introspect.py), from DDL and migration files
(ddl.py, migrations.py), or read back from a schema lock (lock.py). Pure data.

Names: a table is keyed ``name`` when it lives in ``public`` and ``schema.name`` otherwise;
column types are PostgreSQL's own spelling (``format_type``): ``integer``, ``text``,
``numeric(10,2)``, ``character varying(40)``, ``timestamp with time zone``, ``integer[]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Where:
    """The statement that made or changed something: a migration file and its line (from 1)."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Column:
    name: str
    type: str | None = None
    """format_type spelling; None when not known."""
    nullable: bool | None = None
    """None when not known (a lock made from results alone)."""
    default: str | None = None
    """The default's expression as text (``nextval('products_id_seq'::regclass)``, ``now()``)
    or, for an identity or serial column, what stands for it; None: no default (or unknown
    when ``nullable`` is None)."""
    attnum: int | None = None
    """pg_attribute.attnum: a renamed column keeps it."""
    where: Where | None = None


@dataclass
class Table:
    name: str
    columns: dict[str, Column] = field(default_factory=dict)
    """In the table's column order."""
    constraints: dict[str, str] = field(default_factory=dict)
    """name -> definition (``PRIMARY KEY (id)``, ``CHECK ((price >= 0))``, ``FOREIGN KEY ...``)."""
    indexes: dict[str, str] = field(default_factory=dict)
    """name -> definition (``CREATE INDEX products_name_idx ON products (name)``)."""
    where: Where | None = None
    last_attnum: int = field(default=0, compare=False)
    """The highest attnum ever given in the table, dropped columns included: PostgreSQL never
    gives one again (migrations only; ddl.py numbers added columns from it)."""


@dataclass(frozen=True)
class Removal:
    """Why something is gone from a schema built from migrations: dropped, or renamed to
    ``renamed_to``, by the statement at ``where``."""

    where: Where
    renamed_to: str | None = None


@dataclass
class DbSchema:
    tables: dict[str, Table] = field(default_factory=dict)
    removed_tables: dict[str, Removal] = field(default_factory=dict)
    removed_columns: dict[tuple[str, str], Removal] = field(default_factory=dict)
    """(table, column) -> how it went; only schemas built from migrations know this."""
    changes: list[tuple[Where, str, str, str | None]] = field(default_factory=list)
    """Every statement applied, in order: (where, what (``CREATE INDEX``, ``ALTER TABLE ...
    ADD COLUMN``...), table, column or None). Migrations only."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file, for ``kpy validate``: printed as one line."""

    file: str
    line: int
    field: str
    """Dotted path of the value at fault (``response.body.json.rate``), or ``(top level)``."""
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"
