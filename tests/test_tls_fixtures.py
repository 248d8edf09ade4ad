"""The TLS test fixtures, checked on their own, without kpy: each client service trusts the
test CA only through its runtime's environment variable and calls an HTTPS upstream; a
good certificate passes and the usual defects fail with that runtime's own verdict (the
messages below are what each one says). What each client offers in its ClientHello (ALPN,
SNI) is read off the wire. PostgreSQL and Redis serve the CA's certificates to clients
that verify them.

Every URL here is an address (127.0.0.1) or ``localhost`` (/etc/hosts): no name needs DNS.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from tests.client_hello import Catcher, hello_catcher
from tests.https_upstream import Upstream, https_upstream
from tests.servers import REDIS_PASSWORD, pg_bin, postgres_server, redis_server
from tests.tls_certs import TestCA, self_signed
from tests.tls_clients import CLIENTS, TRUST_VARIABLE, TRUST_VARIABLES, service_env, wait_healthy


def node_build() -> tuple[int, bool]:
    """Node's major version, and whether it is linked to the system's OpenSSL: the two
    facts of a Node build that change what it trusts and offers."""
    out = subprocess.run(
        [
            "node",
            "-p",
            "process.versions.node + ' ' + !!process.config.variables.node_shared_openssl",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[0].split(".")[0]), out[1] == "true"


NODE_MAJOR, NODE_SHARED_OPENSSL = node_build()
# Debian's Node (18.20.4 on Debian 12) is linked to the system's OpenSSL and built to use its
# CA store, so OpenSSL's default paths reach it too; nodejs.org and NodeSource builds bundle
# their own roots and take only NODE_EXTRA_CA_CERTS.
NODE_TRUST = {"NODE_EXTRA_CA_CERTS"} | (
    {"SSL_CERT_FILE", "SSL_CERT_DIR"} if NODE_SHARED_OPENSSL else set()
)
TRUSTED_BY: dict[str, set[str]] = {
    # measured: the variables that, alone, make the client trust the CA
    "urllib": {"SSL_CERT_FILE", "SSL_CERT_DIR"},  # OpenSSL's default paths
    "requests": {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"},  # else certifi; SSL_CERT_* ignored
    "httpx": {"SSL_CERT_FILE", "SSL_CERT_DIR"},  # httpx reads them itself, else certifi
    "aiohttp": {"SSL_CERT_FILE", "SSL_CERT_DIR"},  # ssl.create_default_context()
    "node-https": NODE_TRUST,
    "node-fetch": NODE_TRUST,
    "curl": {"CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"},  # the curl tool reads all 3
}
PYTHON = ("urllib", "requests", "httpx", "aiohttp")
NODE = ("node-https", "node-fetch")


def per_runtime(python: str, node: str, curl: str) -> dict[str, str]:
    return {c: python for c in PYTHON} | {c: node for c in NODE} | {"curl": curl}


VERDICTS: dict[str, dict[str, str]] = {
    # a robust part of each client's error text; the whole of it, for urllib:
    #   <urlopen error [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed:
    #   certificate has expired (_ssl.c:1006)>
    # requests wraps the same in "HTTPSConnectionPool(host='127.0.0.1', port=N): Max retries
    # exceeded with url: /echo (Caused by SSLError(SSLCertVerificationError(1, '...')))",
    # aiohttp in "Cannot connect to host 127.0.0.1:N ssl:True [SSLCertVerificationError:
    # (1, '...')]", httpx gives it bare; Node's fetch says "fetch failed: " then the cause
    # (the service appends the error's code); curl adds its hint lines after the first.
    "untrusted": per_runtime(  # the CA's certificate, with no variable saying to trust it
        "certificate verify failed: unable to get local issuer certificate",
        "unable to verify the first certificate (UNABLE_TO_VERIFY_LEAF_SIGNATURE)",
        "curl: (60) SSL certificate problem: unable to get local issuer certificate",
    ),
    "expired": per_runtime(
        "certificate verify failed: certificate has expired",
        "certificate has expired (CERT_HAS_EXPIRED)",
        "curl: (60) SSL certificate problem: certificate has expired",
    ),
    "wrong-name": per_runtime(
        "certificate verify failed: IP address mismatch, certificate is not valid for '127.0.0.1'",
        "Hostname/IP does not match certificate's altnames: IP: 127.0.0.1 is not in the "
        "cert's list:  (ERR_TLS_CERT_ALTNAME_INVALID)",
        "curl: (60) SSL: no alternative certificate subject name matches target host name "
        "'127.0.0.1'",
    ),
    "wrong-name-dns": per_runtime(
        "certificate verify failed: Hostname mismatch, certificate is not valid for 'localhost'",
        "Hostname/IP does not match certificate's altnames: Host: localhost. is not in the "
        "cert's altnames: DNS:other.test (ERR_TLS_CERT_ALTNAME_INVALID)",
        "curl: (60) SSL: no alternative certificate subject name matches target host name "
        "'localhost'",
    ),
    "self-signed": per_runtime(
        "certificate verify failed: self-signed certificate",
        "self-signed certificate (DEPTH_ZERO_SELF_SIGNED_CERT)",
        "curl: (60) SSL certificate problem: self-signed certificate",
    ),
}
ALPN_OFFERED = {  # measured; Node's https module offers no ALPN at all, nor Node 18's fetch
    "urllib": ["http/1.1"],
    "requests": ["http/1.1"],
    "httpx": ["http/1.1"],
    "aiohttp": ["http/1.1"],
    "node-https": [],
    "node-fetch": ["http/1.1"] if NODE_MAJOR >= 20 else [],
    "curl": ["h2", "http/1.1"],
}


@dataclass(frozen=True)
class Pki:
    ca: TestCA
    cert_dir: Path
    """The CA in OpenSSL's hashed-directory form, for SSL_CERT_DIR."""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca = TestCA(tmp_path_factory.mktemp("pki"))
    cert_dir = ca.directory / "hashed"
    cert_dir.mkdir()
    subject_hash = subprocess.run(
        ["openssl", "x509", "-subject_hash", "-noout", "-in", str(ca.cert_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (cert_dir / f"{subject_hash}.0").symlink_to(ca.cert_path)
    return Pki(ca, cert_dir)


@dataclass
class Fleet:
    """Every client service the module needs, started at once (tens of processes start in
    about the time of the slowest), keyed by (client, case)."""

    ports: dict[tuple[str, str], int]
    logs: Path

    def call(self, client: str, case: str, body: Any) -> tuple[int, Any, str | None]:
        """POST /call: the service's status, its JSON answer, and X-Upstream-Status."""
        connection = http.client.HTTPConnection("127.0.0.1", self.ports[client, case], timeout=30)
        try:
            data = json.dumps(body).encode()
            connection.request("POST", "/call", data, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = json.loads(response.read())
            return response.status, answer, response.getheader("X-Upstream-Status")
        finally:
            connection.close()


@dataclass
class Upstreams:
    valid: Upstream
    expired: Upstream
    wrong_name: Upstream
    self_signed: Upstream
    hellos: dict[tuple[str, str], Catcher]


@pytest.fixture(scope="module")
def upstreams(pki: Pki) -> Iterator[Upstreams]:
    ca, directory = pki.ca, pki.ca.directory
    with ExitStack() as stack:
        yield Upstreams(
            stack.enter_context(https_upstream(ca.valid(["api.test", "localhost"]))),
            stack.enter_context(https_upstream(ca.expired())),
            stack.enter_context(https_upstream(ca.wrong_name())),
            stack.enter_context(https_upstream(self_signed(directory / "self-signed"))),
            {
                (client, host): stack.enter_context(hello_catcher())
                for client in CLIENTS
                for host in ("127.0.0.1", "localhost")
            },
        )


def free_ports(count: int) -> list[int]:
    """Loopback ports where nothing listens, all different (held at once while chosen: one
    released before the next is chosen may be chosen again)."""
    with ExitStack() as stack:
        held = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in held:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in held]


@pytest.fixture(scope="module")
def fleet(
    pki: Pki, upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    ca_file = str(pki.ca.cert_path)
    cases: dict[tuple[str, str], tuple[str, dict[str, str]]] = {}
    for client in CLIENTS:
        variable = TRUST_VARIABLE[client]
        trust = {variable: ca_file}
        cases[client, "valid"] = upstreams.valid.url(), trust
        cases[client, "valid-dns"] = upstreams.valid.url("localhost"), trust
        cases[client, "untrusted"] = upstreams.valid.url(), {}
        cases[client, "expired"] = upstreams.expired.url(), trust
        cases[client, "wrong-name"] = upstreams.wrong_name.url(), trust
        cases[client, "wrong-name-dns"] = upstreams.wrong_name.url("localhost"), trust
        cases[client, "self-signed"] = upstreams.self_signed.url(), trust
        for each in TRUST_VARIABLES:
            alone = {each: str(pki.cert_dir) if each == "SSL_CERT_DIR" else ca_file}
            cases[client, f"only {each}"] = upstreams.valid.url(), alone
        for host in ("127.0.0.1", "localhost"):
            cases[client, f"hello {host}"] = upstreams.hellos[client, host].url(host), {}
    logs = tmp_path_factory.mktemp("services")
    fleet = Fleet({}, logs)
    with ExitStack() as stack:
        started = []
        ports = free_ports(len(cases))
        for ((client, case), (url, trust)), port in zip(cases.items(), ports, strict=True):
            log = stack.enter_context((logs / f"{client} {case}.log").open("wb"))
            process = subprocess.Popen(
                CLIENTS[client],
                env=service_env(port, url, trust),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            stack.callback(process.wait, 10)
            stack.callback(process.kill)
            started.append((process, port))
            fleet.ports[client, case] = port
        for process, port in started:
            wait_healthy(process, port)
        yield fleet


@pytest.mark.parametrize("client", CLIENTS)
def test_a_client_trusting_the_ca_by_its_variable_gets_the_upstreams_answer(
    fleet: Fleet, upstreams: Upstreams, client: str
) -> None:
    for case, host in (("valid", "127.0.0.1"), ("valid-dns", "localhost")):
        body = {"client": client, "host": host, "items": [1, 2]}
        status, answer, upstream_status = fleet.call(client, case, body)
        assert (status, upstream_status) == (200, "200"), answer
        assert answer == {"method": "POST", "path": "/echo", "body": body, "ok": True}
        received = next(r for r in upstreams.valid.requests if json.loads(r.body) == body)
        assert received.method == "POST" and received.path == "/echo"
        assert received.headers["Content-Type"] == "application/json"
        assert received.headers["Host"].split(":")[0] == host


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("case", list(VERDICTS))
def test_a_defective_certificate_fails_with_the_runtimes_verdict(
    fleet: Fleet, client: str, case: str
) -> None:
    status, answer, _ = fleet.call(client, case, {"n": 1})
    assert status == 502
    assert VERDICTS[case][client] in answer["error"], answer["error"]


@pytest.mark.parametrize("client", CLIENTS)
def test_which_variables_a_client_takes_its_trust_from(fleet: Fleet, client: str) -> None:
    trusted = set()
    for variable in TRUST_VARIABLES:
        status, answer, _ = fleet.call(client, f"only {variable}", {"n": 1})
        if status == 200:
            trusted.add(variable)
        else:  # refused as untrusted, not for any other reason
            assert VERDICTS["untrusted"][client] in answer["error"], answer["error"]
    assert trusted == TRUSTED_BY[client]


@pytest.mark.parametrize("client", CLIENTS)
def test_what_a_client_offers_in_its_client_hello(
    fleet: Fleet, upstreams: Upstreams, client: str
) -> None:
    for host, sni in (("127.0.0.1", None), ("localhost", "localhost")):
        status, _, _ = fleet.call(client, f"hello {host}", {"n": 1})
        assert status == 502  # the catcher hangs up after the ClientHello
        catcher = upstreams.hellos[client, host]
        assert catcher.errors == [] and catcher.hellos, catcher.errors
        hello = catcher.hellos[0]
        assert (hello.sni, hello.alpn) == (sni, ALPN_OFFERED[client])


def test_the_upstream_keeps_alive_records_and_advertises_alpn(pki: Pki) -> None:
    context = ssl.create_default_context(cafile=str(pki.ca.cert_path))
    context.set_alpn_protocols(["h2", "http/1.1"])
    for alpn, agreed in ((None, None), (["http/1.1"], "http/1.1")):
        with https_upstream(pki.ca.valid(), alpn) as upstream:
            connection = http.client.HTTPSConnection("127.0.0.1", upstream.port, context=context)
            connection.request("POST", "/a?x=1", b'{"k": [1]}', {"X-Test": "yes"})
            first = connection.getresponse()
            assert json.loads(first.read()) == {
                "method": "POST",
                "path": "/a?x=1",
                "body": {"k": [1]},
                "ok": True,
            }
            socket_before = connection.sock
            connection.request("GET", "/b")
            second = json.loads(connection.getresponse().read())
            assert connection.sock is socket_before  # the same connection: kept alive
            assert second == {"method": "GET", "path": "/b", "body": None, "ok": True}
            connection.close()
            assert [(r.method, r.path, r.body) for r in upstream.requests] == [
                ("POST", "/a?x=1", b'{"k": [1]}'),
                ("GET", "/b", b""),
            ]
            assert upstream.requests[0].headers["x-test"] == "yes"
            assert {r.alpn for r in upstream.requests} == {agreed}


def test_an_upstream_sees_the_alert_of_a_client_that_refuses_it(pki: Pki) -> None:
    context = ssl.create_default_context(cafile=str(pki.ca.cert_path))
    with https_upstream(pki.ca.expired()) as upstream:
        connection = http.client.HTTPSConnection("127.0.0.1", upstream.port, context=context)
        with pytest.raises(ssl.SSLCertVerificationError):
            connection.request("GET", "/")
        connection.close()
    assert upstream.requests == []
    assert any("CERTIFICATE_EXPIRED" in e for e in upstream.tls_errors), upstream.tls_errors


def test_issued_files_are_a_lone_leaf_and_a_clear_key(pki: Pki, tmp_path: Path) -> None:
    issued = pki.ca.issue(["db.test"], ["127.0.0.1", "::1"], directory=tmp_path)
    assert issued.cert_path.parent == tmp_path and issued.ca_path == pki.ca.cert_path
    (leaf,) = x509.load_pem_x509_certificates(issued.cert_path.read_bytes())
    assert leaf.issuer == pki.ca.certificate.subject
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["db.test"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    load_pem_private_key(issued.key_path.read_bytes(), password=None)
    assert b"PRIVATE" not in pki.ca.cert_path.read_bytes()
    alone = self_signed(tmp_path)
    assert alone.ca_path == alone.cert_path


def psql(dsn: str, sql: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [pg_bin("psql"), dsn, "-XAtc", sql], capture_output=True, text=True, timeout=30
    )


SSL_IN_USE = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


def test_postgres_serves_a_certificate_that_verify_full_accepts(pki: Pki, tmp_path: Path) -> None:
    cert = pki.ca.issue(["db.test"], ["127.0.0.1"])
    other_ca = TestCA(tmp_path / "other")
    with postgres_server(cert=cert) as pg:
        verified = f"{pg.dsn()}?sslmode=verify-full&sslrootcert={pki.ca.cert_path}"
        done = psql(verified, SSL_IN_USE)
        assert (done.returncode, done.stdout.strip()) == (0, "t"), done.stderr
        refused = psql(f"{pg.dsn()}?sslmode=verify-full&sslrootcert={other_ca.cert_path}", "")
        assert refused.returncode != 0
        assert "certificate verify failed" in refused.stderr, refused.stderr
    with postgres_server(tls=True) as pg:  # the self-signed one, as before
        done = psql(f"{pg.dsn()}?sslmode=require", SSL_IN_USE)
        assert (done.returncode, done.stdout.strip()) == (0, "t"), done.stderr


def test_redis_serves_tls_only_to_clients_that_verify_it(pki: Pki, tmp_path: Path) -> None:
    cert = pki.ca.issue(["redis.test"], ["127.0.0.1"])
    ca = str(pki.ca.cert_path)
    with redis_server(tmp_path / "redis", tls=cert) as server:
        assert server.url().startswith("rediss://")
        cli = ["redis-cli", "-h", "127.0.0.1", "-p", str(server.port), "--no-auth-warning"]
        cli += ["-a", REDIS_PASSWORD]
        done = subprocess.run([*cli, "--tls", "--cacert", ca, "PING"], capture_output=True)
        assert done.stdout.strip() == b"PONG", done
        plain = subprocess.run([*cli, "PING"], capture_output=True, timeout=10)
        assert b"PONG" not in plain.stdout  # no plain port: a clear client gets nothing
        client = redis_py.Redis.from_url(server.url(), ssl_ca_certs=ca)
        try:
            assert client.set("k", "v") and client.get("k") == b"v"
        finally:
            client.close()
        untrusting = redis_py.Redis.from_url(server.url(), ssl_ca_certs=str(cert.cert_path))
        with pytest.raises(redis_py.ConnectionError, match="certificate verify failed"):
            untrusting.ping()
        untrusting.close()
