"""Does a recorded HTTP exchange keep to its dependency's OpenAPI document? openapi-core
validates it; this module only shows it the recording (its Request and Response protocols
over the stored request and response, docs/FORMAT.md#http) and says where, in the recorded
document, each complaint points (``response.body.json.rate``), for ``kpy validate`` and
``kpy drift`` to name the file, line and field.

What is checked: the operation exists; path, query, header and cookie parameters; the
request body; the response status is declared; the response body (its content type and
schema) and declared response headers. What is not:

- security requirements: kpy redacts credentials (``Bearer [redacted by kpy]``), and a
  recording may exercise the unauthorised path on purpose;
- the request of an exchange the dependency answered 4xx: a test may send a bad request on
  purpose, and a 4xx says the dependency refused it as the contract allows (its response is
  still checked);
- values kpy redacted: a parameter or JSON value holding ``[redacted by kpy]`` matches any
  schema.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

from openapi_core.datatypes import RequestParameters
from openapi_core.deserializing.media_types.exceptions import MediaTypeDeserializeError
from openapi_core.templating.media_types.exceptions import MediaTypeNotFound
from openapi_core.templating.paths.exceptions import OperationNotFound, PathError
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.validation.request.exceptions import (
    MissingRequiredRequestBody,
    ParameterValidationError,
)
from openapi_core.validation.request.validators import (
    V30RequestBodyValidator,
    V30RequestParametersValidator,
    V31RequestBodyValidator,
    V31RequestParametersValidator,
)
from openapi_core.validation.response.exceptions import HeaderValidationError, MissingData
from werkzeug.datastructures import Headers, ImmutableMultiDict

from kpy_ci.protocols.base import REDACTED
from kpy_ci.protocols.http.message import encode_body
from kpy_ci.schema.openapi_doc import HOST_URL, Document, url_path

Where = tuple[str | int, ...]

_REQUEST_VALIDATORS = {
    "3.0": (V30RequestParametersValidator, V30RequestBodyValidator),
    "3.1": (V31RequestParametersValidator, V31RequestBodyValidator),
}
_DEFAULT_TYPES = {"json": "application/json", "text": "text/plain"}


class Violation(NamedTuple):
    """One way an exchange breaks the document, and where in the recorded document; a
    pair, so ``for where, message in check_exchange(...)`` reads it."""

    where: list[str | int]
    """Keys from the recorded document's top: ``["response", "body", "json", "rate"]``;
    ``config.line_of(node, where)`` gives its line."""
    message: str

    @property
    def field(self) -> str:
        return ".".join(str(p) for p in self.where) or "(top level)"

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class RecordedRequest:
    """openapi-core's ``Request`` protocol over a recorded request."""

    host_url = HOST_URL

    def __init__(self, request: Mapping[str, Any]) -> None:
        url = str(request.get("url", "/"))
        headers = _pairs(request)
        self.method = str(request.get("method", "GET")).lower()
        self.path = url_path(url)
        self.body = _body_bytes(request)
        self.content_type = _content_type(request)
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(_query(url)),
            header=Headers(headers),
            cookie=ImmutableMultiDict(_cookies(headers)),
        )


class RecordedResponse:
    """openapi-core's ``Response`` protocol over a recorded response."""

    def __init__(self, response: Mapping[str, Any]) -> None:
        self.status_code = int(response.get("status", 0))
        self.headers = Headers(_pairs(response))
        self.data = _body_bytes(response)
        self.content_type = _content_type(response)


def check_exchange(
    doc: Document, request: Mapping[str, Any], response: Mapping[str, Any]
) -> list[Violation]:
    """What in one recorded exchange breaks the document (empty when nothing does)."""
    if "method" not in request or "status" not in response:
        return [_at(("request",), "not an HTTP exchange (it fell back to generic)")]
    req = RecordedRequest(request)
    params, body = (cls(doc.app.spec) for cls in _REQUEST_VALIDATORS[doc.version])
    errors = list(params.iter_errors(req))
    if errors and isinstance(errors[0], PathError):
        return [_path_violation(errors[0], request)]
    out: list[Violation] = []
    if not 400 <= int(response["status"]) < 500:
        errors += body.iter_errors(req)
        out += [v for e in errors for v in _request_violations(e, request)]
    for e in doc.app.iter_response_errors(req, RecordedResponse(response)):
        if isinstance(e, MissingData) and req.method == "head":
            continue  # no body after HEAD, whatever GET's response declares
        out += _response_violations(e, response)
    return out


def stale_exchanges(
    new_doc: Document, request: Mapping[str, Any], response: Mapping[str, Any]
) -> list[Violation]:
    """Why a recorded mock no longer fits a new version of the document: it carries a field
    now declared absent, misses one now required, has a type that changed, lacks a request
    parameter now required... (the same checks as ``check_exchange``)."""
    return check_exchange(new_doc, request, response)


# --- the recorded side ----------------------------------------------------------------------


def _pairs(part: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(str(n), str(v)) for n, v in part.get("headers") or ()]


def _query(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def _cookies(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return [
        (name.strip(), value.strip())
        for _, line in _named(headers, "cookie")
        for name, _, value in (pair.partition("=") for pair in line.split(";"))
        if name.strip()
    ]


def _named(headers: Sequence[tuple[str, str]], name: str) -> list[tuple[int, str]]:
    return [(i, v) for i, (n, v) in enumerate(headers) if n.lower() == name]


def _body_bytes(part: Mapping[str, Any]) -> bytes | None:
    body = part.get("body")
    if not isinstance(body, Mapping):
        return None
    # Stored decoded: validate the content, not its Content-Encoding.
    plain = {k: v for k, v in body.items() if k not in ("encoding", "chunked")}
    return encode_body(plain, [])


def _content_type(part: Mapping[str, Any]) -> str:
    sent = _named(_pairs(part), "content-type")
    if sent:
        return sent[0][1].lower()
    body = part.get("body")
    kind = next((k for k in _DEFAULT_TYPES if isinstance(body, Mapping) and k in body), None)
    return _DEFAULT_TYPES[kind] if kind else "application/octet-stream"


def _body_where(side: str, part: Mapping[str, Any]) -> Where:
    body = part.get("body")
    kinds = [k for k in ("json", "text", "base64") if isinstance(body, Mapping) and k in body]
    return (side, "body", kinds[0]) if kinds else (side, "body")


def _header_where(side: str, part: Mapping[str, Any], name: str) -> Where:
    found = _named(_pairs(part), name.lower())
    return (side, "headers", found[0][0]) if found else (side, "headers")


# --- openapi-core's errors, placed --------------------------------------------------------


def _path_violation(e: PathError, request: Mapping[str, Any]) -> Violation:
    path = url_path(str(request.get("url", "/")))
    method = str(request.get("method", "")).upper()
    if isinstance(e, OperationNotFound):
        return _at(("request", "method"), f"{method} is not an operation of {path}")
    return _at(("request", "url"), f"no path of the OpenAPI document matches {path}")


def _request_violations(e: Exception, request: Mapping[str, Any]) -> Iterator[Violation]:
    if isinstance(e, ParameterValidationError):
        if _redacted_parameter(request, e.name, e.location):
            return
        if e.location == "header":
            where = _header_where("request", request, e.name)
        elif e.location == "cookie":
            where = _header_where("request", request, "cookie")
        else:
            where = ("request", "url")
        yield _at(where, _with_cause(e))
    elif isinstance(e, MissingRequiredRequestBody):
        yield _at(("request", "body"), "the operation requires a request body")
    else:
        yield from _body_violations(e, "request", request, "request body")


def _response_violations(e: Exception, response: Mapping[str, Any]) -> list[Violation]:
    if isinstance(e, ResponseNotFound):
        declared = ", ".join(e.availableresponses) or "none"
        return [
            _at(
                ("response", "status"),
                f"status {e.http_status} is not declared for this operation (declared: {declared})",
            )
        ]
    if isinstance(e.__cause__, MediaTypeNotFound):
        cause = e.__cause__
        known = ", ".join(cause.availableMimetypes)
        where = _header_where("response", response, "content-type")
        return [
            _at(
                where,
                f"content type {cause.mimetype!r} is not declared "
                f"for this response (declared: {known})",
            )
        ]
    if isinstance(e, MissingData):
        return [_at(("response", "body"), "the response declares a body and has none")]
    if isinstance(e, HeaderValidationError):
        where = _header_where("response", response, e.name)
        return [_at(where, _with_cause(e))]
    return list(_body_violations(e, "response", response, "response body"))


def _body_violations(
    e: Exception, side: str, part: Mapping[str, Any], what: str
) -> Iterator[Violation]:
    base = _body_where(side, part)
    cause = e.__cause__
    if isinstance(cause, MediaTypeNotFound):
        where = _header_where(side, part, "content-type")
        known = ", ".join(cause.availableMimetypes)
        yield _at(where, f"content type {cause.mimetype!r} is not declared (declared: {known})")
        return
    if isinstance(cause, MediaTypeDeserializeError):
        yield _at(base, f"the {what} is not {cause.mimetype}")
        return
    schema_errors = getattr(cause, "schema_errors", None)
    if not schema_errors:
        yield _at(base, str(cause or e))
        return
    for error in schema_errors:
        if _is_redacted(error.instance):
            continue
        yield from _schema_violations(error, base)


def _schema_violations(error: Any, base: Where) -> Iterator[Violation]:
    """One jsonschema error as violations at the value's place; a missing or unexpected
    property is placed at the property itself."""
    where = base + tuple(error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, Mapping):
        missing = [p for p in error.validator_value if p not in instance]
        named = [p for p in missing if error.message.startswith(repr(p))] or missing[:1]
        for name in named:
            yield _at((*where, name), f"required field {name!r} is missing")
        return
    if error.validator == "additionalProperties" and error.validator_value is False:
        declared = (
            set(error.schema.get("properties", {})) if hasattr(error.schema, "get") else set()
        )
        extra = [k for k in instance if k not in declared] if isinstance(instance, Mapping) else []
        if extra and "patternProperties" not in error.schema:
            for name in extra:
                yield _at(
                    (*where, name),
                    f"field {name!r} is not declared (additionalProperties is false)",
                )
            return
    yield _at(where, error.message)


def _at(where: Where, message: str) -> Violation:
    return Violation(list(where), message)


def _with_cause(e: Exception) -> str:
    cause = e.__cause__
    errors = getattr(cause, "schema_errors", None)
    if errors:
        return f"{e}: " + "; ".join(err.message for err in errors)
    return f"{e}: {cause}" if cause is not None else str(e)


def _is_redacted(value: Any) -> bool:
    return isinstance(value, str) and REDACTED in value


def _redacted_parameter(request: Mapping[str, Any], name: str, location: str) -> bool:
    url = str(request.get("url", "/"))
    values: list[str]
    if location == "header":
        values = [v for _, v in _named(_pairs(request), name.lower())]
    elif location in ("query", "cookie"):
        found = _query(url) if location == "query" else _cookies(_pairs(request))
        values = [v for k, v in found if k == name]
    else:
        values = [url]
    return any(_is_redacted(v) for v in values)
