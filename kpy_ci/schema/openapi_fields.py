"""The fields an OpenAPI schema declares, as dotted names: what a schema lock remembers of a
response, and what drift compares.

Names: an object's property is ``name``, a nested one ``a.b``; the items of an array are
``[]``, so ``items[].sku`` is the ``sku`` of every element of ``items`` and ``[].id`` the
``id`` of each element of a top-level array. A parent is listed too (``a``, ``a.b``), so a
field that goes away is seen even when nothing was declared below it. ``$ref`` is followed
(jsonschema-path resolves it on access, local and external alike), ``allOf``, ``anyOf`` and
``oneOf`` branches all contribute, and a schema met again inside itself (a tree's
``children[]``) is not walked again.
Free-form maps (``additionalProperties: {schema}``) and ``patternProperties`` name no
field.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from jsonschema_path import SchemaPath
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.templating.responses.finders import ResponseFinder

from kpy_ci.schema.openapi_doc import Document, Operation, operation_node

_BRANCHES = ("allOf", "anyOf", "oneOf")
_MAX_DEPTH = 32
"""A guard on top of the cycle check, for schemas that nest through ever new $refs."""


@dataclass(frozen=True)
class FieldInfo:
    type: str | None
    """``string``, ``integer``, ``string|null``... or None when the schema says no type."""
    required: bool
    """Listed in its parent object's ``required``."""


def fields(schema: SchemaPath | None) -> dict[str, FieldInfo]:
    """Every field the schema declares, by dotted name (sorted)."""
    out: dict[str, FieldInfo] = {}
    if schema is not None:
        _walk(schema, "", set(), frozenset(), out)
    return dict(sorted(out.items()))


def type_of(schema: SchemaPath) -> str | None:
    """The schema's JSON type(s), ``|``-joined and sorted; 3.0 ``nullable`` adds ``null``.
    A schema that only composes others takes their types."""
    types = set(_types(schema, 0))
    return "|".join(sorted(types)) if types else None


def response_schema(doc: Document, operation: Operation, status: str | int) -> SchemaPath | None:
    """The JSON body schema of the response the document declares for ``status`` (exact,
    then ``2XX``, then ``default``, as openapi-core finds it), or None."""
    response = declared_response(doc, operation, status)
    if response is None or "content" not in response:
        return None
    return media_schema(response / "content")


def declared_response(doc: Document, operation: Operation, status: str | int) -> SchemaPath | None:
    node = operation_node(doc, operation)
    if node is None or "responses" not in node:
        return None
    try:
        return ResponseFinder(node / "responses").find(str(status))
    except ResponseNotFound:
        return None


def media_schema(content: SchemaPath) -> SchemaPath | None:
    """The schema of a ``content`` map's JSON media type (``application/json``, then any
    ``*json``), else of its first; None when it has none."""
    keys = list(content.str_keys())
    if not keys:
        return None
    jsons = [k for k in keys if k.split(";")[0].strip().lower().endswith("json")]
    chosen = "application/json" if "application/json" in keys else (jsons or keys)[0]
    media = content / chosen
    return media / "schema" if "schema" in media else None


def response_fields(doc: Document, operation: Operation, status: str | int) -> list[str]:
    """The dotted fields the response schema for ``status`` declares, sorted; [] when the
    document declares no such response, or no JSON schema for it."""
    return list(fields(response_schema(doc, operation, status)))


def _walk(
    schema: SchemaPath,
    prefix: str,
    seen: set[int],
    required: frozenset[str],
    out: dict[str, FieldInfo],
) -> None:
    """``required``: names an enclosing allOf makes required here."""
    with schema.resolve() as resolved:
        key = id(resolved.contents)  # the same node, however it was reached
    if key in seen or prefix.count(".") + prefix.count("[]") > _MAX_DEPTH:
        return
    seen = seen | {key}
    here = required | _required(schema, 0)
    if "properties" in schema:
        for name, sub in (schema / "properties").str_items():
            dotted = prefix + name
            info = FieldInfo(type_of(sub), name in here)
            old = out.get(dotted)
            out[dotted] = info if old is None else _merge(old, info)
            _walk(sub, dotted + ".", seen, frozenset(), out)
    if "items" in schema and (schema / "items").is_traversable():
        _walk(schema / "items", prefix.removesuffix(".") + "[].", seen, frozenset(), out)
    for branch in _BRANCHES:
        for sub in _subschemas(schema, branch):
            _walk(sub, prefix, seen, here if branch == "allOf" else frozenset(), out)


def _required(schema: SchemaPath, depth: int) -> frozenset[str]:
    """The names the schema requires, its allOf branches included (one branch may require
    what another declares)."""
    names = (schema / "required").read_value() if "required" in schema else []
    out = frozenset(n for n in names if isinstance(n, str)) if isinstance(names, list) else None
    out = out or frozenset()
    if depth < _MAX_DEPTH:
        for sub in _subschemas(schema, "allOf"):
            out |= _required(sub, depth + 1)
    return out


def _merge(a: FieldInfo, b: FieldInfo) -> FieldInfo:
    """One name declared by two branches: either's type, required if either requires it."""
    types = {t for info in (a, b) if info.type for t in info.type.split("|")}
    return FieldInfo("|".join(sorted(types)) or None, a.required or b.required)


def _subschemas(schema: SchemaPath, keyword: str) -> Iterator[SchemaPath]:
    if keyword in schema:
        node = schema / keyword
        for i in range(len(node.read_value())):
            yield node / i


def _types(schema: SchemaPath, depth: int) -> Iterator[str]:
    if depth > _MAX_DEPTH:
        return
    if "type" in schema:
        value = (schema / "type").read_value()
        yield from [value] if isinstance(value, str) else value
        if "nullable" in schema and (schema / "nullable").read_value() is True:
            yield "null"
        return
    if "properties" in schema:
        yield "object"
        return
    for branch in _BRANCHES:
        for sub in _subschemas(schema, branch):
            yield from _types(sub, depth + 1)
