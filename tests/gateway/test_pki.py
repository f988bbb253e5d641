"""The development PKI: a CA whose certificates OpenSSL and cryptography both accept."""

from __future__ import annotations

import ipaddress
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store
from OpenSSL import crypto

from gateway.cli import main
from gateway.pki import (
    CA_CERT,
    CA_KEY,
    INDEX,
    SERVER_CERT,
    Party,
    PkiError,
    fingerprint,
    init_pki,
    load_issued,
)

NOW = datetime.now(UTC)
PARTIES = (
    Party("02001234", "Verloskundigenpraktijk De Wieg"),
    Party("33001234", "Kraamzorg Zon"),
    Party("53001234", "Geboortezorg Voorbeeldstad", role="igo"),
)


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def openssl_verifies(ca: x509.Certificate, leaf: x509.Certificate) -> None:
    store = crypto.X509Store()
    store.add_cert(crypto.X509.from_cryptography(ca))
    crypto.X509StoreContext(store, crypto.X509.from_cryptography(leaf)).verify_certificate()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki") / "dev-pki"
    init_pki(directory, PARTIES, now=NOW, days=30)
    return directory


def test_the_ca_is_a_p256_ca(pki: Path) -> None:
    ca = cert(pki / CA_CERT)

    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    assert usage.crl_sign
    public = ca.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert isinstance(public.curve, ec.SECP256R1)
    ca.verify_directly_issued_by(ca)


def test_the_ca_verifies_the_server_certificate(pki: Path) -> None:
    ca, server = cert(pki / CA_CERT), cert(pki / SERVER_CERT)

    server.verify_directly_issued_by(ca)  # cryptography's signature check
    openssl_verifies(ca, server)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    # The web PKI profile as a TLS client applies it, for the name and an address.
    verifier = PolicyBuilder().store(Store([ca])).time(NOW)
    verifier.build_server_verifier(x509.DNSName("localhost")).verify(server, [])
    verifier.build_server_verifier(x509.IPAddress(ipaddress.ip_address("127.0.0.1"))).verify(
        server, []
    )


@pytest.mark.parametrize("party", PARTIES, ids=lambda p: p.file_stem)
def test_the_ca_verifies_each_client_certificate(pki: Path, party: Party) -> None:
    ca, client = cert(pki / CA_CERT), cert(pki / f"{party.file_stem}.pem")

    client.verify_directly_issued_by(ca)
    openssl_verifies(ca, client)
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == party.agb
    assert client.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == party.name
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert client.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert client.not_valid_after_utc - client.not_valid_before_utc > timedelta(days=30)


def test_a_certificate_of_another_ca_does_not_verify(
    pki: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = tmp_path_factory.mktemp("other")
    init_pki(other, PARTIES[:1], now=NOW)

    with pytest.raises(crypto.X509StoreContextError):
        openssl_verifies(cert(pki / CA_CERT), cert(other / "participant-02001234.pem"))
    with pytest.raises(InvalidSignature):
        cert(other / "participant-02001234.pem").verify_directly_issued_by(cert(pki / CA_CERT))


def test_key_files_are_private(pki: Path) -> None:
    keys = sorted(pki.glob("*.key"))

    assert len(keys) == 2 + len(PARTIES)
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key.name
    assert stat.S_IMODE((pki / SERVER_CERT).stat().st_mode) == 0o644


def test_keys_match_their_certificates(pki: Path) -> None:
    for stem in ("ca", "server", *(p.file_stem for p in PARTIES)):
        issued = load_issued(pki / f"{stem}.pem", pki / f"{stem}.key")
        assert issued.cert.public_key() == issued.key.public_key()


def test_the_index_lists_every_client_certificate(pki: Path) -> None:
    index = json.loads((pki / INDEX).read_text())

    assert index["development_only"] is True
    assert index["ca"]["fingerprint_sha256"] == fingerprint(cert(pki / CA_CERT))
    assert [(c["agb"], c["role"]) for c in index["clients"]] == [(p.agb, p.role) for p in PARTIES]
    for entry in index["clients"]:
        assert entry["fingerprint_sha256"] == fingerprint(cert(pki / entry["cert"]))
        assert (pki / entry["key"]).is_file()


def test_an_existing_ca_is_not_overwritten(tmp_path: Path) -> None:
    first = init_pki(tmp_path, PARTIES[:1], now=NOW)
    before = (tmp_path / CA_KEY).read_bytes()

    with pytest.raises(PkiError, match="already holds a CA"):
        init_pki(tmp_path, PARTIES[:1], now=NOW)
    assert (tmp_path / CA_KEY).read_bytes() == before

    second = init_pki(tmp_path, PARTIES[:1], now=NOW, force=True)
    assert second.ca_fingerprint_sha256 != first.ca_fingerprint_sha256
    assert stat.S_IMODE((tmp_path / CA_KEY).stat().st_mode) == 0o600


def test_bad_requests_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="8 digits"):
        Party("1234", "Too short")
    with pytest.raises(PkiError, match="more than one"):
        init_pki(tmp_path / "a", [PARTIES[0], PARTIES[0]], now=NOW)
    with pytest.raises(PkiError, match="at least one day"):
        init_pki(tmp_path / "b", PARTIES, now=NOW, days=0)
    assert list(tmp_path.iterdir()) == []


def test_cli_init_from_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "pki"
    argv = [
        "pki",
        "init",
        str(directory),
        "--participant",
        "02001234=De Wieg",
        "--participant",
        "33001234=Kraamzorg Zon",
        "--igo",
        "53001234=Geboortezorg Voorbeeldstad",
        "--days",
        "10",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "DEVELOPMENT ONLY" in out

    index = json.loads((directory / INDEX).read_text())
    assert [c["agb"] for c in index["clients"]] == ["02001234", "33001234", "53001234"]
    assert index["clients"][0]["fingerprint_sha256"] in out

    assert main(argv) == 1
    assert "already holds a CA" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0


def test_cli_init_from_a_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        """
[igo]
name = "Geboortezorg Voorbeeldstad"
agb = "53001234"

[epd_api.tls]
cert = "pki/server.pem"
key = "pki/server.key"
trust = "pki/ca.pem"

[[participants]]
agb = "02001234"
name = "De Wieg"
discipline = "midwifery"
variant = "A"
"""
    )
    # The TLS files the config names do not exist yet: pki init is what makes them.
    assert main(["pki", "init", str(tmp_path / "pki"), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert 'trust = "pki/ca.pem"' in out

    index = json.loads((tmp_path / "pki" / INDEX).read_text())
    assert [(c["agb"], c["role"]) for c in index["clients"]] == [
        ("02001234", "participant"),
        ("53001234", "igo"),
    ]
    assert main(["config", "check", "--config", str(config)]) == 0


def test_help_says_development_only(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["pki", "init", "--help"])
    assert "DEVELOPMENT ONLY" in " ".join(capsys.readouterr().out.split())
