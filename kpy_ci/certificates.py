"""kpy's certificate authority, new for every session, and the leaf certificates it shows
the service in place of the real servers'. Keys live in this process's memory only: the
one file a key passes through on its way into OpenSSL is a memfd (anonymous memory, never
inherited by the service), and none is ever written to disk.

A leaf is shown for the name the service asked for. When the real server's certificate
failed the check the service would have made, the leaf carries the same defect (its dates,
its names, or an issuer the service does not trust), so the service fails as it would have
failed without kpy, and a client that does not verify goes on as it would have.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Issuer = Literal["kpy", "self", "untrusted"]
"""Who signs a leaf: kpy's CA (which the service trusts), the leaf itself, or a CA the
service does not trust."""

DAY = datetime.timedelta(days=1)
VALIDITY = 365 * DAY  # either side of now: a service whose clock is moved still accepts it


@dataclass(frozen=True)
class Leaf:
    """What a leaf certificate says."""

    names: tuple[str, ...]
    """Host names and IP addresses (subjectAltName); the first is also the common name."""
    not_before: datetime.datetime
    not_after: datetime.datetime
    issuer: Issuer = "kpy"
    with_issuer: bool = False
    """The chain shown includes the issuer's own certificate (a self-signed CA in the
    chain, as the real server sent it)."""


def leaf_for(name: str, now: datetime.datetime | None = None) -> Leaf:
    """A leaf for ``name`` (a host name, or the address the service dialled), valid now."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return Leaf((name,), now - VALIDITY, now + VALIDITY)


def leaf_like(upstream_der: bytes, issuer: Issuer, with_issuer: bool = False) -> Leaf:
    """A leaf with the real server's names and dates: what the service sees is what it
    would have judged."""
    cert = x509.load_der_x509_certificate(upstream_der)
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += [str(v) for v in san.get_values_for_type(x509.DNSName)]
        names += [str(v) for v in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names += [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return Leaf(
        tuple(names) or ("invalid",),
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
        issuer,
        with_issuer,
    )


@dataclass(frozen=True)
class Chain:
    """A leaf and its private key, as PEM, in memory."""

    certificates: bytes
    key: bytes


class Authority:
    """The session's CA: made when kpy starts, gone when it exits."""

    def __init__(self, name: str = "kpy session CA") -> None:
        now = datetime.datetime.now(datetime.timezone.utc)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.certificate = _ca_certificate(self._key, name, now)
        # a CA the service never trusts, for leaves that must fail its check
        self._stranger = ec.generate_private_key(ec.SECP256R1())
        self._stranger_cert = _ca_certificate(self._stranger, "kpy untrusted CA", now)
        self._leaf_key = ec.generate_private_key(ec.SECP256R1())  # one for all: minting is cheap

    @property
    def certificate_pem(self) -> bytes:
        """The CA certificate the service is made to trust (public: no key in it)."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(self, leaf: Leaf) -> Chain:
        """The leaf's certificate chain and key."""
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, leaf.names[0][:64])])
        if leaf.issuer == "kpy":
            signer, issuer_cert = self._key, self.certificate
        elif leaf.issuer == "untrusted":
            signer, issuer_cert = self._stranger, self._stranger_cert
        else:
            signer, issuer_cert = self._leaf_key, None
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_cert.subject if issuer_cert else subject)
            .public_key(self._leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(leaf.not_before)
            .not_valid_after(leaf.not_after)
            .add_extension(x509.SubjectAlternativeName(_general_names(leaf.names)), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self._leaf_key.public_key()), False
            )
        )
        if issuer_cert is not None:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
            )
        cert = builder.sign(signer, hashes.SHA256())
        pem = cert.public_bytes(serialization.Encoding.PEM)
        if leaf.with_issuer and issuer_cert is not None:
            pem += issuer_cert.public_bytes(serialization.Encoding.PEM)
        key = self._leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return Chain(pem, key)


def server_context(chain: Chain, alpn: Sequence[str] = ()) -> ssl.SSLContext:
    """An OpenSSL server context showing ``chain``, offering ``alpn``. The PEM reaches
    OpenSSL through a memfd (close-on-exec), which is closed at once."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    fd = os.memfd_create("kpy-leaf", os.MFD_CLOEXEC)
    try:
        os.write(fd, chain.key + chain.certificates)
        context.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def _ca_certificate(
    key: ec.EllipticCurvePrivateKey, name: str, now: datetime.datetime
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - VALIDITY)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )


def _general_names(names: Sequence[str]) -> list[x509.GeneralName]:
    general: list[x509.GeneralName] = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    return general
