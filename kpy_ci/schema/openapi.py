"""Everything kpy does with an HTTP dependency's OpenAPI 3.0/3.1 document, in one place to
import from: read it (``load``), route a recorded request to its operation
(``operation_for``), check a recorded exchange against it (``check_exchange``), the fields
its responses declare (``response_fields``), the lock's ``http:`` entry (``lock_entry``),
and what a new version breaks (``diff``, ``stale_exchanges``). Validation is openapi-core's
(with openapi-spec-validator for the document itself); kpy only maps the recording onto it.

Fields are dotted: ``a.b`` for a nested property, ``items[].sku`` for each element of an
array (openapi_fields.py).
"""

from __future__ import annotations

from kpy_ci.schema.openapi_check import (
    RecordedRequest,
    RecordedResponse,
    Violation,
    check_exchange,
    stale_exchanges,
)
from kpy_ci.schema.openapi_doc import (
    Document,
    Operation,
    load,
    operation_for,
    operations,
    parse,
)
from kpy_ci.schema.openapi_drift import Change, HostLock, diff, lock_entry
from kpy_ci.schema.openapi_fields import declared_response, response_fields

__all__ = [
    "Change",
    "Document",
    "HostLock",
    "Operation",
    "RecordedRequest",
    "RecordedResponse",
    "Violation",
    "check_exchange",
    "declared_response",
    "diff",
    "load",
    "lock_entry",
    "operation_for",
    "operations",
    "parse",
    "response_fields",
    "stale_exchanges",
]
