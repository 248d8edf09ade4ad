"""A service whose upstream client is ``httpx`` (sync, HTTP/1.1), default trust: certifi's
bundle unless SSL_CERT_FILE or SSL_CERT_DIR is set (httpx reads them itself)."""

from __future__ import annotations

import os

import httpx
from serving import serve


def call(body: bytes) -> tuple[int, bytes]:
    response = httpx.post(
        os.environ["UPSTREAM_URL"],
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    return response.status_code, response.content


serve(call)
