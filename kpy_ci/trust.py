"""Whom the service trusts, and how it is made to trust kpy's CA as well, with no change to
its code: each runtime's own environment variable is pointed at a bundle holding what the
variable named before (or the system's store) plus kpy's CA certificate. Clients that read a
CA file named in their own configuration get kpy's CA in that file's place
(``tls.ca_files`` in kpy.yml), inside the service's private mount namespace.

The same trust, the service's own without kpy's CA, is what kpy checks the real servers
against when it records.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kpy_ci.errors import EnvironmentProblem

REPLACING = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
"""A bundle that stands for the system's store: OpenSSL (Python's ssl, httpx, aiohttp,
Ruby, PHP), Go; requests (instead of certifi); curl."""
ADDING = ("NODE_EXTRA_CA_CERTS",)
"""Certificates added to a runtime's own store: Node.js."""
OWN_FILE = ("PGSSLROOTCERT",)
"""A file only its client reads, given only when the service names one: libpq (verify-ca,
verify-full)."""
VARIABLES = (*REPLACING, *ADDING, *OWN_FILE)

RUNTIMES = {
    "SSL_CERT_FILE": "OpenSSL-based clients (Python ssl, urllib, httpx, aiohttp) and Go",
    "REQUESTS_CA_BUNDLE": "Python requests",
    "CURL_CA_BUNDLE": "curl",
    "NODE_EXTRA_CA_CERTS": "Node.js (https, fetch)",
    "PGSSLROOTCERT": "libpq (psycopg, psql) with sslmode verify-ca / verify-full",
}


PROGRAMS = {  # a program on PATH -> the runtime it stands for, and the variable that reaches it
    "python3": (
        "Python (ssl, urllib, httpx, aiohttp, requests)",
        "SSL_CERT_FILE and REQUESTS_CA_BUNDLE",
    ),
    "node": ("Node.js (https, fetch)", "NODE_EXTRA_CA_CERTS"),
    "curl": ("curl", "CURL_CA_BUNDLE"),
    "psql": ("libpq (psql, psycopg)", "PGSSLROOTCERT when the service sets it"),
    "go": ("Go", "SSL_CERT_FILE"),
}
NOT_COVERED = {"java": "Java (its trust store is not a PEM file kpy can extend)"}


def runtimes(path: str) -> tuple[list[str], list[str]]:
    """The runtimes on ``path`` (a PATH) that kpy makes trust its CA, and those it cannot."""
    covered = [
        f"{what} via {via}"
        for program, (what, via) in PROGRAMS.items()
        if shutil.which(program, path=path)
    ]
    missed = [what for program, what in NOT_COVERED.items() if shutil.which(program, path=path)]
    return covered, missed


def system_bundle() -> Path | None:
    """OpenSSL's compiled-in CA file (not one an environment variable names)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@dataclass(frozen=True)
class ServiceTrust:
    """The CA files the service's clients trust (its environment and kpy.yml's
    ``tls.ca_files``), and the system's."""

    named: dict[str, Path]
    """Variable -> the file it named in the service's environment."""
    ca_files: tuple[Path, ...] = ()
    system: Path | None = None
    directory: Path | None = None
    """``SSL_CERT_DIR``: hashed CA files that OpenSSL-based clients also trust (kept as it is
    in the service's environment)."""

    @classmethod
    def of(cls, env: Mapping[str, str], ca_files: Sequence[Path] = ()) -> ServiceTrust:
        named = {
            var: Path(env[var])
            for var in VARIABLES
            if env.get(var) and env[var] != "system" and Path(env[var]).is_file()
        }
        directory = Path(env["SSL_CERT_DIR"]) if env.get("SSL_CERT_DIR") else None
        if directory is not None and not directory.is_dir():
            directory = None
        return cls(named, tuple(ca_files), system_bundle(), directory)

    def files(self) -> list[Path]:
        """Every file some client of the service may verify a server against: a server is
        trusted when one of them vouches for it (kpy cannot tell which client dialled)."""
        every = [*self.named.values(), *self.ca_files]
        if self.system is not None:
            every.append(self.system)
        return list(dict.fromkeys(every))

    def verifying_context(self, alpn: Sequence[str] = ()) -> ssl.SSLContext:
        """A client context that checks a real server as the service would: its chain
        against ``files()``, its name, its dates."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # names and chains checked, no CA yet
        for file in self.files():
            context.load_verify_locations(cafile=str(file))
        if self.directory is not None:
            context.load_verify_locations(capath=str(self.directory))
        if alpn:
            context.set_alpn_protocols(list(alpn))
        return context

    def bundles(self, ca_pem: bytes, directory: Path) -> tuple[dict[str, str], dict[Path, Path]]:
        """Write the bundles that add kpy's CA to this trust, in ``directory``: the
        environment the service is given, and the files to stand at ``ca_files``' places
        (bundle -> the path it covers)."""
        env: dict[str, str] = {}
        for var in (*REPLACING, *ADDING, *OWN_FILE):
            base = self.named.get(var)
            if base is None and var in OWN_FILE:
                continue
            if base is None and var in REPLACING:
                base = self.system
            bundle = directory / f"{var.lower()}.pem"
            bundle.write_bytes(_read(base) + ca_pem)
            env[var] = str(bundle)
        mounts = {}
        for n, file in enumerate(self.ca_files, 1):
            bundle = directory / f"ca-file-{n}.pem"
            bundle.write_bytes(_read(file) + ca_pem)
            mounts[bundle] = file
        return env, mounts


def _read(file: Path | None) -> bytes:
    if file is None:
        return b""
    data = file.read_bytes()
    return data if not data or data.endswith(b"\n") else data + b"\n"


CHANNEL_BINDING = "PGCHANNELBINDING"


@dataclass(frozen=True)
class TrustedService:
    """What the service is started with so that it trusts kpy's CA."""

    env: dict[str, str]
    mounts: dict[Path, Path]
    trust: ServiceTrust


@contextmanager
def trusting(
    env: Mapping[str, str], ca_pem: bytes, ca_files: Sequence[str] = ()
) -> Iterator[TrustedService]:
    """The service's environment and mounts with kpy's CA added to its trust, for as long
    as the block runs (the bundles, public certificates only, are then removed).

    libpq's SCRAM channel binding (on by default over TLS) binds the password proof to the
    certificate the client saw, which is kpy's: the real server would refuse it. So libpq is
    told not to bind (``PGCHANNELBINDING=disable``) unless the service chose otherwise; kpy
    checks the real server's certificate itself, as the service would have."""
    files = [Path(f) for f in ca_files]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise EnvironmentProblem(f"kpy.yml tls.ca_files: no such file: {missing[0]}")
    trust = ServiceTrust.of(env, files)
    with tempfile.TemporaryDirectory(prefix="kpy-trust-") as directory:
        os.chmod(directory, 0o755)  # a service that drops privileges still reads them
        variables, mounts = trust.bundles(ca_pem, Path(directory))
        service_env = {**env, **variables}
        service_env.setdefault(CHANNEL_BINDING, "disable")
        yield TrustedService(service_env, mounts, trust)
