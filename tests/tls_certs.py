"""A test PKI made with ``cryptography``: a CA written to a directory and the server
certificates it issues, good or with the defects real servers have (expired, for another
name, signed by nobody trusted). It stands for a real API's or database's own CA, so it is
made apart from kpy's session CA (kpy_ci/certificates.py). EC P-256 keys: fast to make.

Every certificate gets the extensions OpenSSL's strict checks ask for (key identifiers,
key usage, a SAN), so a verdict in a test is about the defect asked for and nothing else.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclass(frozen=True)
class Issued:
    """A server's certificate (PEM, the leaf alone) and its key (PEM, unencrypted), and the
    file a client must trust to accept it: the issuing CA's, or the certificate itself
    when self-signed."""

    cert_path: Path
    key_path: Path
    ca_path: Path

    def key_pem(self) -> bytes:
        return self.key_path.read_bytes()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _names(dns_names: Sequence[str], ips: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    return names + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]


def _subject(dns_names: Sequence[str], ips: Sequence[str]) -> x509.Name:
    common = ([*dns_names, *ips] or ["server"])[0]
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _leaf_builder(
    key: ec.EllipticCurvePrivateKey,
    dns_names: Sequence[str],
    ips: Sequence[str],
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.SERVER_AUTH,
) -> x509.CertificateBuilder:
    """What every server certificate here has; the issuer and its key identifier are the
    caller's (a CA's, or the leaf's own when self-signed)."""
    return (
        x509.CertificateBuilder()
        .subject_name(_subject(dns_names, ips))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), True
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), False)
        .add_extension(x509.SubjectAlternativeName(_names(dns_names, ips)), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )


def _write(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_key_pem(key))
    key_path.chmod(0o600)
    return cert_path, key_path


def _stem(dns_names: Sequence[str], ips: Sequence[str], count: int) -> str:
    first = ([*dns_names, *ips] or ["server"])[0]
    return f"{count:02d}-{re.sub(r'[^A-Za-z0-9.-]', '_', first)}"


class TestCA:
    """A CA of its own, written to ``<directory>/ca.pem`` (its key stays in memory: only
    :attr:`key_pem` shows it, for tests that check no key leaks)."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path, name: str = "kpy test CA") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        public = self._key.public_key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - DAY)
            .not_valid_after(_now() + 365 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False), True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), False)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path = directory / "ca.pem"
        self.cert_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        self.key_pem = _key_pem(self._key)
        self._count = 0

    def issue(
        self,
        dns_names: Sequence[str] = (),
        ips: Sequence[str] = (),
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        directory: Path | None = None,
        usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.SERVER_AUTH,
    ) -> Issued:
        """A server certificate for these names (``usage`` CLIENT_AUTH: a client's), valid
        from an hour ago for 30 days unless told otherwise; files in ``directory`` (the
        CA's by default), named after the first name."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            _leaf_builder(
                key,
                dns_names,
                ips,
                not_before or _now() - HOUR,
                not_after or _now() + 30 * DAY,
                usage,
            )
            .issuer_name(self.certificate.subject)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), False
            )
            .sign(self._key, hashes.SHA256())
        )
        self._count += 1
        stem = _stem(dns_names, ips, self._count)
        cert_path, key_path = _write(directory or self.directory, stem, cert, key)
        return Issued(cert_path, key_path, self.cert_path)

    def valid(
        self,
        dns_names: Sequence[str] = ("api.test",),
        ips: Sequence[str] = ("127.0.0.1",),
        directory: Path | None = None,
    ) -> Issued:
        """What a healthy server has: its names, in date."""
        return self.issue(dns_names, ips, directory=directory)

    def expired(
        self,
        dns_names: Sequence[str] = ("api.test",),
        ips: Sequence[str] = ("127.0.0.1",),
        directory: Path | None = None,
    ) -> Issued:
        """Right names, but ``notAfter`` a day in the past (the classic forgotten renewal)."""
        return self.issue(dns_names, ips, _now() - 30 * DAY, _now() - DAY, directory=directory)

    def client(self, name: str = "service") -> Issued:
        """A client's certificate, for a server that demands one (mutual TLS)."""
        return self.issue((name,), (), usage=ExtendedKeyUsageOID.CLIENT_AUTH)

    def wrong_name(
        self, dns_names: Sequence[str] = ("other.test",), directory: Path | None = None
    ) -> Issued:
        """In date and signed by this CA, but for other names only and no IP address: any
        client calling ``api.test`` or ``127.0.0.1`` must refuse it."""
        return self.issue(dns_names, (), directory=directory)


def self_signed(
    directory: Path,
    dns_names: Sequence[str] = ("api.test",),
    ips: Sequence[str] = ("127.0.0.1",),
) -> Issued:
    """A server certificate signed by its own key, that no CA vouches for: its
    :attr:`Issued.ca_path` is itself (trusting it is the only way to accept it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _leaf_builder(key, dns_names, ips, _now() - HOUR, _now() + 30 * DAY)
        .issuer_name(_subject(dns_names, ips))
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    count = len(list(directory.glob("self-signed-*.pem"))) + 1  # never overwrite another
    cert_path, key_path = _write(
        directory, "self-signed-" + _stem(dns_names, ips, count), cert, key
    )
    return Issued(cert_path, key_path, cert_path)
