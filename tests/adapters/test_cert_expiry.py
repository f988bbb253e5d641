"""The expiry of the configured certificates and CRLs: read from the config's files,
published as metrics equal to notAfter / nextUpdate, and warned about in time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from zope.interface import implementer

from adapters.cert_expiry import Expiring, publish, warn_expiring, watched_files
from gateway.config import GatewayConfig
from gateway.metrics import Metrics
from gateway.pki import Issued, Party, issue_client, issue_server, new_ca, revocation_list

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
IGO = Party("53001234", "Geboortezorg Voorbeeldstad", role="igo")


def _write(directory: Path, name: str, issued: Issued) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    cert.write_bytes(issued.cert_pem())
    key.write_bytes(issued.key_pem())
    return cert, key


@pytest.fixture
def logged() -> Iterator[list[tuple[str, str]]]:
    """(level, text) of every log event while the test runs."""
    events: list[tuple[str, str]] = []

    @implementer(ILogObserver)
    class Observe:
        def __call__(self, event: LogEvent) -> None:
            if event.get("log_namespace") == "adapters.cert_expiry":
                events.append((event["log_level"].name, formatEvent(event)))

    observe = Observe()
    globalLogPublisher.addObserver(observe)
    yield events
    globalLogPublisher.removeObserver(observe)


def config_with_everything(tmp_path: Path) -> tuple[GatewayConfig, dict[str, object]]:
    epd_ca = new_ca(now=NOW, days=3650, common_name="EPD CA")
    insurer_ca = new_ca(now=NOW, days=3650, common_name="Insurer CA")
    server = issue_server(epd_ca, now=NOW, days=365)
    admin = issue_server(epd_ca, now=NOW, days=20, hostname="admin.igo.example")
    client = issue_client(insurer_ca, IGO, now=NOW, days=90)
    server_cert, server_key = _write(tmp_path, "server", server)
    admin_cert, admin_key = _write(tmp_path, "admin", admin)
    client_cert, client_key = _write(tmp_path, "client", client)
    (tmp_path / "epd-ca.pem").write_bytes(epd_ca.cert_pem())
    (tmp_path / "insurer-ca.pem").write_bytes(insurer_ca.cert_pem())
    crl = revocation_list(epd_ca, [], now=NOW, days=7)
    (tmp_path / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    config = GatewayConfig.model_validate(
        {
            "igo": {"name": IGO.name, "agb": IGO.agb},
            "store": {"url": "sqlite:///:memory:"},
            "epd_api": {
                "tls": {
                    "cert": str(server_cert),
                    "key": str(server_key),
                    "trust": str(tmp_path / "epd-ca.pem"),
                    "crl": str(tmp_path / "crl.pem"),
                }
            },
            "admin": {"tls": {"cert": str(admin_cert), "key": str(admin_key)}},
            "insurers": [
                {
                    "uzovi": "3311",
                    "name": "Zorgverzekeraar",
                    "link": {
                        "base_url": "https://insurer.example/api",
                        "tls": {
                            "cert": str(client_cert),
                            "key": str(client_key),
                            "trust": str(tmp_path / "insurer-ca.pem"),
                        },
                    },
                }
            ],
        }
    )
    return config, {
        "server": server,
        "admin": admin,
        "client": client,
        "epd_ca": epd_ca,
        "insurer_ca": insurer_ca,
        "crl": crl,
    }


def test_every_configured_certificate_and_crl_is_watched(tmp_path: Path) -> None:
    config, made = config_with_everything(tmp_path)

    watched = {(w.use, w.label, w.crl): w.when for w in watched_files(config)}

    def after(name: str) -> datetime:
        issued = made[name]
        assert isinstance(issued, Issued)
        return issued.cert.not_valid_after_utc

    assert watched == {
        ("epd_server", "localhost", False): after("server"),
        ("epd_trust", "EPD CA", False): after("epd_ca"),
        ("epd_crl", "EPD CA", True): NOW + timedelta(days=7),
        ("admin_server", "admin.igo.example", False): after("admin"),
        ("insurer_client", IGO.agb, False): after("client"),
        ("insurer_trust", "Insurer CA", False): after("insurer_ca"),
    }


def test_the_metrics_are_the_certificates_not_after(tmp_path: Path) -> None:
    config, made = config_with_everything(tmp_path)
    metrics = Metrics()

    publish(watched_files(config), metrics)

    server = made["server"]
    assert isinstance(server, Issued)
    value = metrics.registry.get_sample_value(
        "igo_gateway_certificate_expiry_timestamp_seconds",
        {"use": "epd_server", "subject": "localhost"},
    )
    assert value == server.cert.not_valid_after_utc.timestamp()
    crl_value = metrics.registry.get_sample_value(
        "igo_gateway_crl_next_update_timestamp_seconds", {"use": "epd_crl", "issuer": "EPD CA"}
    )
    assert crl_value == (NOW + timedelta(days=7)).timestamp()


def test_a_certificate_within_the_warning_period_is_warned_about(
    tmp_path: Path, logged: list[tuple[str, str]]
) -> None:
    config, _ = config_with_everything(tmp_path)

    warned = warn_expiring(watched_files(config), NOW, certificate_days=30, crl_hours=24)

    assert [(w.use, w.label) for w in warned] == [("admin_server", "admin.igo.example")]
    assert logged == [
        (
            "warn",
            "the admin_server certificate admin.igo.example expires on 2026-12-21 12:00 UTC "
            "(in 20 days)",
        )
    ]


def test_nothing_is_warned_about_outside_the_warning_period(
    tmp_path: Path, logged: list[tuple[str, str]]
) -> None:
    config, _ = config_with_everything(tmp_path)

    assert warn_expiring(watched_files(config), NOW, certificate_days=19, crl_hours=24) == []
    assert logged == []


def test_expired_certificates_and_stale_crls_are_errors(logged: list[tuple[str, str]]) -> None:
    items = [
        Expiring("insurer_client", "53001234", NOW - timedelta(days=1)),
        Expiring("epd_crl", "EPD CA", NOW + timedelta(hours=5), crl=True),
        Expiring("admin_crl", "Admin CA", NOW - timedelta(hours=1), crl=True),
        Expiring("epd_crl", "Other CA", NOW + timedelta(days=3), crl=True),
    ]

    warn_expiring(items, NOW, certificate_days=30, crl_hours=24)

    assert logged == [
        ("error", "the insurer_client certificate 53001234 has expired (2026-11-30 12:00 UTC)"),
        (
            "error",
            "the admin_crl CRL of Admin CA is out of date since 2026-12-01 11:00 UTC: every "
            "certificate of that CA is refused until a fresh one is installed",
        ),
        (
            "warn",
            "the epd_crl CRL of EPD CA is due for replacement at 2026-12-01 17:00 UTC (in 5 "
            "hours); past it every certificate of that CA is refused",
        ),
    ]
