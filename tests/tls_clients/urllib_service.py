"""A service whose upstream client is the stdlib: urllib.request, that is
http.client.HTTPSConnection with the default context (trust: OpenSSL's default paths,
which SSL_CERT_FILE / SSL_CERT_DIR replace)."""

from __future__ import annotations

import urllib.error
import urllib.request

from serving import serve


def call(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as answered:  # an answer all the same
        return answered.code, answered.read()


serve(call)
