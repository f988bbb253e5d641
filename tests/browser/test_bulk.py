"""Bulk actions in a real headless Chromium: an administrator filters the queue to the files
parked while one insurer was down, prepares a bulk retry, reads the confirmation (how many,
which kinds, the list, what will happen), confirms, and watches the batch page (it
refreshes itself, no JavaScript) until the batch is finished; the files are back in the
outbound queue and the audit log has the batch and every retry. Runs the admin site as a
real process with its background batch runner (:mod:`adapters.admin.devserver`), with the
fixture and helpers of :mod:`tests.browser.test_admin_site`. Screenshots of every step are
kept in the test's tmp directory (the path is printed).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from playwright.sync_api import expect, sync_playwright

from adapters.admin.demo import seed_parked
from adapters.storage import open_store
from gateway.loading import load_layouts
from gateway.ports.outbox import OutboundState
from tests.browser.test_admin_site import Running, _login, site  # noqa: F401 - the fixture
from tests.threadpump import ThreadPump
from tests.tools import required_tool

DOWN = "4444"


def _park_for_insurer(store_url: str, count: int) -> list[str]:
    pump = ThreadPump()
    store = pump.wait(open_store(store_url, pump))
    try:
        parked: list[str] = pump.wait(
            seed_parked(
                store, load_layouts(), datetime.now(UTC), tag="down", insurer=DOWN, count=count
            )
        )
    finally:
        pump.wait(store.close())
    return parked


def _outbound_states(store_url: str, refs: list[str]) -> list[OutboundState]:
    pump = ThreadPump()
    store = pump.wait(open_store(store_url, pump))
    try:
        states = []
        for ref in refs:
            outbound = pump.wait(store.outbox.get(ref))
            assert outbound is not None
            states.append(outbound.state)
    finally:
        pump.wait(store.close())
    return states


def test_retry_everything_parked_for_an_insurer_as_a_batch(site: Running) -> None:  # noqa: F811
    chromium = required_tool("chromium")
    down = _park_for_insurer(site.store_url, 3)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            _login(page, site.url, "bea")
            expect(page.locator(".counts")).to_contain_text("4 Geparkeerd na mislukte verzending")

            # Filter the queue: parked files of insurer 4444.
            page.get_by_label("Soort").select_option("parked")
            page.get_by_label("Verzekeraar (UZOVI)").fill(DOWN)
            page.get_by_role("button", name="Filteren").click()
            expect(page.locator("table.cases tbody tr")).to_have_count(3)
            page.get_by_label("Bulkactie op de zaken van dit filter").select_option("retry")
            page.screenshot(path=str(site.shots / "1-filtered-queue.png"), full_page=True)
            page.get_by_role("button", name=re.compile("Bulkactie voorbereiden")).click()

            # The confirmation says exactly what will happen.
            expect(page.get_by_role("heading", level=1)).to_have_text(
                "Bulkactie: Opnieuw aanbieden op 3 zaken"
            )
            expect(page.locator(".consequence")).to_contain_text(
                "Voor elk van deze 3 zaken gaat het bestand terug in de wachtrij"
            )
            expect(page.locator("dl.summary")).to_contain_text(
                "Geparkeerd na mislukte verzending: 3"
            )
            rows = page.locator("table.bulk-cases tbody tr")
            expect(rows).to_have_count(3)
            for ref in down:
                expect(page.locator("table.bulk-cases")).to_contain_text(f"parked:{ref}")
            expect(page.locator("table.bulk-cases")).not_to_contain_text(site.seeded.parked)
            page.screenshot(path=str(site.shots / "2-confirm.png"), full_page=True)
            page.get_by_role("button", name=re.compile("Bevestigen")).click()

            # The batch page refreshes itself until the runner has done every case.
            expect(page).to_have_url(re.compile(r"/batches/1$"))
            page.screenshot(path=str(site.shots / "3-batch-running.png"), full_page=True)
            expect(page.locator("h1 .state")).to_have_text("klaar", timeout=30_000)
            expect(page.locator("dd.done")).to_have_text("3")
            expect(page.locator("dd.remaining")).to_have_text("0")
            expect(page.locator("table.batch-items")).not_to_contain_text("nog te doen")
            page.screenshot(path=str(site.shots / "4-batch-finished.png"), full_page=True)

            # The queue has no parked file of 4444 left; the audit log has it all.
            page.get_by_role("navigation").get_by_role("link", name="Zaken").click()
            expect(page.locator(".counts")).to_contain_text("1 Geparkeerd na mislukte verzending")
            page.get_by_role("link", name="Auditlog").click()
            expect(page.locator("p.ok")).to_contain_text("Keten intact")
            audit = page.locator("table.audit")
            expect(audit).to_contain_text("bulkactie gestart")
            expect(audit).to_contain_text("bulkactie klaar")
            expect(audit).to_contain_text("bulk:1")
            page.screenshot(path=str(site.shots / "5-audit.png"), full_page=True)
        finally:
            browser.close()

    assert _outbound_states(site.store_url, down) == [OutboundState.QUEUED] * 3
    assert _outbound_states(site.store_url, [site.seeded.parked]) == [OutboundState.PARKED]
    assert len(list(site.shots.glob("*.png"))) == 5
