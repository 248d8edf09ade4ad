"""redact.keep_issued: a credential the service issued in an earlier response, written there
in clear, is kept in the request that sends it back; any other stays redacted."""

from __future__ import annotations

from typing import Any

from kpy_ci.config import Config
from kpy_ci.protocols.base import REDACTED
from kpy_ci.protocols.http.message import credentials_of, redact_headers
from kpy_ci.redact import keep_issued

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"


def case(name: str, sent: str | None, answered: Any) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A test case as recording writes it, and what redaction took from its request."""
    headers = [["Host", "svc"]] + ([["Authorization", sent]] if sent else [])
    request = {"method": "GET", "url": "/", "headers": redact_headers(headers)}
    response = {"status": 200, "headers": [], "body": {"json": answered}}
    return {"name": name, "request": request, "response": response}, credentials_of(headers)


def kept(*tests: tuple[dict[str, Any], tuple[str, ...]], config: Config | None = None) -> list[str]:
    docs = [doc for doc, _ in tests]
    keep_issued(docs, [taken for _, taken in tests], config or Config())
    return [h[1] for doc in docs for h in doc["request"]["headers"] if h[0] == "Authorization"]


def test_a_token_the_service_issued_earlier_is_sent_back_as_it_was() -> None:
    sign_in = case("test-1", None, {"token": TOKEN, "expiresIn": 30})
    assert kept(sign_in, case("test-2", f"Bearer {TOKEN}", {"ok": True})) == [f"Bearer {TOKEN}"]
    inside = case("test-1", None, {"html": f"<a href='/x?t={TOKEN}'>"})  # a part of a value
    assert kept(inside, case("test-2", f"Bearer {TOKEN}", {})) == [f"Bearer {TOKEN}"]


def test_any_other_credential_stays_redacted() -> None:
    redacted = f"Bearer {REDACTED}"
    # the client's own; echoed by the same test only; short; the response redacted by kpy.yml
    assert kept(case("test-1", f"Bearer {TOKEN}", {})) == [redacted]
    assert kept(case("test-1", f"Bearer {TOKEN}", {"you": TOKEN})) == [redacted]
    assert kept(case("t1", None, {"t": "abc123"}), case("t2", "Bearer abc123", {})) == [redacted]
    sign_in = case("test-1", None, {"token": REDACTED})
    assert kept(sign_in, case("test-2", f"Bearer {TOKEN}", {})) == [redacted]
    issued = case("test-1", None, {"token": TOKEN})
    config = Config(redact_headers=("Authorization",))
    assert kept(issued, case("test-2", f"Bearer {TOKEN}", {}), config=config) == [redacted]
