"""The admin site in a real headless Chromium (Debian's ``chromium``, driven by Playwright):
log in, open the queue, open a case, retry a parked file, write off a retour, and find both
in the audit log. The site runs as a real process (:mod:`adapters.admin.devserver`) on a
loopback port, on a SQLite store seeded with one case of each kind. Screenshots of every
step are kept in the test's tmp directory (the path is printed).

Skipped without ``chromium`` locally; in CI (``CI=true``) its absence fails the test.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from adapters.admin.demo import SeededCases, seed_cases
from adapters.storage import open_store
from adapters.storage.admin import SqlAdminStore
from gateway.admin.accounts import Actor, PasswordHasher, Role, ScryptParameters
from gateway.admin.service import AdminService
from gateway.loading import load_layouts
from gateway.ports.outbox import OutboundState
from tests.threadpump import ThreadPump
from tests.tools import required_tool

PASSWORD = "correct horse battery"
_LISTENING = re.compile(r"admin site listening on (http://127\.0\.0\.1:\d+)")
START_SECONDS = 30.0


@dataclass
class Running:
    url: str
    store_url: str
    seeded: SeededCases
    shots: Path


def _prepare(store_url: str) -> SeededCases:
    pump = ThreadPump()
    layouts = load_layouts()
    store = pump.wait(open_store(store_url, pump))
    try:
        seeded = pump.wait(seed_cases(store, layouts, datetime.now(UTC)))
        service = AdminService(
            SqlAdminStore(store.database),
            store,
            layouts,
            lambda: datetime.now(UTC),
            hasher=PasswordHasher(ScryptParameters(log2_n=10)),
        )
        root = Actor("cli:test", Role.ADMINISTRATOR, "cli")
        pump.wait(service.create_user("otto", Role.OPERATOR, PASSWORD, root))
        pump.wait(service.create_user("bea", Role.ADMINISTRATOR, PASSWORD, root))
    finally:
        pump.wait(store.close())
    return seeded


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Running]:
    store_url = f"sqlite:///{tmp_path / 'admin.db'}"
    seeded = _prepare(store_url)
    process = subprocess.Popen(
        [sys.executable, "-m", "adapters.admin.devserver", "--store", store_url, "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    found: list[str] = []
    log: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            line = raw.decode("utf-8", "replace")
            log.append(line)
            match = _LISTENING.search(line)
            if match:
                found.append(match.group(1))
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + START_SECONDS
    while not ready.wait(0.1):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("the admin site did not start:\n" + "".join(log))
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        yield Running(found[0], store_url, seeded, shots)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=START_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(5)
        print(f"\nscreenshots: {shots}")


def _login(page: Page, url: str, name: str) -> None:
    page.goto(f"{url}/login")
    page.get_by_label("Gebruikersnaam").fill(name)
    page.get_by_label("Wachtwoord").fill(PASSWORD)
    page.get_by_role("button", name="Aanmelden").click()
    expect(page).to_have_url(f"{url}/cases")


def test_resolve_cases_in_a_real_browser_and_find_them_in_the_audit_log(site: Running) -> None:
    chromium = required_tool("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            _login(page, site.url, "otto")
            expect(page.get_by_role("heading", name="Zaken die aandacht vragen")).to_be_visible()
            expect(page.locator(".counts")).to_contain_text("1 Geparkeerd na mislukte verzending")
            page.screenshot(path=str(site.shots / "1-queue.png"), full_page=True)

            # A parked file: open it, retry it, confirm.
            page.get_by_role("link", name="integraal-3311.asc").click()
            expect(page.get_by_role("heading", level=1)).to_contain_text("Geparkeerd")
            expect(page.locator("dl.facts")).to_contain_text("connection refused")
            page.screenshot(path=str(site.shots / "2-case.png"), full_page=True)
            page.get_by_role("link", name="Opnieuw aanbieden").click()
            expect(page.locator(".consequence")).to_contain_text("hetzelfde kenmerk")
            page.screenshot(path=str(site.shots / "3-confirm-retry.png"), full_page=True)
            page.get_by_role("button", name=re.compile("Bevestigen")).click()
            expect(page.locator(".notice")).to_contain_text("Opnieuw aanbieden: gedaan")
            expect(page.locator("h1 .state")).to_have_text("opnieuw aangeboden")
            page.screenshot(path=str(site.shots / "4-retried.png"), full_page=True)

            # A retour that matches nothing: write it off with a reason.
            page.get_by_role("navigation").get_by_role("link", name="Zaken").click()
            page.get_by_role("link", name="retour-onbekend.asc").click()
            page.get_by_role("link", name="Afboeken").click()
            page.get_by_label(re.compile("Reden")).fill("Hoort bij een papieren declaratie")
            page.get_by_role("button", name=re.compile("Bevestigen")).click()
            expect(page.locator("h1 .state")).to_have_text("afgeboekt")
            expect(page.locator("dl.facts")).to_contain_text("Hoort bij een papieren declaratie")
            page.screenshot(path=str(site.shots / "5-written-off.png"), full_page=True)

            # BSNs are masked on the page of the rejected upload.
            page.get_by_role("navigation").get_by_role("link", name="Zaken").click()
            page.get_by_role("link", name="declaratie-januari.asc").click()
            expect(page.locator("details.record").first).to_be_visible()
            assert "111222333" not in page.content()
            page.get_by_role("button", name=re.compile("Afmelden")).click()
            expect(page).to_have_url(f"{site.url}/login")

            # The administrator finds everything in the audit log.
            _login(page, site.url, "bea")
            page.get_by_role("link", name="Auditlog").click()
            expect(page.locator("p.ok")).to_contain_text("Keten intact")
            audit = page.locator("table.audit")
            expect(audit).to_contain_text("opnieuw aangeboden")
            expect(audit).to_contain_text("afgeboekt")
            expect(audit).to_contain_text("Hoort bij een papieren declaratie")
            page.screenshot(path=str(site.shots / "6-audit.png"), full_page=True)
        finally:
            browser.close()

    pump = ThreadPump()
    store = pump.wait(open_store(site.store_url, pump))
    try:
        outbound = pump.wait(store.outbox.get(site.seeded.parked))
        assert outbound is not None
        assert outbound.state is OutboundState.QUEUED
    finally:
        pump.wait(store.close())
    assert len(list(site.shots.glob("*.png"))) == 6
