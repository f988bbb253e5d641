"""End to end: a real ``igo-gateway serve`` serves the portal on the EPD API's TLS listener,
where the browser's client certificate identifies the practice."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.loading import load_layouts
from tests.factories import BSNS, kz301
from tests.gateway.running import KRAAMZORG, GatewayProcess, make_pki, write_config

pytestmark = pytest.mark.slow
REGISTRY = load_layouts()


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[GatewayProcess]:
    directory = tmp_path / "pki"
    fingerprints = make_pki(directory)
    config = write_config(
        tmp_path / "gateway.toml", directory, fingerprints, "sqlite:///data/gateway.db"
    )
    process = GatewayProcess(config, directory)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no hidden field {name}"
    return found.group(1)


def test_a_practice_uploads_in_its_browser_over_mutual_tls(gateway: GatewayProcess) -> None:
    with gateway.client(KRAAMZORG) as browser:
        overview = browser.get("/portaal/")
        assert overview.status_code == 200
        assert "Kraamzorg Test" in overview.text
        assert overview.cookies  # the CSRF cookie
        sent = browser.post(
            "/portaal/versturen",
            data={
                "csrf": _hidden(overview.text, "csrf"),
                "traceerId": _hidden(overview.text, "traceerId"),
            },
            files={"bestand": ("declaratie.asc", kz301(REGISTRY, agb=KRAAMZORG, bsn=BSNS[1]))},
        )
        assert sent.status_code == 303, sent.text
        page = browser.get(sent.headers["location"])
        assert page.status_code == 200
        assert "ontvangen en goedgekeurd" in page.text
        # the EPD API on the same listener knows the same upload
        traceer = sent.headers["location"].rsplit("/", 1)[1]
        statuses = browser.get(
            "/berichtenservice/berichtstatus/rest-pull/v3/berichtstatussen",
            params={"traceerId": traceer},
        )
        assert statuses.json()[0]["berichtstatus"] == "Ontvangen"
    # a browser without a certificate does not get past the TLS handshake
    with gateway.client(None) as stranger, pytest.raises((httpx.ConnectError, httpx.ReadError)):
        stranger.get("/portaal/")
    gateway.stop()
    logs = gateway.logs()
    assert "GET /portaal/ 200" in logs
    assert "GET /portaal/berichten/{traceerId} 200" in logs
    assert f"GET /portaal/berichten/{traceer}" not in logs  # ids stay out of the access log
    assert BSNS[1] not in logs
