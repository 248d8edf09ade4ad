"""The trust the service is given: each runtime's variable names a bundle of what it named
before (or the system's store) plus kpy's CA; libpq's own file only when the service names
one; files pinned in the service's configuration are covered by kpy.yml's tls.ca_files."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    NoEncryption,
    pkcs12,
)

from kpy_ci.certificates import Authority
from kpy_ci.errors import EnvironmentProblem
from kpy_ci.trust import ServiceTrust, runtimes, system_bundle, trusting
from tests.tls_certs import TestCA

KPY_CA = b"-----BEGIN CERTIFICATE-----\nkpy\n-----END CERTIFICATE-----\n"


def test_every_runtime_is_given_its_trust_plus_kpys_ca(tmp_path: Path) -> None:
    own = tmp_path / "own.pem"
    own.write_bytes(b"own CA")  # no final newline: the bundle still separates the two
    env = {"REQUESTS_CA_BUNDLE": str(own), "PATH": "/usr/bin"}
    system = system_bundle()
    assert system is not None
    with trusting(env, KPY_CA) as trusted:
        given = trusted.env
        assert Path(given["REQUESTS_CA_BUNDLE"]).read_bytes() == b"own CA\n" + KPY_CA
        for var in ("SSL_CERT_FILE", "CURL_CA_BUNDLE"):  # they stood for the system's store
            assert Path(given[var]).read_bytes() == system.read_bytes() + KPY_CA
        assert Path(given["NODE_EXTRA_CA_CERTS"]).read_bytes() == KPY_CA  # Node adds it
        assert "PGSSLROOTCERT" not in given  # libpq reads one only when told to
        assert given["PGCHANNELBINDING"] == "disable" and given["PATH"] == "/usr/bin"
        assert trusted.trust.files() == [own, system]
        directory = Path(given["SSL_CERT_FILE"]).parent
    assert not directory.exists()  # gone with the session


def test_libpq_and_a_pinned_file_are_covered_when_the_service_names_them(tmp_path: Path) -> None:
    root, pinned = tmp_path / "root.crt", tmp_path / "pinned.pem"
    root.write_bytes(b"pg CA\n")
    pinned.write_bytes(b"pinned CA\n")
    env = {"PGSSLROOTCERT": str(root), "PGCHANNELBINDING": "require"}
    with trusting(env, KPY_CA, [str(pinned)]) as trusted:
        assert Path(trusted.env["PGSSLROOTCERT"]).read_bytes() == b"pg CA\n" + KPY_CA
        assert trusted.env["PGCHANNELBINDING"] == "require"  # the service's choice stands
        [(bundle, target)] = trusted.mounts.items()
        assert target == pinned and bundle.read_bytes() == b"pinned CA\n" + KPY_CA
        assert root in trusted.trust.files() and pinned in trusted.trust.files()


def test_a_missing_pinned_file_is_one_clear_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.pem")
    with (
        pytest.raises(EnvironmentProblem, match=r"tls\.ca_files: no such file: .*nope\.pem"),
        trusting({}, KPY_CA, [missing]),
    ):
        pass


def test_a_variable_naming_no_file_is_not_trust(tmp_path: Path) -> None:
    trust = ServiceTrust.of(
        {"SSL_CERT_FILE": str(tmp_path / "gone.pem"), "PGSSLROOTCERT": "system"}
    )
    assert trust.named == {}


def test_doctor_names_the_runtimes_kpy_covers(tmp_path: Path) -> None:
    for program in ("node", "curl", "java"):
        exe = tmp_path / program
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    covered, missed = runtimes(str(tmp_path))
    assert covered == [
        "Node.js (https, fetch) via NODE_EXTRA_CA_CERTS",
        "curl via CURL_CA_BUNDLE",
        "Java (JSSE) via JAVA_TOOL_OPTIONS, a PKCS12 trust store",
    ]
    assert missed == []


def java_store(path: Path, pems: list[bytes], password: bytes | None) -> Path:
    entries = [pkcs12.PKCS12Certificate(x509.load_pem_x509_certificate(p), None) for p in pems]
    protection = BestAvailableEncryption(password) if password else NoEncryption()
    path.write_bytes(pkcs12.serialize_java_truststore(entries, protection))
    return path


def test_a_jvm_is_given_its_trust_store_plus_kpys_ca(tmp_path: Path) -> None:
    """JAVA_TOOL_OPTIONS names the service's PKCS12 store: kpy reads it (with its password),
    trusts its CAs when checking servers, and gives the JVM a store of them plus kpy's CA."""
    theirs, kpy = TestCA(tmp_path / "theirs"), Authority()
    store = java_store(tmp_path / "store.p12", [theirs.cert_path.read_bytes()], b"s3cret")
    options = (
        f"-Xmx64m -Djavax.net.ssl.trustStore={store} -Djavax.net.ssl.trustStorePassword=s3cret"
    )
    env = {"JAVA_TOOL_OPTIONS": options, "PATH": str(tmp_path)}
    with trusting(env, kpy.certificate_pem) as trusted:
        given = trusted.env["JAVA_TOOL_OPTIONS"].split()
        assert given[:2] == ["-Xmx64m", "-Djavax.net.ssl.trustStorePassword=s3cret"]
        assert given[3] == "-Djavax.net.ssl.trustStoreType=PKCS12"
        new = Path(given[2].removeprefix("-Djavax.net.ssl.trustStore="))
        read = pkcs12.load_pkcs12(new.read_bytes(), b"s3cret")
        subjects = {c.certificate.subject.rfc4514_string() for c in read.additional_certs}
        assert subjects == {"CN=kpy test CA", "CN=kpy session CA"}
        context = trusted.trust.verifying_context()
        assert "kpy test CA" in str(context.get_ca_certs())


def test_a_jvm_store_kpy_cannot_read_is_left_as_it_is(tmp_path: Path) -> None:
    jks = tmp_path / "store.jks"
    jks.write_bytes(b"\xfe\xed\xfe\xed not PKCS12")
    options = f"-Djavax.net.ssl.trustStore={jks}"
    with trusting({"JAVA_TOOL_OPTIONS": options}, KPY_CA) as trusted:
        assert trusted.env["JAVA_TOOL_OPTIONS"] == options


@pytest.mark.filterwarnings("ignore:Parsed a serial number")  # one of the system's CAs
def test_a_jvm_with_no_store_named_gets_the_systems_plus_kpys_ca(tmp_path: Path) -> None:
    kpy = Authority()
    with trusting({"JAVA_HOME": "/usr/lib/jvm/default"}, kpy.certificate_pem) as trusted:
        (option, kind) = trusted.env["JAVA_TOOL_OPTIONS"].split()
        store = Path(option.removeprefix("-Djavax.net.ssl.trustStore="))
        assert kind == "-Djavax.net.ssl.trustStoreType=PKCS12"
        certificates = pkcs12.load_pkcs12(store.read_bytes(), None).additional_certs
        assert len(certificates) > 50  # the system's, read one by one
        assert certificates[-1].certificate.subject.rfc4514_string() == "CN=kpy session CA"
    env = {"PATH": str(tmp_path)}  # no JVM in sight: no option given
    with trusting(env, kpy.certificate_pem) as trusted:
        assert "JAVA_TOOL_OPTIONS" not in trusted.env
