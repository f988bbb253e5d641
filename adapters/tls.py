"""Mutual TLS for the gateway's Twisted servers and clients.

Server side: :func:`server_context_factory` gives what ``SSL4ServerEndpoint`` /
``reactor.listenSSL`` take. It accepts TLS 1.2 and 1.3 only (OpenSSL picks 1.3 whenever the
client offers it), ECDHE key exchange with AEAD ciphers only, and *requires* a client
certificate that OpenSSL verifies against the trust store — chain, signature and validity
period (expired certificates are refused) and, with a CRL file, revocation. A client that
fails any of it never reaches the application.

After the handshake :func:`client_identity` reads the verified certificate from the
connection and :class:`Identities` maps it to exactly one participant of the config
(fingerprint first, then subject CN); an unknown certificate maps to nobody.

Client side: :func:`client_context_factory` presents a client certificate and verifies the
server against a CA (the insurer link): the same TLS 1.2+/ECDHE/AEAD-only policy as the
servers, and with a CRL file the server's certificate is checked for revocation too.

Revocation lists are checked when they are loaded: each must be signed by a CA of the trust
store and must not be past its ``nextUpdate`` (OpenSSL refuses every certificate of a CA
whose CRL is stale, so a stale file is a start-up error, not a silent lock-out). A CA of the
trust store without a CRL in the file is logged as a warning: certificates it issued
directly are refused while the file is configured.

Problems with the files themselves (unreadable, not PEM, key not matching the certificate)
raise :class:`TLSSetupError`, a :class:`~gateway.config.ConfigError` listing all of them.

Only public interfaces are used: the servers' OpenSSL contexts are built here with
pyOpenSSL and handed to Twisted as an ``IOpenSSLServerConnectionCreator``; the client is
Twisted's ``optionsForClientTLS`` (which checks the server's name), whose connections get the
CRLs added to their context's certificate store before the handshake. The tests
(tests/adapters/test_tls.py) pin the behaviour: a revoked peer is refused on both sides.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from twisted.internet import ssl
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.logger import Logger
from zope.interface import implementer

from gateway.config import (
    ConfigError,
    ConfigProblem,
    GatewayConfig,
    ParticipantConfig,
    identity_conflicts,
)

__all__ = [
    "MINIMUM_TLS_VERSION",
    "SERVER_CIPHERS",
    "Identities",
    "PeerCertificate",
    "ServerTLS",
    "TLSSetupError",
    "check_revocation_lists",
    "client_context_factory",
    "client_identity",
    "plain_server_context_factory",
    "server_context_factory",
]

# TLS 1.2 suites: forward secrecy and AEAD only. TLS 1.3 suites are all AEAD and are not
# governed by this string.
# Used for the clients as well: no CBC, no RSA key exchange, no SHA-1 MACs.
SERVER_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
MINIMUM_TLS_VERSION = ssl.TLSVersion.TLSv1_2

log = Logger()


class TLSSetupError(ConfigError):
    """The certificate, key, trust store or CRL files cannot be used."""

    code = "tls-setup"


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """The verified certificate the other side presented."""

    fingerprint_sha256: str  # lowercase hex, no colons
    subject_cn: str | None
    not_after: datetime  # UTC

    @classmethod
    def from_cryptography(cls, cert: x509.Certificate) -> PeerCertificate:
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        cn = names[0].value if names else None
        return cls(
            fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
            subject_cn=cn if isinstance(cn, str) else None,
            not_after=cert.not_valid_after_utc,
        )


# --- loading files --------------------------------------------------------------------------


class _Files:
    """Reads PEM files, collecting every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[ConfigProblem] = []

    def _read(self, path: Path, what: str) -> bytes | None:
        try:
            return path.read_bytes()
        except OSError as exc:
            self.problems.append(ConfigProblem(str(path), f"cannot read {what}: {exc.strerror}"))
            return None

    def certificates(self, path: Path, what: str) -> list[x509.Certificate]:
        data = self._read(path, what)
        if data is None:
            return []
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError:
            certs = []
        if not certs:
            self.problems.append(ConfigProblem(str(path), f"no PEM certificate in {what}"))
        return certs

    def private_key(self, path: Path) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None:
        data = self._read(path, "private key")
        if data is None:
            return None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            self.problems.append(ConfigProblem(str(path), "not an unencrypted PEM private key"))
            return None
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            self.problems.append(ConfigProblem(str(path), "the key must be EC or RSA"))
            return None
        return key

    def revocation_lists(self, path: Path) -> list[x509.CertificateRevocationList]:
        data = self._read(path, "revocation list")
        if data is None:
            return []
        marker = b"-----BEGIN X509 CRL-----"
        crls = []
        for block in data.split(marker)[1:]:
            try:
                crls.append(x509.load_pem_x509_crl(marker + block))
            except ValueError:
                self.problems.append(ConfigProblem(str(path), "a malformed PEM CRL"))
        if not crls and not self.problems:
            self.problems.append(ConfigProblem(str(path), "no PEM CRL in the file"))
        return crls


def _same_key(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bool:
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return cert.public_key().public_bytes(*raw) == key.public_key().public_bytes(*raw)


# --- server ---------------------------------------------------------------------------------


def server_context_factory(
    cert_path: Path | str,
    key_path: Path | str,
    trust_path: Path | str,
    crl_path: Path | str | None = None,
) -> ServerTLS:
    """TLS options for a server that requires verified client certificates.

    ``cert_path`` holds the server certificate, then any intermediates; ``trust_path`` the
    CAs whose client certificates are accepted; ``crl_path``, optionally, a CRL for each of
    those CAs (with it, a client whose CA has no CRL in the file is refused)."""
    files = _Files()
    chain = files.certificates(Path(cert_path), "the server certificate")
    key = files.private_key(Path(key_path))
    cas = files.certificates(Path(trust_path), "the trust store")
    crls = files.revocation_lists(Path(crl_path)) if crl_path is not None else []
    if crl_path is not None:
        files.problems.extend(check_revocation_lists(Path(crl_path), crls, cas))
    if chain and key is not None and not _same_key(chain[0], key):
        files.problems.append(
            ConfigProblem(str(key_path), f"is not the key of the certificate in {cert_path}")
        )
    if files.problems:
        raise TLSSetupError("TLS files", files.problems)
    assert key is not None

    return ServerTLS(chain, key, cas, crls)


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """What ``reactor.listenSSL`` and the TLS endpoints take for a server: every connection
    from one OpenSSL context, built once here with pyOpenSSL's public API — TLS 1.2 or
    newer, :data:`SERVER_CIPHERS` under 1.2, no compression, no session tickets or session
    cache; with ``cas``, a client certificate verified against them
    (and against ``crls``) is required."""

    def __init__(
        self,
        chain: list[x509.Certificate],
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
        cas: Iterable[x509.Certificate] = (),
        crls: Iterable[x509.CertificateRevocationList] = (),
    ) -> None:
        context = SSL.Context(SSL.TLS_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.set_options(
            SSL.OP_NO_COMPRESSION
            | SSL.OP_CIPHER_SERVER_PREFERENCE
            | SSL.OP_SINGLE_DH_USE
            | SSL.OP_SINGLE_ECDH_USE
            | SSL.OP_NO_TICKET
        )
        context.set_mode(SSL.MODE_RELEASE_BUFFERS)
        context.set_cipher_list(SERVER_CIPHERS.encode("ascii"))
        context.use_certificate(chain[0])
        context.use_privatekey(key)
        for intermediate in chain[1:]:
            context.add_extra_chain_cert(intermediate)
        context.check_privatekey()
        # Needed for client certificates with session resumption; sessions are off anyway.
        context.set_session_id(secrets.token_hex(8).encode("ascii"))
        context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        cas = list(cas)
        if cas:
            store = context.get_cert_store()
            assert store is not None
            for ca in cas:
                store.add_cert(crypto.X509.from_cryptography(ca))
                # Named in the certificate request, so that clients holding several
                # certificates pick the right one.
                context.add_client_ca(ca)
            context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT)
        crls = list(crls)
        if crls:
            _add_revocation_lists(context, crls)
        self.context = context

    def serverConnectionForTLS(self, tls_protocol: object) -> SSL.Connection:
        return SSL.Connection(self.context, None)


def _add_revocation_lists(
    context: SSL.Context, crls: Iterable[x509.CertificateRevocationList]
) -> None:
    """Make the context check the peer's certificate against ``crls`` (the leaf only: the
    CRL of the CA that issued it must be among them, else the peer is refused)."""
    store = context.get_cert_store()
    assert store is not None
    for crl in crls:
        store.add_crl(crl)
    store.set_flags(crypto.X509StoreFlags.CRL_CHECK)


def _cn(name: x509.Name) -> str:
    names = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else None
    return value if isinstance(value, str) else name.rfc4514_string()


def _signed_by(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    if crl.issuer != ca.subject:
        return False
    key = ca.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return False
    return crl.is_signature_valid(key)


def check_revocation_lists(
    path: Path,
    crls: Iterable[x509.CertificateRevocationList],
    cas: Iterable[x509.Certificate],
    *,
    now: datetime | None = None,
) -> list[ConfigProblem]:
    """What makes the CRLs in ``path`` unusable with the trust store ``cas``: a CRL not
    signed by one of them, or past its ``nextUpdate`` (OpenSSL would refuse every
    certificate of that CA). A CA without a CRL is logged as a warning, not refused: its
    directly issued certificates are refused, which may be meant (a root that only signs
    intermediates)."""
    moment = now or datetime.now(UTC)
    crls, cas = list(crls), list(cas)
    problems = []
    covered: set[int] = set()
    for crl in crls:
        issuers = [ca for ca in cas if _signed_by(crl, ca)]
        if not issuers:
            problems.append(
                ConfigProblem(
                    str(path),
                    f"the CRL of {_cn(crl.issuer)!r} is not signed by a CA in the trust store",
                )
            )
        covered.update(id(ca) for ca in issuers)
        next_update = crl.next_update_utc
        if next_update is None:
            problems.append(
                ConfigProblem(str(path), f"the CRL of {_cn(crl.issuer)!r} has no nextUpdate")
            )
        elif next_update < moment:
            problems.append(
                ConfigProblem(
                    str(path),
                    f"the CRL of {_cn(crl.issuer)!r} is out of date since "
                    f"{next_update:%Y-%m-%d %H:%M} UTC (its nextUpdate); every certificate "
                    "of that CA would be refused: install a fresh CRL",
                )
            )
    if crls and not problems:
        for ca in cas:
            if id(ca) not in covered:
                log.warn(
                    "{path} has no CRL for the trusted CA {ca!r}: certificates it issued "
                    "directly are refused",
                    path=str(path),
                    ca=_cn(ca.subject),
                )
    return problems


def plain_server_context_factory(cert_path: Path | str, key_path: Path | str) -> ServerTLS:
    """TLS options for a server that does not ask for client certificates (the admin site
    behind its password login): TLS 1.2+, forward secrecy and AEAD ciphers only."""
    files = _Files()
    chain = files.certificates(Path(cert_path), "the server certificate")
    key = files.private_key(Path(key_path))
    if chain and key is not None and not _same_key(chain[0], key):
        files.problems.append(
            ConfigProblem(str(key_path), f"is not the key of the certificate in {cert_path}")
        )
    if files.problems:
        raise TLSSetupError("TLS files", files.problems)
    assert key is not None
    return ServerTLS(chain, key)


# --- after the handshake --------------------------------------------------------------------


def client_identity(transport_or_request: Any) -> PeerCertificate | None:
    """The verified certificate of the peer of a TLS connection, or None: read from the
    connection once, and again only after a renegotiation.

    Takes a ``twisted.web`` request (its ``transport``) or a TLS transport
    (``ITLSTransport``). None when the connection is not TLS, presented no certificate, or
    was not set up to verify certificates."""
    transport = transport_or_request
    if not hasattr(transport, "getPeerCertificate"):
        transport = getattr(transport_or_request, "transport", None)
    get_peer = getattr(transport, "getPeerCertificate", None)
    if get_peer is None:
        return None
    # Only a connection whose context requires verification has a *verified* certificate
    # (the handshake fails otherwise); a misconfigured server must not identify anyone.
    get_handle = getattr(transport, "getHandle", None)
    handle = get_handle() if get_handle is not None else None
    if not isinstance(handle, SSL.Connection):
        return None
    if not handle.get_context().get_verify_mode() & SSL.VERIFY_PEER:
        return None
    # Read once per handshake of a connection (a kept-alive client sends many requests on
    # one): a renegotiation (TLS 1.2, which the server does not refuse) may bring another
    # certificate, and ends with another Finished message, the key of what was read.
    handshake = handle.get_finished()
    known = _peers.get(handle)
    if known is not None and handshake is not None and known[0] == handshake:
        return known[1]
    peer = get_peer()
    identity = (
        PeerCertificate.from_cryptography(peer.to_cryptography())
        if isinstance(peer, crypto.X509)
        else None
    )
    if handshake is not None:
        _peers[handle] = (handshake, identity)
    return identity


# The identity read from each live TLS connection, with the Finished message of the
# handshake it was read after; an entry goes with its connection.
_peers: WeakKeyDictionary[SSL.Connection, tuple[bytes, PeerCertificate | None]] = (
    WeakKeyDictionary()
)


class Identities:
    """Which participant a verified client certificate belongs to: by its SHA-256
    fingerprint first, then by its subject CN. Every fingerprint and subject must identify
    exactly one participant (:class:`~gateway.config.ConfigError` otherwise)."""

    def __init__(self, participants: Iterable[ParticipantConfig]) -> None:
        participants = tuple(participants)
        problems = identity_conflicts(enumerate(participants))
        if problems:
            raise ConfigError("participants", problems)
        self._by_fingerprint = {fp: p for p in participants for fp in p.certificates}
        self._by_subject = {cn: p for p in participants for cn in p.subjects}

    @classmethod
    def from_config(cls, config: GatewayConfig) -> Identities:
        return cls(config.participants)

    def participant_for(self, peer: PeerCertificate | None) -> ParticipantConfig | None:
        if peer is None:
            return None
        found = self._by_fingerprint.get(peer.fingerprint_sha256)
        if found is None and peer.subject_cn is not None:
            found = self._by_subject.get(peer.subject_cn)
        return found

    def identify(self, transport_or_request: Any) -> ParticipantConfig | None:
        """The participant behind a request's or transport's verified certificate."""
        return self.participant_for(client_identity(transport_or_request))


# --- client ---------------------------------------------------------------------------------


def client_context_factory(
    cert_path: Path | str,
    key_path: Path | str,
    ca_path: Path | str,
    hostname: str = "localhost",
    crl_path: Path | str | None = None,
) -> IOpenSSLClientConnectionCreator:
    """TLS options for a client that presents the certificate in ``cert_path`` and accepts
    only a server whose certificate, issued by a CA in ``ca_path``, names ``hostname`` (and,
    with ``crl_path``, is not revoked). TLS 1.2+ with the servers' cipher policy."""
    files = _Files()
    chain = files.certificates(Path(cert_path), "the client certificate")
    key = files.private_key(Path(key_path))
    cas = files.certificates(Path(ca_path), "the CA certificates")
    crls = files.revocation_lists(Path(crl_path)) if crl_path is not None else []
    if crl_path is not None:
        files.problems.extend(check_revocation_lists(Path(crl_path), crls, cas))
    if chain and key is not None and not _same_key(chain[0], key):
        files.problems.append(
            ConfigProblem(str(key_path), f"is not the key of the certificate in {cert_path}")
        )
    if files.problems:
        raise TLSSetupError("TLS files", files.problems)
    assert key is not None
    pem = serialization.Encoding.PEM
    client = ssl.PrivateCertificate.loadPEM(
        chain[0].public_bytes(pem)
        + key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    creator = ssl.optionsForClientTLS(
        hostname,
        trustRoot=ssl.trustRootFromCertificates(
            [ssl.Certificate(crypto.X509.from_cryptography(ca)) for ca in cas]
        ),
        clientCertificate=client,
        extraCertificateOptions={
            "raiseMinimumTo": MINIMUM_TLS_VERSION,
            "acceptableCiphers": ssl.AcceptableCiphers.fromOpenSSLCipherString(SERVER_CIPHERS),
            "extraCertChain": [crypto.X509.from_cryptography(c) for c in chain[1:]],
        },
    )
    return _ClientWithRevocation(creator, crls) if crls else creator


@implementer(IOpenSSLClientConnectionCreator)
class _ClientWithRevocation:
    """Twisted's client connections (which verify the server's chain and name), each
    checked against ``crls`` too: before a connection is handed over, the CRLs are in its
    context's certificate store with CRL checking on. Twisted shares one context between
    the connections of a creator, so this happens once per context."""

    def __init__(
        self,
        inner: IOpenSSLClientConnectionCreator,
        crls: Iterable[x509.CertificateRevocationList],
    ) -> None:
        self._inner = inner
        self._crls = list(crls)
        self._prepared: list[SSL.Context] = []

    def clientConnectionForTLS(self, tls_protocol: Any) -> SSL.Connection:
        connection: SSL.Connection = self._inner.clientConnectionForTLS(tls_protocol)
        context = connection.get_context()
        if not any(context is done for done in self._prepared):
            _add_revocation_lists(context, self._crls)
            self._prepared.append(context)
        return connection
