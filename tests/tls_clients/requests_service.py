"""A service whose upstream client is ``requests`` (urllib3), default trust: certifi's
bundle unless REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE names another."""

from __future__ import annotations

import requests
from serving import serve


def call(url: str, body: bytes) -> tuple[int, bytes]:
    response = requests.post(
        url,
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    return response.status_code, response.content


serve(call)
