"""The participant portal in a real headless Chromium (Debian's ``chromium``, driven by
Playwright) against a real ``igo-gateway serve``: the browser presents the kraamzorg
organisation's client certificate, uploads a file that is rejected, reads why, downloads
the technical-rejection retour and confirms its receipt. Screenshots of every step are kept
in the test's tmp directory (the path is printed).

Skipped without ``chromium`` locally; in CI (``CI=true``) its absence fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from gateway.loading import load_layouts
from tests.factories import kz301
from tests.gateway.running import KRAAMZORG, GatewayProcess, make_pki, write_config
from tests.tools import required_tool

pytestmark = pytest.mark.slow
BAD_BSN = "123456780"  # fails the eleven-proof: 0435


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


def test_a_practice_sends_reads_a_rejection_and_fetches_its_retour(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    chromium = required_tool("chromium")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    declaration = tmp_path / "declaratie-0435.asc"
    declaration.write_bytes(kz301(load_layouts(), agb=KRAAMZORG, bsn=BAD_BSN))
    origin = f"https://localhost:{gateway.port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = browser.new_context(
                viewport={"width": 1366, "height": 900},
                ignore_https_errors=True,  # the development CA is not the browser's
                accept_downloads=True,
                client_certificates=[
                    {
                        "origin": origin,
                        "certPath": str(gateway.pki / f"participant-{KRAAMZORG}.pem"),
                        "keyPath": str(gateway.pki / f"participant-{KRAAMZORG}.key"),
                    }
                ],
            )
            page = context.new_page()
            page.goto(f"{origin}/portaal/")
            expect(
                page.get_by_role("heading", name="Declaraties en retourinformatie")
            ).to_be_visible()
            expect(page.locator(".who")).to_contain_text("Kraamzorg Test")
            page.screenshot(path=str(shots / "1-overzicht.png"), full_page=True)

            page.get_by_label("Declaratiebestand (Vektis EI)").set_input_files(str(declaration))
            page.get_by_role("button", name="Versturen").click()
            expect(
                page.get_by_role("heading", name="Waarom het bestand is afgekeurd")
            ).to_be_visible()
            expect(page.locator(".rejected")).to_contain_text("0435")
            expect(page.locator(".rejected")).to_contain_text("record 2, veld 0203")
            expect(page.locator("body")).not_to_contain_text(BAD_BSN)
            page.screenshot(path=str(shots / "2-afgekeurd.png"), full_page=True)

            with page.expect_download() as download:
                page.get_by_role("link", name="Downloaden").first.click()
            fetched = tmp_path / "retour.asc"
            download.value.save_as(fetched)
            assert fetched.read_bytes().startswith(b"01")

            page.get_by_role("link", name="KZ302-afkeur").first.click()
            expect(page.get_by_role("heading", name="Retourcodes in dit bestand")).to_be_visible()
            page.get_by_role("button", name="Ontvangst bevestigen").click()
            expect(page.locator(".facts")).to_contain_text("ontvangst bevestigd")
            page.screenshot(path=str(shots / "3-retour-bevestigd.png"), full_page=True)
            page.get_by_role("link", name="Overzicht").click()
            expect(page.locator("body")).to_contain_text("Er staat geen retourinformatie klaar.")
        finally:
            browser.close()
            print(f"\nscreenshots: {shots}")
