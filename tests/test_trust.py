"""The trust the service is given: each runtime's variable names a bundle of what it named
before (or the system's store) plus kpy's CA; libpq's own file only when the service names
one; files pinned in the service's configuration are covered by kpy.yml's tls.ca_files."""

from __future__ import annotations

from pathlib import Path

import pytest

from kpy_ci.errors import EnvironmentProblem
from kpy_ci.trust import ServiceTrust, runtimes, system_bundle, trusting

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


def test_doctor_names_the_runtimes_kpy_covers_and_those_it_cannot(tmp_path: Path) -> None:
    for program in ("node", "curl", "java"):
        exe = tmp_path / program
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    covered, missed = runtimes(str(tmp_path))
    assert covered == ["Node.js (https, fetch) via NODE_EXTRA_CA_CERTS", "curl via CURL_CA_BUNDLE"]
    assert missed == ["Java (its trust store is not a PEM file kpy can extend)"]
