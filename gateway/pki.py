"""A DEVELOPMENT-ONLY certificate authority for the gateway's mutual TLS.

Everything here exists so that a developer, the demo and the tests can run the gateway's
TLS endpoints without a real PKI: a self-signed CA, a server certificate for ``localhost``
and one client certificate per participant (subject CN = the AGB code, O = the name) plus
one for the IGO itself. The keys are written unencrypted. In production the certificates
come from a real CA (for EPDs and insurers typically the one VECOZO-style exchanges trust)
and nothing in this module is used.

All keys are EC P-256; every function takes the current time as an argument.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.errors import ErrorKind, GatewayError

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "INDEX",
    "SERVER_CERT",
    "SERVER_KEY",
    "Issued",
    "Party",
    "PkiError",
    "PkiIndex",
    "fingerprint",
    "init_pki",
    "issue_client",
    "issue_server",
    "load_issued",
    "new_ca",
    "revocation_list",
]

CA_CERT, CA_KEY = "ca.pem", "ca.key"
SERVER_CERT, SERVER_KEY = "server.pem", "server.key"
INDEX = "index.json"
DEFAULT_DAYS = 365
# Tolerates clocks a little behind the one that issued the certificate.
BACKDATE = timedelta(hours=1)

_AGB = re.compile(r"\d{8}")


class PkiError(GatewayError):
    """The development PKI cannot be created as asked (nothing was changed)."""

    code = "pki-invalid"
    kind = ErrorKind.INVALID


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert)

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@dataclass(frozen=True, slots=True)
class Party:
    """Whom a client certificate is for: a participant, or the IGO itself."""

    agb: str
    name: str
    role: str = "participant"  # or "igo"

    def __post_init__(self) -> None:
        if not _AGB.fullmatch(self.agb):
            raise PkiError(f"{self.agb!r}: an AGB code is 8 digits")
        if not self.name.strip():
            raise PkiError(f"{self.agb}: the name must not be empty")

    @property
    def file_stem(self) -> str:
        return f"{self.role}-{self.agb}"


@dataclass(frozen=True, slots=True)
class ClientEntry:
    """One client certificate as listed in ``index.json``."""

    agb: str
    name: str
    role: str
    cert: str  # file name in the PKI directory
    key: str
    fingerprint_sha256: str
    not_after: str  # ISO 8601, UTC


@dataclass(frozen=True, slots=True)
class PkiIndex:
    """What :func:`init_pki` wrote (``index.json``)."""

    directory: Path
    ca_fingerprint_sha256: str
    server_fingerprint_sha256: str
    clients: tuple[ClientEntry, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "development_only": True,
            "ca": {
                "cert": CA_CERT,
                "key": CA_KEY,
                "fingerprint_sha256": self.ca_fingerprint_sha256,
            },
            "server": {
                "cert": SERVER_CERT,
                "key": SERVER_KEY,
                "fingerprint_sha256": self.server_fingerprint_sha256,
            },
            "clients": [
                {
                    "agb": c.agb,
                    "name": c.name,
                    "role": c.role,
                    "cert": c.cert,
                    "key": c.key,
                    "fingerprint_sha256": c.fingerprint_sha256,
                    "not_after": c.not_after,
                }
                for c in self.clients
            ],
        }


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint of the DER certificate, lowercase hex without colons."""
    return cert.fingerprint(hashes.SHA256()).hex()


def load_issued(cert_path: Path, key_path: Path) -> Issued:
    """A certificate and EC key written by this module (e.g. the CA, to issue more)."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{key_path}: not an EC private key")
    return Issued(cert, key)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        ]
    )


def _validity(
    builder: x509.CertificateBuilder, now: datetime, days: int
) -> x509.CertificateBuilder:
    if days < 1:
        raise PkiError("a certificate must be valid for at least one day")
    return builder.not_valid_before(now - BACKDATE).not_valid_after(now + timedelta(days=days))


def new_ca(
    *,
    now: datetime,
    days: int = DEFAULT_DAYS,
    common_name: str = "IGO gateway development CA",
    organisation: str = "IGO gateway (development only)",
) -> Issued:
    """A self-signed CA that may sign end-entity certificates only."""
    key = _new_key()
    subject = _name(common_name, organisation)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
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
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    cert = _validity(builder, now, days).sign(key, hashes.SHA256())
    return Issued(cert, key)


def _leaf(
    ca: Issued,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    *,
    now: datetime,
    days: int,
    san: Sequence[x509.GeneralName] = (),
) -> Issued:
    key = _new_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
    cert = _validity(builder, now, days).sign(ca.key, hashes.SHA256())
    return Issued(cert, key)


def issue_server(
    ca: Issued,
    *,
    now: datetime,
    days: int = DEFAULT_DAYS,
    hostname: str = "localhost",
    addresses: Sequence[str] = ("127.0.0.1", "::1"),
) -> Issued:
    """A TLS server certificate for ``hostname`` and the given IP addresses."""
    san: list[x509.GeneralName] = [x509.DNSName(hostname)]
    san += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    return _leaf(
        ca,
        _name(hostname, "IGO gateway (development only)"),
        ExtendedKeyUsageOID.SERVER_AUTH,
        now=now,
        days=days,
        san=san,
    )


def issue_client(ca: Issued, party: Party, *, now: datetime, days: int = DEFAULT_DAYS) -> Issued:
    """A TLS client certificate for ``party``: CN = its AGB code, O = its name.

    A ``now`` far enough in the past gives an already expired certificate (for tests)."""
    return _leaf(
        ca,
        _name(party.agb, party.name),
        ExtendedKeyUsageOID.CLIENT_AUTH,
        now=now,
        days=days,
    )


def revocation_list(
    ca: Issued,
    revoked: Sequence[x509.Certificate],
    *,
    now: datetime,
    days: int = 30,
) -> x509.CertificateRevocationList:
    """A CRL of ``ca`` revoking ``revoked`` (empty when there are none)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - BACKDATE)
        .next_update(now + timedelta(days=days))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .add_extension(x509.CRLNumber(1), critical=False)
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now - BACKDATE)
            .build()
        )
    return builder.sign(ca.key, hashes.SHA256())


# --- writing a directory --------------------------------------------------------------------


def _write(path: Path, data: bytes, *, secret: bool = False) -> None:
    mode = 0o600 if secret else 0o644
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        # os.open's mode applies only to a new file; an overwritten one keeps its own.
        os.fchmod(fd, mode)
        os.write(fd, data)
    finally:
        os.close(fd)


def _write_issued(directory: Path, stem: str, issued: Issued) -> tuple[str, str]:
    cert_name, key_name = f"{stem}.pem", f"{stem}.key"
    _write(directory / key_name, issued.key_pem(), secret=True)
    _write(directory / cert_name, issued.cert_pem())
    return cert_name, key_name


def init_pki(
    directory: Path,
    parties: Sequence[Party],
    *,
    now: datetime,
    days: int = DEFAULT_DAYS,
    force: bool = False,
) -> PkiIndex:
    """Create a development CA in ``directory`` and issue the server certificate and one
    client certificate per party. Refuses (:class:`PkiError`) when the directory already
    holds a CA, unless ``force``."""
    if days < 1:
        raise PkiError("a certificate must be valid for at least one day")
    stems = [p.file_stem for p in parties]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise PkiError(f"more than one certificate asked for {', '.join(duplicates)}")
    existing = [name for name in (CA_CERT, CA_KEY) if (directory / name).exists()]
    if existing and not force:
        raise PkiError(
            f"{directory} already holds a CA ({', '.join(existing)}); use --force to replace "
            "it and every certificate it issued"
        )
    if directory.exists() and not directory.is_dir():
        raise PkiError(f"{directory} is not a directory")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    ca = new_ca(now=now, days=days)
    _write_issued(directory, "ca", ca)
    server = issue_server(ca, now=now, days=days)
    _write_issued(directory, "server", server)
    clients = []
    for party in parties:
        issued = issue_client(ca, party, now=now, days=days)
        cert_name, key_name = _write_issued(directory, party.file_stem, issued)
        clients.append(
            ClientEntry(
                agb=party.agb,
                name=party.name,
                role=party.role,
                cert=cert_name,
                key=key_name,
                fingerprint_sha256=issued.fingerprint,
                not_after=issued.cert.not_valid_after_utc.isoformat(),
            )
        )
    index = PkiIndex(
        directory=directory,
        ca_fingerprint_sha256=ca.fingerprint,
        server_fingerprint_sha256=server.fingerprint,
        clients=tuple(clients),
    )
    _write(directory / INDEX, (json.dumps(index.as_json(), indent=2) + "\n").encode())
    return index
