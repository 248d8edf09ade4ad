"""DDL applied to a DbSchema with no database: each statement of a migration parsed by pglast
(PostgreSQL's own parser) and replayed on the model the way PostgreSQL would apply it, with
the file and line of the statement kept on what it made (Column.where, Table.where) and in
``DbSchema.changes``. Pure.

What PostgreSQL decides on its own is decided here the same way: the names of unnamed
constraints and indexes (ddlobjects.py), attribute numbers (a dropped column's number is
never given again; a renamed column keeps its own), NOT NULL from a primary key, serial's
sequence default. Statements that cannot change a table's shape (INSERT, GRANT, CREATE
FUNCTION...) are skipped; one that could and is not understood gives a note.

``DbSchema.changes`` entries read as a sentence with their table (and column):
``ALTER TABLE ADD COLUMN`` products.color, ``CREATE INDEX products_name_idx ON`` products.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pglast
from pglast import ast
from pglast.enums import ConstrType, DropBehavior, ObjectType

from kpy_ci.errors import UsageError
from kpy_ci.schema import ddlobjects as obj
from kpy_ci.schema.ddl_alter import alter_table
from kpy_ci.schema.ddl_edit import Edit
from kpy_ci.schema.model import DbSchema, Removal, Table, Where


def apply(schema: DbSchema, sql: str, file: str, first_line: int = 1) -> list[str]:
    """Applies every statement of ``sql`` (the text of ``file`` from its line
    ``first_line`` on) to ``schema``, in order. Returns notes, ``file:line: why``, on the
    statements that could change a table's shape but were not understood. UsageError
    ``file:line: not valid SQL: why`` when the text does not parse."""
    try:
        statements = pglast.parse_sql(sql)
    except pglast.parser.ParseError as e:
        index = e.args[1] if len(e.args) > 1 and e.args[1] is not None else len(sql)
        line = first_line + sql.count("\n", 0, index)
        raise UsageError(f"{file}:{line}: not valid SQL: {e.args[0]}") from None
    notes = []
    for raw in statements:
        where = Where(file, first_line + _line_of(sql, raw.stmt_location or 0))
        handler = _HANDLERS.get(type(raw.stmt))
        note = handler(Edit(schema, where), raw.stmt) if handler else None
        if note:
            notes.append(f"{where}: {note}")
    return notes


_LEADING = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/)*", re.S)


def _line_of(sql: str, offset: int) -> int:
    """Lines before a statement's first word. pglast gives character offsets into the str
    (it converts PostgreSQL's byte offsets); a statement's may start at comments before it."""
    start = _LEADING.match(sql, offset)
    return sql.count("\n", 0, start.end() if start else offset)


def _create_table(st: Edit, stmt: ast.CreateStmt) -> str | None:
    assert stmt.relation is not None
    key = obj.table_key(stmt.relation)
    if key in st.schema.tables:
        return None if stmt.if_not_exists else f"CREATE TABLE {key}: it exists already"
    table = Table(key, where=st.where)
    st.schema.tables[key] = table
    st.schema.removed_tables.pop(key, None)
    st.change("CREATE TABLE", key)
    notes = []
    for parent in stmt.inhRelations or ():  # INHERITS, PARTITION OF: the parent's columns
        notes.append(_copy_columns(st, table, obj.table_key(parent), "inherited"))
    keyed: list[ast.Constraint] = []
    for element in stmt.tableElts or ():
        if isinstance(element, ast.ColumnDef):
            st.add_column(table, element, keyed)
        elif isinstance(element, ast.Constraint) and element.contype in _KEYED:
            keyed.append(element)
        elif isinstance(element, ast.Constraint):
            st.add_constraint(table, element)
        elif isinstance(element, ast.TableLikeClause) and element.relation is not None:
            notes.append(_copy_columns(st, table, obj.table_key(element.relation), "LIKE"))
            if element.options:
                notes.append(f"CREATE TABLE {key} (LIKE ... INCLUDING): only columns copied")
    for constraint in _without_repeats(keyed):
        st.add_constraint(table, constraint)
    if stmt.ofTypename is not None:
        notes.append(f"CREATE TABLE {key} OF a type: the type's columns are not known")
    return "; ".join(n for n in notes if n) or None


_KEYED = (ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_UNIQUE)


def _without_repeats(keyed: list[ast.Constraint]) -> list[ast.Constraint]:
    """CREATE TABLE makes one index of a primary key or unique constraints on the same
    columns (``UNIQUE PRIMARY KEY``), the primary key first, a name given to one kept."""
    kept: list[ast.Constraint] = []
    for constraint in sorted(keyed, key=lambda c: c.contype != ConstrType.CONSTR_PRIMARY):
        same = next((k for k in kept if _index_of(k) == _index_of(constraint)), None)
        if same is None:
            kept.append(constraint)
        elif same.conname is None:
            same.conname = constraint.conname
    return kept


def _index_of(c: ast.Constraint) -> tuple[object, ...]:
    keys = tuple(k.sval for k in c.keys or ())
    including = tuple(k.sval for k in c.including or ())
    return keys, including, c.nulls_not_distinct, c.deferrable, c.initdeferred


def _copy_columns(st: Edit, table: Table, source: str, how: str) -> str | None:
    """LIKE, INHERITS and PARTITION OF: the source's columns, types and NOT NULL."""
    parent = st.schema.tables.get(source)
    if parent is None:
        return f"CREATE TABLE {table.name}: {how} table {source} is not known"
    for col in parent.columns.values():
        st.new_column(table, col.name, col.type, nullable=col.nullable)
    return None


def _create_index(st: Edit, stmt: ast.IndexStmt) -> str | None:
    assert stmt.relation is not None
    key = obj.table_key(stmt.relation)
    table = st.schema.tables.get(key)
    if table is None:
        return f"CREATE INDEX on {key}: no such table"
    params = tuple(stmt.indexParams or ()) + tuple(stmt.indexIncludingParams or ())
    name = stmt.idxname or obj.choose_name(
        _relname(key), obj.index_column_names(params), "idx", st.names_in_schema(key)
    )
    if st.find_index(_schema_of(key), name) is not None:
        return None if stmt.if_not_exists else f"CREATE INDEX {name}: it exists already"
    table.indexes[name] = obj.index_text(name, key, stmt)
    st.change(f"CREATE {'UNIQUE ' if stmt.unique else ''}INDEX {name} ON", key)
    return None


def _drop(st: Edit, stmt: ast.DropStmt) -> str | None:
    kind, objects = stmt.removeType, stmt.objects or ()
    if kind in (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_INDEX):
        drop = _drop_table if kind == ObjectType.OBJECT_TABLE else _drop_index
        names = [tuple(str(n.sval) for n in name) for name in objects]
        return _each(names, lambda n: drop(st, n, bool(stmt.missing_ok)))
    if kind == ObjectType.OBJECT_SCHEMA:  # with CASCADE, its tables go (else it was empty)
        for schema in (str(name.sval) for name in objects):
            for key in [k for k in st.schema.tables if _schema_of(k) == schema]:
                _drop_table(st, tuple(key.split(".")), True)
        return None
    if stmt.behavior == DropBehavior.DROP_CASCADE and kind not in _DROPS_WITHOUT_COLUMNS:
        what = kind.name.removeprefix("OBJECT_") if kind is not None else "object"
        return f"DROP {what} ... CASCADE: columns that depended on it are not followed"
    return None


_DROPS_WITHOUT_COLUMNS = {
    ObjectType.OBJECT_VIEW, ObjectType.OBJECT_MATVIEW, ObjectType.OBJECT_SEQUENCE,
    ObjectType.OBJECT_TRIGGER, ObjectType.OBJECT_POLICY, ObjectType.OBJECT_RULE,
    ObjectType.OBJECT_FUNCTION, ObjectType.OBJECT_PROCEDURE, ObjectType.OBJECT_ROUTINE,
}  # fmt: skip


def _each(names: list[tuple[str, ...]], do: Callable[[tuple[str, ...]], str | None]) -> str | None:
    notes = [note for name in names if (note := do(name))]
    return "; ".join(notes) or None


def _drop_table(st: Edit, name: tuple[str, ...], missing_ok: bool) -> str | None:
    key = _key(name)
    if st.schema.tables.pop(key, None) is None:
        return None if missing_ok else f"DROP TABLE {key}: no such table"
    st.schema.removed_tables[key] = Removal(st.where)
    st.drop_references(key, None)
    st.change("DROP TABLE", key)
    return None


def _drop_index(st: Edit, name: tuple[str, ...], missing_ok: bool) -> str | None:
    found = st.find_index(_schema_of(_key(name)), name[-1])
    if found is None:
        return None if missing_ok else f"DROP INDEX {_key(name)}: no such index"
    if name[-1] in found.constraints:
        return f"DROP INDEX {name[-1]}: the index of a constraint (drop the constraint)"
    del found.indexes[name[-1]]
    st.change(f"DROP INDEX {name[-1]} ON", found.name)
    return None


def _rename(st: Edit, stmt: ast.RenameStmt) -> str | None:
    kind, new = stmt.renameType, str(stmt.newname)
    if stmt.relation is None:
        return None
    key = obj.table_key(stmt.relation)
    if kind == ObjectType.OBJECT_INDEX:
        table = st.find_index(_schema_of(key), str(stmt.relation.relname))
        if table is not None:
            st.rename_index(table, str(stmt.relation.relname), new)
        return None if table or stmt.missing_ok else f"ALTER INDEX {key}: no such index"
    if kind not in (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_COLUMN, _CONSTRAINT):
        return None  # views, sequences...: no table changes shape
    table = st.schema.tables.get(key)
    if table is None:
        return None if stmt.missing_ok else f"ALTER TABLE {key}: no such table"
    if kind == ObjectType.OBJECT_TABLE:
        schema = _schema_of(key)
        st.move_table(key, new if schema == "public" else f"{schema}.{new}", "RENAME TABLE")
        return None
    old = str(stmt.subname)
    if kind == _CONSTRAINT:
        if old not in table.constraints:
            return f"ALTER TABLE {key} RENAME CONSTRAINT {old}: no such constraint"
        st.rename_constraint(table, old, new)
        return None
    if old not in table.columns:
        return f"ALTER TABLE {key} RENAME COLUMN {old}: no such column"
    st.rename_column(table, old, new)
    return None


_CONSTRAINT = ObjectType.OBJECT_TABCONSTRAINT


def _set_schema(st: Edit, stmt: ast.AlterObjectSchemaStmt) -> str | None:
    if stmt.objectType != ObjectType.OBJECT_TABLE or stmt.relation is None:
        return None
    key = obj.table_key(stmt.relation)
    if key not in st.schema.tables:
        return None if stmt.missing_ok else f"ALTER TABLE {key} SET SCHEMA: no such table"
    schema, name = str(stmt.newschema), str(stmt.relation.relname)
    st.move_table(key, name if schema == "public" else f"{schema}.{name}", "SET SCHEMA")
    return None


def _create_table_as(st: Edit, stmt: ast.CreateTableAsStmt) -> str | None:
    into = stmt.into.rel if stmt.into is not None else None
    name = obj.table_key(into) if into is not None else "?"
    if stmt.objtype != ObjectType.OBJECT_TABLE:
        return None  # a materialized view
    return f"CREATE TABLE {name} AS: columns made by a query are not followed"


def _search_path(st: Edit, stmt: ast.VariableSetStmt) -> str | None:
    if stmt.name != "search_path":
        return None
    values = {getattr(getattr(a, "val", None), "sval", None) for a in stmt.args or ()}
    if values <= {"public", "$user"}:
        return None
    return "SET search_path is not followed: unqualified names are taken to be in public"


def _do(st: Edit, stmt: ast.DoStmt) -> str | None:
    return "DO block: what it runs is not followed"


def _key(name: tuple[str, ...]) -> str:
    return name[-1] if len(name) == 1 or name[-2] == "public" else f"{name[-2]}.{name[-1]}"


def _schema_of(key: str) -> str:
    return key.rpartition(".")[0] or "public"


def _relname(key: str) -> str:
    return key.rpartition(".")[2]


_HANDLERS: dict[type[Any], Callable[[Edit, Any], str | None]] = {
    ast.CreateStmt: _create_table,
    ast.IndexStmt: _create_index,
    ast.DropStmt: _drop,
    ast.RenameStmt: _rename,
    ast.AlterTableStmt: alter_table,
    ast.AlterObjectSchemaStmt: _set_schema,
    ast.CreateTableAsStmt: _create_table_as,
    ast.VariableSetStmt: _search_path,
    ast.DoStmt: _do,
}
