"""End to end: every TLS endpoint of a real ``igo-gateway serve`` refuses old protocol
versions and weak ciphers, honours its CRL, and publishes when its certificates expire.

One gateway serves the EPD API (where participants upload and insurers push retours) and
the admin site over HTTPS with client certificates (``[admin.tls] client_ca`` and
``crl``); a second one serves the admin site with the password login only, the other TLS
set-up (:func:`adapters.tls.plain_server_context_factory`). The clients are Python's own
``ssl`` module on loopback.
"""

from __future__ import annotations

import io
import re
import socket
import ssl
import subprocess
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from prometheus_client.parser import text_string_to_metric_families

from gateway.loading import load_layouts
from gateway.pki import (
    CA_CERT,
    CA_KEY,
    SERVER_CERT,
    Issued,
    Party,
    issue_client,
    issue_server,
    load_issued,
    revocation_list,
)
from tests.factories import kz301
from tests.gateway.running import (
    IGO,
    KRAAMZORG,
    make_pki,
    serve_command,
    statuses,
    upload,
    write_config,
)
from tests.processes import ServerProcess

pytestmark = pytest.mark.slow
REGISTRY = load_layouts()
NOW = datetime.now(UTC)  # OpenSSL checks validity and CRLs against the real clock
ADMIN_SERVER_DAYS = 10  # within the default 30-day warning period
PUSHING = "3311"

_EPD = re.compile(r"EPD API listening on https://127\.0\.0\.1:(\d+)")
_ADMIN = re.compile(r"admin site on https://127\.0\.0\.1:(\d+)/")
_OPERATIONS = re.compile(r"operations endpoint on http://127\.0\.0\.1:(\d+)/metrics")


@dataclass(frozen=True)
class Pki:
    directory: Path
    fingerprints: dict[str, str]
    ca: Issued
    admin_server: Issued
    browser: tuple[Path, Path]
    revoked_browser: tuple[Path, Path]
    pusher: Issued
    pusher_pair: tuple[Path, Path]
    revoked_pusher: Issued
    revoked_pusher_pair: tuple[Path, Path]

    @property
    def ca_file(self) -> Path:
        return self.directory / CA_CERT

    @property
    def crl_file(self) -> Path:
        return self.directory / "crl.pem"


def _save(directory: Path, name: str, issued: Issued) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    cert.write_bytes(issued.cert_pem())
    key.write_bytes(issued.key_pem())
    key.chmod(0o600)
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("tls-pki") / "pki"
    fingerprints = make_pki(directory)
    ca = load_issued(directory / CA_CERT, directory / CA_KEY)
    admin_server = issue_server(ca, now=NOW, days=ADMIN_SERVER_DAYS)
    _save(directory, "admin-server", admin_server)
    admin_party = Party("53009999", "Beheerder")
    browser = issue_client(ca, admin_party, now=NOW)
    revoked_browser = issue_client(ca, admin_party, now=NOW)
    insurer = Party("99003311", "Zorgverzekeraar")
    pusher = issue_client(ca, insurer, now=NOW)
    revoked_pusher = issue_client(ca, insurer, now=NOW)
    crl = revocation_list(ca, [revoked_browser.cert, revoked_pusher.cert], now=NOW)
    (directory / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return Pki(
        directory,
        fingerprints,
        ca,
        admin_server,
        _save(directory, "browser", browser),
        _save(directory, "browser-revoked", revoked_browser),
        pusher,
        _save(directory, "pusher", pusher),
        revoked_pusher,
        _save(directory, "pusher-revoked", revoked_pusher),
    )


def gateway_config(tmp_path: Path, pki: Pki, *, admin_client_certificates: bool) -> Path:
    exchange = tmp_path / "exchange"
    (exchange / "out").mkdir(parents=True)
    (exchange / "in").mkdir()
    client_ca = f'client_ca = "{pki.ca_file}"\ncrl = "{pki.crl_file}"\n'
    if not admin_client_certificates:
        client_ca = ""
    path = write_config(
        tmp_path / "gateway.toml",
        pki.directory,
        pki.fingerprints,
        "sqlite:///data/gateway.db",
        extra=f"""
[admin.tls]
cert = "{pki.directory / "admin-server.pem"}"
key = "{pki.directory / "admin-server.key"}"
{client_ca}
[[insurers]]
uzovi = "{PUSHING}"
name = "Zorgverzekeraar (pusht)"
[insurers.link]
kind = "directory"
outbox = "{exchange / "out"}"
inbox = "{exchange / "in"}"
push_certificates = ["{pki.pusher.fingerprint}", "{pki.revoked_pusher.fingerprint}"]
""",
    )
    # The EPD API's CRL (participants and pushing insurers alike).
    text = path.read_text(encoding="utf-8")
    trust = f'trust = "{pki.ca_file}"\n'
    path.write_text(text.replace(trust, trust + f'crl = "{pki.crl_file}"\n', 1), encoding="utf-8")
    return path


class Gateway(ServerProcess):
    def __init__(self, config: Path) -> None:
        super().__init__(
            serve_command(config),
            config.parent,
            {"epd": _EPD, "admin": _ADMIN, "operations": _OPERATIONS},
        )


def _running(config: Path) -> Iterator[Gateway]:
    gateway = Gateway(config)
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def gateway(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = gateway_config(
        tmp_path_factory.mktemp("tls-gateway"), pki, admin_client_certificates=True
    )
    yield from _running(config)


@pytest.fixture(scope="module")
def password_only_gateway(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = gateway_config(
        tmp_path_factory.mktemp("tls-gateway-plain"), pki, admin_client_certificates=False
    )
    yield from _running(config)


def context(
    pki: Pki,
    pair: tuple[Path, Path] | None,
    *,
    version: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is the point
        ctx = ssl.create_default_context(cafile=str(pki.ca_file))
        if pair is not None:
            ctx.load_cert_chain(*map(str, pair))
        if version is not None:
            ctx.minimum_version = ctx.maximum_version = version
        if ciphers is not None:
            ctx.set_ciphers(ciphers)
    return ctx


def participant(pki: Pki, agb: str) -> tuple[Path, Path]:
    stem = "igo" if agb == IGO else "participant"
    return pki.directory / f"{stem}-{agb}.pem", pki.directory / f"{stem}-{agb}.key"


def get(port: int, ctx: ssl.SSLContext, path: str = "/") -> bytes:
    """One HTTP/1.0 GET over TLS; the status line and headers of the answer. A refused
    handshake raises ``ssl.SSLError`` (a refused client certificate under TLS 1.3: on the
    first read)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = tls.recv(4096)
            if not chunk:
                break
            data += chunk
    return data


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def old_version(pki: Pki, pair: tuple[Path, Path] | None) -> ssl.SSLContext:
    """TLS 1.1 only, from a client that really offers it (SECLEVEL 0): the refusal is the
    server's."""
    return context(pki, pair, version=ssl.TLSVersion.TLSv1_1, ciphers="DEFAULT:@SECLEVEL=0")


def weak_ciphers(pki: Pki, pair: tuple[Path, Path] | None) -> ssl.SSLContext:
    """TLS 1.2 offering CBC with SHA-1 and SHA-2 MACs, with and without forward secrecy,
    RSA key exchange and DHE: everything but ECDHE with an AEAD cipher."""
    return context(
        pki,
        pair,
        version=ssl.TLSVersion.TLSv1_2,
        ciphers="ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES128-SHA:"
        "AES128-SHA:AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256",
    )


ENDPOINTS = ["epd_api", "pushed retours", "admin (client certificates)"]


def endpoint(gateway: Gateway, pki: Pki, name: str) -> tuple[int, tuple[Path, Path]]:
    """The port of an endpoint, and a certificate it accepts."""
    return {
        "epd_api": (gateway.ports["epd"], participant(pki, KRAAMZORG)),
        "pushed retours": (gateway.ports["epd"], pki.pusher_pair),
        "admin (client certificates)": (gateway.ports["admin"], pki.browser),
    }[name]


# --- protocol versions and ciphers ------------------------------------------------------------


@pytest.mark.parametrize("name", ENDPOINTS)
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_every_endpoint_accepts_tls_1_2_and_1_3_with_aead(
    gateway: Gateway, pki: Pki, name: str, version: ssl.TLSVersion
) -> None:
    port, pair = endpoint(gateway, pki, name)
    assert get(port, context(pki, pair, version=version)).startswith(b"HTTP/1.")


@pytest.mark.parametrize("name", ENDPOINTS)
def test_every_endpoint_refuses_tls_1_1(gateway: Gateway, pki: Pki, name: str) -> None:
    port, pair = endpoint(gateway, pki, name)
    with pytest.raises(ssl.SSLError, match="alert protocol version"):
        get(port, old_version(pki, pair))


@pytest.mark.parametrize("name", ENDPOINTS)
def test_every_endpoint_refuses_cbc_sha1_and_rsa_key_exchange(
    gateway: Gateway, pki: Pki, name: str
) -> None:
    port, pair = endpoint(gateway, pki, name)
    with pytest.raises(ssl.SSLError, match="handshake failure"):
        get(port, weak_ciphers(pki, pair))


def test_the_password_only_admin_site_has_the_same_policy(
    password_only_gateway: Gateway, pki: Pki
) -> None:
    port = password_only_gateway.ports["admin"]
    assert status(get(port, context(pki, None), "/login")) == 200
    with pytest.raises(ssl.SSLError, match="alert protocol version"):
        get(port, old_version(pki, None))
    with pytest.raises(ssl.SSLError, match="handshake failure"):
        get(port, weak_ciphers(pki, None))


# --- revocation -------------------------------------------------------------------------------


def test_a_revoked_browser_certificate_cannot_reach_the_admin_site(
    gateway: Gateway, pki: Pki
) -> None:
    port = gateway.ports["admin"]
    assert status(get(port, context(pki, pki.browser), "/login")) == 200
    with pytest.raises(ssl.SSLError, match="certificate revoked"):
        get(port, context(pki, pki.revoked_browser), "/login")
    with pytest.raises(ssl.SSLError, match="certificate required"):
        get(port, context(pki, None), "/login")


def test_a_revoked_insurer_certificate_cannot_push_retours(gateway: Gateway, pki: Pki) -> None:
    port = gateway.ports["epd"]
    # The listed, unrevoked certificate is the insurer: its (empty) queue answers.
    assert (
        status(
            get(
                port,
                context(pki, pki.pusher_pair),
                "/berichtenservice/berichten/rest-pull/v1/berichten",
            )
        )
        == 200
    )
    with pytest.raises(ssl.SSLError, match="certificate revoked"):
        get(
            port,
            context(pki, pki.revoked_pusher_pair),
            "/berichtenservice/berichten/rest-pull/v1/berichten",
        )


# --- certificate expiry -----------------------------------------------------------------------


def _gauge(gateway: Gateway, name: str) -> dict[tuple[str, str], float]:
    port = gateway.ports["operations"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    (family,) = (f for f in text_string_to_metric_families(text) if f.name == name)
    return {
        (s.labels["use"], s.labels.get("subject") or s.labels["issuer"]): s.value
        for s in family.samples
    }


def test_every_configured_certificate_s_expiry_is_a_metric(gateway: Gateway, pki: Pki) -> None:
    expiry = _gauge(gateway, "igo_gateway_certificate_expiry_timestamp_seconds")
    server = x509.load_pem_x509_certificate((pki.directory / SERVER_CERT).read_bytes())

    assert expiry == {
        ("epd_server", "localhost"): server.not_valid_after_utc.timestamp(),
        ("epd_trust", "IGO gateway development CA"): pki.ca.cert.not_valid_after_utc.timestamp(),
        ("admin_server", "localhost"): pki.admin_server.cert.not_valid_after_utc.timestamp(),
        ("admin_client_ca", "IGO gateway development CA"): (
            pki.ca.cert.not_valid_after_utc.timestamp()
        ),
    }
    crl = x509.load_pem_x509_crl(pki.crl_file.read_bytes())
    assert crl.next_update_utc is not None
    assert _gauge(gateway, "igo_gateway_crl_next_update_timestamp_seconds") == {
        ("epd_crl", "IGO gateway development CA"): crl.next_update_utc.timestamp(),
        ("admin_crl", "IGO gateway development CA"): crl.next_update_utc.timestamp(),
    }


def test_a_soon_expiring_certificate_is_warned_about_at_start_up(gateway: Gateway) -> None:
    logs = gateway.logs()
    assert "the admin_server certificate localhost expires on" in logs
    assert f"(in {ADMIN_SERVER_DAYS} days)" in logs
    assert "the epd_server certificate" not in logs  # a year left: no warning


# --- compressed uploads -----------------------------------------------------------------------


def test_a_zip_upload_is_rejected_not_unpacked(gateway: Gateway, pki: Pki) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("declaratie.asc", kz301(REGISTRY))
    ctx = context(pki, participant(pki, KRAAMZORG))
    with httpx.Client(base_url=f"https://localhost:{gateway.ports['epd']}", verify=ctx) as epd:
        answer = upload(epd, KRAAMZORG, archive.getvalue(), "declaraties.zip")
        found = statuses(epd, traceerId=answer.traceer_id)

    # Not an EI file (no 01 record): a technical rejection with its retour, nothing unpacked.
    assert answer.status_code == 204
    assert [s["berichtstatus"] for s in found] == ["AfgekeurdDoorDienst", "WordtAangeboden"]
    assert [m["code"] for m in found[0]["meldingen"]] == [
        "0002"
    ]  # "PK…" is no record type: kenmerk record missing or wrong


def test_serve_refuses_to_start_with_an_out_of_date_crl(pki: Pki, tmp_path: Path) -> None:
    config = gateway_config(tmp_path, pki, admin_client_certificates=False)
    stale = tmp_path / "stale-crl.pem"
    stale.write_bytes(
        revocation_list(pki.ca, [], now=NOW - timedelta(days=10), days=7).public_bytes(
            serialization.Encoding.PEM
        )
    )
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(str(pki.crl_file), str(stale)), encoding="utf-8")

    done = subprocess.run(
        serve_command(config), capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert str(stale) in done.stderr
    assert "the CRL of 'IGO gateway development CA' is out of date since" in done.stderr
