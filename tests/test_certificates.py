"""kpy's session CA and its leaves, judged by OpenSSL as a client judges them (a handshake
over memory buffers): a leaf for the name asked passes; a leaf made like a real server's
defective certificate fails with the same verdict OpenSSL gives that certificate; the CA
file the service is given holds no key."""

from __future__ import annotations

import contextlib
import datetime
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kpy_ci.certificates import Authority, Chain, leaf_for, leaf_like, server_context
from kpy_ci.proxy.tls import _issuer_for

NOW = datetime.datetime.now(datetime.timezone.utc)


def handshake(server: ssl.SSLContext, trusted_pem: bytes, name: str) -> str | None:
    """A client trusting only ``trusted_pem`` shakes hands with ``server`` for ``name``:
    None if it accepts, else OpenSSL's verify message."""
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.load_verify_locations(cadata=trusted_pem.decode())
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_context.wrap_bio(c_in, c_out, server_hostname=name)
    peer = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        try:
            client.do_handshake()
            return None
        except ssl.SSLCertVerificationError as e:
            return str(e.verify_message)
        except ssl.SSLWantReadError:
            pass
        s_in.write(c_out.read())
        with contextlib.suppress(ssl.SSLError):  # the client's alert, read by the client
            peer.do_handshake()
        c_in.write(s_out.read())
    raise AssertionError("the handshake did not end")


def real_certificate(names: list[x509.GeneralName], not_after: datetime.datetime) -> bytes:
    """A real server's certificate (DER), self-signed: only its names and dates matter."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "real")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - datetime.timedelta(days=30))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(names), False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def authority() -> Authority:
    return Authority()


def test_a_leaf_for_the_name_passes(authority: Authority) -> None:
    for name in ("api.test", "127.0.0.1", "::1"):
        context = server_context(authority.issue(leaf_for(name)))
        assert handshake(context, authority.certificate_pem, name) is None
    other = server_context(authority.issue(leaf_for("api.test")))
    said = handshake(other, authority.certificate_pem, "x.test")
    assert said is not None and said.startswith("Hostname mismatch")


LATER = NOW + datetime.timedelta(days=9)
DEFECTS = {  # OpenSSL's verify code for the real certificate -> what the client then says
    10: (["api.test"], NOW - datetime.timedelta(days=1), "certificate has expired"),
    62: (["other.test"], LATER, "Hostname mismatch"),
    18: (["api.test"], LATER, "self-signed certificate"),
    20: (["api.test"], LATER, "unable to get local issuer certificate"),
    19: (["api.test"], LATER, "self-signed certificate in certificate chain"),
}


@pytest.mark.parametrize("code", list(DEFECTS))
def test_a_defective_real_certificate_is_shown_with_its_defect(
    authority: Authority, code: int
) -> None:
    names, not_after, verdict = DEFECTS[code]
    real = real_certificate([x509.DNSName(n) for n in names], not_after)
    issuer, with_issuer = _issuer_for(code)
    leaf = leaf_like(real, issuer, with_issuer)
    said = handshake(server_context(authority.issue(leaf)), authority.certificate_pem, "api.test")
    assert said is not None and said.startswith(verdict), said


def test_what_the_service_is_given_holds_no_key(authority: Authority) -> None:
    assert b"PRIVATE" not in authority.certificate_pem
    chain = authority.issue(leaf_for("api.test"))
    assert isinstance(chain, Chain) and b"PRIVATE KEY" in chain.key
    assert b"PRIVATE" not in chain.certificates
    assert Authority().certificate_pem != authority.certificate_pem  # new every session
