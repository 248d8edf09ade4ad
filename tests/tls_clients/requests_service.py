"""A service whose upstream client is ``requests`` (urllib3), default trust: certifi's
bundle unless REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE names another."""

from __future__ import annotations

import os

import requests
from serving import serve


def call(body: bytes) -> tuple[int, bytes]:
    response = requests.post(
        os.environ["UPSTREAM_URL"],
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    return response.status_code, response.content


serve(call)
