"""Resolving the insurer's rejections in a real headless Chromium, against the real gateway
and the real insurer simulator (both processes on loopback ports).

The three participants' EPDs upload their fixture declarations; the gateway bundles them
into one integral claim, which the simulator rejects line by line with 0320 because it
knows the women under another member number. In the browser the operator logs in, opens
the queue, opens a rejected integral line, corrects the member number and resubmits it —
and sees its lines granted when the simulator answers the corrected claim. Then the
operator breaks the bundle of another rejected line, and the participants' EPDs find new
retour files for exactly those lines (returned with 9001 to declare them themselves: the
contract does not let the IGO forward them); and passes a third rejection on. A second
test has the rules make the cases: a phase waiting long past the birth it waits for is
closed by hand (and claimed, and answered), and a bundle broken by care outside the IGO is
written off. Screenshots of every step are kept in the test's tmp directory (the path is
printed).

Skipped without ``chromium`` locally; in CI (``CI=true``) its absence fails the test.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from gateway.ei import Record, read_records
from gateway.loading import load_layouts
from gateway.masking import mask_value
from tests.adapters.insurer_sim.support import SimProcess, write_sim_config
from tests.factories import BSNS, vk301
from tests.gateway.running import (
    HOSPITAL,
    MIDWIFE,
    GatewayProcess,
    answers,
    cli_command,
    make_pki,
    message_id,
    payload_path,
    upload,
    waiting,
    write_config,
)
from tests.gateway.test_app_insurer import full_cycle_section
from tests.gateway.test_bundler import FILES, MESSAGES
from tests.tools import required_tool

REGISTRY = load_layouts()
PASSWORD = "correct horse battery"
KNOWN_MEMBER = "M0000001"  # the member number the simulated insurer knows every woman by
WAIT_SECONDS = 60.0
pytestmark = pytest.mark.slow


@dataclass
class World:
    gateway: GatewayProcess
    admin_url: str
    db: Path
    shots: Path

    def rows(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as db:
            return list(db.execute(sql, params))

    def retours(self, agb: str) -> dict[str, bytes]:
        """The retour files waiting for participant ``agb``'s EPD, by traceer id."""
        with self.gateway.client(agb) as epd:
            return {
                message_id(m): epd.get(payload_path(message_id(m))).content for m in waiting(epd)
            }


def _bsns() -> list[str]:
    found = set()
    for _, name in FILES.values():
        records = read_records(REGISTRY, [(MESSAGES / name).read_bytes()])
        found |= {r.text("bsn") for r in records if isinstance(r, Record) and r.type == "02"}
    return sorted(found)


def _until(what: str, check: Callable[[], object], world: World) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{world.gateway.logs()}")
        time.sleep(0.3)


Section = Callable[[Path, dict[str, str], int], str]


@contextmanager
def _running(
    tmp_path: Path,
    section: Section,
    rules: dict[str, object] | None = None,
    extra: tuple[tuple[str, bytes, str], ...] = (),
) -> Iterator[tuple[World, list[str]]]:
    """The simulator (with ``rules``) and the gateway (with ``section`` in its config) on
    loopback ports, an operator account, the participants' fixture declarations and
    ``extra`` (agb, file, name) uploaded, and the gateway started again so that the bundler
    runs; the world, and the traceer ids of ``extra``."""
    pki = tmp_path / "pki"
    fingerprints = make_pki(pki)
    sim = SimProcess(write_sim_config(tmp_path / "sim.toml", pki, rules=rules), pki)
    sim.start()
    db = tmp_path / "data" / "gateway.db"
    config = write_config(
        tmp_path / "gateway.toml",
        pki,
        fingerprints,
        f"sqlite:///{db}",
        extra=section(pki, fingerprints, sim.port),
    )
    _create_operator(config)
    gateway = GatewayProcess(config, pki)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        gateway.start()
        files = [(agb, (MESSAGES / name).read_bytes(), name) for agb, (_, name) in FILES.items()]
        ids = []
        for agb, payload, name in [*files, *extra]:
            with gateway.client(agb) as epd:
                answer = upload(epd, agb, payload, name)
                assert answer.status_code == 204, answer.response.text
                ids.append(answer.traceer_id)
        gateway.stop()
        gateway.start()  # the bundler runs at start
        world = World(gateway, f"http://127.0.0.1:{gateway.ports['admin_port']}", db, shots)
        yield world, ids[len(files) :]
    finally:
        gateway.stop()
        sim.stop()
        print(f"\nscreenshots: {shots}")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    rules: dict[str, object] = {"members": dict.fromkeys(_bsns(), KNOWN_MEMBER)}
    with _running(tmp_path, full_cycle_section, rules) as (world, _):
        _until(
            "the insurer's rejection",
            lambda: world.rows("SELECT 1 FROM declaration_lines WHERE outcome = 'review'"),
            world,
        )
        yield world


def _create_operator(config: Path) -> None:
    created = subprocess.run(
        cli_command(
            "admin", "create-user", "--config", str(config), "--name", "otto", "--role", "operator"
        ),
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert created.returncode == 0, created.stderr


def _login(page: Page, url: str) -> None:
    page.goto(f"{url}/login")
    page.get_by_label("Gebruikersnaam").fill("otto")
    page.get_by_label("Wachtwoord").fill(PASSWORD)
    page.get_by_role("button", name="Aanmelden").click()
    expect(page).to_have_url(f"{url}/cases")


def _open_rejected_case(page: Page, world: World, index: int) -> str:
    """Open the ``index``-th open rejected integral line from the queue; its reference."""
    page.goto(f"{world.admin_url}/cases?kind=rejected_line")
    links = page.locator("table.cases tbody tr td:nth-child(2) a")
    expect(links.first).to_be_visible()
    links.nth(index).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Integrale prestatie afgewezen")
    return page.url.rsplit("rejected_line:", 1)[1]


def _answered_references(retour: bytes) -> set[str]:
    return {
        r.text("reference")
        for r in read_records(REGISTRY, [retour])
        if isinstance(r, Record) and r.type == "04"
    }


def test_correct_and_resubmit_then_break_a_bundle_in_a_real_browser(world: World) -> None:
    chromium = required_tool("chromium")
    shots = world.shots
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            _login(page, world.admin_url)
            expect(page.locator(".counts")).to_contain_text("Integrale prestatie afgewezen")
            page.screenshot(path=str(shots / "1-queue.png"), full_page=True)

            # A rejected integral line: its lines, the insurer's code in Dutch, the reasons.
            reference = _open_rejected_case(page, world, 0)
            expect(page.locator("table.codes")).to_contain_text("niet verzekerd")
            expect(page.locator("table.lines")).to_contain_text("in behandeling bij de IGO")
            expect(page.locator("div.decision").first).to_contain_text("integral")
            page.screenshot(path=str(shots / "2-rejected-line.png"), full_page=True)

            # Correct the member number and resubmit.
            page.get_by_role("link", name="Verbeteren en opnieuw indienen").click()
            expect(page.locator(".consequence")).to_contain_text("nieuw factuurnummer")
            page.get_by_label("Verzekerdennummer").fill(KNOWN_MEMBER)
            page.screenshot(path=str(shots / "3-correction.png"), full_page=True)
            page.get_by_role("button", name=re.compile("Bevestigen")).click()
            expect(page.locator(".notice")).to_contain_text("gedaan en vastgelegd")
            expect(page.locator("h1 .state")).to_have_text("verbeterd ingediend")
            expect(page.locator("table.versions")).to_contain_text(mask_value(KNOWN_MEMBER))
            assert KNOWN_MEMBER not in page.content()  # client data: masked

            # The simulator grants the corrected claim: the case's lines show it.
            deadline = time.monotonic() + WAIT_SECONDS
            while "toegekend" not in page.locator("table.lines").inner_text():
                assert time.monotonic() < deadline, world.gateway.logs()
                time.sleep(0.5)
                page.reload()
            expect(page.locator("table.lines")).not_to_contain_text("in behandeling")
            page.screenshot(path=str(shots / "4-granted.png"), full_page=True)
            page.goto(f"{world.admin_url}/cases?kind=rejected_line")
            expect(page.locator("table.cases")).not_to_contain_text(reference)

            # Break the bundle of another rejected line.
            broken = _open_rejected_case(page, world, 0)
            lines = [
                (str(agb), str(ref))
                for agb, ref in world.rows(
                    "SELECT participant, reference FROM declaration_lines"
                    " WHERE claim_reference = ?",
                    broken,
                )
            ]
            before = {agb: set(world.retours(agb)) for agb, _ in lines}
            page.get_by_role("link", name="Bundel breken").click()
            expect(page.locator(".consequence")).to_contain_text("monodisciplinair")
            page.get_by_label(re.compile("Reden")).fill("Zorg grotendeels buiten de IGO")
            page.get_by_role("button", name=re.compile("Bevestigen")).click()
            expect(page.locator("h1 .state")).to_have_text("bundel gebroken")
            # This contract does not let the IGO forward: back to the participants (9001).
            expect(page.locator("table.lines")).to_contain_text("terug: zelf declareren 9001")
            expect(page.locator("table.lines")).not_to_contain_text("in behandeling")
            page.screenshot(path=str(shots / "5-broken.png"), full_page=True)

            # Pass a third rejection on to the participants.
            passed = _open_rejected_case(page, world, 0)
            page.get_by_role("link", name="Afwijzing doorgeven").click()
            expect(page.locator(".consequence")).to_contain_text("retourcodes van verzekeraar")
            page.get_by_role("button", name=re.compile("Bevestigen")).click()
            expect(page.locator("h1 .state")).to_have_text("doorgegeven aan deelnemers")
            expect(page.locator("table.lines")).to_contain_text("afgewezen (doorgegeven)")
            page.screenshot(path=str(shots / "6-passed-on.png"), full_page=True)
        finally:
            browser.close()
    assert world.rows(
        "SELECT DISTINCT outcome, outcome_codes FROM declaration_lines WHERE claim_reference = ?",
        passed,
    ) == [("rejected", "0320")]

    # Each participant's EPD finds a new retour answering exactly its released lines (and
    # another for the rejection passed on).
    for agb in {agb for agb, _ in lines}:
        own = {ref for who, ref in lines if who == agb}

        def arrived(agb: str = agb, own: set[str] = own) -> bool:
            new = {k: v for k, v in world.retours(agb).items() if k not in before[agb]}
            return any(_answered_references(retour) == own for retour in new.values())

        _until(f"the retour of {agb}'s released lines", arrived, world)
    assert len(list(shots.glob("*.png"))) == 6


def rules_section(pki: Path, fingerprints: dict[str, str], sim_port: int) -> str:
    """The hospital outside the IGO (variant C) and a contract under the experiment-2017
    rule set: its care breaks the natal bundle."""
    return full_cycle_section(
        pki, fingerprints, sim_port, hospital_variant="C", rule_set="experiment-2017"
    )


def test_close_a_waiting_phase_and_write_off_a_broken_bundle_in_a_real_browser(
    tmp_path: Path,
) -> None:
    chromium = required_tool("chromium")
    # A woman seen once, early in the year, by the midwife: her prenatal phase still waits
    # for a birth that was due long ago.
    lonely = next(bsn for bsn in BSNS if bsn not in _bsns())
    waiting_file = vk301(REGISTRY, invoice="V2026-0100", bsn=lonely)
    with _running(tmp_path, rules_section, extra=((MIDWIFE, waiting_file, "v2026-0100.asc"),)) as (
        world,
        (waiting_upload,),
    ):
        gateway, shots = world.gateway, world.shots
        _until(
            "the rules' decisions",
            lambda: world.rows("SELECT 1 FROM bundle_decisions WHERE kind = 'waiting'"),
            world,
        )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                page = browser.new_page(viewport={"width": 1366, "height": 900})
                _login(page, world.admin_url)
                counts = page.locator(".counts")
                expect(counts).to_contain_text("1 Fase wacht te lang")
                expect(counts).not_to_contain_text("0 Bundel gebroken")
                page.screenshot(path=str(shots / "1-queue.png"), full_page=True)

                # The waiting phase: what it waits for, and closing it by hand.
                page.goto(f"{world.admin_url}/cases?kind=waiting_phase")
                page.locator("table.cases tbody tr td:nth-child(2) a").first.click()
                expect(page.locator("div.decision")).to_contain_text("wacht op de geboorte")
                page.screenshot(path=str(shots / "2-waiting.png"), full_page=True)
                page.get_by_role("link", name="Fase sluiten").click()
                page.get_by_role("button", name=re.compile("Bevestigen")).click()
                expect(page.locator("h1 .state")).to_have_text("fase gesloten")
                expect(page.locator("table.lines")).to_contain_text("opgenomen in integrale")
                page.screenshot(path=str(shots / "3-closed.png"), full_page=True)

                # The broken bundle: why, and writing it off.
                page.goto(f"{world.admin_url}/cases?kind=bundle_broken")
                page.locator("table.cases tbody tr td:nth-child(2) a").first.click()
                expect(page.locator("div.decision").first).to_contain_text(HOSPITAL)
                page.get_by_role("link", name="Afboeken").click()
                page.get_by_label(re.compile("Reden")).fill("Klopt: bevalling in ander ziekenhuis")
                page.get_by_role("button", name=re.compile("Bevestigen")).click()
                expect(page.locator("h1 .state")).to_have_text("afgeboekt")
                page.screenshot(path=str(shots / "4-written-off.png"), full_page=True)
            finally:
                browser.close()

        # The closed phase was claimed and granted: the midwife's EPD gets its answer.
        def answered() -> bool:
            with gateway.client(MIDWIFE) as epd:
                found = waiting(epd)
            return any(answers(m) == waiting_upload for m in found)

        _until("the answer to the closed phase's line", answered, world)
    assert len(list(shots.glob("*.png"))) == 4
