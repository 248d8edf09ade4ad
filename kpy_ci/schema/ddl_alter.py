"""ALTER TABLE, one action after another (several may share one statement), for ddl.py.
Actions that cannot change a table's columns, constraints or indexes (OWNER TO, SET
STATISTICS, ENABLE TRIGGER...) are skipped; any other action not followed gives a note.
Pure."""

from __future__ import annotations

import re
from collections.abc import Callable

from pglast import ast
from pglast.enums import AlterTableType as At
from pglast.enums import ConstrType, ObjectType

from kpy_ci.schema import ddlobjects as obj
from kpy_ci.schema.ddl_edit import Edit
from kpy_ci.schema.model import Table
from kpy_ci.schema.pgtypes import spell

_NO_SHAPE = {
    At.AT_SetStatistics, At.AT_SetOptions, At.AT_ResetOptions, At.AT_SetStorage,
    At.AT_SetCompression, At.AT_ValidateConstraint, At.AT_AlterConstraint, At.AT_ChangeOwner,
    At.AT_ClusterOn, At.AT_DropCluster, At.AT_SetLogged, At.AT_SetUnLogged,
    At.AT_SetAccessMethod, At.AT_SetTableSpace, At.AT_SetRelOptions, At.AT_ResetRelOptions,
    At.AT_ReplaceRelOptions, At.AT_EnableTrig, At.AT_EnableAlwaysTrig,
    At.AT_EnableReplicaTrig, At.AT_DisableTrig, At.AT_EnableTrigAll, At.AT_DisableTrigAll,
    At.AT_EnableTrigUser, At.AT_DisableTrigUser, At.AT_EnableRule, At.AT_EnableAlwaysRule,
    At.AT_EnableReplicaRule, At.AT_DisableRule, At.AT_ReplicaIdentity,
    At.AT_EnableRowSecurity, At.AT_DisableRowSecurity, At.AT_ForceRowSecurity,
    At.AT_NoForceRowSecurity, At.AT_GenericOptions, At.AT_AlterColumnGenericOptions,
    At.AT_SetIdentity,
}  # fmt: skip


def alter_table(edit: Edit, stmt: ast.AlterTableStmt) -> str | None:
    """Each action of one ALTER TABLE; notes joined by "; "."""
    if stmt.objtype != ObjectType.OBJECT_TABLE or stmt.relation is None:
        return None  # ALTER INDEX/VIEW/SEQUENCE ... SET ...: no table changes shape
    key = obj.table_key(stmt.relation)
    table = edit.schema.tables.get(key)
    if table is None:
        return None if stmt.missing_ok else f"ALTER TABLE {key}: no such table"
    notes = [note for cmd in stmt.cmds or () if (note := _action(edit, table, cmd))]
    return "; ".join(notes) or None


def _action(edit: Edit, table: Table, cmd: ast.AlterTableCmd) -> str | None:
    kind, name = cmd.subtype, cmd.name
    if kind in _NO_SHAPE:
        return None
    if kind == At.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
        return _add_column(edit, table, cmd.def_, bool(cmd.missing_ok))
    if kind == At.AT_AddConstraint and isinstance(cmd.def_, ast.Constraint):
        return _add_constraint(edit, table, cmd.def_)
    if kind == At.AT_DropConstraint and name is not None:
        if name not in table.constraints:
            return None if cmd.missing_ok else f"{_at(table)} DROP CONSTRAINT {name}: no such"
        edit.drop_constraint(table, name)
        return None
    if kind == At.AT_DropColumn and name is not None:
        if name not in table.columns:
            return None if cmd.missing_ok else f"{_at(table)}: no column {name}"
        edit.drop_column(table, name)
        return None
    action = _COLUMN_ACTIONS.get(kind) if kind is not None else None
    if name is None or action is None:
        return f"{_at(table)}: {_words(kind)} is not followed"
    if name not in table.columns:
        return f"{_at(table)}: no column {name}"
    action(edit, table, name, cmd)
    return None


def _words(kind: At | None) -> str:
    """AT_AttachPartition -> ATTACH PARTITION."""
    name = kind.name.removeprefix("AT_") if kind is not None else "an action"
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).upper()


def _at(table: Table) -> str:
    return f"ALTER TABLE {table.name}"


def _add_column(edit: Edit, table: Table, column: ast.ColumnDef, if_missing: bool) -> str | None:
    if column.colname in table.columns:
        return None if if_missing else f"{_at(table)} ADD COLUMN {column.colname}: it exists"
    edit.add_column(table, column)
    edit.change("ALTER TABLE ADD COLUMN", table.name, column.colname)
    return None


def _add_constraint(edit: Edit, table: Table, constraint: ast.Constraint) -> str | None:
    if constraint.indexname:  # ADD PRIMARY KEY USING INDEX: the index becomes its own
        return f"{_at(table)} ADD CONSTRAINT ... USING INDEX is not followed"
    if constraint.conname and constraint.conname in table.constraints:
        return f"{_at(table)} ADD CONSTRAINT {constraint.conname}: it exists"
    name = edit.add_constraint(table, constraint)
    if name is not None:
        edit.change(f"ADD CONSTRAINT {name} ON", table.name)
    elif constraint.contype == ConstrType.CONSTR_NOTNULL:
        for key in constraint.keys or ():
            edit.change("ALTER COLUMN SET NOT NULL", table.name, str(key.sval))
    return None


def _set_type(edit: Edit, table: Table, name: str, cmd: ast.AlterTableCmd) -> None:
    definition = cmd.def_
    if isinstance(definition, ast.ColumnDef) and definition.typeName is not None:
        table.columns[name].type = spell(definition.typeName)  # USING only converts values
    _changed(edit, table, name, "ALTER COLUMN TYPE")


def _set_not_null(edit: Edit, table: Table, name: str, cmd: ast.AlterTableCmd) -> None:
    table.columns[name].nullable = cmd.subtype == At.AT_DropNotNull
    _changed(
        edit,
        table,
        name,
        "ALTER COLUMN " + ("DROP" if cmd.subtype == At.AT_DropNotNull else "SET") + " NOT NULL",
    )


def _default(edit: Edit, table: Table, name: str, cmd: ast.AlterTableCmd) -> None:
    expr = cmd.def_ if isinstance(cmd.def_, ast.Node) else None
    column = table.columns[name]
    column.default = obj.default_text(expr, column.type) if expr is not None else None
    _changed(edit, table, name, f"ALTER COLUMN {'SET' if expr is not None else 'DROP'} DEFAULT")


def _identity(edit: Edit, table: Table, name: str, cmd: ast.AlterTableCmd) -> None:
    column = table.columns[name]
    if cmd.subtype == At.AT_DropIdentity:
        column.default = None
        _changed(edit, table, name, "ALTER COLUMN DROP IDENTITY")
    elif isinstance(cmd.def_, ast.Constraint):
        always = cmd.def_.generated_when == "a"
        column.default = f"generated {'always' if always else 'by default'} as identity"
        column.nullable = False
        _changed(edit, table, name, "ALTER COLUMN ADD IDENTITY")


def _drop_expression(edit: Edit, table: Table, name: str, cmd: ast.AlterTableCmd) -> None:
    table.columns[name].default = None  # a generated column becomes a plain one
    _changed(edit, table, name, "ALTER COLUMN DROP EXPRESSION")


def _changed(edit: Edit, table: Table, name: str, what: str) -> None:
    table.columns[name].where = edit.where
    edit.change(what, table.name, name)


_COLUMN_ACTIONS: dict[At, Callable[[Edit, Table, str, ast.AlterTableCmd], None]] = {
    At.AT_AlterColumnType: _set_type,
    At.AT_SetNotNull: _set_not_null,
    At.AT_DropNotNull: _set_not_null,
    At.AT_ColumnDefault: _default,
    At.AT_AddIdentity: _identity,
    At.AT_DropIdentity: _identity,
    At.AT_DropExpression: _drop_expression,
}
