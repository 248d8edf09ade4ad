"""``kpy validate`` as a straight line: every file of every set against schemas/, then what
the files say against what they depend on: HTTP mocks against their dependency's OpenAPI
document, test cases against the service's own, PostgreSQL mocks' result columns against the
set's schema lock. Every problem is one line naming the file, the line and the field."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from kpy_ci.config import Config, Loader, line_of
from kpy_ci.schema import files, openapi, sql
from kpy_ci.schema.lock import LOCK_FILE, openapi_documents
from kpy_ci.schema.model import Problem
from kpy_ci.store.reader import MocksFile, Span, TestSet, documents, find_sets, load_set

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
        found = files.check_set(path)
        problems += found
        if found:  # the rest reads the files as valid
            continue
        problems += list(_check_mocks(path / "mocks.yaml", docs))
        if service is not None:  # only then are the tests needed again, with their nodes
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


def _check_mocks(file: Path, docs: dict[str, openapi.Document]) -> Iterator[Problem]:
    lock = _lock_results(file.parent / LOCK_FILE)
    if not lock and not docs:
        return
    mocks = MocksFile(file)
    try:
        for span, mock in _parsed(mocks):
            if mock["protocol"] == "http" and docs:
                doc = _document(docs, mock)
                if doc is not None:
                    errors = openapi.check_exchange(doc, mock["request"], mock["response"])
                    yield from _problems(mocks, span, errors)
            elif mock["protocol"] == "postgres" and lock:
                yield from _problems(mocks, span, _against_lock(mock, lock))
    finally:
        mocks.close()


def _parsed(mocks: MocksFile) -> Iterator[tuple[Span, Doc]]:
    """Each document, parsed only: files.check_set has just checked every one against its
    schema (MocksFile.scan would check them all again, a third of validate's time)."""
    with open(mocks.path, "rb") as f:
        for span, text in documents(f):
            yield span, yaml.load(text, Loader=Loader)


def _problems(
    mocks: MocksFile, span: Span, errors: Sequence[tuple[list[Any], str]]
) -> Iterator[Problem]:
    if not errors:
        return
    node = yaml.compose(mocks.text(span), Loader=Loader)
    for where, message in errors:
        line = line_of(node, where) + span.line - 1
        yield Problem(str(mocks.path), line, _field(where), message)


def _document(docs: dict[str, openapi.Document], mock: Doc) -> openapi.Document | None:
    host = next(
        (v for n, v in mock["request"].get("headers", ()) if n.lower() == "host"),
        mock["destination"],
    )
    return docs.get(host) or docs.get(host.rpartition(":")[0])


def _lock_results(file: Path) -> dict[str, list[Doc]]:
    """A statement's fingerprint -> the result columns the lock says it had (files.check_set
    has checked the file)."""
    if not file.is_file():
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
