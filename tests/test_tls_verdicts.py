"""A real server whose certificate the service would refuse is refused through kpy with
the very words the service's client says without kpy: every HTTP client here, against an
expired certificate, one for another name (by address and by name), a self-signed one and
one from a CA the service does not trust; and libpq's verify-full against a database with a
wrong-name certificate. Each verdict is taken directly and through `kpy record` in one run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import child_env, free_port, record_with_kpy
from tests.https_upstream import https_upstream
from tests.servers import postgres_server
from tests.test_record import load_set
from tests.test_tls_clients import SERVICES, client_env
from tests.test_tls_fixtures import VERDICTS
from tests.tls_certs import TestCA, self_signed
from tests.tls_clients import ANSWERS, HERE, wait_healthy
from tests.tls_clients.answers import ask

CASES = ("untrusted", "expired", "wrong-name", "wrong-name-dns", "self-signed")
JAVA_VERDICTS = {  # measured: what Java's HttpClient says (javax.net.ssl.SSLHandshakeException)
    "untrusted": "PKIX path building failed",
    "expired": "PKIX path validation failed: java.security.cert.CertPathValidatorException: "
    "validity check failed",
    "wrong-name": "No subject alternative names matching IP address 127.0.0.1 found",
    "wrong-name-dns": "No subject alternative DNS name matching localhost found",
    "self-signed": "PKIX path building failed",
}


@dataclass(frozen=True)
class Verdicts:
    direct: dict[str, dict[str, list[object]]]
    """client -> case -> [the service's status, its answer], without kpy."""
    via_kpy: dict[str, dict[str, list[object]]]
    warnings: dict[str, list[str]]
    """client -> the warnings of its recording."""


def both_ways(
    argv: list[str], env: dict[str, str], urls: dict[str, str], out: Path
) -> tuple[dict[str, list[object]], dict[str, list[object]], list[str]]:
    """The service's answer to a call to each URL: started on its own, then recorded by
    kpy into ``out``; and the recording's warnings."""
    port = int(env["PORT"])
    with subprocess.Popen(argv, env=env, stderr=subprocess.DEVNULL) as service:
        try:
            wait_healthy(service, port)
            direct = ask(port, urls)
        finally:
            service.kill()
    answers = out.with_suffix(".json")
    env = env | {"VERDICT_URLS": json.dumps(urls), "VERDICT_FILE": str(answers)}
    done = record_with_kpy(argv, port, out, ANSWERS, env, "--set", "verdicts", timeout=120)
    assert done.returncode == 0, done.stderr
    return direct, json.loads(answers.read_text()), load_set(out / "verdicts")[0]["warnings"]


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Verdicts]:
    tmp = tmp_path_factory.mktemp("tls-verdicts")
    ca, stranger = TestCA(tmp / "ca"), TestCA(tmp / "stranger", "a CA nobody trusts")
    with ExitStack() as stack:
        serve = lambda cert: stack.enter_context(https_upstream(cert))  # noqa: E731
        upstreams = {
            "untrusted": serve(stranger.valid()),
            "expired": serve(ca.expired()),
            "wrong-name": serve(ca.wrong_name()),
            "self-signed": serve(self_signed(tmp / "self-signed")),
        }
        urls = {case: upstream.url() for case, upstream in upstreams.items()}
        urls["wrong-name-dns"] = upstreams["wrong-name"].url("localhost")  # /etc/hosts
        direct, via_kpy, warnings = {}, {}, {}
        for client, argv in SERVICES.items():
            env = client_env(client, free_port(), urls["expired"], ca.cert_path)
            found = both_ways(argv, env, urls, tmp / client)
            direct[client], via_kpy[client], warnings[client] = found
    yield Verdicts(direct, via_kpy, warnings)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("client", list(SERVICES))
def test_a_defect_fails_through_kpy_as_it_fails_without(
    verdicts: Verdicts, client: str, case: str
) -> None:
    status, answer = verdicts.direct[client][case]
    assert status == 502, answer
    assert VERDICTS[case].get(client, JAVA_VERDICTS[case]) in answer["error"], answer  # type: ignore[index]
    assert verdicts.via_kpy[client][case] == verdicts.direct[client][case]


@pytest.mark.parametrize("client", list(SERVICES))
def test_the_recording_says_which_servers_were_refused(verdicts: Verdicts, client: str) -> None:
    said = "\n".join(verdicts.warnings[client])
    # every defect shown to the service; those its TLS library refuses in the handshake end
    # there ("and failed as it would have"), curl checks the name only after it
    assert said.count("the service was shown the same defect") == len(CASES), said
    for reason in ("certificate has expired", "self-signed certificate", "Hostname mismatch"):
        assert reason in said, said


PG_CASES = {  # (sslmode, the server's certificate) -> what libpq says, with or without kpy
    ("verify-full", "wrong-name"): 'does not match host name "127.0.0.1"',
    ("verify-full", "expired"): "certificate verify failed",
    ("verify-ca", "wrong-name"): None,  # verify-ca checks no name: connected, as without kpy
    # with a root certificate at hand (PGSSLROOTCERT), require checks the chain as verify-ca
    ("require", "self-signed"): "certificate verify failed",
}


def test_libpq_meets_a_defective_database_through_kpy_as_without(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    certs = {
        "wrong-name": ca.wrong_name(),
        "expired": ca.expired(),
        "self-signed": self_signed(tmp_path / "self-signed"),
    }
    argv = [sys.executable, str(HERE / "postgres_service.py")]
    with ExitStack() as stack:
        servers = {name: stack.enter_context(postgres_server(cert=c)) for name, c in certs.items()}
        urls = {
            f"{mode} {cert}": f"{servers[cert].dsn()}?sslmode={mode}" for mode, cert in PG_CASES
        }
        env = child_env() | {"PORT": str(free_port()), "PGSSLROOTCERT": str(ca.cert_path)}
        direct, via_kpy, _ = both_ways(argv, env, urls, tmp_path / "kpy")
    for (mode, cert), verdict in PG_CASES.items():
        status, answer = direct[f"{mode} {cert}"]
        if verdict is None:
            assert (status, answer) == (200, {"ssl": True}), answer
        else:
            assert status == 502 and verdict in answer["error"], answer  # type: ignore[index]
        assert via_kpy[f"{mode} {cert}"] == [status, answer]
