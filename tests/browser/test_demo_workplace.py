"""The workplace as a new administrator finds it after ``igo-gateway demo``, in a real
headless Chromium (1366 × 900): she logs in where the demo says, finds whom the 0320
rejection is about, corrects the member number, resubmits, and sees the corrected line
granted by the (simulated) insurer. Every page she opens is read for English engine words
and for AGB and UZOVI codes without a name.

The demo runs as a real process on loopback ports. Screenshots go to the test's tmp
directory (the path is printed); with ``IGO_SCREENSHOTS=DIR`` to DIR as well (the README's
are made so: ``IGO_SCREENSHOTS=docs/screenshots``).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.adapters.admin.test_case_page import ENGLISH
from tests.gateway.cli.test_demo import _read_until, free_port_run
from tests.gateway.running import cli_command
from tests.tools import required_tool

pytestmark = pytest.mark.slow

PARTICIPANTS = ("02001234", "33001234", "06001234")
INSURER = "3311"
# The demo's rejected woman (woman B of the fixtures, synthetic) and the member number
# the simulated insurer knows her by.
CLIENT = ("J.K. Steekproef", "23-11-1989", "••••••019")
MEMBER_NUMBER = "100200999"


@dataclass
class Demo:
    url: str
    password: str
    shots: Path


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    port = free_port_run()
    directory = tmp_path / "demo"
    process = subprocess.Popen(
        cli_command("demo", "--dir", str(directory), "--port", str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        shown = _read_until(process, "metrics ", 240)
        assert shown, "the demo did not get to its summary"
        login = re.search(r"admin site\s+(http://127\.0\.0\.1:\d+)/login", shown)
        assert login is not None, shown
        password = (directory / "admin-password.txt").read_text(encoding="utf-8").strip()
        shots = tmp_path / "screenshots"
        shots.mkdir()
        yield Demo(login.group(1), password, shots)
        print(f"\nscreenshots: {shots}")
        keep = os.environ.get("IGO_SCREENSHOTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            for shot in shots.iterdir():
                shutil.copy(shot, Path(keep) / shot.name)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def _read(page: Page) -> str:
    """The page's text as she reads it, without the file's record view (the file as it
    is, field by field)."""
    text: str = page.locator("main").inner_text()
    return text.split("Inhoud van het bestand", maxsplit=1)[0]


def check_words(page: Page) -> None:
    """No English engine words; every AGB and UZOVI code on the page with its name."""
    text = _read(page)
    english = ENGLISH.search(text)
    assert english is None, f"{page.url}: English {english.group(0)!r}"
    for agb in PARTICIPANTS:
        for found in re.finditer(agb, text):
            before = text[max(0, found.start() - 4) : found.start()]
            # Named ("… (AGB 02001234)"), or part of a file's name ("…-02001234.asc").
            assert before == "AGB " or before.endswith("-"), f"{page.url}: AGB {agb} unnamed"
    for found in re.finditer(rf"\b{INSURER}\b", text):
        before = text[max(0, found.start() - 6) : found.start()]
        assert before.endswith(("UZOVI ", "nu ")), f"{page.url}: UZOVI {INSURER} without its name"


def test_an_administrator_identifies_corrects_and_sees_a_0320_case_granted(demo: Demo) -> None:
    chromium = required_tool("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.goto(f"{demo.url}/login")
            page.get_by_label("Gebruikersnaam").fill("demo")
            page.get_by_label("Wachtwoord").fill(demo.password)
            page.get_by_role("button", name="Aanmelden").click()
            expect(page).to_have_url(f"{demo.url}/cases")
            # Work to practise on: a rejection, a late phase, an intake rejection.
            counts = page.locator(".counts")
            expect(counts).to_contain_text("Integrale prestatie afgewezen")
            assert not page.locator(".counts .count:not(.has)", has_text="afgewezen").count()
            check_words(page)
            page.screenshot(path=str(demo.shots / "admin-1-queue.png"), full_page=True)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 1366, f"the queue is {width}px wide"

            # The 0320 case: whom is it about?
            page.goto(f"{demo.url}/cases?kind=rejected_line")
            page.locator("table.cases tbody tr a").first.click()
            expect(page.locator("dl.client")).to_contain_text(CLIENT[0])
            client = page.locator("dl.client").inner_text()
            assert CLIENT[1] in client
            assert CLIENT[2] in client
            # Her pregnancy by her name and her birth (partus at home on 11 August).
            assert f"{CLIENT[0]}, bevallen op 11-08-2026" in client
            expect(page.locator("table.codes")).to_contain_text("0320")
            check_words(page)
            page.screenshot(path=str(demo.shots / "admin-2-case.png"), full_page=True)
            case_url = page.url

            # Correct the member number and resubmit.
            page.get_by_role("link", name="Verbeteren en opnieuw indienen").click()
            expect(page.locator("fieldset.correction")).to_contain_text("(nu ••••••417)")
            check_words(page)
            page.get_by_label(re.compile("^Verzekerdennummer")).fill(MEMBER_NUMBER)
            page.get_by_label(re.compile("^Reden")).fill("verzekerdennummer nagevraagd")
            page.screenshot(path=str(demo.shots / "admin-3-correction.png"), full_page=True)
            page.get_by_role("button", name=re.compile("^Bevestigen")).click()
            expect(page.locator("h1")).to_contain_text("verbeterd ingediend")
            check_words(page)

            # The corrected line goes to the insurer and comes back granted.
            page.locator("table.versions tbody tr:last-child a").click()
            granted = page.locator("table.lines")
            for _ in range(30):  # the insurer answers within seconds; reload until then
                if "toegekend" in granted.inner_text():
                    break
                page.wait_for_timeout(2000)
                page.reload()
            expect(granted).to_contain_text("toegekend")
            check_words(page)
            page.screenshot(path=str(demo.shots / "admin-4-granted.png"), full_page=True)

            # The search finds the rejected line as rejected and replaced, with its code.
            page.goto(f"{demo.url}/search")
            page.get_by_label("Retourcode").fill("0320")
            page.get_by_role("button", name="Zoeken").click()
            results = page.locator("table.search")
            expect(results).to_contain_text("0320")
            # The two lines still rejected (the corrected one no longer carries 0320).
            expect(results).to_contain_text("afgewezen, in behandeling bij de IGO")
            assert results.locator("tbody tr").count() >= 2
            check_words(page)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 1366, f"the search results are {width}px wide"
            page.screenshot(path=str(demo.shots / "admin-5-search.png"), full_page=True)

            # The other practice cases read in Dutch, with names.
            for kind, shot in (
                ("waiting_phase", "admin-6-waiting-phase.png"),
                ("intake_rejected", "admin-7-intake.png"),
            ):
                page.goto(f"{demo.url}/cases?kind={kind}")
                page.locator("table.cases tbody tr a").first.click()
                check_words(page)
                page.screenshot(path=str(demo.shots / shot), full_page=True)
            page.goto(case_url)
            check_words(page)
        finally:
            browser.close()
