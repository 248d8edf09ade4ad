"""Secrets never reach disk: small filters, chained, run on every document before it is
written (as VCR.py's). The protocol recorders already drop what each protocol always
carries (passwords, SASL, AUTH, Authorization and cookies); these add what kpy.yml names."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kpy_ci.config import Config
from kpy_ci.protocols import http

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
