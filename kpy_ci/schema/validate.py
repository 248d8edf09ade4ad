"""``kpy validate`` as a straight line: every file of every set against schemas/ and, as each
mock is read, what it says against what it depends on: an HTTP mock against its
dependency's OpenAPI document, a PostgreSQL mock's result columns against the set's schema
lock; then the test cases against the service's own OpenAPI document. Every problem is one
line naming the file, the line and the field."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from kpy_ci.config import Config, Loader
from kpy_ci.schema import files, openapi, sql
from kpy_ci.schema.files import Checked, MockCheck
from kpy_ci.schema.lock import LOCK_FILE, document_for, host_of, openapi_documents
from kpy_ci.schema.model import Problem
from kpy_ci.store.reader import TestSet, find_sets, load_set

Doc = dict[str, Any]


def validate_path(root: Path, set_name: str | None, config: Config) -> list[Problem]:
    problems = files.check_config(root)
    docs = openapi_documents(config)
    service = (
        openapi.load(config.service_openapi, config.source.parent if config.source else root)
        if config.service_openapi
        else None
    )
    for path in find_sets(root, set_name):
        lock = _lock_results(path / LOCK_FILE)
        more = _mock_check(path / "mocks.yaml", docs, lock) if docs or lock else None
        found = files.check_set(path, more)
        problems += found
        if service is not None and not found:  # only then are the tests read again
            problems += list(_check_tests(load_set(path), service))
    return problems


def _field(where: list[Any]) -> str:
    return ".".join(str(p) for p in where) or "(top level)"


def _check_tests(test_set: TestSet, service: openapi.Document) -> Iterator[Problem]:
    for test in test_set.tests:
        if "method" not in test.doc["request"]:
            continue  # a connection that fell back to generic: no HTTP to check
        for where, message in openapi.check_exchange(
            service, test.doc["request"], test.doc["response"]
        ):
            yield Problem(str(test.file), test.line(where), _field(where), message)


def _mock_check(
    file: Path, docs: dict[str, openapi.Document], lock: dict[str, list[Doc]]
) -> MockCheck:
    """Each mock that fits its schema, while check_set reads it (one pass over mocks.yaml):
    an HTTP mock against its host's OpenAPI document, a PostgreSQL mock against the lock."""

    def check(checked: Checked) -> list[Problem]:
        mock = checked.data
        errors: Sequence[tuple[list[Any], str]] = []
        if mock is None:
            return []
        if mock["protocol"] == "http" and (doc := document_for(docs, host_of(mock))) is not None:
            errors = openapi.check_exchange(doc, mock["request"], mock["response"])
        elif mock["protocol"] == "postgres" and lock:
            errors = _against_lock(mock, lock)
        return [Problem(str(file), checked.line(w), _field(w), why) for w, why in errors]

    return check


def _lock_results(file: Path) -> dict[str, list[Doc]]:
    """A statement's fingerprint -> the result columns the lock says it had; nothing when
    there is no lock, or a broken one (which check_set reports)."""
    if not file.is_file() or files.check_file(file, "schemalock.schema.json"):
        return {}
    lock = yaml.load(file.read_text(encoding="utf-8"), Loader=Loader)
    return {
        sql.fingerprint(q["sql"]): q["result"]
        for entry in lock["postgres"]
        for q in entry["queries"]
    }


def _against_lock(mock: Doc, lock: dict[str, list[Doc]]) -> list[tuple[list[Any], str]]:
    """A mock's RowDescription against the lock's: same names and types, and rows as wide."""
    texts = mock["request"].get("sql", [])
    texts = [texts] if isinstance(texts, str) else texts
    if len(texts) != 1 or not isinstance(texts[0], str):
        return []
    expected = lock.get(sql.fingerprint(texts[0]))
    if expected is None:
        return [(["request", "sql"], "not in schema.lock.yaml: the lock is not this set's")]
    errors: list[tuple[list[Any], str]] = []
    width = None
    for i, message in enumerate(mock["response"].get("messages", [])):
        at = ["response", "messages", i]
        if message.get("type") == "RowDescription" and "fields" in message:
            width = len(message["fields"])
            errors += _fields_against(message["fields"], expected, at)
        elif message.get("type") == "DataRow" and width is not None:
            count = len(message.get("values", [None] * width))
            wrong = [([*at, "values"], f"{count} values, {width} columns")]
            errors += wrong if count != width else []
    return errors


def _fields_against(
    fields: list[Doc], expected: list[Doc], at: list[Any]
) -> list[tuple[list[Any], str]]:
    if expected and len(fields) != len(expected):
        return [([*at, "fields"], f"{len(fields)} columns; schema.lock.yaml has {len(expected)}")]
    errors = []
    for j, (got, locked) in enumerate(zip(fields, expected, strict=False)):
        for key in ("name", "type_oid", "type_modifier"):
            if got.get(key) != locked[key]:
                want = locked["type"] if key != "name" else locked["name"]
                message = f"{got.get(key)!r}; schema.lock.yaml has {want!r}"
                errors.append(([*at, "fields", j, key], message))
    return errors
