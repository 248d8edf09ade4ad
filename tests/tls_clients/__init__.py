"""Tiny services, one per HTTP client library, that call an HTTPS upstream the way real
services do: the client's default trust (no CA in the code, so only the runtime's
environment variables can add one) and normal name resolution (getaddrinfo).

Each listens on 127.0.0.1:$PORT: ``GET /health`` answers 200; ``POST /call`` POSTs its JSON
body to its ``X-Upstream-Url`` header's URL, else $UPSTREAM_URL, and answers 200 with the
upstream's body verbatim and its status in ``X-Upstream-Status``, or 502 with
``{"error": "<the client's error text>"}`` when the call fails (a TLS verdict, for one).
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent

CLIENTS: dict[str, list[str]] = {
    "urllib": [sys.executable, str(HERE / "urllib_service.py")],
    "requests": [sys.executable, str(HERE / "requests_service.py")],
    "httpx": [sys.executable, str(HERE / "httpx_service.py")],
    "aiohttp": [sys.executable, str(HERE / "aiohttp_service.py")],
    "node-https": ["node", str(HERE / "node_https_service.js")],
    "node-fetch": ["node", str(HERE / "node_fetch_service.js")],
    "curl": [sys.executable, str(HERE / "curl_service.py")],
}
"""name -> argv that starts the service (it reads PORT and UPSTREAM_URL)."""
JAVA = {"java": ["java", str(HERE / "JavaService.java")]}
"""Java's HttpClient: trusted through a trust store that JAVA_TOOL_OPTIONS names, so kept
apart from the clients above, which read PEM files."""

TRAFFIC = f"{sys.executable} {HERE / 'traffic.py'}"
"""kpy's traffic for a client service: two calls, each checked against the upstream's echo."""
ANSWERS = f"{sys.executable} {HERE / 'answers.py'}"
"""kpy's traffic that keeps the service's answer to a call per URL (answers.py)."""

TRUST_VARIABLE = {
    # the one each runtime documents, by which the tests give each client its CA
    "urllib": "SSL_CERT_FILE",
    "requests": "REQUESTS_CA_BUNDLE",
    "httpx": "SSL_CERT_FILE",
    "aiohttp": "SSL_CERT_FILE",
    "node-https": "NODE_EXTRA_CA_CERTS",
    "node-fetch": "NODE_EXTRA_CA_CERTS",
    "curl": "CURL_CA_BUNDLE",
    "java": "JAVA_TOOL_OPTIONS",  # -Djavax.net.ssl.trustStore=, a PKCS12 store of the CA
}
TRUST_VARIABLES = (
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "JAVA_TOOL_OPTIONS",
)
"""The environment variables by which one runtime or another adds trust: a test removes
them all from a service's environment before giving it the one it means."""

_PROXIES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def service_env(port: int, upstream_url: str, trust: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with no trust variable and no proxy but those in
    ``trust``, and the service's PORT and UPSTREAM_URL."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in TRUST_VARIABLES and k.lower() not in _PROXIES and k != "NODE_OPTIONS"
    }
    return env | dict(trust) | {"PORT": str(port), "UPSTREAM_URL": upstream_url}


def wait_healthy(process: subprocess.Popen[bytes], port: int, timeout: float = 30.0) -> None:
    """Until ``GET /health`` answers 200; a service that exits first fails at once."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/health")
            response = connection.getresponse()
            response.read()  # closing with unread bytes would reset the service's connection
            if response.status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{process.args!r}: no /health on port {port}")
        time.sleep(0.05)
