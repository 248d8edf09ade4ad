"""kpy_ci.schema.openapi: OpenAPI documents read, recorded exchanges checked against them
(openapi-core), the lock's http entry, and what a new version breaks.

The documents are the sample shop's exchange-rate API (examples/shop/rates.py), in 3.0 and
3.1; the exchanges have the shapes docs/FORMAT.md shows for the demo's mocks."""

from __future__ import annotations

import copy
import hashlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from kpy_ci.config import line_of, schema
from kpy_ci.errors import UsageError
from kpy_ci.schema import openapi
from kpy_ci.schema.openapi import Change, Document, Operation
from kpy_ci.store.serializer import document, dump

RATES_30 = """\
openapi: 3.0.3
info: {title: Exchange rates, version: '1.0'}
servers:
- url: https://rates.example.com
security:
- bearer: []
paths:
  /rates:
    get:
      operationId: getRates
      parameters:
      - {name: from, in: query, required: true, schema: {type: string, pattern: '^[A-Za-z]{3}$'}}
      - {name: to, in: query, required: true, schema: {type: string, pattern: '^[A-Za-z]{3}$'}}
      responses:
        200:
          description: the rate
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Rate'}
        400: {$ref: '#/components/responses/Error'}
        401: {$ref: '#/components/responses/Error'}
        404: {$ref: '#/components/responses/Error'}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
  responses:
    Error:
      description: what went wrong
      content:
        application/json:
          schema:
            type: object
            required: [error]
            properties:
              error: {type: string}
  schemas:
    Rate:
      type: object
      required: [from, to, rate]
      additionalProperties: false
      properties:
        from: {type: string}
        to: {type: string}
        rate: {type: number}
"""


def rates_31() -> dict[str, Any]:
    """The same API in 3.1, behind a /v1 server path, with a path parameter and a nested,
    composed schema: what servers, templates, allOf and arrays do."""
    error = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Exchange rates", "version": "1.1"},
        "servers": [{"url": "https://{region}.rates.example.com/v1",
                     "variables": {"region": {"default": "eu"}}}],
        "paths": {
            "/rates": {"get": {
                "operationId": "getRates",
                "parameters": [
                    {"name": "from", "in": "query", "required": True, "schema": {"type": "string"}},
                    {"name": "to", "in": "query", "required": True, "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {"description": "the rate", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Rate"}}}},
                    "4XX": {"description": "refused", "content": {"application/json": {
                        "schema": error}}},
                },
            }},
            "/currencies/{code}": {"get": {
                "operationId": "getCurrency",
                "parameters": [{"name": "code", "in": "path", "required": True,
                                "schema": {"type": "string", "minLength": 3, "maxLength": 3}}],
                "responses": {"200": {"description": "a currency", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Currency"}}}}},
            }},
        },
        "components": {"schemas": {
            "Rate": {
                "type": "object",
                "required": ["from", "to", "rate"],
                "properties": {
                    "from": {"type": "string"},
                    "to": {"type": "string"},
                    "rate": {"type": ["number", "null"]},
                },
            },
            "Named": {"type": "object", "properties": {"name": {"type": "string"}}},
            "Currency": {"allOf": [
                {"$ref": "#/components/schemas/Named"},
                {"type": "object", "required": ["code", "name"], "properties": {
                    "code": {"type": "string"},
                    "minor_units": {"type": "integer"},
                    "countries": {"type": "array", "items": {
                        "type": "object", "properties": {"iso": {"type": "string"},
                                                         "since": {"type": "string"}}}},
                    "issuer": {"type": "object", "properties": {"name": {"type": "string"}}},
                }},
            ]},
        }},
    }  # fmt: skip


# The mock of docs/FORMAT.md#http: the shop asking the rates API, its token redacted.
REQUEST: dict[str, Any] = {
    "method": "GET",
    "url": "/rates?from=USD&to=EUR",
    "version": "1.1",
    "headers": [
        ["Host", "127.0.0.1:52959"],
        ["Accept-Encoding", "identity"],
        ["Authorization", "Bearer [redacted by kpy]"],
        ["Accept", "application/json"],
    ],
}
RESPONSE: dict[str, Any] = {
    "status": 200,
    "reason": "OK",
    "version": "1.1",
    "headers": [
        ["Server", "rates/1.0 Python/3.11.7"],
        ["Date", "Wed, 25 Nov 2026 14:31:47 GMT"],
        ["Content-Type", "application/json"],
        ["Content-Length", "42"],
    ],
    "body": {"json": {"from": "USD", "rate": 0.92, "to": "EUR"}},
}
Edit = Callable[[dict[str, Any], dict[str, Any]], object]


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("specs")
    (where / "rates.yaml").write_text(RATES_30)
    (where / "rates31.json").write_text(json.dumps(rates_31()))
    return where


@pytest.fixture(scope="module")
def doc(specs: Path) -> Document:
    return openapi.load("rates.yaml", specs)


@pytest.fixture(scope="module")
def doc31(specs: Path) -> Document:
    return openapi.load("rates31.json", specs)


def edited(
    edit: Edit, request: dict[str, Any] = REQUEST, response: dict[str, Any] = RESPONSE
) -> tuple[dict[str, Any], dict[str, Any]]:
    req, resp = copy.deepcopy(request), copy.deepcopy(response)
    edit(req, resp)
    return req, resp


def variant(source: Document, edit: Callable[[dict[str, Any]], object]) -> Document:
    spec = copy.deepcopy(source.spec)
    edit(spec)
    return openapi.parse(json.dumps(spec).encode(), "rates.new.json")


def rate_schema(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["components"]["schemas"]["Rate"]  # type: ignore[no-any-return]


# --- load -----------------------------------------------------------------------------------


def test_a_yaml_file_loads_with_its_hash(specs: Path, doc: Document) -> None:
    assert doc.source == "rates.yaml" and doc.version == "3.0"
    assert doc.sha256 == hashlib.sha256((specs / "rates.yaml").read_bytes()).hexdigest()
    # Unquoted status codes are the strings OpenAPI means.
    assert set(doc.spec["paths"]["/rates"]["get"]["responses"]) == {"200", "400", "401", "404"}


def test_a_json_file_in_31_loads(doc31: Document) -> None:
    assert doc31.version == "3.1"
    assert [str(op) for op in openapi.operations(doc31)] == [
        "GET /rates",
        "GET /currencies/{code}",
    ]


@pytest.fixture
def served(doc: Document) -> Iterator[str]:
    """RATES_30 from an HTTP server on loopback: its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = RATES_30.encode() if self.path == "/openapi.yaml" else b"no"
            self.send_response(200 if self.path == "/openapi.yaml" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{server.server_address[1]}"
        server.shutdown()
        thread.join()


def test_a_document_loads_from_a_url(served: str, doc: Document, tmp_path: Path) -> None:
    fetched = openapi.load(f"{served}/openapi.yaml", tmp_path)
    assert fetched.source == f"{served}/openapi.yaml"
    assert fetched.sha256 == doc.sha256 and fetched.spec == doc.spec
    assert openapi.check_exchange(fetched, REQUEST, RESPONSE) == []
    with pytest.raises(UsageError, match=rf"^{served}/gone.yaml: .*HTTP 404$"):
        openapi.load(f"{served}/gone.yaml", tmp_path)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{closed.getsockname()[1]}/openapi.yaml"
    with pytest.raises(UsageError, match=rf"^{nobody}: cannot fetch the OpenAPI document: "):
        openapi.load(nobody, tmp_path)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (None, r"^missing.yaml: cannot read the OpenAPI document: No such file"),
        ("openapi: 3.0.3\ninfo: {title: x\npaths: {}\n", r"^bad.yaml:3: not valid YAML: "),
        ("swagger: '2.0'\ninfo: {title: x, version: '1'}\n", r"^bad.yaml: a Swagger 2 document"),
        ("title: not an API\n", r"^bad.yaml: openapi: None: not an OpenAPI 3.0 or 3.1 document"),
        (
            "openapi: 3.0.3\ninfo:\n  title: x\npaths: {}\n",
            r"^bad.yaml:3: info: not valid OpenAPI 3.0: 'version' is a required property$",
        ),
        (
            RATES_30.replace("#/components/schemas/Rate", "#/components/schemas/Gone"),
            r"^bad.yaml:19: \$ref '/components/schemas/Gone' resolves to nothing$",
        ),
    ],
)
def test_a_bad_document_is_one_line_naming_it(tmp_path: Path, text: str | None, says: str) -> None:
    name = "missing.yaml" if text is None else "bad.yaml"
    if text is not None:
        (tmp_path / name).write_text(text)
    with pytest.raises(UsageError, match=says) as caught:
        openapi.load(name, tmp_path)
    assert "\n" not in str(caught.value)


def test_an_external_ref_resolves_beside_the_document(tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "schemas.yaml").write_text(
        yaml.safe_dump({"Rate": {"type": "object", "properties": {"rate": {"type": "number"}}}})
    )
    (tmp_path / "specs" / "rates.yaml").write_text(
        RATES_30.replace("'#/components/schemas/Rate'", "'schemas.yaml#/Rate'")
    )
    external = openapi.load("specs/rates.yaml", tmp_path)
    rates = Operation("GET", "/rates", "getRates")
    assert openapi.response_fields(external, rates, 200) == ["rate"]
    [violation] = openapi.check_exchange(
        external, *edited(lambda r, s: s["body"]["json"].update(rate="0.92"))
    )
    assert violation.field == "response.body.json.rate"


# --- operations -----------------------------------------------------------------------------


def test_a_request_goes_to_its_operation(doc: Document, doc31: Document) -> None:
    assert openapi.operation_for(doc, "GET", "/rates?from=USD&to=EUR") == Operation(
        "GET", "/rates", "getRates"
    )
    assert openapi.operation_for(doc, "get", "/rates") == Operation("GET", "/rates", "getRates")
    assert openapi.operation_for(doc, "POST", "/rates") is None
    assert openapi.operation_for(doc, "GET", "/convert") is None
    # The server's path is a prefix, on whatever host the recording reached.
    found = openapi.operation_for(doc31, "GET", "/v1/currencies/EUR")
    assert found == Operation("GET", "/currencies/{code}", "getCurrency")
    assert openapi.operation_for(doc31, "GET", "/rates") is None


# --- check_exchange -------------------------------------------------------------------------


def test_the_recorded_mock_keeps_to_the_document(doc: Document, doc31: Document) -> None:
    assert openapi.check_exchange(doc, REQUEST, RESPONSE) == []
    req, resp = edited(lambda r, s: r.update(url="/v1/rates?from=USD&to=EUR"))
    assert openapi.check_exchange(doc31, req, resp) == []


@pytest.mark.parametrize(
    ("edit", "field", "says"),
    [
        (
            lambda r, s: s["body"]["json"].update(rate="0.92"),
            "response.body.json.rate",
            "'0.92' is not of type 'number'",
        ),
        (
            lambda r, s: s["body"]["json"].pop("to"),
            "response.body.json.to",
            "required field 'to' is missing",
        ),
        (
            lambda r, s: s["body"]["json"].update(fee=0.01),
            "response.body.json.fee",
            "field 'fee' is not declared (additionalProperties is false)",
        ),
        (
            lambda r, s: s.update(status=201, reason="Created"),
            "response.status",
            "status 201 is not declared for this operation (declared: 200, 400, 401, 404)",
        ),
        (
            lambda r, s: r.update(url="/convert?amount=5"),
            "request.url",
            "no path of the OpenAPI document matches /convert",
        ),
        (lambda r, s: r.update(method="DELETE"), "request.method", "DELETE is not an operation"),
        (
            lambda r, s: r.update(url="/rates?from=USD"),
            "request.url",
            "Missing required query parameter: to",
        ),
        (
            lambda r, s: r.update(url="/rates?from=DOLLAR&to=EUR"),
            "request.url",
            "Invalid query parameter: from: 'DOLLAR' does not match '^[A-Za-z]{3}$'",
        ),
        (
            lambda r, s: s["headers"].__setitem__(2, ["Content-Type", "text/html"]),
            "response.headers.2",
            "content type 'text/html' is not declared for this response",
        ),
        (
            lambda r, s: s.update(body={"text": "rate=0.92"}),
            "response.body.text",
            "the response body is not application/json",
        ),
        (lambda r, s: s.pop("body"), "response.body", "the response declares a body and has none"),
    ],
)
def test_a_broken_exchange_names_the_field(
    doc: Document, edit: Edit, field: str, says: str
) -> None:
    [violation] = openapi.check_exchange(doc, *edited(edit))
    assert violation.field == field
    assert says in violation.message
    where, message = violation  # a pair, as kpy validate reads it
    assert ".".join(map(str, where)) == field and str(violation) == f"{field}: {message}"


def test_a_violation_points_at_its_line_in_the_mock(doc: Document) -> None:
    request, response = edited(lambda r, s: s["body"]["json"].update(rate="0.92"))
    mock = dump(document("Mock", {"name": "mock-7", "request": request, "response": response}))
    [violation] = openapi.check_exchange(doc, request, response)
    line = line_of(yaml.compose(mock), violation.where)
    assert mock.splitlines()[line - 1].strip() == "rate: '0.92'"


def test_what_redaction_leaves_is_no_violation(doc: Document) -> None:
    # Security is never checked: the credentials are gone from every recording.
    without_token = edited(lambda r, s: r["headers"].pop(2))
    assert openapi.check_exchange(doc, *without_token) == []
    # A value kpy redacted matches any schema.
    redacted = edited(
        lambda r, s: (
            r.update(url="/rates?from=%5Bredacted+by+kpy%5D&to=EUR"),
            s["body"]["json"].update(rate="[redacted by kpy]"),
        )
    )
    assert openapi.check_exchange(doc, *redacted) == []


def test_a_refused_request_is_the_contract_kept(doc: Document) -> None:
    """The API's 400 to a request missing ``to``: the request broke the rules on purpose,
    the answer is the declared one; a wrong error body still fails."""
    refused = edited(
        lambda r, s: (
            r.update(url="/rates?from=USD"),
            s.update(status=400, reason="Bad Request", body={"json": {"error": "to?"}}),
        )
    )
    assert openapi.check_exchange(doc, *refused) == []
    refused[1]["body"]["json"] = {"message": "to?"}
    assert [v.field for v in openapi.check_exchange(doc, *refused)] == ["response.body.json.error"]


def test_bodies_are_checked_as_stored(doc: Document, doc31: Document) -> None:
    # Stored decoded (encoding: gzip) and chunked: the content is what is checked.
    gzipped = edited(
        lambda r, s: (
            s["headers"].append(["Content-Encoding", "gzip"]),
            s["body"].update(encoding="gzip", chunked=True),
        )
    )
    assert openapi.check_exchange(doc, *gzipped) == []
    # A body kept as text is read as its Content-Type says...
    as_text = edited(lambda r, s: s.update(body={"text": '{"from":"USD","to":"EUR","rate":1}'}))
    assert openapi.check_exchange(doc, *as_text) == []
    # ...and 3.1 types (a list with null) are 3.1's.
    nulled = edited(
        lambda r, s: (
            r.update(url="/v1/rates?from=USD&to=EUR"),
            s["body"]["json"].update(rate=None),
        )
    )
    assert openapi.check_exchange(doc31, *nulled) == []
    assert openapi.check_exchange(doc, *edited(lambda r, s: s["body"]["json"].update(rate=None)))


def test_path_parameters_and_ranges_in_31(doc31: Document) -> None:
    def currency(code: str, status: int, body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        return edited(lambda r, s: (r.update(url=f"/v1/currencies/{code}"),
                                    s.update(status=status, body={"json": body})))  # fmt: skip

    assert (
        openapi.check_exchange(doc31, *currency("EUR", 200, {"code": "EUR", "name": "Euro"})) == []
    )
    [short] = openapi.check_exchange(doc31, *currency("EURO", 200, {"code": "EUR", "name": "E"}))
    assert short.field == "request.url" and "path parameter: code" in short.message
    [nameless] = openapi.check_exchange(doc31, *currency("EUR", 200, {"code": "EUR"}))
    assert nameless.field == "response.body.json.name"  # required by one allOf branch
    [undeclared] = openapi.check_exchange(doc31, *currency("XYZ", 404, {"error": "none"}))
    assert str(undeclared) == (
        "response.status: status 404 is not declared for this operation (declared: 200)"
    )
    # On /rates, 4XX covers the 404, whose body is still checked.
    no_rate = edited(
        lambda r, s: (
            r.update(url="/v1/rates?from=USD&to=XYZ"),
            s.update(status=404, body={"json": {"error": 404}}),
        )
    )
    assert [v.field for v in openapi.check_exchange(doc31, *no_rate)] == [
        "response.body.json.error"
    ]


# --- response_fields and lock_entry ---------------------------------------------------------


def test_response_fields_are_dotted(doc: Document, doc31: Document) -> None:
    rates = Operation("GET", "/rates", "getRates")
    assert openapi.response_fields(doc, rates, "200") == ["from", "rate", "to"]
    assert openapi.response_fields(doc, rates, 404) == ["error"]
    assert openapi.response_fields(doc, rates, "500") == []
    assert openapi.response_fields(doc31, rates, "429") == ["error"]  # from 4XX
    currency = Operation("GET", "/currencies/{code}", "getCurrency")
    assert openapi.response_fields(doc31, currency, "200") == [
        "code",
        "countries",
        "countries[].iso",
        "countries[].since",
        "issuer",
        "issuer.name",
        "minor_units",
        "name",
    ]


def test_the_lock_entry_of_a_host(doc: Document) -> None:
    exchanges = [
        (REQUEST, RESPONSE),
        edited(lambda r, s: r.update(url="/rates?from=USD&to=GBP")),
        edited(lambda r, s: s.update(status=404, body={"json": {"error": "no rate"}})),
        edited(lambda r, s: s.update(status=418)),  # undeclared: kpy validate says so
        edited(lambda r, s: r.update(url="/health")),
        ({"data": "generic"}, {"data": "generic"}),
    ]
    entry = openapi.lock_entry("127.0.0.1:52959", doc, exchanges)
    assert entry == {
        "host": "127.0.0.1:52959",
        "openapi": {"source": "rates.yaml", "sha256": doc.sha256},
        "operations": [
            {
                "method": "GET",
                "path": "/rates",
                "operation_id": "getRates",
                "mocks": 4,
                "responses": {"200": ["from", "rate", "to"], "404": ["error"]},
            },
            {"method": "GET", "path": "/health", "operation_id": None, "mocks": 1, "responses": {}},
        ],
    }
    http_entry = {"$defs": schema("schemalock.schema.json")["$defs"], "$ref": "#/$defs/http"}
    jsonschema.validate(entry, http_entry)  # what the lock's own schema lets through
    bare = openapi.lock_entry("127.0.0.1:52959", None, exchanges[:2])
    jsonschema.validate(bare, http_entry)
    assert bare == {
        "host": "127.0.0.1:52959",
        "openapi": None,
        "operations": [
            {"method": "GET", "path": "/rates", "operation_id": None, "mocks": 2, "responses": {}}
        ],
    }


# --- diff and stale_exchanges ---------------------------------------------------------------


@pytest.fixture(scope="module")
def locked(doc: Document) -> dict[str, Any]:
    return openapi.lock_entry("127.0.0.1:52959", doc, [(REQUEST, RESPONSE)])


def breaking(changes: list[Change]) -> list[str]:
    return [c.message for c in changes if c.breaking]


def test_nothing_changed_nothing_to_say(doc: Document, locked: dict[str, Any]) -> None:
    assert openapi.diff(locked, doc) == []
    assert openapi.diff(locked, doc, old_doc=doc) == []


def test_a_removed_response_field_breaks(doc: Document, locked: dict[str, Any]) -> None:
    def no_rate(spec: dict[str, Any]) -> None:
        del rate_schema(spec)["properties"]["rate"]
        rate_schema(spec)["required"].remove("rate")

    changes = openapi.diff(locked, variant(doc, no_rate))
    assert changes == [
        Change("GET /rates", "rate", True, "GET /rates 200: response field 'rate' removed")
    ]
    # The recorded mock carries it, and the schema now forbids it.
    [stale] = openapi.stale_exchanges(variant(doc, no_rate), REQUEST, RESPONSE)
    assert stale.field == "response.body.json.rate"


def test_a_removed_operation_or_status_breaks(doc: Document, locked: dict[str, Any]) -> None:
    moved = variant(doc, lambda s: s["paths"].update({"/v2/rates": s["paths"].pop("/rates")}))
    assert breaking(openapi.diff(locked, moved)) == [
        "GET /rates: operation getRates moved to GET /v2/rates"
    ]

    def gone(spec: dict[str, Any]) -> None:
        spec["paths"]["/convert"] = spec["paths"].pop("/rates")
        del spec["paths"]["/convert"]["get"]["operationId"]

    changes = openapi.diff(locked, variant(doc, gone))
    assert breaking(changes) == ["GET /rates: operation removed"]
    assert [c.message for c in changes if not c.breaking] == [
        "GET /convert: not used by any recorded mock"
    ]
    no_200 = variant(doc, lambda s: s["paths"]["/rates"]["get"]["responses"].pop("200"))
    assert breaking(openapi.diff(locked, no_200)) == [
        "GET /rates 200: response status no longer declared"
    ]


def test_a_harmless_addition_breaks_nothing(doc: Document, locked: dict[str, Any]) -> None:
    def grown(spec: dict[str, Any]) -> None:
        rate_schema(spec)["properties"]["as_of"] = {"type": "string"}
        spec["paths"]["/health"] = {"get": {"responses": {"204": {"description": "up"}}}}

    new = variant(doc, grown)
    for old in (None, doc):
        changes = openapi.diff(locked, new, old_doc=old)
        assert breaking(changes) == []
        added = "operation added" if old else "not used by any recorded mock"
        assert [c.message for c in changes] == [
            "GET /rates 200: response field 'as_of' added",
            f"GET /health: {added}",
        ]
    assert openapi.stale_exchanges(new, REQUEST, RESPONSE) == []


def test_with_the_old_document_types_and_requirements_show(
    doc: Document, locked: dict[str, Any]
) -> None:
    def stricter(spec: dict[str, Any]) -> None:
        rate_schema(spec)["properties"]["rate"] = {"type": "string"}
        spec["paths"]["/rates"]["get"]["parameters"].append(
            {"name": "date", "in": "query", "required": True, "schema": {"type": "string"}}
        )

    new = variant(doc, stricter)
    assert breaking(openapi.diff(locked, new, old_doc=doc)) == [
        "GET /rates 200: response field 'rate' type changed from number to string",
        "GET /rates: new required query parameter 'date'",
    ]
    # Without it the lock cannot tell, but the recorded mock can.
    assert breaking(openapi.diff(locked, new)) == []
    stale = openapi.stale_exchanges(new, REQUEST, RESPONSE)
    assert [str(v) for v in stale] == [
        "request.url: Missing required query parameter: date",
        "response.body.json.rate: 0.92 is not of type 'string'",
    ]


def test_a_lock_made_without_a_document_is_compared_by_its_paths(doc: Document) -> None:
    bare = openapi.lock_entry("127.0.0.1:52959", None, [(REQUEST, RESPONSE)])
    assert openapi.diff(bare, doc) == []
    renamed = variant(doc, lambda s: s["paths"].update({"/v2/rates": s["paths"].pop("/rates")}))
    assert breaking(openapi.diff(bare, renamed)) == ["GET /rates: operation removed"]
