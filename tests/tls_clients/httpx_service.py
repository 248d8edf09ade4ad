"""A service whose upstream client is ``httpx`` (sync, HTTP/1.1), default trust: certifi's
bundle unless SSL_CERT_FILE or SSL_CERT_DIR is set (httpx reads them itself)."""

from __future__ import annotations

import httpx
from serving import serve


def call(url: str, body: bytes) -> tuple[int, bytes]:
    response = httpx.post(
        url,
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    return response.status_code, response.content


serve(call)
