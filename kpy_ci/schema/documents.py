"""The JSON Schemas of kpy's files, ready to check documents: every file of schemas/ and
each protocol plug-in's schema in one ``referencing.Registry`` (so ``$ref`` between them
resolve offline), and the Mock schema completed from the protocol registry, so the list of
protocols is written once.

schemas/mock.schema.json leaves ``protocol`` a string and ``request``/``response`` objects;
``validator("mock.schema.json")`` adds the enum of the registry's protocol names and, per
protocol, an if/then sending request and response to its plug-in's schema
(``protocols/<name>.schema.json#/$defs/request`` and ``.../response``, by ``$id``).
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema.protocols
import referencing
import referencing.jsonschema

from kpy_ci.config import SCHEMAS
from kpy_ci.schema import compiled

MOCK = "mock.schema.json"
SIDES = ("request", "response")


def schema_dir() -> Path:
    """Where the schemas are: packaged beside the code, or the source tree's schemas/."""
    for where in (SCHEMAS, SCHEMAS.parent.parent / "schemas"):
        if (where / MOCK).is_file():
            return where
    raise FileNotFoundError("kpy's schemas are not installed with it")


@functools.cache
def _files() -> dict[str, dict[str, Any]]:
    """Every schema, by its path under schemas/; a protocol's as
    ``protocols/<name>.schema.json``, its ``$id`` there."""
    from kpy_ci.protocols import registry as protocols  # heavy (h11, dnspython): only here

    root = schema_dir()
    files = {
        path.relative_to(root).as_posix(): json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(root.rglob("*.json"))
    }
    return files | {f"protocols/{p.name}.schema.json": p.schema for p in protocols.REGISTRY}


def names() -> list[str]:
    """Every schema of schemas/, by its path there."""
    return list(_files())


def schema(name: str) -> dict[str, Any]:
    """A schema of schemas/ as its file has it (``name`` relative to schemas/); shared:
    read it, never change it."""
    try:
        return _files()[name]
    except KeyError:
        raise FileNotFoundError(f"schema {name} is not installed with kpy") from None


@functools.cache
def registry() -> referencing.Registry[Any]:
    """Every file of schemas/, each under its ``$id``."""
    resources = [
        (doc["$id"], referencing.jsonschema.DRAFT202012.create_resource(doc))
        for doc in _files().values()
    ]
    return referencing.Registry().with_resources(resources)


def protocol_names() -> list[str]:
    """Every protocol a mock may have, from the registry."""
    from kpy_ci.protocols import registry as protocols

    return [p.name for p in protocols.REGISTRY]


def mock_schema(names: list[str]) -> dict[str, Any]:
    """mock.schema.json completed for these protocols (see the module docstring): one
    if/then per protocol, chained by else, so a mock costs a test or a few."""
    doc = copy.deepcopy(schema(MOCK))
    doc["properties"]["protocol"]["enum"] = names
    chain: dict[str, Any] = {}
    for name in reversed(names):
        sides = {side: {"$ref": f"protocols/{name}.schema.json#/$defs/{side}"} for side in SIDES}
        is_it = {"required": ["protocol"], "properties": {"protocol": {"const": name}}}
        chain = {"if": is_it, "then": {"properties": sides}, **({"else": chain} if chain else {})}
    return {**doc, **chain}


@functools.cache
def validator(schema_name: str) -> jsonschema.protocols.Validator:
    """The checker of a schema of schemas/, made once (a set may hold many thousand
    documents). Its ``$ref`` are looked up now, so a missing schema fails here; it checks
    as the schema says, made quicker (compiled.py)."""
    doc = mock_schema(protocol_names()) if schema_name == MOCK else schema(schema_name)
    return compiled.Validator(compiled.compile_schema(doc, registry()), registry=registry())


def first_error(data: Any, schema_name: str) -> tuple[list[Any], str] | None:
    """The first thing in ``data`` that does not fit the schema, as (its path, why); None
    when it fits. The outermost fault wins, then the first by path (items by index)."""
    errors = sorted(validator(schema_name).iter_errors(data), key=lambda e: _order(e.absolute_path))
    if not errors:
        return None
    return list(errors[0].absolute_path), errors[0].message


def _order(path: Iterable[Any]) -> list[tuple[bool, int, str]]:
    return [(isinstance(p, str), p if isinstance(p, int) else 0, str(p)) for p in path]


def dotted(where: Iterable[Any]) -> str:
    """A path as kpy's messages name a field: ``response.body.json.rate``, ``(top level)``."""
    return ".".join(str(p) for p in where) or "(top level)"
