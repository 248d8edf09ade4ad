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
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    pkcs12,
)

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
    "java": ("Java (JSSE)", "JAVA_TOOL_OPTIONS, a PKCS12 trust store"),
}
NOT_COVERED: dict[str, str] = {}
"""Programs on PATH whose trust kpy cannot extend (none known now)."""


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


JAVA_OPTIONS = "JAVA_TOOL_OPTIONS"
_STORE, _PASSWORD, _TYPE = (
    "-Djavax.net.ssl.trustStore=",
    "-Djavax.net.ssl.trustStorePassword=",
    "-Djavax.net.ssl.trustStoreType=",
)


@dataclass(frozen=True)
class JavaTrust:
    """What a JVM trusts: the store its options name (``JAVA_TOOL_OPTIONS``, which every JVM
    reads), else the system's certificates (Debian builds Java's ``cacerts`` from them).
    A store kpy cannot read (JKS, a wrong password) leaves the options as they are."""

    options: tuple[str, ...]
    store: Path | None = None
    password: str | None = None
    certificates: tuple[x509.Certificate, ...] = ()
    readable: bool = True

    @classmethod
    def of(cls, env: Mapping[str, str]) -> JavaTrust:
        options = tuple(env.get(JAVA_OPTIONS, "").split())
        value = {
            prefix: o[len(prefix) :]
            for o in options
            for prefix in (_STORE, _PASSWORD)
            if o.startswith(prefix)
        }
        if not value.get(_STORE):
            return cls(options)
        store, password = Path(value[_STORE]), value.get(_PASSWORD)
        try:
            with warnings.catch_warnings():  # a store may hold a CA cryptography warns of
                warnings.simplefilter("ignore")
                secret = password.encode() if password else None
                read = pkcs12.load_pkcs12(store.read_bytes(), secret)
        except (OSError, ValueError):
            return cls(options, store, password, readable=False)
        return cls(options, store, password, tuple(c.certificate for c in read.additional_certs))

    def pem(self) -> bytes:
        return b"".join(c.public_bytes(Encoding.PEM) for c in self.certificates)

    def with_ca(self, system: Path | None, ca_pem: bytes, directory: Path) -> str:
        """The options pointing at a PKCS12 store of this trust (or the system's) plus
        kpy's CA, written in ``directory``."""
        base = self.certificates if self.store else _certificates(_read(system))
        store = directory / "java-truststore.p12"
        entries = [pkcs12.PKCS12Certificate(c, None) for c in (*base, *_certificates(ca_pem))]
        secret = self.password.encode() if self.password else None
        protection = BestAvailableEncryption(secret) if secret else NoEncryption()
        store.write_bytes(pkcs12.serialize_java_truststore(entries, protection))
        kept = [o for o in self.options if not o.startswith((_STORE, _TYPE))]
        return " ".join([*kept, f"{_STORE}{store}", f"{_TYPE}PKCS12"])


def _certificates(pem: bytes) -> list[x509.Certificate]:
    """Each certificate of a PEM bundle that ``cryptography`` reads (a system bundle may
    hold one it warns of, or will refuse: that one is left out)."""
    found = []
    for block in pem.split(b"-----END CERTIFICATE-----")[:-1]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                found.append(x509.load_pem_x509_certificate(block + b"-----END CERTIFICATE-----"))
            except ValueError:
                continue
    return found


def _uses_java(env: Mapping[str, str]) -> bool:
    path = env.get("PATH", os.defpath)
    return bool(env.get(JAVA_OPTIONS) or env.get("JAVA_HOME") or shutil.which("java", path=path))


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
    java: JavaTrust | None = field(default=None, compare=False)
    """A JVM's trust, when the service may start one (``java`` on its PATH, JAVA_HOME or
    JAVA_TOOL_OPTIONS set)."""

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
        java = JavaTrust.of(env) if _uses_java(env) else None
        return cls(named, tuple(ca_files), system_bundle(), directory, java)

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
        if self.java is not None and self.java.certificates:
            context.load_verify_locations(cadata=self.java.pem().decode())
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
        if self.java is not None and self.java.readable:
            env[JAVA_OPTIONS] = self.java.with_ca(self.system, ca_pem, directory)
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
