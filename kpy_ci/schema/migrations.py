"""Today's schema from a directory of migration files, applied in order to an empty schema
(ddl.py), with the schema after each step so drift can find the first step after which a
recording's lock holds.

The layout is told from the file names, never guessed across tools: plain SQL files
(natural order of the numbers in their names: 2_x.sql before 10_x.sql), golang-migrate
(``1_init.up.sql``; ``.down.sql`` ignored), Flyway (``V1__init.sql``, ``V1.1__x.sql``,
``V2_1__x.sql`` by version; ``R__x.sql`` repeatables after them by name; ``U`` undo files
ignored) and Alembic's offline SQL (``alembic upgrade head --sql``: each ``-- Running
upgrade a -> b`` section one step; its own ``alembic_version`` table left out). A plain file
in dbmate's or goose's format counts up to its down marker. psql's backslash commands are
skipped. Reading files is the only I/O; Where.file is the path as the user gave it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from kpy_ci.errors import UsageError
from kpy_ci.schema.ddl import apply
from kpy_ci.schema.model import DbSchema, Table, Where

_GOLANG = re.compile(r"(\d+)_.*\.(up|down)\.sql", re.I)
_FLYWAY = re.compile(r"([VU])(\d+(?:[._]\d+)*)__.*\.sql|R__(.*)\.sql")
_RUNNING = re.compile(r"^-- Running upgrade (.*?) -> (\S+)", re.M)
_DOWN = re.compile(r"^--\s*(?:migrate:down|\+goose\s+Down)\b.*$", re.M | re.I)
_PSQL = re.compile(r"^[ \t]*\\(\S*).*$", re.M)
ALEMBIC_TABLE = "alembic_version"


@dataclass(frozen=True)
class MigrationFile:
    path: Path
    """Where to read it."""
    name: str
    """How Where.file names it: the directory as given, joined with the file's name."""
    layout: str
    """``plain``, ``golang-migrate``, ``flyway`` or ``alembic``."""
    order: tuple[object, ...] = ()


@dataclass(frozen=True)
class Step:
    """One migration applied: a file, or one section of an Alembic file."""

    name: str
    where: Where
    """Its first line."""


@dataclass
class Migrations:
    schema: DbSchema
    """After every step."""
    steps: list[Step] = field(default_factory=list)
    snapshots: list[DbSchema] = field(default_factory=list)
    """``snapshots[k]``: the schema after steps 0..k."""
    ends: list[int] = field(default_factory=list)
    """``ends[k]``: how many of ``schema.changes`` steps 0..k made."""
    notes: list[str] = field(default_factory=list)
    """Statements that could change a table's shape and were not followed (ddl.apply)."""


def find(directory: Path) -> list[MigrationFile]:
    """The migration files of ``directory`` (or the one file it names) that apply, in the
    order they apply. UsageError when there are none, or they mix layouts."""
    if directory.is_file():
        return [_classify(directory, str(directory))]
    if not directory.is_dir():
        raise UsageError(f"{directory}: no such directory of migrations")
    paths = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() == ".sql")
    if not paths:
        raise UsageError(
            f"{directory}: no .sql migration files in it (subdirectories are not read)"
        )
    files = [_classify(p, str(directory / p.name)) for p in paths]
    layouts = {f.layout: f for f in files}
    if len(layouts) > 1:
        one, other = list(layouts.values())[:2]
        raise UsageError(
            f"{directory}: migration files of more than one tool: {one.path.name} is "
            f"{one.layout}, {other.path.name} is {other.layout}; give one tool's directory"
        )
    wanted = [f for f in files if f.order]  # down and undo migrations have no place
    _no_repeats(directory, wanted)
    return sorted(wanted, key=lambda f: f.order)


def _classify(path: Path, name: str) -> MigrationFile:
    if golang := _GOLANG.fullmatch(path.name):
        up = golang[2].lower() == "up"
        return MigrationFile(path, name, "golang-migrate", (int(golang[1]),) if up else ())
    if flyway := _FLYWAY.fullmatch(path.name):
        if flyway[3] is not None:  # repeatable: after every versioned one, by description
            return MigrationFile(path, name, "flyway", (1, flyway[3]))
        version = tuple(int(part) for part in re.split(r"[._]", flyway[2]))
        return MigrationFile(path, name, "flyway", (0, version) if flyway[1] == "V" else ())
    if _is_alembic(path):
        return MigrationFile(path, name, "alembic", _natural(path.name))
    return MigrationFile(path, name, "plain", _natural(path.name))


def _natural(name: str) -> tuple[object, ...]:
    """2_x.sql before 10_x.sql: runs of digits compared as numbers."""
    parts = re.split(r"(\d+)", name.lower())
    keys = [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts]
    return (*keys, (2, 0, name))  # the name itself breaks ties (01_x and 1_x)


def _is_alembic(path: Path) -> bool:
    text = _read(path, str(path))
    return ALEMBIC_TABLE in text and _RUNNING.search(text) is not None


def _no_repeats(directory: Path, files: list[MigrationFile]) -> None:
    seen: dict[tuple[object, ...], MigrationFile] = {}
    for f in files:
        if f.layout != "plain" and f.order in seen:
            raise UsageError(
                f"{directory}: {seen[f.order].path.name} and {f.path.name} have the same version"
            )
        seen[f.order] = f


def load(directory: Path) -> Migrations:
    """Every migration of ``directory`` applied in order to an empty schema."""
    result = Migrations(DbSchema())
    for file in find(directory):
        for where, sql, name in _steps(file):
            result.notes += _psql_notes(sql, where)
            result.notes += apply(result.schema, _PSQL.sub("", sql), where.file, where.line)
            if file.layout == "alembic":
                _forget(result.schema, ALEMBIC_TABLE)
            result.steps.append(Step(name, where))
            result.snapshots.append(snapshot(result.schema))
            result.ends.append(len(result.schema.changes))
    return result


def _steps(file: MigrationFile) -> list[tuple[Where, str, str]]:
    """(first line, SQL, name) of each step a file holds: the file (its up part), or each
    ``Running upgrade`` section of an Alembic file (what comes before the first goes with it)."""
    text = _read(file.path, file.name)
    if file.layout != "alembic":
        down = _DOWN.search(text)
        return [(Where(file.name, 1), text[: down.start()] if down else text, file.name)]
    starts = [m.start() for m in _RUNNING.finditer(text)]
    bounds = [0, *starts[1:], len(text)]
    steps = []
    for begin, end, m in zip(bounds, bounds[1:], _RUNNING.finditer(text), strict=False):
        line = 1 + text.count("\n", 0, begin)
        steps.append((Where(file.name, line), text[begin:end], f"{file.name}: {m[1]} -> {m[2]}"))
    return steps


def _read(path: Path, name: str) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UsageError(f"{name}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise UsageError(f"{name}: cannot read it: {e.strerror}") from None


def _psql_notes(sql: str, where: Where) -> list[str]:
    """psql's ``\\i`` and ``\\ir`` would run another file: say that it was not."""
    notes = []
    for m in _PSQL.finditer(sql):
        if m[1] in ("i", "ir", "include", "include_relative"):
            line = where.line + sql.count("\n", 0, m.start())
            notes.append(f"{where.file}:{line}: psql's \\{m[1]} is not followed")
    return notes


def _forget(schema: DbSchema, table: str) -> None:
    """Alembic's bookkeeping table is no part of the application's schema."""
    schema.tables.pop(table, None)
    schema.removed_tables.pop(table, None)
    for key in [k for k in schema.removed_columns if k[0] == table]:
        del schema.removed_columns[key]
    schema.changes[:] = [c for c in schema.changes if c[2] != table]


def snapshot(schema: DbSchema) -> DbSchema:
    """A copy later statements cannot change (Where and Removal are frozen: shared)."""
    return DbSchema(
        tables={k: _copy_table(t) for k, t in schema.tables.items()},
        removed_tables=dict(schema.removed_tables),
        removed_columns=dict(schema.removed_columns),
        changes=list(schema.changes),
    )


def _copy_table(table: Table) -> Table:
    return dataclasses.replace(
        table,
        columns={k: dataclasses.replace(c) for k, c in table.columns.items()},
        constraints=dict(table.constraints),
        indexes=dict(table.indexes),
    )
