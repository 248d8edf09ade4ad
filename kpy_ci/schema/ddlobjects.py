"""Constraints and indexes the way PostgreSQL names and prints them, for ddl.py: the names it
chooses when DDL gives none (``products_pkey``, ``products_sku_key``, ``orders_product_id_fkey``,
``products_price_check``, ``products_name_idx``), and definitions as text close to
pg_get_constraintdef / pg_get_indexdef. Definitions are kept as text (model.py), so they
are parsed back here when a column or table they name is renamed or dropped. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

from pglast import ast, parse_sql, visitors
from pglast.enums import ConstrType, SortByDir, SortByNulls
from pglast.stream import RawStream, maybe_double_quote_name

from kpy_ci.schema.pgtypes import spell

NAMEDATALEN = 64
"""PostgreSQL's identifier limit (63 bytes and a terminator)."""


def object_name(name1: str, name2: str | None, label: str | None) -> str:
    """makeObjectName: ``name1_name2_label``, the longer of the two names cut first so the
    whole fits in 63 bytes."""
    one, two = name1.encode(), (name2 or "").encode()
    overhead = (1 if name2 else 0) + (len(label.encode()) + 1 if label else 0)
    while len(one) + len(two) > NAMEDATALEN - 1 - overhead:
        if len(one) > len(two):
            one = one[:-1]
        else:
            two = two[:-1]
    parts = [_clip(one)] + ([_clip(two)] if name2 else []) + ([label] if label else [])
    return "_".join(parts)


def _clip(cut: bytes) -> str:
    """A name cut at a byte count, less any partial character at its end (pg_mbcliplen)."""
    return cut.decode("utf-8", errors="ignore")


def choose_name(name1: str, name2: str | None, label: str, taken: Collection[str]) -> str:
    """ChooseRelationName / ChooseConstraintName: the first of ``..._label``,
    ``..._label1``, ``..._label2``... not already taken."""
    candidate, n = object_name(name1, name2, label), 0
    while candidate in taken:
        n += 1
        candidate = object_name(name1, name2, f"{label}{n}")
    return candidate


def index_column_names(params: tuple[ast.IndexElem, ...]) -> str:
    """ChooseIndexNameAddition: what an index's columns (INCLUDE ones too) add to its name
    (``name``, ``lower`` for ``lower(name)``, ``expr``), joined by underscores."""
    names = [p.name or p.indexcolname or _figure_name(p.expr) for p in params]
    return object_name("_".join(n for n in names if n), None, None)


def _figure_name(expr: ast.Node | None) -> str:
    if isinstance(expr, ast.FuncCall) and expr.funcname:
        return str(expr.funcname[-1].sval)
    if isinstance(expr, ast.ColumnRef) and expr.fields:
        last = expr.fields[-1]
        return str(last.sval) if isinstance(last, ast.String) else "expr"
    if isinstance(expr, ast.TypeCast):
        return _figure_name(expr.arg)
    return "expr"


def default_text(expr: ast.Node, column_type: str | None) -> str:
    """A default as pg_get_expr shows it where that is plain: a string constant carries the
    column's type (``'new'::text``, ``'{}'::jsonb``). Other constants and expressions are
    the deparser's text (the server may add casts this cannot know)."""
    constant = expr.arg if isinstance(expr, ast.TypeCast) else None
    if isinstance(constant, ast.A_Const) and isinstance(constant.val, ast.String):
        assert isinstance(expr, ast.TypeCast) and expr.typeName is not None
        return _literal(str(constant.val.sval), spell(expr.typeName, modifiers=False))
    if isinstance(expr, ast.A_Const) and isinstance(expr.val, ast.String) and column_type:
        return _literal(str(expr.val.sval), _unmodified(column_type))
    if isinstance(expr, ast.A_Const) and isinstance(expr.val, ast.Boolean):
        return "true" if expr.val.boolval else "false"
    return expression(expr)


def _literal(value: str, type_: str) -> str:
    return "'" + value.replace("'", "''") + "'::" + type_


def _unmodified(type_: str) -> str:
    """``character varying(20)`` -> ``character varying``: a constant's cast has no modifier."""
    if type_.startswith("character("):
        return "bpchar" + ("[]" if type_.endswith("[]") else "")
    return re.sub(r"\([^)]*\)", "", type_)


def check_column(expr: ast.Node) -> str | None:
    """The column a CHECK is named after: the one it references, if it references exactly
    one (PostgreSQL's guess at a column constraint), else None (``table_check``)."""
    names = {n for n in _column_refs(expr)}
    return names.pop() if len(names) == 1 else None


def _column_refs(node: ast.Node) -> list[str]:
    found: list[str] = []

    class Refs(visitors.Visitor):
        def visit_ColumnRef(self, ancestors: object, ref: ast.ColumnRef) -> None:
            last = (ref.fields or ())[-1:]
            if last and isinstance(last[0], ast.String):
                found.append(str(last[0].sval))

    Refs()(node)
    return found


def expression(node: ast.Node) -> str:
    """An expression as text, through pglast's deparser."""
    return str(RawStream()(node))


def constraint_text(constraint: ast.Constraint) -> str:
    """A table constraint's definition (``PRIMARY KEY (id)``, ``CHECK ((price >= 0))``,
    ``FOREIGN KEY (product_id) REFERENCES products (id)``), its name left out."""
    if constraint.contype == ConstrType.CONSTR_CHECK:
        expr = constraint.raw_expr
        text = _parenthesized(expr) if expr is not None else ""
        return f"CHECK ({text})" + (" NOT VALID" if constraint.skip_validation else "")
    if constraint.contype == ConstrType.CONSTR_FOREIGN:
        return _foreign_key_text(constraint)
    if constraint.contype == ConstrType.CONSTR_EXCLUSION:
        return _exclusion_text(constraint)
    name, constraint.conname = constraint.conname, None
    try:
        return expression(constraint)
    finally:
        constraint.conname = name


_ACTIONS = {"r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


def _foreign_key_text(fk: ast.Constraint) -> str:
    """pg_get_constraintdef's way: ``REFERENCES t(c)``, ON UPDATE before ON DELETE."""
    assert fk.pktable is not None
    columns = ", ".join(_ident(str(a.sval)) for a in fk.fk_attrs or ())
    target = ", ".join(_ident(str(a.sval)) for a in fk.pk_attrs or ())
    text = f"FOREIGN KEY ({columns}) REFERENCES {_table_name(fk.pktable)}"
    text += f"({target})" if target else ""  # unknown: a table these files did not make
    text += " MATCH FULL" if fk.fk_matchtype == "f" else ""
    for clause, action in (("UPDATE", fk.fk_upd_action), ("DELETE", fk.fk_del_action)):
        if action in _ACTIONS:
            text += f" ON {clause} {_ACTIONS[str(action)]}"
    return text + _deferrable(fk) + (" NOT VALID" if fk.skip_validation else "")


def _parenthesized(expr: ast.Node) -> str:
    """The server prints an operator expression in parentheses of its own."""
    text = expression(expr)
    operator = isinstance(expr, ast.A_Expr | ast.BoolExpr | ast.NullTest | ast.BooleanTest)
    return f"({text})" if operator else text


def _exclusion_text(constraint: ast.Constraint) -> str:
    pairs = [(e, ops) for e, ops in constraint.exclusions or () if isinstance(e, ast.IndexElem)]
    elements = ", ".join(f"{index_element(e)} WITH {ops[-1].sval}" for e, ops in pairs)
    text = f"EXCLUDE USING {constraint.access_method or 'btree'} ({elements})"
    if constraint.where_clause is not None:
        text += f" WHERE ({expression(constraint.where_clause)})"
    return text + _deferrable(constraint)


def _deferrable(constraint: ast.Constraint) -> str:
    text = " DEFERRABLE" if constraint.deferrable else ""
    return text + (" INITIALLY DEFERRED" if constraint.initdeferred else "")


def _table_name(relation: ast.RangeVar) -> str:
    """A referenced table as pg_get_constraintdef names it (search_path: public)."""
    key = table_key(relation)
    return ".".join(_ident(part) for part in key.split(".", 1))


def index_element(element: ast.IndexElem) -> str:
    """One column of an index as pg_get_indexdef prints it: a function call bare, any
    other expression in parentheses, then collation, operator class, order."""
    if element.name:
        text = _ident(element.name)
    elif isinstance(element.expr, ast.FuncCall):
        text = expression(element.expr)
    else:  # the server's own parentheses of an operator, and those around the expression
        text = f"({_parenthesized(element.expr)})" if element.expr is not None else ""
    if element.collation:
        text += " COLLATE " + ".".join(_ident(str(c.sval)) for c in element.collation)
    if element.opclass:
        text += " " + ".".join(str(c.sval) for c in element.opclass)
    descending = element.ordering == SortByDir.SORTBY_DESC
    text += " DESC" if descending else ""
    if element.nulls_ordering == SortByNulls.SORTBY_NULLS_FIRST and not descending:
        text += " NULLS FIRST"
    elif element.nulls_ordering == SortByNulls.SORTBY_NULLS_LAST and descending:
        text += " NULLS LAST"
    return text


def parse_constraint(text: str) -> ast.Constraint:
    """A definition constraint_text made, as a node again."""
    alter = parse_sql(f"ALTER TABLE t ADD {text}")[0].stmt
    assert isinstance(alter, ast.AlterTableStmt) and alter.cmds
    node = alter.cmds[0].def_
    assert isinstance(node, ast.Constraint)
    return node


def index_text(name: str, table: str, stmt: ast.IndexStmt) -> str:
    """pg_get_indexdef's shape: ``CREATE [UNIQUE] INDEX name ON public.t USING btree (c)``."""
    params = ", ".join(index_element(p) for p in stmt.indexParams or ())
    text = f"CREATE {'UNIQUE ' if stmt.unique else ''}INDEX {_ident(name)} ON "
    only = stmt.relation is not None and not stmt.relation.inh
    text += f"{'ONLY ' if only else ''}{qualified(table)} "
    text += f"USING {stmt.accessMethod or 'btree'} ({params})"
    if stmt.indexIncludingParams:
        text += f" INCLUDE ({', '.join(index_element(p) for p in stmt.indexIncludingParams)})"
    if stmt.whereClause is not None:
        text += f" WHERE ({expression(stmt.whereClause)})"
    return text


def constraint_index(name: str, table: str, constraint: ast.Constraint) -> str:
    """The index behind a PRIMARY KEY or UNIQUE constraint."""
    keys = ", ".join(_ident(str(k.sval)) for k in constraint.keys or ())
    text = f"CREATE UNIQUE INDEX {_ident(name)} ON {qualified(table)} USING btree ({keys})"
    if constraint.including:
        text += f" INCLUDE ({', '.join(_ident(str(k.sval)) for k in constraint.including)})"
    return text


def parse_index(text: str) -> ast.IndexStmt:
    stmt = parse_sql(text)[0].stmt
    assert isinstance(stmt, ast.IndexStmt)
    return stmt


def qualified(table: str) -> str:
    """A table key (model.py) as pg_get_indexdef names it: always with its schema."""
    schema, _, name = table.rpartition(".")
    return f"{_ident(schema or 'public')}.{_ident(name)}"


def table_key(relation: ast.RangeVar) -> str:
    """model.py's key of a table: ``name`` in public (or unqualified), else ``schema.name``."""
    if relation.schemaname in (None, "public"):
        return str(relation.relname)
    return f"{relation.schemaname}.{relation.relname}"


def _ident(name: str) -> str:
    return str(maybe_double_quote_name(name))


def columns_of(text: str) -> set[str]:
    """The columns of its own table a constraint or index definition names."""
    if text.startswith("CREATE "):
        stmt = parse_index(text)
        names = {p.name for p in (stmt.indexParams or ()) + (stmt.indexIncludingParams or ())}
        return {n for n in names if n} | set(_column_refs(stmt))
    constraint = parse_constraint(text)
    keys = (constraint.keys or ()) + (constraint.fk_attrs or ()) + (constraint.including or ())
    names = {str(k.sval) for k in keys}
    names |= {str(e.name) for e in _exclusion_elements(constraint) if e.name}
    return names | (set(_column_refs(constraint.raw_expr)) if constraint.raw_expr else set())


def references(text: str) -> tuple[str, set[str]] | None:
    """A foreign key's referenced table and columns; None for anything else."""
    if text.startswith("CREATE ") or not text.startswith("FOREIGN KEY"):
        return None
    constraint = parse_constraint(text)
    assert constraint.pktable is not None
    return table_key(constraint.pktable), {str(a.sval) for a in constraint.pk_attrs or ()}


def renamed(text: str, rename: Callable[[ast.Node], None]) -> str:
    """A definition with ``rename`` applied to its node, printed again."""
    if text.startswith("CREATE "):
        stmt = parse_index(text)
        rename(stmt)
        assert stmt.relation is not None
        return index_text(str(stmt.idxname), table_key(stmt.relation), stmt)
    constraint = parse_constraint(text)
    rename(constraint)
    return constraint_text(constraint)


def column_renamer(old: str, new: str, own: bool, table: str) -> Callable[[ast.Node], None]:
    """Renames column ``old`` of ``table`` where a definition names it: in its own table's
    definitions (``own``), or in another's foreign key that references ``table``."""

    def swap(items: tuple[ast.String, ...] | None) -> tuple[ast.String, ...] | None:
        return tuple(ast.String(new) if s.sval == old else s for s in items) if items else items

    def rename(node: ast.Node) -> None:
        if isinstance(node, ast.Constraint):
            if node.pktable is not None and table_key(node.pktable) == table:
                node.pk_attrs = swap(node.pk_attrs)
            if not own:
                return
            node.keys, node.fk_attrs = swap(node.keys), swap(node.fk_attrs)
            node.including = swap(node.including)
            for element in _exclusion_elements(node):
                element.name = new if element.name == old else element.name
        elif isinstance(node, ast.IndexStmt):
            for param in (node.indexParams or ()) + (node.indexIncludingParams or ()):
                param.name = new if param.name == old else param.name
        if own:
            _rename_refs(node, old, new)

    return rename


def _rename_refs(node: ast.Node, old: str, new: str) -> None:
    class Refs(visitors.Visitor):
        def visit_ColumnRef(self, ancestors: object, ref: ast.ColumnRef) -> None:
            fields = ref.fields or ()
            if fields and isinstance(fields[-1], ast.String) and fields[-1].sval == old:
                ref.fields = (*fields[:-1], ast.String(new))

    Refs()(node)


def table_renamer(old: str, new: str) -> Callable[[ast.Node], None]:
    """Renames table ``old`` to ``new`` (keys) where a definition names it."""
    schema, _, name = new.rpartition(".")

    def rename(node: ast.Node) -> None:
        relation = node.pktable if isinstance(node, ast.Constraint) else None
        relation = node.relation if isinstance(node, ast.IndexStmt) else relation
        if relation is not None and table_key(relation) == old:
            relation.schemaname, relation.relname = schema or None, name

    return rename


def _exclusion_elements(constraint: ast.Constraint) -> list[ast.IndexElem]:
    """An EXCLUDE constraint's elements (each kept with its operator)."""
    return [pair[0] for pair in constraint.exclusions or () if isinstance(pair[0], ast.IndexElem)]


def exclusion_columns(constraint: ast.Constraint) -> str:
    return index_column_names(tuple(_exclusion_elements(constraint)))


def exclusion_index(name: str, table: str, constraint: ast.Constraint) -> str:
    """The index behind an EXCLUDE constraint."""
    elements = ", ".join(index_element(e) for e in _exclusion_elements(constraint))
    method = constraint.access_method or "btree"
    return f"CREATE INDEX {_ident(name)} ON {qualified(table)} USING {method} ({elements})"
