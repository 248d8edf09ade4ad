"""Secrets never reach disk: small filters, chained, run on every document before it is
written (as VCR.py's). The protocol recorders already drop what each protocol always
carries (passwords, SASL, AUTH, Authorization and cookies); these add what kpy.yml names."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from kpy_ci.config import Config
from kpy_ci.protocols.base import REDACTED
from kpy_ci.protocols.http import message as http

Filter = Callable[[dict[str, Any]], dict[str, Any]]
SIDES = ("request", "response")


def redact_headers(names: Iterable[str]) -> Filter:
    """Replace the whole values of these HTTP headers (any case)."""
    also = tuple(names)

    def apply(doc: dict[str, Any]) -> dict[str, Any]:
        for part in (doc.get(side) for side in SIDES):
            if isinstance(part, dict) and isinstance(part.get("headers"), list):
                part["headers"] = http.redact_headers(part["headers"], also=also)
        return doc

    return apply


def redact_json_fields(names: Iterable[str]) -> Filter:
    """Replace the values of these keys (any case) anywhere in JSON bodies."""
    wanted = tuple(names)

    def apply(doc: dict[str, Any]) -> dict[str, Any]:
        for part in (doc.get(side) for side in SIDES):
            body = part.get("body") if isinstance(part, dict) else None
            if isinstance(body, dict) and "json" in body:
                body["json"] = http.redact_json_fields(body["json"], wanted)
        return doc

    return apply


def filters(config: Config) -> list[Filter]:
    chain = []
    if config.redact_headers:
        chain.append(redact_headers(config.redact_headers))
    if config.redact_json_fields:
        chain.append(redact_json_fields(config.redact_json_fields))
    return chain


def apply_all(docs: Iterable[dict[str, Any]], chain: list[Filter]) -> Iterator[dict[str, Any]]:
    """Each document through every filter, one document at a time."""
    for doc in docs:
        for f in chain:
            doc = f(doc)
        yield doc


def apply_to(part: dict[str, Any], side: str, chain: list[Filter]) -> dict[str, Any]:
    """One side of an exchange (``request`` or ``response``) through every filter."""
    return next(apply_all([{side: part}], chain))[side]  # type: ignore[no-any-return]


ISSUED_MIN = 16
"""A credential shorter than this is never taken for one the service issued: too likely to
appear in a response by chance."""


def strings_at(value: Any, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], str]:
    """The strings of a document (a JSON value, a response), by their place."""
    if isinstance(value, str):
        return {path: value}
    found: dict[tuple[Any, ...], str] = {}
    if isinstance(value, dict | list):
        for key, v in value.items() if isinstance(value, dict) else enumerate(value):
            found |= strings_at(v, (*path, key))
    return found


def keep_issued(
    tests: Sequence[dict[str, Any]],
    credentials: Sequence[tuple[str, ...]],
    config: Config,
) -> None:
    """Put back in a test's request an Authorization credential that the service itself
    issued in an earlier test's response, written there in clear (the token of a sign-in):
    the file gains no secret it did not already hold, and the test sends what its client
    sent, so the service can check it as it did. ``credentials``: each test's, in order
    (``Exchange.credentials``). Headers kpy.yml redacts stay redacted."""
    if {name.lower() for name in config.redact_headers} & set(http.AUTHORIZATION):
        return
    earlier: list[str] = []  # the strings of the responses so far
    for doc, taken in zip(tests, credentials, strict=True):
        request, pending = doc.get("request") or {}, list(taken)
        for header in request.get("headers") or []:
            if str(header[0]).lower() not in http.AUTHORIZATION or not pending:
                continue
            credential = pending.pop(0)
            value = str(header[1])
            if not value.endswith(REDACTED) or len(credential) < ISSUED_MIN:
                continue
            if any(credential in said for said in earlier):
                header[1] = value[: -len(REDACTED)] + credential
        earlier.extend(strings_at(doc.get("response")).values())
