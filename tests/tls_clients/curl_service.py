"""A service whose upstream client is the ``curl`` command (libcurl, OpenSSL), default
trust: its built-in bundle path unless CURL_CA_BUNDLE / SSL_CERT_FILE / SSL_CERT_DIR is set,
or PINNED_CA names a file for ``--cacert`` (a trust kpy is not told of); CLIENT_CERT and
CLIENT_KEY: a client certificate for servers that demand one.
A failure's text is curl's stderr."""

from __future__ import annotations

import os
import subprocess

from serving import serve


def call(url: str, body: bytes) -> tuple[int, bytes]:
    argv = ["curl", "-sS", "--fail-with-body", "--max-time", "10", "-X", "POST", "-d", "@-"]
    argv += ["-H", "Content-Type: application/json", "-w", "\\n%{http_code}"]
    if os.environ.get("CLIENT_CERT"):  # mutual TLS: the service's own certificate and key
        argv += ["--cert", os.environ["CLIENT_CERT"], "--key", os.environ["CLIENT_KEY"]]
    if os.environ.get("PINNED_CA"):  # a CA file named in the service's own configuration
        argv += ["--cacert", os.environ["PINNED_CA"]]
    done = subprocess.run([*argv, url], input=body, capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode(errors="replace").strip())
    data, _, status = done.stdout.rpartition(b"\n")
    return int(status), data


serve(call)
