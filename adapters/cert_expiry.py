"""When the gateway's configured certificates and revocation lists run out.

:func:`watched_files` lists every certificate and CRL the config names — the EPD API's
server certificate, trust store and CRL, the admin site's (``[admin.tls]``), and every
REST insurer link's client certificate, trust store and CRL — each with its *use* and a
short label: the subject CN, or the first 16 hex digits of the SHA-256 fingerprint when
it has none. These are infrastructure certificates: no participant or client data is in
them or in the labels. (Participants' certificates are configured by fingerprint, not as
files, so the gateway cannot know when they expire; the handshake refuses them once they
have.)

:func:`publish` sets the metrics ``igo_gateway_certificate_expiry_timestamp_seconds`` and
``igo_gateway_crl_next_update_timestamp_seconds``; :func:`warn_expiring` logs one warning
line per certificate that expires within ``[certificates] expiry_warning_days`` and per CRL
due within ``crl_warning_hours``. The gateway does both at start-up and the warnings again
daily. The files are read when the servers and clients are set up, so what is published
is what is served until the next restart.

Files that cannot be read are skipped here: setting up TLS reports them (and refuses to
start) before this runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from twisted.logger import Logger

from gateway.config import GatewayConfig, LinkKind
from gateway.metrics import Metrics

__all__ = ["Expiring", "publish", "warn_expiring", "watched_files"]

log = Logger()
FINGERPRINT_LABEL_LENGTH = 16


@dataclass(frozen=True, slots=True)
class Expiring:
    """One certificate (``crl`` False: ``when`` is its notAfter) or one CRL (``crl``
    True: ``when`` is its nextUpdate)."""

    use: str
    label: str
    when: datetime  # UTC
    crl: bool = False


def _label(name: x509.Name, fallback: str) -> str:
    names = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else None
    return value if isinstance(value, str) and value else fallback


def _certificates(path: Path | None, use: str, *, chain: bool) -> Iterator[Expiring]:
    """The certificates of one PEM file: with ``chain``, the first is ``use`` and the rest
    (intermediates) ``use_chain``; otherwise (a trust bundle) every one is ``use``."""
    if path is None:
        return
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError):
        return
    for index, cert in enumerate(certs):
        fingerprint = cert.fingerprint(hashes.SHA256()).hex()[:FINGERPRINT_LABEL_LENGTH]
        yield Expiring(
            use if index == 0 or not chain else f"{use}_chain",
            _label(cert.subject, fingerprint),
            cert.not_valid_after_utc,
        )


def _revocation_lists(path: Path | None, use: str) -> Iterator[Expiring]:
    if path is None:
        return
    try:
        data = path.read_bytes()
    except OSError:
        return
    marker = b"-----BEGIN X509 CRL-----"
    for block in data.split(marker)[1:]:
        try:
            crl = x509.load_pem_x509_crl(marker + block)
        except ValueError:
            continue
        if crl.next_update_utc is not None:
            yield Expiring(use, _label(crl.issuer, "-"), crl.next_update_utc, crl=True)


def watched_files(config: GatewayConfig) -> list[Expiring]:
    """Every certificate and CRL the config names, once per (use, label)."""
    found: list[Expiring] = []
    tls = config.epd_api.tls
    found += _certificates(tls.cert, "epd_server", chain=True)
    found += _certificates(tls.trust, "epd_trust", chain=False)
    found += _revocation_lists(tls.crl, "epd_crl")
    admin = config.admin.tls
    if config.admin.enabled and admin is not None:
        found += _certificates(admin.cert, "admin_server", chain=True)
        found += _certificates(admin.client_ca, "admin_client_ca", chain=False)
        found += _revocation_lists(admin.crl, "admin_crl")
    for insurer in config.insurers:
        link = insurer.link
        if link is None or link.kind is not LinkKind.REST or link.tls is None:
            continue
        found += _certificates(link.tls.cert, "insurer_client", chain=True)
        found += _certificates(link.tls.trust, "insurer_trust", chain=False)
        found += _revocation_lists(link.tls.crl, "insurer_crl")
    unique: dict[tuple[str, str, bool], Expiring] = {}
    for item in found:
        key = (item.use, item.label, item.crl)
        # Two different certificates under one label: the sooner one is what matters.
        if key not in unique or item.when < unique[key].when:
            unique[key] = item
    return list(unique.values())


def publish(items: Iterable[Expiring], metrics: Metrics) -> None:
    for item in items:
        gauge = metrics.crl_next_update if item.crl else metrics.certificate_expiry
        gauge.labels(item.use, item.label).set(item.when.timestamp())


def warn_expiring(
    items: Iterable[Expiring],
    now: datetime,
    *,
    certificate_days: float,
    crl_hours: float,
) -> list[Expiring]:
    """Log a warning for each item within its warning period (or past it); those items."""
    warned = []
    for item in sorted(items, key=lambda i: i.when):
        left = item.when - now
        if item.crl:
            if left > timedelta(hours=crl_hours):
                continue
            if left < timedelta(0):
                log.error(
                    "the {use} CRL of {issuer} is out of date since {when}: every "
                    "certificate of that CA is refused until a fresh one is installed",
                    use=item.use,
                    issuer=item.label,
                    when=f"{item.when:%Y-%m-%d %H:%M} UTC",
                )
            else:
                log.warn(
                    "the {use} CRL of {issuer} is due for replacement at {when} (in "
                    "{hours:.0f} hours); past it every certificate of that CA is refused",
                    use=item.use,
                    issuer=item.label,
                    when=f"{item.when:%Y-%m-%d %H:%M} UTC",
                    hours=left.total_seconds() / 3600,
                )
        else:
            if left > timedelta(days=certificate_days):
                continue
            if left < timedelta(0):
                log.error(
                    "the {use} certificate {subject} has expired ({when})",
                    use=item.use,
                    subject=item.label,
                    when=f"{item.when:%Y-%m-%d %H:%M} UTC",
                )
            else:
                log.warn(
                    "the {use} certificate {subject} expires on {when} (in {days} days)",
                    use=item.use,
                    subject=item.label,
                    when=f"{item.when:%Y-%m-%d %H:%M} UTC",
                    days=round(left.total_seconds() / 86400),
                )
        warned.append(item)
    return warned
