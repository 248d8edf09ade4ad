"""A recorded HTTP request sent again, as it was recorded: what ``kpy test`` and a
re-recording (``kpy record --from-set``) both send to the service.

The recorded headers go in their order and case, with no default of httpx's added; the
framing ones are left to httpx (the body is encoded anew). A header the recording redacted
(``Authorization: Bearer [redacted by kpy]``) is sent with the value ``--header`` gives it.
"""

from __future__ import annotations

import httpx

from kpy_ci.protocols import http
from kpy_ci.protocols.base import REDACTED, Doc

HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


class NoAnswer(Exception):
    """The service did not answer the request (the message says how)."""


def client(timeout: float) -> httpx.Client:
    """A client that sends each request's recorded headers, no more."""
    out = httpx.Client(timeout=timeout, headers={})
    out.headers.clear()
    return out


def headers_to_send(request: Doc, given: dict[str, str]) -> list[tuple[str, str]]:
    """The recorded headers, framing aside, with ``given`` (by lower-case name) in place of
    the recorded values."""
    return [
        (name, given.get(name.lower(), value))
        for name, value in request["headers"]
        if name.lower() not in HOP_BY_HOP
    ]


def redacted_missing(request: Doc, given: dict[str, str]) -> list[str]:
    """Headers of the request that were redacted when recorded and that ``given`` lacks:
    sent as they are, they would be refused by a service that checks them."""
    return [
        name
        for name, value in request["headers"]
        if REDACTED in str(value) and name.lower() not in given
    ]


def send(
    session: httpx.Client, base_url: str, request: Doc, given: dict[str, str]
) -> tuple[httpx.Response, bytes]:
    """Send the request; the response (closed) and its raw body, as the wire carried it.
    Raises NoAnswer when the service did not answer."""
    body = request.get("body")
    content = http.encode_body(body, request["headers"]) if body is not None else b""
    try:
        sent = session.build_request(
            request["method"],
            base_url + request["url"],
            headers=headers_to_send(request, given),
            content=content,
        )
        response = session.send(sent, stream=True)
        try:
            raw = b"".join(response.iter_raw())
        finally:
            response.close()
    except httpx.HTTPError as e:
        raise NoAnswer(f"the service did not answer: {type(e).__name__}: {e}") from e
    return response, raw
