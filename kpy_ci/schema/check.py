"""``kpy drift`` as a straight line, for each test-set: its lock read and checked, its mocks
scanned once (which mocks ran which statement or HTTP operation), its tests read (which tests
list which mocks), the lock compared with today's schema from the source given (a live
database, migration files, OpenAPI documents), each change mapped to the tests it makes
stale."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kpy_ci.config import read_yaml, validate
from kpy_ci.errors import UsageError
from kpy_ci.schema import drift, introspect, migrations, openapi
from kpy_ci.schema.drift import Change, Impact
from kpy_ci.schema.lock import LOCK_FILE, LockBuilder, document_for, host_of
from kpy_ci.schema.model import DbSchema, Where
from kpy_ci.store.reader import MocksFile, TestSet, find_sets, load_set


@dataclass
class Sources:
    """Today's schemas, as ``kpy drift`` was told to find them."""

    dsn: str | None = None
    migrations: Path | None = None
    openapi: dict[str, openapi.Document] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.dsn or self.migrations or self.openapi)


@dataclass
class Today:
    """What the sources said, read once for every set."""

    live: DbSchema | None = None
    database: str | None = None
    loaded: migrations.Migrations | None = None
    openapi: dict[str, openapi.Document] = field(default_factory=dict)


@dataclass
class SetDrift:
    test_set: TestSet
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    openapi_used: set[str] = field(default_factory=set)
    """The --openapi documents some recorded host of the set was compared with."""

    @property
    def breaking(self) -> list[Change]:
        return [c for c in self.changes if c.breaking]

    @property
    def stale_tests(self) -> list[str]:
        return list(dict.fromkeys(t for c in self.breaking for t in c.tests))


def read_today(sources: Sources) -> Today:
    today = Today(openapi=sources.openapi)
    if sources.dsn:
        today.database, today.live = introspect.introspect_database(sources.dsn)
    if sources.migrations is not None:
        today.loaded = migrations.load(sources.migrations)
    return today


def read_lock(test_set: TestSet) -> dict[str, Any]:
    file = test_set.path / LOCK_FILE
    if not file.is_file():
        raise UsageError(
            f"{file}: missing: the set was recorded before kpy kept schema locks; record it again"
        )
    data, node = read_yaml(file)
    validate(data, "schemalock.schema.json", file, node)
    return data  # type: ignore[no-any-return]


def check(path: Path, set_name: str | None, sources: Sources) -> list[SetDrift]:
    if not sources:
        raise UsageError("kpy drift: say where today's schema is: --dsn, --migrations or --openapi")
    today = read_today(sources)
    drifts = [check_set(load_set(p), today) for p in find_sets(path, set_name)]
    for host, document in today.openapi.items():  # a typo must not read as "no drift"
        if not any(document.source in d.openapi_used for d in drifts):
            raise UsageError(f"--openapi {host}=...: no recorded HTTP mock called that host")
    return drifts


def check_set(test_set: TestSet, today: Today) -> SetDrift:
    lock = read_lock(test_set)
    result = SetDrift(test_set)
    builder = LockBuilder(keep_names=True)
    http_mocks: list[tuple[str, str, str, str]] = []  # host, method, path, mock
    mocks = MocksFile(test_set.mocks_file)
    try:
        for _, mock in mocks.scan():
            builder.add(mock)
            if mock["protocol"] == "http":
                request = mock["request"]
                path = urlsplit(request["url"]).path
                http_mocks.append((host_of(mock), request["method"], path, mock["name"]))
    finally:
        mocks.close()
    impact = Impact(builder.mocks_by_query())
    for k, test in enumerate(test_set.tests):
        impact.test_order[test.name] = k
        for name in test.mocks:
            impact.tests_by_mock.setdefault(name, []).append(test.name)
    for entry in lock["postgres"]:
        dependency = f"postgres {entry['destination']}/{entry['database']}"
        unparsed = [q for q in entry["queries"] if q.get("error")]
        if unparsed:
            result.notes.append(
                f"{dependency}: {len(unparsed)} recorded statements could not be parsed and "
                "were not checked"
            )
        only = len(lock["postgres"]) == 1
        for schema, since in _schemas_for(entry, today, only, test_set.path):
            for change in drift.compare_postgres(entry, schema, dependency, since):
                result.changes.append(impact.apply(change))
    for entry in lock["http"]:
        document = document_for(today.openapi, entry["host"])
        if document is None:
            continue
        result.openapi_used.add(document.source)
        by_operation = _http_mocks(entry, http_mocks)
        for changed in openapi.diff(entry, document):
            found = Change(
                f"http {entry['host']}",
                changed.message,
                changed.breaking,
                None,
                (changed.operation,),
            )
            result.changes.append(impact.apply(found, by_operation))
    return result


def _schemas_for(
    entry: dict[str, Any], today: Today, only: bool, where: Path
) -> list[tuple[DbSchema, list[Where] | None]]:
    """Today's schema of the lock's database from each source given: the live database
    (when it is this one, or the set has only one), and the one the migrations make (with
    the statements applied since the lock's schema). A schema holding none of the tables
    the set uses is another service's: comparing would call every table dropped."""
    out: list[tuple[DbSchema, list[Where] | None]] = []
    if today.live is not None and (only or today.database == entry["database"]):
        _same_database(entry, today.live, f"the database of --dsn ({today.database})", where)
        out.append((today.live, None))
    if today.loaded is not None:
        _same_database(entry, today.loaded.schema, "the migrations", where)
        out.append((today.loaded.schema, _since(entry, today.loaded)))
    return out


def _same_database(entry: dict[str, Any], schema: DbSchema, source: str, where: Path) -> None:
    used = set(entry["tables"])
    known = set(schema.tables) | set(schema.removed_tables)
    if used and not used & known:
        raise UsageError(
            f"{where}: {source} has none of the tables this set uses ({', '.join(sorted(used))}):"
            " it is another service's; name the set with --set"
        )


def _since(entry: dict[str, Any], loaded: migrations.Migrations) -> list[Where]:
    """The statements after the first migration at which the lock's schema holds: what is
    new to the recording (all of them when no prefix holds)."""
    for k, snapshot in enumerate(loaded.snapshots):
        if drift.holds(entry, snapshot):
            return [w for w, *_ in loaded.schema.changes[loaded.ends[k] :]]
    return [w for w, *_ in loaded.schema.changes]


def _http_mocks(
    entry: dict[str, Any], http_mocks: list[tuple[str, str, str, str]]
) -> dict[str, list[str]]:
    """``GET /rates`` -> the host's mocks that called it (by the lock's path template)."""
    out: dict[str, list[str]] = {}
    for op in entry["operations"]:
        key = f"{op['method']} {op['path']}"
        out[key] = [
            name
            for host, method, path, name in http_mocks
            if host == entry["host"]
            and method == op["method"]
            and drift.template_matches(op["path"], path)
        ]
    return out
