"""An HTTP dependency's OpenAPI 3.0/3.1 document: read from a file or a URL, checked with
openapi-spec-validator, and the operation a recorded request goes to (openapi-core's path
finder).

Servers: a recording talks to whatever host the service was pointed at (a local stand-in,
a staging host, kpy's proxy), never necessarily the one ``servers:`` names, so requests are
matched on the servers' *path* only (``https://api.example.com/v1`` matches ``/v1/...`` on
any host). The document kpy validates against is a copy whose server URLs are cut to their
paths; ``Document.spec`` and ``sha256`` stay those of the document as read.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
import yaml
from jsonschema_path import SchemaPath
from jsonschema_path.loaders import JsonschemaSafeLoader
from openapi_core import Config, OpenAPI
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.templating.paths.finders import APICallPathFinder
from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from referencing.exceptions import Unresolvable

from kpy_ci.config import line_of
from kpy_ci.errors import UsageError

HOST_URL = "http://upstream"
"""What requests are matched under: any host will do, as server URLs are cut to paths."""

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_VALIDATORS = {"3.0": OpenAPIV30SpecValidator, "3.1": OpenAPIV31SpecValidator}
_LOADER = cast(type[yaml.SafeLoader], JsonschemaSafeLoader)
"""jsonschema-path's YAML loader (openapi-core's own): dates stay strings."""
_SCHEME_AND_HOST = re.compile(r"^(?:[^:/?#]+:)?//[^/]*")


@dataclass(frozen=True)
class Document:
    source: str
    """As kpy.yml names it (``specs/rates.yaml``, ``http://127.0.0.1:8000/openapi.json``)."""
    sha256: str
    """Of the bytes as read."""
    spec: dict[str, Any] = field(repr=False, compare=False)
    version: str = field(compare=False)
    """``3.0`` or ``3.1``."""
    app: OpenAPI = field(repr=False, compare=False)
    """openapi-core's view of the document, servers cut to their paths."""
    finder: APICallPathFinder = field(repr=False, compare=False)


@dataclass(frozen=True)
class Operation:
    method: str
    """Upper case: ``GET``."""
    path: str
    """The path template as the document spells it: ``/rates``, ``/items/{id}``."""
    operation_id: str | None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def load(source: str, base: Path) -> Document:
    """The document at ``source``: an http(s) URL, or a file (YAML or JSON) relative to
    ``base`` (the directory of kpy.yml). UsageError, one line naming the source, when it
    cannot be read or is no valid OpenAPI 3.0/3.1 document."""
    if source.startswith(("http://", "https://")):
        return parse(_fetch(source), source, base_uri=source)
    file = base / source
    try:
        data = file.read_bytes()
    except OSError as e:
        raise UsageError(f"{source}: cannot read the OpenAPI document: {e.strerror}") from None
    return parse(data, source, base_uri=file.resolve().as_uri())


def _fetch(url: str) -> bytes:
    try:
        reply = httpx.get(url, follow_redirects=True, timeout=30)
    except httpx.HTTPError as e:
        raise UsageError(f"{url}: cannot fetch the OpenAPI document: {e}") from None
    if reply.status_code != 200:
        raise UsageError(f"{url}: cannot fetch the OpenAPI document: HTTP {reply.status_code}")
    return reply.content


def parse(data: bytes, source: str, base_uri: str = "") -> Document:
    """A document from its bytes (YAML or JSON); ``base_uri`` resolves relative ``$ref``s.
    Also for an older version of a document kept elsewhere (``diff``'s ``old``)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{source}: the OpenAPI document is not UTF-8") from None
    spec = _read(text, source)
    version = _version(spec, source)
    try:
        _VALIDATORS[version](SchemaPath.from_dict(spec, base_uri=base_uri)).validate()
    except OpenAPIValidationError as e:
        where = list(e.absolute_path)
        node = yaml.compose(text, Loader=_LOADER)
        at = ".".join(str(p) for p in where) or "(top level)"
        raise UsageError(
            f"{source}:{line_of(node, where)}: {at}: not valid OpenAPI {version}: {e.message}"
        ) from None
    except Unresolvable as e:
        line = next((i for i, t in enumerate(text.splitlines(), 1) if str(e.ref) in t), None)
        at = f":{line}" if line else ""
        raise UsageError(f"{source}{at}: $ref {e.ref!r} resolves to nothing") from None
    app = OpenAPI(
        SchemaPath.from_dict(_servers_as_paths(spec), base_uri=base_uri),
        # None: no second check (done above, on the document as read); openapi-core reads
        # None so, though its annotation omits it.
        config=Config(spec_validator_cls=None),  # type: ignore[arg-type]
    )
    finder = APICallPathFinder(app.spec)
    return Document(source, hashlib.sha256(data).hexdigest(), spec, version, app, finder)


def _read(text: str, source: str) -> Any:
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except ValueError:
            pass  # YAML says where it breaks
    try:
        # Through JSON, as jsonschema-path does: unquoted status codes (200:) become the
        # strings OpenAPI means.
        return json.loads(json.dumps(yaml.load(text, Loader=_LOADER)))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        why = getattr(e, "problem", None) or e
        raise UsageError(f"{source}{line}: not valid YAML: {why}") from None
    except (TypeError, ValueError) as e:
        raise UsageError(f"{source}: not a JSON-like document: {e}") from None


def _version(spec: Any, source: str) -> str:
    found = spec.get("openapi") if isinstance(spec, dict) else None
    for version in _VALIDATORS:
        if isinstance(found, str) and (found == version or found.startswith(version + ".")):
            return version
    if isinstance(spec, dict) and "swagger" in spec:
        raise UsageError(f"{source}: a Swagger 2 document; kpy reads OpenAPI 3.0 and 3.1")
    raise UsageError(f"{source}: openapi: {found!r}: not an OpenAPI 3.0 or 3.1 document")


def _servers_as_paths(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy whose ``servers`` URLs (top level, path items, operations) are their paths."""
    out = copy.deepcopy(spec)
    holders: list[Any] = [out]
    for item in out.get("paths", {}).values():
        holders.append(item)
        holders.extend(item.get(m) for m in METHODS)
    for holder in holders:
        if isinstance(holder, dict) and isinstance(holder.get("servers"), list):
            for server in holder["servers"]:
                if isinstance(server, dict) and isinstance(server.get("url"), str):
                    path = _SCHEME_AND_HOST.sub("", server["url"])
                    server["url"] = path if path.startswith("/") else "/" + path
    return out


def url_path(url: str) -> str:
    """The path of a request target (``/rates?from=USD`` -> ``/rates``), absolute-form too."""
    return urlsplit(url).path or "/"


def operation_for(doc: Document, method: str, url: str) -> Operation | None:
    """The operation a recorded request goes to (query string ignored), or None."""
    found = find(doc, method, url)
    if found is None:
        return None
    return Operation(method.upper(), found.path_result.pattern, _operation_id(found.operation))


def find(doc: Document, method: str, url: str) -> Any:
    """openapi-core's PathOperationServer for the request (path item, operation, server,
    path variables), or None."""
    try:
        return doc.finder.find(method.lower(), HOST_URL + url_path(url))
    except PathError:
        return None


def operation_node(doc: Document, operation: Operation) -> SchemaPath | None:
    """The operation's node in the document ($refs followed on access), or None."""
    paths = doc.app.spec / "paths"
    if operation.path not in paths:
        return None
    item = paths / operation.path
    method = operation.method.lower()
    return item / method if method in item else None


def operations(doc: Document) -> list[Operation]:
    """Every operation the document declares, in its order."""
    out = []
    for template, item in (doc.app.spec / "paths").str_items():
        for method in METHODS:
            if method in item:
                out.append(Operation(method.upper(), template, _operation_id(item / method)))
    return out


def _operation_id(node: SchemaPath) -> str | None:
    return (node / "operationId").read_str() if "operationId" in node else None
