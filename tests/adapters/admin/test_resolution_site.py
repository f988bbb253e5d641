"""The admin site's pages and API for rejected integral lines, in memory: the correction
form refuses a post without its CSRF token and shows what was wrong without losing what
was typed; the API takes the corrected fields; the pregnancy page and its API show every
line; a viewer gets neither the form nor the action."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from adapters.admin.site import build_admin_site
from adapters.storage.admin import SqlAdminStore
from adapters.storage.search import SqlSearchStore
from gateway.admin.accounts import Role
from gateway.admin.service import AdminService
from gateway.masking import mask_value
from tests.adapters.admin.conftest import FAST, Browser
from tests.adapters.storage.test_resolution import RIGHT_MEMBER, Cycle, _cycle, rejected
from tests.threadpump import ThreadPump


@pytest.fixture
def rejected_world(tmp_path: Path) -> Iterator[tuple[Cycle, str, Browser]]:
    pump = ThreadPump()
    for cycle in _cycle(pump, f"sqlite:///{tmp_path / 'g.db'}"):
        _, case_id = rejected(cycle)
        cycle.user("otto", Role.OPERATOR)
        cycle.user("wim", Role.VIEWER)
        service = cycle.service
        site = build_admin_site(
            AdminService(
                SqlAdminStore(cycle.store.database, cycle.store.codec),
                cycle.store,
                service.layouts,
                service.clock,
                hasher=FAST,
                resolver=service.resolver,
                after_change=service.after_change,
                search_store=SqlSearchStore(cycle.store.database, cycle.store.codec),
            )
        )
        yield cycle, case_id, Browser(site, pump)


def test_the_correction_form_is_csrf_protected_and_keeps_what_was_typed(
    rejected_world: tuple[Cycle, str, Browser],
) -> None:
    cycle, case_id, browser = rejected_world
    browser.login("otto")
    form = browser.get(f"/cases/{case_id}/resubmit")
    assert form.status == 200
    assert 'name="member_number"' in form.text
    assert "IG0002" in form.text or "IG0001" in form.text  # the catalogue's choices
    refused = browser.post(f"/cases/{case_id}/resubmit", {"member_number": RIGHT_MEMBER})
    assert refused.status == 403
    wrong = browser.post(
        f"/cases/{case_id}/resubmit", {"csrf": form.csrf(), "member_number": "<b>x</b>"}
    )
    assert wrong.status == 400
    assert "Verzekerdennummer heeft niet de juiste vorm" in wrong.text
    assert "<b>x</b>" not in wrong.text  # typed text comes back escaped
    assert "&lt;b&gt;x&lt;/b&gt;" in wrong.text
    done = browser.post(
        f"/cases/{case_id}/resubmit", {"csrf": form.csrf(), "member_number": RIGHT_MEMBER}
    )
    assert done.status in (302, 303)
    page = browser.get(done.header("location"))
    assert "verbeterd ingediend" in page.text
    assert mask_value(RIGHT_MEMBER) in page.text  # the versions table shows the difference
    assert RIGHT_MEMBER not in page.text  # masked: it is client data
    assert cycle.rows("SELECT COUNT(*) FROM integral_claims WHERE corrects IS NOT NULL") == [(1,)]


def test_a_viewer_sees_the_case_but_gets_no_form_and_no_action(
    rejected_world: tuple[Cycle, str, Browser],
) -> None:
    _, case_id, browser = rejected_world
    browser.login("wim")
    page = browser.get(f"/cases/{case_id}")
    assert page.status == 200
    assert "Oorspronkelijke regels" in page.text
    assert "Verbeteren en opnieuw indienen" not in page.text
    assert browser.get(f"/cases/{case_id}/resubmit").status == 403
    token = browser.get(f"/cases/{case_id}").csrf()
    posted = browser.post(
        f"/cases/{case_id}/resubmit", {"csrf": token, "member_number": RIGHT_MEMBER}
    )
    assert posted.status == 403


def test_the_api_resubmits_with_fields_and_shows_the_pregnancy(
    rejected_world: tuple[Cycle, str, Browser],
) -> None:
    cycle, case_id, browser = rejected_world
    root = cycle.user("root", Role.ADMINISTRATOR)
    token = cycle.wait(cycle.service.create_token("otto", timedelta(hours=1), root))
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    view = json.loads(browser.get(f"/api/cases/{case_id}", auth).body)
    assert view["detail"]["claim"]["reference"] == case_id.partition(":")[2]
    assert {line["outcome"] for line in view["detail"]["lines"]} == {"review"}
    bad = browser.request(
        "POST",
        f"/api/cases/{case_id}/actions/resubmit",
        json.dumps({"fields": {"bsn": "123456782"}}).encode(),
        auth,
    )
    assert bad.status == 400
    assert json.loads(bad.body)["code"] == "veld-onbekend"
    done = browser.request(
        "POST",
        f"/api/cases/{case_id}/actions/resubmit",
        json.dumps({"fields": {"member_number": RIGHT_MEMBER}, "reason": "navraag"}).encode(),
        auth,
    )
    assert done.status == 200, done.text
    assert json.loads(done.body)["state"] == "resubmitted"
    pregnancy = view["detail"]["pregnancy"]
    shown = json.loads(browser.get(f"/api/pregnancies/{pregnancy}", auth).body)
    assert {line["traceerId"] for line in view["detail"]["lines"]} <= {
        line["traceerId"] for line in shown["lines"]
    }
    assert len(shown["claims"]) >= 2  # the rejected line and its corrected version
    assert browser.get("/api/pregnancies/nope", auth).status == 404
    browser.login("otto")
    page = browser.get(f"/pregnancies/{pregnancy}")
    assert page.status == 200
    assert "Alle regels van deze zwangerschap" in page.text
