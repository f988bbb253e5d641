"""Search through the admin service and the site: who may search and unmask, the audit
entry of every search (the BSN never in it), the form (POST, CSRF, escaping), the JSON
API, and the BSN kept out of the logs, the access log, URLs and answers."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from collections.abc import Iterator
from datetime import date

import pytest
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from zope.interface import provider

from adapters.admin.demo import DEMO_BSN
from adapters.storage.search import SqlSearchStore
from gateway.admin.accounts import Actor, Role
from gateway.admin.audit import AuditAction
from gateway.admin.search import MASKED_BSN, HitKind, SearchQuery, SearchRefusedError
from gateway.lines import DeclaredLine
from gateway.ports.admin import NotAllowedError
from tests.adapters.admin.conftest import AdminWorld, Browser
from tests.adapters.storage.builders import upload

OTHER_BSN = "999990007"
XSS_REFERENCE = "REF<b>x</b>"  # refused as a key, but stored references are shown escaped


def _line(n: int, bsn: str, **changes: object) -> DeclaredLine:
    base = DeclaredLine(
        traceer_id="up-0042",
        record_number=n,
        participant="33001234",
        standard="KZ301",
        bsn=bsn,
        birth_date=date(1990, 1, 1),
        insurer="3311",
        prestatiecodelijst="044",
        prestatiecode="196202",
        prestatie_date=date(2026, 10, n),
        prestatie_end_date=None,
        amount=1000,
        reference=f"R-{n}",
        previous_reference=None,
        performer=None,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def searchable(world: AdminWorld) -> AdminWorld:
    lines = [
        _line(1, DEMO_BSN),
        _line(2, DEMO_BSN, reference="<script>alert(1)</script>"),
        _line(3, OTHER_BSN),
    ]
    world.pump.wait(world.store.record_upload(upload(42, invoice="F-42"), [], lines))
    world.service.search_store = SqlSearchStore(world.store.database, world.store.codec)
    return world


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """Every Twisted log event and Python log record while the test runs, as text."""
    texts: list[str] = []

    @provider(ILogObserver)
    def observe(event: LogEvent) -> None:
        texts.append(repr(event))
        texts.append(formatEvent(event))

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            texts.append(record.getMessage())

    handler = Handler(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    globalLogPublisher.addObserver(observe)
    try:
        yield texts
    finally:
        globalLogPublisher.removeObserver(observe)
        root.removeHandler(handler)
        root.setLevel(old_level)


def _entries(world: AdminWorld) -> list[tuple[str, str, str]]:
    return [(e.actor, e.action, e.detail) for e in world.pump.wait(world.admin.audit_entries())]


# --- the service -----------------------------------------------------------------------


def test_a_viewer_may_search_and_sees_bsns_masked(searchable: AdminWorld) -> None:
    vera = Actor("vera", Role.VIEWER, "10.0.0.7")
    result = searchable.pump.wait(searchable.service.search(vera, SearchQuery(bsn=DEMO_BSN)))
    lines = [h for h in result.hits if h.kind is HitKind.LINE]
    assert sorted(h.record_number or 0 for h in lines) == [1, 2]
    assert {h.bsn for h in lines} == {MASKED_BSN}
    assert not result.unmasked
    with pytest.raises(NotAllowedError):
        searchable.pump.wait(
            searchable.service.search(vera, SearchQuery(bsn=DEMO_BSN), unmask=True)
        )
    actor, action, detail = _entries(searchable)[-1]
    assert (actor, action, detail) == ("vera", AuditAction.SEARCH.value, "zoeken: zoeken op BSN")


def test_an_operator_may_unmask_and_that_is_audited_as_an_unmasking(
    searchable: AdminWorld,
) -> None:
    otto = Actor("otto", Role.OPERATOR, "10.0.0.7")
    query = SearchQuery(bsn=DEMO_BSN, factuurnummer="F-42")
    result = searchable.pump.wait(searchable.service.search(otto, query, unmask=True))
    assert {h.bsn for h in result.hits if h.kind is HitKind.LINE} == {DEMO_BSN}
    actor, action, detail = _entries(searchable)[-1]
    assert (actor, action) == ("otto", AuditAction.UNMASK.value)
    assert detail == "zoeken: factuurnummer=F-42, zoeken op BSN"
    assert all(DEMO_BSN not in str(entry) for entry in _entries(searchable))


def test_a_search_refused_is_not_run_and_does_not_repeat_the_bsn(
    searchable: AdminWorld,
) -> None:
    vera = Actor("vera", Role.VIEWER, "10.0.0.7")
    before = len(_entries(searchable))
    for query in (SearchQuery(), SearchQuery(bsn="123456789"), SearchQuery(insurer="33")):
        error = searchable.pump.wait_error(searchable.service.search(vera, query))
        assert isinstance(error, SearchRefusedError)
        assert "123456789" not in str(error)
    assert len(_entries(searchable)) == before


def test_the_limit_bounds_the_hits_and_says_more_matched(searchable: AdminWorld) -> None:
    vera = Actor("vera", Role.VIEWER, "10.0.0.7")
    query = SearchQuery(participant="33001234")
    result = searchable.pump.wait(searchable.service.search(vera, query, limit=2))
    assert (len(result.hits), result.more, result.limit) == (2, True, 2)


# --- the site --------------------------------------------------------------------------


def _logged_in(world: AdminWorld, name: str) -> Browser:
    browser = world.browser()
    assert browser.login(name).status == 303
    return browser


def test_the_search_page_posts_with_csrf_and_escapes_what_it_shows(
    searchable: AdminWorld, logged: list[str]
) -> None:
    access = io.StringIO()
    searchable.site.logFile = access
    browser = _logged_in(searchable, "vera")
    page = browser.get("/search")
    assert page.status == 200
    assert 'method="post" action="/search"' in page.text
    assert 'href="/search"' in browser.get("/cases").text  # in the navigation
    refused = browser.post("/search", {"csrf": "wrong", "bsn": DEMO_BSN})
    assert refused.status == 403
    answer = browser.post("/search", {"csrf": page.csrf(), "bsn": DEMO_BSN})
    assert answer.status == 200
    assert "decl-42.asc" in answer.text
    assert "Prestatieregel" in answer.text
    assert "<script>alert(1)</script>" not in answer.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text
    assert MASKED_BSN in answer.text
    assert DEMO_BSN not in answer.text  # not in the results, nor refilled in the form
    assert "BSN tonen" not in answer.text  # a viewer may not unmask
    bad = browser.post("/search", {"csrf": page.csrf(), "bsn": "123456780"})
    assert bad.status == 400
    assert "elfproef" in bad.text
    assert "123456780" not in bad.text
    assert DEMO_BSN not in access.getvalue()
    assert "123456780" not in access.getvalue()
    assert "/search" in access.getvalue()  # the access log was written
    assert all(DEMO_BSN not in text and "123456780" not in text for text in logged)
    assert all(DEMO_BSN not in str(entry) for entry in _entries(searchable))
    assert ("vera", "search", "zoeken: zoeken op BSN") in _entries(searchable)


def test_an_operator_unmasks_on_the_page(searchable: AdminWorld) -> None:
    browser = _logged_in(searchable, "otto")
    page = browser.get("/search")
    assert "BSN tonen" in page.text
    answer = browser.post("/search", {"csrf": page.csrf(), "bsn": OTHER_BSN, "unmask": "1"})
    assert answer.status == 200
    assert OTHER_BSN in answer.text
    assert ("otto", "unmask", "zoeken: zoeken op BSN") in _entries(searchable)


def test_a_hit_links_to_its_case(searchable: AdminWorld) -> None:
    browser = _logged_in(searchable, "vera")
    page = browser.get("/search")
    answer = browser.post("/search", {"csrf": page.csrf(), "retourcode": "0040"})
    rejected = searchable.seeded.intake_rejected
    assert f'href="/cases/intake_rejected:{rejected}"' in answer.text


def test_the_json_api_searches_by_post_only(searchable: AdminWorld, logged: list[str]) -> None:
    auth = {"Authorization": f"Bearer {searchable.token('otto')}"}
    api = searchable.browser()
    assert api.get("/api/search?bsn=" + DEMO_BSN, auth).status == 405
    body = json.dumps({"bsn": DEMO_BSN, "traceerId": "up-0042"}).encode()
    answer = api.request("POST", "/api/search", body, auth)
    assert answer.status == 200
    found = json.loads(answer.body)
    assert found["more"] is False
    assert found["unmasked"] is False
    assert {(h["kind"], h["recordNumber"]) for h in found["hits"]} == {
        ("upload", None),
        ("line", 1),
        ("line", 2),
    }
    assert all(h["bsn"] == MASKED_BSN for h in found["hits"] if h["kind"] == "line")
    bad = api.request("POST", "/api/search", json.dumps({"bsn": "12345678X"}).encode(), auth)
    assert bad.status == 400
    assert json.loads(bad.body)["code"] == "ongeldig-bsn"
    too_long = api.request("POST", "/api/search", json.dumps({"bsn": "1" * 20}).encode(), auth)
    assert too_long.status == 400
    assert "1" * 20 not in too_long.text
    assert all(DEMO_BSN not in text and "12345678X" not in text for text in logged)
