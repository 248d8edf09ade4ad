"""A recorded HTTP request sent again, as it was recorded: what ``kpy test`` and a
re-recording (``kpy record --from-set``) both send to the service.

The recorded headers go in their order and case, with no default of httpx's added; the
framing ones are left to httpx (the body is encoded anew). A header the recording redacted
(``Authorization: Bearer [redacted by kpy]``) is sent with the value ``--header`` gives it.

A re-recording runs on today's clock, so a token the service issued in an earlier test
(kept in clear, ``redact.keep_issued``) has long expired: ``Issued`` learns what the
service issues anew in this run and sends that instead, as its client would.
"""

from __future__ import annotations

import httpx

from kpy_ci.protocols.base import REDACTED, Doc
from kpy_ci.protocols.http import message as http
from kpy_ci.redact import ISSUED_MIN, strings_at

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


def received(response: httpx.Response, raw: bytes) -> tuple[list[list[str]], Doc | None]:
    """A response's headers as recorded ([name, value], unredacted) and its body doc."""
    headers = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in response.headers.raw]
    body = http.decode_body(headers, raw) if response.request.method != "HEAD" else None
    return headers, body


class Issued:
    """The credentials the service issued while tests are sent again: each earlier test's
    recorded response against the one it gives now, string by string at the same place
    (body or headers). A credential is found in those strings as ``redact.keep_issued``
    found it: whole, or inside one (``Bearer ...``, a cookie-like header)."""

    def __init__(self) -> None:
        self.said: list[tuple[str, str]] = []  # every long string of a recorded response, its test
        self.changed: list[tuple[str, str]] = []  # recorded -> what stands there in this run

    def credential_of(self, request: Doc) -> list[tuple[str, str]]:
        """The request's Authorization credentials kept in clear: (credential, header)."""
        return [
            (http.credential(str(value)), str(name))
            for name, value in request["headers"]
            if str(name).lower() in http.AUTHORIZATION and REDACTED not in str(value)
        ]

    def anew(self, credential: str) -> str | None:
        """What the service issued in this run where it had issued ``credential``: the
        string at its place, less what stood around it."""
        for text, now in self.changed:
            at = text.find(credential)
            if at < 0:
                continue
            head, tail = text[:at], text[at + len(credential) :]
            if now.startswith(head) and now.endswith(tail) and len(now) > len(head) + len(tail):
                return now[len(head) : len(now) - len(tail)]
        return None

    def missing(self, request: Doc) -> list[str]:
        """The tests not sent again that issued a credential this request sends: sent as
        it was recorded, it would have expired."""
        out = []
        for credential, _ in self.credential_of(request):
            issuer = next((test for text, test in self.said if credential in text), None)
            if issuer is not None and self.anew(credential) is None:
                out.append(issuer)
        return out

    def given(self, request: Doc) -> dict[str, str]:
        """Header values (by lower-case name) that carry what the service issued anew."""
        out = {}
        for credential, header in self.credential_of(request):
            if (now := self.anew(credential)) is not None:
                value = next(str(v) for n, v in request["headers"] if n == header)
                out[header.lower()] = value.replace(credential, now)
        return out

    def saw(self, test: str, recorded: Doc, live: Doc | None) -> None:
        """A test's recorded response, and (if it was sent again) the one it got now."""
        before = {p: t for p, t in strings_at(recorded).items() if len(t) >= ISSUED_MIN}
        self.said += [(text, test) for text in before.values()]
        if live is None:
            return
        now = strings_at(live)
        for place, text in before.items():
            if (new := now.get(place)) is not None and new != text:
                self.changed.append((text, new))
