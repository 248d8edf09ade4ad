"""HTTP dependencies in the schema lock, and what a new version of their OpenAPI document
breaks for the operations a recording used (docs/FORMAT.md#schemalock).

The lock keeps, per host, each operation the mocks used and, per response status they saw,
the dotted fields the document declared (``openapi_fields``). From the lock alone, ``diff``
finds what the recording can no longer rely on: an operation gone or moved, a status no
longer declared, a field the lock listed that the new schema no longer declares. Given the
old document too (the one whose sha256 the lock holds, from wherever it is kept), it also
finds changed field and parameter types and new required request parameters and body
fields. What the recorded *values* break (a type change, a field now forbidden) is
``stale_exchanges``'s, mock by mock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema_path import SchemaPath

from kpy_ci.schema.openapi_doc import (
    Document,
    Operation,
    operation_for,
    operation_node,
    operations,
    url_path,
)
from kpy_ci.schema.openapi_fields import (
    FieldInfo,
    declared_response,
    fields,
    media_schema,
    response_schema,
    type_of,
)

Exchange = tuple[Mapping[str, Any], Mapping[str, Any]]
"""A recorded HTTP mock's (request, response)."""


@dataclass(frozen=True)
class Change:
    operation: str
    """``GET /rates``, as the lock names it."""
    field: str | None
    """A response field (``rate``), a parameter (``query.from``), a request body field
    (``body.amount``), or None for the operation or a status."""
    breaking: bool
    message: str
    """One line: ``GET /rates 200: response field 'rate' removed``."""

    def __str__(self) -> str:
        return self.message


class HostLock:
    """The lock's ``http:`` entry of one host, fed its mocks' requests and responses one at
    a time: each operation once, in order of first use, with how many mocks used it and,
    with a document, the fields it declares for each status they saw (a status it does not
    declare is left out; ``kpy validate`` names it). Without a document (or for a request it
    does not route): the URL's path, no operation_id, no responses."""

    def __init__(self, host: str, doc: Document | None) -> None:
        self.host, self.doc = host, doc
        self._ops: dict[tuple[str, str], dict[str, Any]] = {}

    def add(self, request: Mapping[str, Any], response: Mapping[str, Any]) -> None:
        if "method" not in request or "status" not in response:
            return  # fell back to generic: no HTTP to speak of
        doc = self.doc
        method = str(request["method"]).upper()
        operation = operation_for(doc, method, str(request["url"])) if doc is not None else None
        path = operation.path if operation is not None else url_path(str(request["url"]))
        entry = self._ops.setdefault(
            (method, path),
            {
                "method": method,
                "path": path,
                "operation_id": operation.operation_id if operation is not None else None,
                "mocks": 0,
                "responses": {},
            },
        )
        entry["mocks"] += 1
        status = str(response["status"])
        if operation is None or status in entry["responses"]:
            return
        assert doc is not None  # an operation comes from a document
        if declared_response(doc, operation, status) is not None:
            entry["responses"][status] = list(fields(response_schema(doc, operation, status)))

    def entry(self) -> dict[str, Any]:
        doc = self.doc
        return {
            "host": self.host,
            "openapi": {"source": doc.source, "sha256": doc.sha256} if doc is not None else None,
            "operations": list(self._ops.values()),
        }


def lock_entry(host: str, doc: Document | None, exchanges: Iterable[Exchange]) -> dict[str, Any]:
    """The lock's ``http:`` entry of one host from all its mocks (``HostLock``)."""
    lock = HostLock(host, doc)
    for request, response in exchanges:
        lock.add(request, response)
    return lock.entry()


def diff(
    lock_entry: Mapping[str, Any], new_doc: Document, old_doc: Document | None = None
) -> list[Change]:
    """What ``new_doc`` changes for the operations a lock entry's mocks used, breaking or
    not; ``old_doc``, the document the lock was made with, adds type and request checks."""
    changes: list[Change] = []
    used: set[Operation] = set()
    for entry in lock_entry.get("operations") or ():
        locked = Operation(str(entry["method"]).upper(), entry["path"], entry.get("operation_id"))
        found, moved = _find(new_doc, locked)
        if found is None:
            changes.append(Change(str(locked), None, True, f"{locked}: operation removed"))
            continue
        used.add(found)
        if moved:
            msg = f"{locked}: operation {found.operation_id} moved to {found}"
            changes.append(Change(str(locked), None, True, msg))
        old = _find(old_doc, locked)[0] if old_doc is not None else None
        for status, listed in (entry.get("responses") or {}).items():
            changes += _response_changes(locked, found, old, new_doc, old_doc, str(status), listed)
        if old_doc is not None and old is not None:
            changes += _request_changes(str(locked), old_doc, old, new_doc, found)
    old_ops = set(operations(old_doc)) if old_doc is not None else None
    for op in operations(new_doc):
        if op not in used and (old_ops is None or op not in old_ops):
            why = "operation added" if old_ops is not None else "not used by any recorded mock"
            changes.append(Change(str(op), None, False, f"{op}: {why}"))
    return changes


def _find(doc: Document, locked: Operation) -> tuple[Operation | None, bool]:
    """The locked operation in a document, and whether it moved: by its path template, by
    routing the path (a lock made without a document holds URL paths), then by its
    operationId (moved: the recorded URLs no longer reach it)."""
    for op in operations(doc):
        if (op.method, op.path) == (locked.method, locked.path):
            return op, False
    routed = operation_for(doc, locked.method, locked.path)
    if routed is not None:
        return routed, False
    if locked.operation_id is not None:
        for op in operations(doc):
            if op.operation_id == locked.operation_id:
                return op, True
    return None, False


def _response_changes(
    locked: Operation,
    new: Operation,
    old: Operation | None,
    new_doc: Document,
    old_doc: Document | None,
    status: str,
    listed: Iterable[str],
) -> list[Change]:
    name = f"{locked} {status}"
    if declared_response(new_doc, new, status) is None:
        return [Change(str(locked), None, True, f"{name}: response status no longer declared")]
    now = fields(response_schema(new_doc, new, status))
    before = (
        fields(response_schema(old_doc, old, status))
        if old_doc is not None and old is not None
        else {}
    )
    listed = list(listed)
    out = [
        Change(str(locked), f, True, f"{name}: response field {f!r} removed")
        for f in listed
        if f not in now
    ]
    out += _type_changes(str(locked), f"{name}: response field", before, now, set(listed))
    out += [
        Change(str(locked), f, False, f"{name}: response field {f!r} added")
        for f in now
        if f not in listed and f not in before
    ]
    return out


def _type_changes(
    op: str,
    what: str,
    before: Mapping[str, FieldInfo],
    now: Mapping[str, FieldInfo],
    names: Iterable[str],
) -> list[Change]:
    return [
        Change(op, f, True, f"{what} {f!r} type changed from {before[f].type} to {now[f].type}")
        for f in sorted(names)
        if f in before and f in now and before[f].type and now[f].type
        if before[f].type != now[f].type
    ]


def _request_changes(
    op: str, old_doc: Document, old: Operation, new_doc: Document, new: Operation
) -> list[Change]:
    out: list[Change] = []
    before, now = _parameters(old_doc, old), _parameters(new_doc, new)
    for key, info in now.items():
        place, name = key.split(".", 1)
        if info.required and not (key in before and before[key].required):
            msg = f"{op}: new required {place} parameter {name!r}"
            out.append(Change(op, key, True, msg))
        elif key not in before:
            out.append(Change(op, key, False, f"{op}: new optional {place} parameter {name!r}"))
    out += _type_changes(op, f"{op}: parameter", before, now, set(now))
    (was_required, was), (is_required, body) = _body(old_doc, old), _body(new_doc, new)
    if is_required and not was_required:
        out.append(Change(op, "body", True, f"{op}: the request body is now required"))
    for f, info in body.items():
        if info.required and not (f in was and was[f].required):
            out.append(
                Change(op, f"body.{f}", True, f"{op}: request body field {f!r} now required")
            )
        elif f not in was:
            out.append(Change(op, f"body.{f}", False, f"{op}: new request body field {f!r}"))
    out += _type_changes(op, f"{op}: request body field", was, body, set(body))
    return out


def _parameters(doc: Document, op: Operation) -> dict[str, FieldInfo]:
    """``in.name`` -> the parameter's type and whether it is required; the operation's
    parameters override its path item's."""
    node = operation_node(doc, op)
    item = (doc.app.spec / "paths") / op.path
    out: dict[str, FieldInfo] = {}
    for holder in (item, node):
        if holder is not None and "parameters" in holder:
            for param in holder / "parameters":
                key = f"{(param / 'in').read_str()}.{(param / 'name').read_str()}"
                out[key] = _parameter(param)
    return out


def _parameter(param: SchemaPath) -> FieldInfo:
    required = "required" in param and (param / "required").read_value() is True
    return FieldInfo(type_of(param / "schema") if "schema" in param else None, required)


def _body(doc: Document, op: Operation) -> tuple[bool, dict[str, FieldInfo]]:
    node = operation_node(doc, op)
    if node is None or "requestBody" not in node:
        return False, {}
    body = node / "requestBody"
    required = "required" in body and (body / "required").read_value() is True
    return required, fields(media_schema(body / "content")) if "content" in body else {}
