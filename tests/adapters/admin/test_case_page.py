"""The case page a person can act on: whom a rejected line is about (masked BSN, name,
birth date; unmasking audited), participants, insurers and prestaties by name, the
correction form with the values the insurer got, one language (Dutch, the rules' words
too), euros with a decimal comma, local time, and the views of a case grouped in its
history."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.admin.render import group_history
from adapters.admin.site import build_admin_site
from adapters.storage.admin import SqlAdminStore
from gateway.admin.accounts import Role
from gateway.admin.audit import AuditAction, AuditEntry
from gateway.admin.labels import Names, dutch, euro_text, local_time
from gateway.app import admin_names
from gateway.config import load_config
from gateway.terms import load_catalogue
from tests.adapters.admin.conftest import FAST, Browser
from tests.adapters.storage.test_resolution import Cycle, _cycle, rejected
from tests.threadpump import ThreadPump

CATALOGUE = load_catalogue()
NAMES = Names(
    participants={
        "02001234": "Verloskundigenpraktijk De Wieg",
        "33001234": "Kraamzorg Het Nest",
        "06001234": "Ziekenhuis Voorbeeldstad",
    },
    insurers={"3311": "Zorgverzekeraar Voorbeeld"},
    prestaties={**CATALOGUE.descriptions, **{p.code: p.name for p in CATALOGUE.prestaties}},
)
# The fixtures' two women (synthetic): who she is as her files name her.
WOMEN = {
    "999990007": ("A.M. de Voorbeeld", "06-05-1994"),
    "999990019": ("J.K. Steekproef", "23-11-1989"),
}
# Words of the rules engine and the store that must not reach a Dutch page.
ENGLISH = re.compile(
    r"\b(prenatal|postnatal|natal|absorbed|answered|forwarded|returned|waiting|waits for|"
    r"phase not complete|member_number|first_day|last_day|eurocent|not public|UTC|"
    r"integral prestatie|already claimed)\b"
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Cycle, str, str, Browser]]:
    pump = ThreadPump()
    for cycle in _cycle(pump, f"sqlite:///{tmp_path / 'g.db'}"):
        bsn, case_id = rejected(cycle)
        cycle.user("otto", Role.OPERATOR)
        service = cycle.service
        site = build_admin_site(
            cycle.store,
            SqlAdminStore(cycle.store.database, cycle.store.codec),
            service.layouts,
            None,
            service.clock,
            hasher=FAST,
            resolver=service.resolver,
            after_change=service.after_change,
            names=NAMES,
        )
        yield cycle, bsn, case_id, Browser(site, pump)


def _text(html: str) -> str:
    """What a reader sees: the page without its tags (and without the file's record view,
    which shows the file as it is)."""
    html = html.split("<h2>Inhoud van het bestand</h2>", maxsplit=1)[0]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_case_page_names_the_client_masked_and_unmasks_her_audited(
    world: tuple[Cycle, str, str, Browser],
) -> None:
    cycle, bsn, case_id, browser = world
    name, born = WOMEN[bsn]
    browser.login("otto")
    page = browser.get(f"/cases/{case_id}")
    assert page.status == 200
    shown = _text(page.text)
    assert "Cliënt" in shown
    assert name in shown
    assert born in shown
    assert "••••••" + bsn[-3:] in shown
    assert bsn not in page.text
    unmasked = browser.post(f"/cases/{case_id}/unmask", {"csrf": page.csrf()})
    assert unmasked.status == 200
    assert bsn in _text(unmasked.text)
    entries = cycle.rows("SELECT action FROM admin_audit WHERE subject = ?", case_id)
    assert ("unmask",) in entries


def test_the_case_page_names_participants_insurers_prestaties_and_the_pregnancy(
    world: tuple[Cycle, str, str, Browser],
) -> None:
    _, bsn, case_id, browser = world
    browser.login("otto")
    shown = _text(browser.get(f"/cases/{case_id}").text)
    assert "Zorgverzekeraar Voorbeeld (UZOVI 3311)" in shown
    assert "Verloskundigenpraktijk De Wieg (AGB 02001234)" in shown
    assert "Geboortezorg prenataal" in shown or "Postnatale zorg" in shown
    assert re.search(r"\b1101 — Volledige prenatale zorg\b", shown) or "Kraamzorg" in shown
    # The pregnancy as the woman and her (expected) birth date, not its key.
    assert re.search(WOMEN[bsn][0] + r", (bevallen op|uitgerekend rond) \d\d-\d\d-\d{4}", shown)
    assert not re.search(r"[0-9a-f]{16}-\d{4}-\d\d-\d\d", shown)
    # With its phases, each as the rules decided it.
    assert re.search(r"prenatale fase: (integraal gedeclareerd|wacht|monodisciplinair)", shown)


def test_every_text_on_the_case_and_its_form_is_dutch_with_euros_and_local_time(
    world: tuple[Cycle, str, str, Browser],
) -> None:
    _, _, case_id, browser = world
    browser.login("otto")
    for path in (f"/cases/{case_id}", f"/cases/{case_id}/resubmit", "/cases"):
        shown = _text(browser.get(path).text)
        assert not ENGLISH.search(shown), (path, ENGLISH.search(shown))
        assert not re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", shown), path  # no ISO UTC times
    shown = _text(browser.get(f"/cases/{case_id}").text)
    assert re.search(r"€ \d{1,3}(\.\d{3})*,\d\d", shown)


def test_the_correction_form_shows_the_values_the_insurer_got(
    world: tuple[Cycle, str, str, Browser],
) -> None:
    _, _, case_id, browser = world
    browser.login("otto")
    form = browser.get(f"/cases/{case_id}/resubmit").text
    shown = _text(form)
    assert re.search(r"Verzekerdennummer \(nu •+\d{3}\)", shown)
    assert "(nu 3311)" in shown
    assert re.search(r"Begindatum prestatie \(nu \d\d-\d\d-\d{4}\)", shown)
    assert re.search(r"Einddatum prestatie \(nu \d\d-\d\d-\d{4}\)", shown)
    assert re.search(r"Integrale prestatie \(nu IG000\d — ", shown)


def test_views_of_a_case_are_one_row_in_its_history(
    world: tuple[Cycle, str, str, Browser],
) -> None:
    _, _, case_id, browser = world
    browser.login("otto")
    for _ in range(6):
        browser.get(f"/cases/{case_id}")
    shown = _text(browser.get(f"/cases/{case_id}").text)
    history = shown.split("Geschiedenis")[-1]
    assert history.count("zaak bekeken") == 1
    assert "zaak bekeken (7×" in history


def test_the_api_speaks_dutch_about_the_case(world: tuple[Cycle, str, str, Browser]) -> None:
    cycle, _, case_id, browser = world
    root = cycle.user("root", Role.ADMINISTRATOR)
    token = cycle.wait(cycle.service.create_token("otto", timedelta(hours=1), root))
    view = json.loads(
        browser.get(f"/api/cases/{case_id}", {"Authorization": f"Bearer {token}"}).body
    )
    assert not ENGLISH.search(view["case"]["summary"])
    for decision in view["detail"]["decisions"]:
        assert not ENGLISH.search(" ".join(decision["reasonsText"]))
    assert view["client"]["bsn"].startswith("•")


def test_amounts_times_and_the_rules_words_in_dutch() -> None:
    assert euro_text(101000) == "€ 1.010,00"
    assert euro_text(123456789) == "€ 1.234.567,89"
    assert euro_text(-1250) == "€ -12,50"
    assert local_time(datetime(2026, 7, 1, 12, 0, tzinfo=UTC)) == "01-07-2026 14:00"
    assert local_time(datetime(2026, 1, 1, 12, 0, tzinfo=UTC)) == "01-01-2026 13:00"
    assert (
        dutch("phase not complete: the phase is not complete: it waits for the birth")
        == "fase niet compleet: de fase is niet compleet: ze wacht op de geboorte"
    )
    assert dutch("bundle broken; to be declared by the participant itself") == (
        "bundel gebroken; de deelnemer declareert het zelf"
    )
    assert "€ 1.520,00" in dutch(
        "all care by participants within their periods: one integral prestatie IG0002 "
        "(non-complex) at 152000 eurocent"
    )
    assert dutch("Al in het Nederlands.") == "Al in het Nederlands."


def test_history_groups_only_consecutive_views_by_the_same_person() -> None:
    at = datetime(2026, 7, 1, tzinfo=UTC)

    def entry(seq: int, actor: str, action: AuditAction) -> AuditEntry:
        return AuditEntry(
            seq, at + timedelta(minutes=seq), actor, "operator", action, "c", "", "", "", ""
        )

    rows = group_history(
        [
            entry(1, "otto", AuditAction.VIEW_CASE),
            entry(2, "otto", AuditAction.VIEW_CASE),
            entry(3, "anna", AuditAction.VIEW_CASE),
            entry(4, "otto", AuditAction.NOTE),
            entry(5, "otto", AuditAction.VIEW_CASE),
        ]
    )
    assert [(r.actor, r.action, r.count) for r in rows] == [
        ("otto", "view_case", 2),
        ("anna", "view_case", 1),
        ("otto", "note", 1),
        ("otto", "view_case", 1),
    ]


def test_the_gateway_names_what_its_config_and_catalogue_name(tmp_path: Path) -> None:
    from gateway.cli.demo import write_demo  # noqa: PLC0415

    config = load_config(write_demo(tmp_path / "demo", 18443))
    names = admin_names(config, CATALOGUE)
    assert names.participant("33001234") == "Kraamzorg Het Nest (demo) (AGB 33001234)"
    assert names.insurer("3311").startswith("Zorgverzekeraar Voorbeeld")
    assert names.prestatie("196203") == "196203 — Intake kraamzorg bij de cliënt thuis"
    assert "196204" in names.birth_codes


def test_search_shows_a_rejected_integral_line_as_rejected_with_its_retourcodes(
    world: tuple[Cycle, str, str, Browser],
) -> None:
    _, _, case_id, browser = world
    reference = case_id.partition(":")[2]
    browser.login("otto")
    form = browser.get("/search")
    found = browser.post("/search", {"csrf": form.csrf(), "reference": reference})
    assert found.status == 200
    rows = [
        _text(row)
        for row in found.text.split("<tr>")[1:]
        if "Integrale declaratieregel" in row or "integrale" in row.lower()
    ]
    claim = next(row for row in rows if f"ref. {reference}" in row)
    assert "afgewezen, in behandeling bij de IGO" in claim
    assert "0320" in claim
    assert not ENGLISH.search(_text(found.text))
    assert 'class="cases search"' in found.text  # fixed columns: it fits the window


def test_the_queue_and_the_pregnancy_page_name_what_they_show(
    world: tuple[Cycle, str, str, Browser],
) -> None:
    _, bsn, case_id, browser = world
    browser.login("otto")
    queue = _text(browser.get("/cases").text)
    assert "Zorgverzekeraar Voorbeeld (UZOVI 3311)" in queue
    assert "(AGB 02001234)" in queue
    assert not ENGLISH.search(queue)
    page = browser.get(f"/cases/{case_id}").text
    pregnancy = re.search(r'href="(/pregnancies/[^"]+)"', page)
    assert pregnancy is not None
    shown = _text(browser.get(pregnancy.group(1)).text)
    assert f"Zwangerschap: {WOMEN[bsn][0]}" in shown
    assert not ENGLISH.search(shown), ENGLISH.search(shown)
    assert not re.search(r"[0-9a-f]{16}-\d{4}-\d\d-\d\d", shown)


def test_the_api_answers_its_errors_in_dutch(world: tuple[Cycle, str, str, Browser]) -> None:
    cycle, _, case_id, browser = world
    root = cycle.user("root", Role.ADMINISTRATOR)
    token = cycle.wait(cycle.service.create_token("otto", timedelta(hours=1), root))
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    answers = [
        browser.get("/api/nope", auth),
        browser.get("/api/cases"),  # no credentials
        browser.request("DELETE", "/api/cases", b"", auth),
        browser.request("POST", f"/api/cases/{case_id}/actions/note", b'{"reden": 1}', auth),
        browser.request("POST", "/api/search", b'{"limit": "veel"}', auth),
        browser.request("POST", "/api/search", b"{not json", auth),
    ]
    for answer in answers:
        assert answer.status >= 400
        detail = json.loads(answer.body)["detail"]
        assert not re.search(r"\b(No|such|valid|required|Invalid|allowed|Field|Input)\b", detail), (
            detail
        )
