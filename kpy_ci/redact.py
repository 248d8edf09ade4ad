"""Secrets never reach disk: small filters, chained, run on every document before it is
written (as VCR.py's). The protocol recorders already drop what each protocol always
carries (passwords, SASL, AUTH, Authorization and cookies); these add what kpy.yml names."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from kpy_ci.config import Config
from kpy_ci.protocols.base import REDACTED

Filter = Callable[[dict[str, Any]], dict[str, Any]]


def redact_headers(names: Iterable[str]) -> Filter:
    """Replace the values of these HTTP headers (any case) in requests and responses."""
    wanted = {n.lower() for n in names}

    def apply(doc: dict[str, Any]) -> dict[str, Any]:
        for side in ("request", "response"):
            part = doc.get(side)
            if isinstance(part, dict) and isinstance(part.get("headers"), list):
                part["headers"] = [
                    [k, REDACTED] if str(k).lower() in wanted else [k, v]
                    for k, v in part["headers"]
                ]
        return doc

    return apply


def redact_json_fields(names: Iterable[str]) -> Filter:
    """Replace the values of these keys anywhere in JSON bodies."""
    wanted = set(names)

    def scrub(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: REDACTED if k in wanted else scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    def apply(doc: dict[str, Any]) -> dict[str, Any]:
        for side in ("request", "response"):
            body = (doc.get(side) or {}).get("body")
            if isinstance(body, dict) and "json" in body:
                body["json"] = scrub(body["json"])
        return doc

    return apply


def filters(config: Config) -> list[Filter]:
    chain = []
    if config.redact_headers:
        chain.append(redact_headers(config.redact_headers))
    if config.redact_json_fields:
        chain.append(redact_json_fields(config.redact_json_fields))
    return chain


def apply_all(docs: list[dict[str, Any]], chain: list[Filter]) -> list[dict[str, Any]]:
    for f in chain:
        docs = [f(doc) for doc in docs]
    return docs
