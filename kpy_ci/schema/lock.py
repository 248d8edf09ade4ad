"""schema.lock.yaml: what a set's dependencies looked like when it was recorded, made from
the recording itself with no configuration (docs/FORMAT.md#schemalock).

For PostgreSQL, every distinct statement the mocks ran, with the tables and columns it reads
and writes (pglast, ``sql.py``) and the result columns the server described (RowDescription:
table OID, attribute number, type OID and modifier). OIDs change when a database is made
anew, so tables are keyed by name; an OID only ties a result column to its table within one
recording. Where kpy.yml names a DSN, the tables are also read over kpy's own connection
(``introspect.py``): every column with nullability and default, constraints and indexes.
For HTTP, the operations each host's mocks used, and the OpenAPI document's hash where
kpy.yml names one.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from kpy_ci.config import Config
from kpy_ci.errors import KpyError
from kpy_ci.protocols.base import Doc
from kpy_ci.schema import introspect, openapi, pgtypes, sql
from kpy_ci.schema.model import Column, DbSchema, Table
from kpy_ci.store.serializer import document, dump

LOCK_FILE = "schema.lock.yaml"


@dataclass
class _Query:
    text: str
    use: sql.QueryUse
    mocks: int = 0
    names: list[str] = field(default_factory=list)
    """The mocks that ran it, when the builder keeps them (``kpy drift``)."""
    fields: list[Doc] | None = None
    """The RowDescription's fields, from the first mock that had one."""


@dataclass
class _Database:
    destination: str
    database: str | None
    queries: dict[str, _Query] = field(default_factory=dict)
    """By ``sql.fingerprint``."""


class LockBuilder:
    """Fed every mock document of a set once, in order (``observe`` passes them through
    while they are written); ``lock()`` gives the lock document's body."""

    def __init__(
        self, openapi_docs: dict[str, openapi.Document] | None = None, keep_names: bool = False
    ) -> None:
        self._docs = openapi_docs or {}
        self._keep_names = keep_names
        self._databases: dict[tuple[str, str | None], _Database] = {}
        self._connection_db: dict[tuple[str, int], str | None] = {}
        self._hosts: dict[str, openapi.HostLock] = {}

    def observe(self, mocks: Iterable[Doc]) -> Iterator[Doc]:
        for mock in mocks:
            self.add(mock)
            yield mock

    def add(self, mock: Doc) -> None:
        if mock["protocol"] == "postgres":
            self._add_postgres(mock)
        elif mock["protocol"] == "http":
            self._add_http(mock)

    def _add_postgres(self, mock: Doc) -> None:
        request, response = mock["request"], mock["response"]
        conn = (mock["destination"], mock["connection"])
        messages = request.get("messages", [])
        if messages and messages[0].get("type") == "StartupMessage":
            params = messages[0].get("parameters", {})
            self._connection_db[conn] = params.get("database") or params.get("user")
            return
        texts = request.get("sql", [])
        texts = [texts] if isinstance(texts, str) else [t for t in texts if isinstance(t, str)]
        if not texts:
            return
        database = self._connection_db.get(conn)
        db = self._databases.setdefault(
            (mock["destination"], database), _Database(mock["destination"], database)
        )
        descriptions = [
            m["fields"] for m in response.get("messages", []) if m.get("type") == "RowDescription"
        ]
        for i, text in enumerate(texts):
            key = sql.fingerprint(text)  # one entry for the statements that differ in values
            query = db.queries.get(key)
            if query is None:
                normal = sql.normalize(text)
                query = db.queries[key] = _Query(normal, sql.analyze(normal))
            query.mocks += 1
            if self._keep_names:
                query.names.append(mock["name"])
            if query.fields is None and len(descriptions) == len(texts):
                query.fields = descriptions[i]

    def _add_http(self, mock: Doc) -> None:
        host = host_of(mock)
        if host not in self._hosts:
            self._hosts[host] = openapi.HostLock(host, document_for(self._docs, host))
        self._hosts[host].add(mock["request"], mock["response"])

    def mocks_by_query(self) -> dict[str, list[str]]:
        """A statement's ``sql.fingerprint`` -> the mocks that ran it (with ``keep_names``)."""
        out: dict[str, list[str]] = {}
        for db in self._databases.values():
            for key, q in db.queries.items():
                out.setdefault(key, []).extend(q.names)
        return out

    @property
    def tables(self) -> dict[tuple[str, str | None], set[str]]:
        """The tables each database's recorded queries name (what introspection reads)."""
        return {
            key: {t for q in db.queries.values() for t in q.use.tables}
            for key, db in self._databases.items()
        }

    def lock(self, introspected: dict[str | None, DbSchema] | None = None) -> Doc:
        """The lock's body; ``introspected``: by database name, what kpy read over its own
        connection (None for the only database when the name is not known)."""
        introspected = introspected or {}
        return {
            "postgres": [
                _database_entry(db, introspected.get(db.database))
                for db in self._databases.values()
            ],
            "http": [h.entry() for h in self._hosts.values()],
        }


def host_of(mock: Doc) -> str:
    """The host an HTTP mock called: its Host header, else where it was going."""
    headers = mock["request"].get("headers", ())
    return str(next((v for n, v in headers if n.lower() == "host"), mock["destination"]))


def document_for(docs: Mapping[str, openapi.Document], host: str) -> openapi.Document | None:
    """The document kpy.yml (or --openapi) names for a host, with or without its port."""
    bare = host.rpartition(":")[0] if host.count(":") == 1 else host
    return docs.get(host) or docs.get(bare)


def _database_entry(db: _Database, schema: DbSchema | None) -> Doc:
    oids = _oid_tables(db)
    tables, complete = _tables_seen(db, oids)
    if schema is not None:
        for name in list(tables):
            if name in schema.tables:
                tables[name] = schema.tables[name]
                complete.add(name)
    return {
        "destination": db.destination,
        "database": db.database,
        "introspected": schema is not None,
        "tables": {
            name: table_doc(t, name in complete, introspected=schema is not None)
            for name, t in sorted(tables.items())
        },
        "queries": [_query_doc(q, oids) for q in db.queries.values()],
    }


def table_doc(table: Table, complete: bool, introspected: bool) -> Doc:
    doc: Doc = {
        "complete": complete,
        "columns": {c.name: column_doc(c) for c in table.columns.values()},
    }
    if introspected:
        doc["constraints"] = dict(table.constraints)
        doc["indexes"] = dict(table.indexes)
    return doc


def column_doc(column: Column) -> Doc:
    doc: Doc = {"type": column.type, "attnum": column.attnum}
    if column.nullable is not None:
        doc["nullable"] = column.nullable
        doc["default"] = column.default
    return doc


def _oid_tables(db: _Database) -> dict[int, str]:
    """Which table each table OID of the results is: by the queries that read one table
    only, else by the table whose columns the query reads hold all the result's names."""
    votes: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for q in db.queries.values():
        by_oid: dict[int, set[str]] = collections.defaultdict(set)
        for f in q.fields or ():
            if f.get("table_oid"):
                by_oid[f["table_oid"]].add(f["name"])
        read = q.use.reads
        for oid, names in by_oid.items():
            if len(q.use.tables) == 1:
                votes[oid][next(iter(q.use.tables))] += 1
                continue
            fits = [t for t, cols in read.items() if names <= set(cols) or t in q.use.star]
            if len(fits) == 1:
                votes[oid][fits[0]] += 1
    return {oid: c.most_common(1)[0][0] for oid, c in votes.items()}


def _result_columns(q: _Query, oids: dict[int, str]) -> Iterator[tuple[Doc, str | None]]:
    """Each result field with its table, and its column's name where the field is the
    column itself (not renamed by an alias)."""
    for f in q.fields or ():
        table = oids.get(f.get("table_oid") or 0)
        column = None
        if table is not None and f.get("column"):
            known = set(q.use.reads.get(table, ())) | set(q.use.writes.get(table, ()))
            if f["name"] in known or table in q.use.star:
                column = f["name"]
        yield f, column


def _tables_seen(db: _Database, oids: dict[int, str]) -> tuple[dict[str, Table], set[str]]:
    """The tables the queries name, with the columns they use and what the results said of
    them; and those whose every column was seen (a SELECT * over the table alone)."""
    tables: dict[str, Table] = {}
    complete: set[str] = set()
    for q in db.queries.values():
        use = q.use
        for t in use.tables:
            table = tables.setdefault(t, Table(t))
            for group in (use.reads, use.writes):
                for c in group.get(t, ()):
                    table.columns.setdefault(c, Column(c))
            for c in use.inserts.get(t) or ():
                table.columns.setdefault(c, Column(c))
        for f, column in _result_columns(q, oids):
            table_name = oids.get(f.get("table_oid") or 0)
            if table_name is None or column is None:
                continue
            table = tables.setdefault(table_name, Table(table_name))
            col = table.columns.setdefault(column, Column(column))
            col.type = pgtypes.format_type(f["type_oid"], f["type_modifier"])
            col.attnum = f["column"]
        if len(use.tables) == 1 and use.star and q.fields:
            complete.update(use.star)
    for table in tables.values():
        ordered = sorted(table.columns.values(), key=lambda c: (c.attnum is None, c.attnum or 0))
        table.columns = {c.name: c for c in ordered}
    return tables, complete


def _query_doc(q: _Query, oids: dict[int, str]) -> Doc:
    use = q.use
    doc: Doc = {
        "sql": q.text,
        "mocks": q.mocks,
        "reads": {t: list(cols) for t, cols in sorted(use.reads.items())},
        "writes": {t: list(cols) for t, cols in sorted(use.writes.items())},
        "inserts": {
            t: list(cols) if cols is not None else None for t, cols in sorted(use.inserts.items())
        },
        "star": sorted(use.star),
        "deletes": sorted(use.deletes),
        "result": [
            {
                "name": f["name"],
                "table": oids.get(f.get("table_oid") or 0),
                "column": column,
                "type": pgtypes.format_type(f["type_oid"], f["type_modifier"]),
                "type_oid": f["type_oid"],
                "type_modifier": f["type_modifier"],
            }
            for f, column in _result_columns(q, oids)
        ],
        "error": use.error,
    }
    return doc


def schema_of(entry: Doc) -> DbSchema:
    """A lock's database entry as a DbSchema (what drift compares with today's)."""
    schema = DbSchema()
    for name, t in entry["tables"].items():
        table = Table(name, constraints=dict(t.get("constraints", {})))
        table.indexes = dict(t.get("indexes", {}))
        for cname, c in t["columns"].items():
            table.columns[cname] = Column(
                cname, c["type"], c.get("nullable"), c.get("default"), c["attnum"]
            )
        schema.tables[name] = table
    return schema


def complete_tables(entry: Doc) -> set[str]:
    return {name for name, t in entry["tables"].items() if t["complete"]}


def lock_files(
    builder: LockBuilder, config: Config, environ: Mapping[str, str], warnings: list[str]
) -> dict[str, str]:
    """schema.lock.yaml's text, once every mock has passed ``builder``; with kpy.yml's
    DSNs read over kpy's own connection first. A DSN that cannot be read is a warning of the
    set, never fatal, and never shows the DSN."""
    introspected: dict[str | None, DbSchema] = {}
    tables = builder.tables
    for name in config.dsn_env if tables else ():
        dsn = environ.get(name)
        if not dsn:
            warnings.append(f"schemas.postgres.dsn_env: ${name} is not set: schema not read")
            continue
        try:
            named = conninfo_to_dict(dsn).get("dbname")
            database = str(named) if named is not None else None
            by_db = {db: names for (_, db), names in tables.items()}
            if database not in by_db and len(by_db) == 1:  # the only one, whatever its name
                database = next(iter(by_db))
            introspected[database] = introspect.introspect(dsn, sorted(by_db.get(database, ())))
        except (KpyError, psycopg.Error) as e:
            warnings.append(f"schemas.postgres.dsn_env: ${name}: schema not read: {e}")
    body = builder.lock(introspected)
    return {LOCK_FILE: dump(document("SchemaLock", body))}


def openapi_documents(config: Config) -> dict[str, openapi.Document]:
    """The OpenAPI documents kpy.yml names, by host (a bad one stops kpy before it starts)."""
    base = config.source.parent if config.source is not None else Path(".")
    return {host: openapi.load(source, base) for host, source in config.openapi.items()}
