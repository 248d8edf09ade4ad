"""What one recorded SQL statement reads and writes, from pglast's parse tree (PostgreSQL's own
parser): the tables and columns the schema lock ties to each query, so that drift can tell which
queries a schema change touches. Pure: text in, a QueryUse out.

There is no schema at hand, so some names are resolved by guessing, always towards listing more:
- a qualified column (``p.price``) goes to the table behind the alias; through a CTE or a subquery
  it adds nothing (the inner query read it already), unless the inner query read ``*``: then it
  goes to the tables behind that ``*``;
- an unqualified column goes to the one table of its scope or, when several could have it, to
  every one of them; an output column of a subquery, CTE or function in scope wins over tables;
  a scope where nothing could have it (a correlated subquery) passes it to the enclosing query;
- ORDER BY and GROUP BY names that are output aliases (``AS total``) are not columns; neither are
  NATURAL JOIN's implied columns (unknown without the schema);
- system catalogs (``pg_catalog``, ``information_schema``, unqualified ``pg_*``) are not the
  service's tables and are left out;
- ``count(*)`` reads no column, and ``*`` in ``EXISTS (SELECT * ...)`` reads none either (that
  list is never evaluated); ``t.*`` anywhere else is a star read of ``t``.
Columns are listed in the order they first appear in the text; tables likewise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pglast
from pglast import ast
from pglast.enums import CmdType, SetOperation, SubLinkType
from pglast.parser import ParseError
from pglast.parser import fingerprint as pg_fingerprint

from kpy_ci.schema.sql_scope import Scope, Source, Uses, among, first, in_order

# private, imported on purpose: the lock's SQL must be spelled exactly as the replay matcher keys it
from kpy_ci.trace import sql_key

_CATALOGS = frozenset({"pg_catalog", "information_schema"})


@dataclass(frozen=True)
class QueryUse:
    reads: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """table -> the columns the statement reads (select list, WHERE, JOIN, ORDER BY, SET values,
    RETURNING, ON CONFLICT...)."""
    writes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """table -> the columns it writes (SET targets, INSERT column lists); ``()`` for an INSERT that
    names no columns: every column, names unknown."""
    inserts: dict[str, tuple[str, ...] | None] = field(default_factory=dict)
    """table -> the column list its INSERT names; None when it names none (positional)."""
    star: tuple[str, ...] = ()
    """Tables read with ``*`` or ``t.*``: the statement depends on all their columns."""
    deletes: tuple[str, ...] = ()
    """Tables a DELETE, TRUNCATE or MERGE ... DELETE removes rows from."""
    tables: tuple[str, ...] = ()
    """Every table the statement names."""
    error: str | None = None
    """Why pglast could not parse it; then everything else is empty."""


def normalize(sql: str) -> str:
    """The statement with whitespace collapsed, exactly as the replay matcher keys it."""
    return sql_key(sql)


def fingerprint(sql: str) -> str:
    """The same for statements that differ only in their values (psycopg2 and SQLAlchemy
    send values inlined: ``WHERE id = 5`` and ``WHERE id = 7`` are one query), by
    PostgreSQL's own query fingerprint; SQL that does not parse is keyed by its text."""
    try:
        return str(pg_fingerprint(sql))
    except ParseError:
        return "text:" + normalize(sql)


def analyze(sql: str) -> QueryUse:
    """What ``sql`` (one or more statements) reads and writes; non-DML gives an empty QueryUse."""
    try:
        statements = pglast.parse_sql(sql)
    except ParseError as exc:
        return QueryUse(error=str(exc))
    uses = Uses()
    for raw in statements:
        _statement(raw.stmt, Scope(), uses)
    return _result(uses)


def _result(uses: Uses) -> QueryUse:
    rank = uses.tables.get
    tables = in_order(uses.tables)

    def by_table(d: dict[str, Any]) -> list[str]:
        return sorted(d, key=lambda t: rank(t, 0))

    return QueryUse(
        reads={t: in_order(uses.reads[t]) for t in by_table(uses.reads)},
        writes={t: in_order(uses.writes[t]) for t in by_table(uses.writes)},
        inserts={
            t: None if (cols := uses.inserts[t]) is None else in_order(cols)
            for t in by_table(uses.inserts)
        },
        star=in_order(uses.star),
        deletes=in_order(uses.deletes),
        tables=tables,
    )


def _table_name(rv: ast.RangeVar) -> str | None:
    """The lock's key for a table (``products``, ``sales.orders``); None for a system catalog."""
    schema, name = rv.schemaname, rv.relname or ""
    if schema in _CATALOGS or (schema is None and name.startswith("pg_")):
        return None
    return name if schema in (None, "public") else f"{schema}.{name}"


def _names(nodes: Iterable[Any] | None) -> tuple[str, ...]:
    return tuple(n.sval or "" for n in nodes or () if isinstance(n, ast.String))


def _alias(alias: ast.Alias | None, default: str) -> str:
    return (alias.aliasname or default) if alias else default


def _is_star(node: Any) -> bool:
    return isinstance(node, ast.ColumnRef) and isinstance((node.fields or (None,))[-1], ast.A_Star)


def _loc(node: Any) -> int:
    """A node's offset in the text, or the first one found inside it (USING names have none)."""
    if isinstance(node, ast.Node):
        location = getattr(node, "location", None)
        if isinstance(location, int) and location >= 0:
            return location
        for attr in node:
            if (inner := _loc(getattr(node, attr))) >= 0:
                return inner
    elif isinstance(node, tuple):
        for item in node:
            if (inner := _loc(item)) >= 0:
                return inner
    return -1


def _renamed(source: Source, names: tuple[str, ...]) -> Source:
    """A derived relation seen through ``AS alias(a, b)``: its first columns renamed."""
    if not names:
        return source
    if source.through or source.members:
        return replace(source, columns=names + source.columns)  # position unknown: keep both
    return replace(source, columns=names + source.columns[len(names) :])


def _statement(node: Any, scope: Scope, uses: Uses) -> Source | None:
    """Walk one statement; returns what it yields as a relation (a SELECT's columns, a RETURNING
    list) for a CTE or subquery built on it. SET, SHOW, BEGIN, DDL...: nothing."""
    if isinstance(node, ast.SelectStmt):
        return _select(node, scope, uses)
    if isinstance(node, ast.InsertStmt):
        return _insert(node, scope, uses)
    if isinstance(node, ast.UpdateStmt):
        return _update(node, scope, uses)
    if isinstance(node, ast.DeleteStmt):
        return _delete(node, scope, uses)
    if isinstance(node, ast.MergeStmt):
        return _merge(node, scope, uses)
    if isinstance(node, ast.TruncateStmt):
        for rv in node.relations or ():
            if (table := _table_name(rv)) is not None:
                first(uses.tables, table, _loc(rv))
                first(uses.deletes, table, _loc(rv))
    elif isinstance(node, ast.CopyStmt):
        _copy(node, scope, uses)
    elif isinstance(node, (ast.ExplainStmt, ast.PrepareStmt, ast.DeclareCursorStmt)):
        return _statement(node.query, scope, uses)
    return None


def _with(clause: ast.WithClause | None, scope: Scope, uses: Uses) -> Scope:
    if clause is None:
        return scope
    ctes = dict(scope.ctes)
    for cte in clause.ctes or ():
        names = _names(cte.aliascolnames)
        if clause.recursive:
            ctes[cte.ctename] = Source(columns=names)  # its body may name itself
        body = _statement(cte.ctequery, replace(scope, ctes=dict(ctes)), uses)
        ctes[cte.ctename] = _renamed(body or Source(), names)
    return replace(scope, ctes=ctes)


def _select(node: ast.SelectStmt, scope: Scope, uses: Uses, exists: bool = False) -> Source:
    scope = _with(node.withClause, scope, uses)
    if node.op != SetOperation.SETOP_NONE:
        # ORDER BY of a UNION names its output columns only: nothing more to read there
        left = _statement(node.larg, scope, uses) or Source()
        right = _statement(node.rarg, scope, uses) or Source()
        _expr((node.limitOffset, node.limitCount), scope, uses)
        return Source(columns=left.columns, through=left.through + right.through)
    if rows := node.valuesLists:
        _expr(rows, scope, uses)
        width = len(rows[0])
        return Source(columns=tuple(f"column{i}" for i in range(1, width + 1)))
    scope = _from(node.fromClause, scope, uses)
    columns, through = _targets(node.targetList, scope, uses, record_star=not exists)
    _expr((node.distinctClause, node.whereClause), scope, uses)
    aliases = {rt.name for rt in node.targetList or () if rt.name}
    _ordering(node.groupClause, scope, uses, aliases)
    _expr((node.havingClause, node.windowClause), scope, uses)
    _ordering(node.sortClause, scope, uses, aliases)
    _expr((node.limitOffset, node.limitCount), scope, uses)
    return Source(columns=columns, through=through)


def _targets(
    targets: Sequence[Any] | None, scope: Scope, uses: Uses, record_star: bool = True
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Walk a select or RETURNING list: its output names, and the tables its ``*`` covers."""
    columns: list[str] = []
    through: list[str] = []
    for rt in targets or ():
        val = rt.val
        if isinstance(val, ast.ColumnRef) and _is_star(val):
            stars = _star_tables(val, scope)
            through += stars
            if record_star:
                for table in stars:
                    first(uses.star, table, _loc(val))
            continue
        _expr(val, scope, uses)
        columns.append(rt.name or _output_name(val))
    return tuple(columns), tuple(through)


def _output_name(val: Any) -> str:
    if isinstance(val, ast.ColumnRef) and (names := _names(val.fields)):
        return names[-1]
    if isinstance(val, ast.FuncCall) and (names := _names(val.funcname)):
        return names[-1]
    if isinstance(val, ast.TypeCast):
        return _output_name(val.arg)
    return "?column?"


def _ordering(items: Sequence[Any] | None, scope: Scope, uses: Uses, aliases: set[str]) -> None:
    for item in items or ():
        expr = item.node if isinstance(item, ast.SortBy) else item
        if isinstance(expr, ast.ColumnRef) and _bare(expr) in aliases:
            continue  # an output alias: its expression was walked in the select list
        _expr(expr, scope, uses)


def _bare(ref: ast.ColumnRef) -> str | None:
    """The name of an unqualified column reference (``total``), else None."""
    names = _names(ref.fields)
    return names[0] if len(ref.fields or ()) == 1 and names else None


def _star_tables(ref: ast.ColumnRef, scope: Scope) -> tuple[str, ...]:
    qualifier = _names((ref.fields or ())[:-1])
    if qualifier:
        source = scope.named(qualifier[-1])
        return source.stars() if source else ()
    return tuple(t for _, s in scope.sources for t in s.stars())


def _expr(node: Any, scope: Scope, uses: Uses) -> None:
    """Record every column an expression (or tuple of them) names, subqueries included."""
    if isinstance(node, tuple | list):
        for item in node:
            _expr(item, scope, uses)
    elif isinstance(node, ast.ColumnRef):
        _column(node, scope, uses)
    elif isinstance(node, ast.SubLink):
        _expr(node.testexpr, scope, uses)
        exists = node.subLinkType == SubLinkType.EXISTS_SUBLINK
        if isinstance(node.subselect, ast.SelectStmt):
            _select(node.subselect, scope.child(), uses, exists=exists)
    elif isinstance(node, ast.Node):
        for attr in node:
            _expr(getattr(node, attr), scope, uses)


def _column(ref: ast.ColumnRef, scope: Scope, uses: Uses) -> None:
    location = _loc(ref)
    if _is_star(ref):  # row_to_json(t.*), count(t.*)
        for table in _star_tables(ref, scope):
            first(uses.star, table, location)
        return
    names = _names(ref.fields)
    if len(names) == 1:
        uses.read(scope.unqualified(names[0]), location)
    elif (source := scope.named(names[-2])) is not None:
        uses.read(source.lookup(names[-1]) or [], location)


def _from(items: Sequence[Any] | None, scope: Scope, uses: Uses) -> Scope:
    for item in items or ():
        # later items see earlier ones (as LATERAL would): more names in scope, never fewer reads
        scope = scope.plus(_from_item(item, scope, uses))
    return scope


def _from_item(item: Any, scope: Scope, uses: Uses) -> list[tuple[str, Source]]:
    if isinstance(item, ast.RangeVar):
        return [_range_var(item, scope, uses)]
    if isinstance(item, ast.JoinExpr):
        return _join(item, scope, uses)
    alias = getattr(item, "alias", None)
    colnames = _names(alias.colnames) if alias else ()
    if isinstance(item, ast.RangeSubselect):
        source = _statement(item.subquery, scope.child(), uses) or Source()
        return [(_alias(alias, ""), _renamed(source, colnames))]
    _expr(item, scope, uses)  # functions, XMLTABLE, JSON_TABLE...: their arguments
    if isinstance(item, ast.RangeFunction):
        name = _alias(alias, _output_name((item.functions or ((None,),))[0][0]))
        defined = tuple(c.colname or "" for c in item.coldeflist or ())
        ordinality = ("ordinality",) if item.ordinality else ()
        return [(name, Source(columns=(name, *colnames, *defined, *ordinality)))]
    return [(_alias(alias, ""), Source(columns=colnames))] if alias else []


def _range_var(rv: ast.RangeVar, scope: Scope, uses: Uses) -> tuple[str, Source]:
    alias = rv.alias
    name = _alias(alias, rv.relname or "")
    colnames = _names(alias.colnames) if alias else ()
    if rv.schemaname is None and rv.relname in scope.ctes:
        return name, _renamed(scope.ctes[rv.relname], colnames)
    table = _table_name(rv)
    if table is None:
        return name, Source()
    first(uses.tables, table, _loc(rv))
    if colnames:  # renames its first columns by position: depends on the column order
        first(uses.star, table, _loc(rv))
        return name, Source(columns=colnames, through=(table,))
    return name, Source(table=table)


def _join(j: ast.JoinExpr, scope: Scope, uses: Uses) -> list[tuple[str, Source]]:
    left = _from_item(j.larg, scope, uses)
    right = _from_item(j.rarg, scope.plus(left), uses)
    for column in _names(j.usingClause):
        for side in (left, right):
            uses.read(among((s for _, s in side), column) or [], _loc(j.rarg))
    both = left + right
    _expr(j.quals, scope.plus(both), uses)
    if j.join_using_alias is not None:
        using = Source(columns=_names(j.usingClause))
        both.append((_alias(j.join_using_alias, ""), using))
    if j.alias is not None:
        return [(_alias(j.alias, ""), Source(members=tuple(s for _, s in both)))]
    return both


def _target(rv: ast.RangeVar | None, scope: Scope, uses: Uses) -> tuple[str, Scope] | None:
    """The table an INSERT, UPDATE, DELETE or MERGE changes, and a scope that sees it."""
    if rv is None or (table := _table_name(rv)) is None:
        return None
    first(uses.tables, table, _loc(rv))
    name = _alias(rv.alias, rv.relname or "")
    return table, scope.plus([(name, Source(table=table))])


def _set_list(targets: Sequence[Any] | None, table: str, scope: Scope, uses: Uses) -> None:
    for rt in targets or ():
        uses.write(table, rt.name, _loc(rt))
        _expr(rt.val, scope, uses)


def _returning(
    clause: ast.ReturningClause | None, table: str, scope: Scope, uses: Uses
) -> Source | None:
    if clause is None:
        return None
    aliases = sorted({"old", "new"} | {o.value for o in clause.options or () if o.value})
    # old/new go first so that a FROM item of the same name still wins
    changed = tuple((alias, Source(table=table)) for alias in aliases)
    scope = replace(scope, sources=changed + scope.sources)
    columns, through = _targets(clause.exprs, scope, uses)
    return Source(columns=columns, through=through)


def _insert(node: ast.InsertStmt, scope: Scope, uses: Uses) -> Source | None:
    scope = _with(node.withClause, scope, uses)
    if node.selectStmt is not None:
        _statement(node.selectStmt, scope, uses)
    if (found := _target(node.relation, scope, uses)) is None:
        return None
    table, target = found
    uses.insert(table, [(rt.name, _loc(rt)) for rt in node.cols] if node.cols else None)
    conflict = node.onConflictClause
    if conflict is not None:
        if conflict.infer is not None:
            elems = conflict.infer.indexElems or ()
            uses.read([(table, e.name) for e in elems if e.name], _loc(conflict.infer))
            _expr((tuple(e.expr for e in elems), conflict.infer.whereClause), target, uses)
        excluded = target.plus([("excluded", Source(table=table))])
        _set_list(conflict.targetList, table, excluded, uses)
        _expr(conflict.whereClause, excluded, uses)
    return _returning(node.returningClause, table, target, uses)


def _update(node: ast.UpdateStmt, scope: Scope, uses: Uses) -> Source | None:
    scope = _with(node.withClause, scope, uses)
    if (found := _target(node.relation, scope, uses)) is None:
        return None
    table, target = found
    target = _from(node.fromClause, target, uses)
    _set_list(node.targetList, table, target, uses)
    _expr(node.whereClause, target, uses)
    return _returning(node.returningClause, table, target, uses)


def _delete(node: ast.DeleteStmt, scope: Scope, uses: Uses) -> Source | None:
    scope = _with(node.withClause, scope, uses)
    if (found := _target(node.relation, scope, uses)) is None:
        return None
    table, target = found
    first(uses.deletes, table, _loc(node.relation))
    target = _from(node.usingClause, target, uses)
    _expr(node.whereClause, target, uses)
    return _returning(node.returningClause, table, target, uses)


def _merge(node: ast.MergeStmt, scope: Scope, uses: Uses) -> Source | None:
    scope = _with(node.withClause, scope, uses)
    if (found := _target(node.relation, scope, uses)) is None:
        return None
    table, target = found
    target = target.plus(_from_item(node.sourceRelation, scope, uses))
    _expr(node.joinCondition, target, uses)
    for when in node.mergeWhenClauses or ():
        _expr(when.condition, target, uses)
        if when.commandType == CmdType.CMD_UPDATE:
            _set_list(when.targetList, table, target, uses)
        elif when.commandType == CmdType.CMD_INSERT:
            named = [(rt.name, _loc(rt)) for rt in when.targetList or ()]
            uses.insert(table, named or None)
            _expr(when.values, target, uses)
        elif when.commandType == CmdType.CMD_DELETE:
            first(uses.deletes, table, _loc(node.relation))
    return _returning(node.returningClause, table, target, uses)


def _copy(node: ast.CopyStmt, scope: Scope, uses: Uses) -> None:
    if node.query is not None:
        _statement(node.query, scope, uses)
        return
    if (found := _target(node.relation, scope, uses)) is None:
        return
    table, target = found
    location = _loc(node.relation)
    columns = _names(node.attlist)
    if node.is_from:
        uses.insert(table, [(c, location) for c in columns] or None)
    elif columns:
        uses.read([(table, c) for c in columns], location)
    else:
        first(uses.star, table, location)  # COPY t TO: every column, in order
    _expr(node.whereClause, target, uses)
