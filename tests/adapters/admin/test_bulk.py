"""Bulk actions on the admin site and its JSON API: the button on the filtered queue, the
confirmation that lists exactly what will happen, CSRF and roles, a changed selection,
the batch page with its progress and controls, and the API's batch routes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from adapters.admin.demo import seed_parked
from gateway.admin.bulk import BatchRunner
from gateway.admin.cases import CaseKind, case_id
from gateway.ei import LayoutRegistry
from gateway.ports.outbox import OutboundState
from tests.adapters.admin.conftest import AdminWorld, Browser
from tests.adapters.admin.test_site import logged_in

DOWN = "4444"
FILTER = f"kind=parked&insurer={DOWN}"


@pytest.fixture
def down(world: AdminWorld, layouts: LayoutRegistry) -> list[str]:
    """Three files for insurer 4444, parked while it was down."""
    from tests.adapters.admin.conftest import T0  # noqa: PLC0415 - the world's own time

    parked: list[str] = world.pump.wait(
        seed_parked(world.store, layouts, T0, tag="down", insurer=DOWN, count=3)
    )
    return parked


def run_batches(world: AdminWorld) -> int:
    assert world.bulk is not None
    done: int = world.pump.wait(BatchRunner(world.bulk).run_once())
    return done


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match is not None, name
    return match.group(1)


def confirm_form(browser: Browser, action: str = "retry") -> dict[str, str]:
    page = browser.get(f"/bulk?{FILTER}&action={action}")
    assert page.status == 200
    return {
        "csrf": page.csrf(),
        "action": action,
        "selection": hidden(page.text, "selection"),
        "kind": "parked",
        "insurer": DOWN,
    }


def outbound_state(world: AdminWorld, ref: str) -> OutboundState:
    outbound = world.pump.wait(world.store.outbox.get(ref))
    assert outbound is not None
    state: OutboundState = outbound.state
    return state


def test_an_administrator_retries_everything_parked_for_an_insurer(
    world: AdminWorld, down: list[str]
) -> None:
    browser = logged_in(world, "bea")
    queue = browser.get(f"/cases?{FILTER}").text
    assert 'action="/bulk"' in queue
    assert '<option value="retry">Opnieuw aanbieden</option>' in queue
    assert "Bulkactie voorbereiden" in queue
    assert 'action="/bulk"' not in browser.get("/cases").text  # only on a filtered queue

    page = browser.get(f"/bulk?{FILTER}&action=retry")
    assert page.status == 200
    text = page.text
    assert "Bulkactie: Opnieuw aanbieden op 3 zaken" in text
    assert "Voor elk van deze 3 zaken gaat het bestand terug in de wachtrij" in text
    assert "Geparkeerd na mislukte verzending: 3" in text
    for ref in down:
        assert case_id(CaseKind.PARKED, ref) in text
    assert world.seeded.parked not in text  # insurer 3311's file is not in it
    assert "Bevestigen: opnieuw aanbieden voor 3 zaken" in text
    # Nothing happens on viewing the confirmation.
    assert browser.get("/batches").text.count('href="/batches/') == 0

    done = browser.post("/bulk", confirm_form(browser))
    assert (done.status, done.header("location")) == (303, "/batches/1")
    batch = browser.get("/batches/1").text
    assert '<meta http-equiv="refresh" content="2">' in batch  # running: the page refreshes
    assert '<dd class="remaining">3</dd>' in batch
    assert run_batches(world) == 4
    assert {outbound_state(world, ref) for ref in down} == {OutboundState.QUEUED}
    assert outbound_state(world, world.seeded.parked) is OutboundState.PARKED
    batch = browser.get("/batches/1").text
    assert "klaar" in batch
    assert '<dd class="done">3</dd>' in batch
    assert '<dd class="remaining">0</dd>' in batch
    assert "http-equiv" not in batch
    assert "#1" in browser.get("/batches").text


def test_a_bulk_action_without_its_csrf_token_is_refused_and_makes_no_batch(
    world: AdminWorld, down: list[str]
) -> None:
    browser = logged_in(world, "bea")
    form = confirm_form(browser)
    for bad in ("", "not-the-token"):
        response = browser.post("/bulk", {**form, "csrf": bad})
        assert response.status == 403
    assert world.pump.wait(world.admin.audit_entries(subject="batch:1")) == []
    run_batches(world)
    assert {outbound_state(world, ref) for ref in down} == {OutboundState.PARKED}


@pytest.mark.parametrize("name", ["otto", "vera"])
def test_operators_and_viewers_get_no_bulk_actions(
    world: AdminWorld, down: list[str], name: str
) -> None:
    admin = logged_in(world, "bea")
    form = confirm_form(admin)
    browser = logged_in(world, name)
    assert 'action="/bulk"' not in browser.get(f"/cases?{FILTER}").text
    assert "Bulkacties" not in browser.get("/cases").text
    assert browser.get(f"/bulk?{FILTER}&action=retry").status == 403
    page = browser.get("/cases")
    assert browser.post("/bulk", {**form, "csrf": page.csrf()}).status == 403
    token = world.token(name)
    api = world.browser().request(
        "POST",
        "/api/batches/preview",
        json.dumps({"filter": {"insurer": DOWN}, "action": "retry"}).encode(),
        {"Authorization": f"Bearer {token}"},
    )
    assert api.status == 403
    run_batches(world)
    assert {outbound_state(world, ref) for ref in down} == {OutboundState.PARKED}


def test_a_selection_that_changed_since_the_confirmation_is_shown_again(
    world: AdminWorld, down: list[str], layouts: LayoutRegistry
) -> None:
    from tests.adapters.admin.conftest import T0  # noqa: PLC0415

    browser = logged_in(world, "bea")
    form = confirm_form(browser)
    world.pump.wait(seed_parked(world.store, layouts, T0, tag="late", insurer=DOWN))
    response = browser.post("/bulk", form)
    assert response.status == 409
    assert "De selectie is veranderd" in response.text
    assert "op 4 zaken" in response.text
    # Confirming the new list makes the batch.
    again = browser.post("/bulk", {**form, "selection": hidden(response.text, "selection")})
    assert again.status == 303


def test_a_bulk_write_off_needs_a_reason(world: AdminWorld, down: list[str]) -> None:
    browser = logged_in(world, "bea")
    form = confirm_form(browser, "write_off")
    refused = browser.post("/bulk", {**form, "reason": "  "})
    assert refused.status == 400
    assert "Vul een reden in" in refused.text
    ok = browser.post("/bulk", {**form, "reason": "Verzekeraar 4444 declareert op papier"})
    assert ok.status == 303
    run_batches(world)
    entries = world.pump.wait(world.admin.audit_entries())
    offs = [e for e in entries if e.action == "write_off"]
    assert len(offs) == 3
    assert {e.detail for e in offs} == {"Verzekeraar 4444 declareert op papier"}


def test_the_batch_page_pauses_resumes_and_cancels_with_csrf(
    world: AdminWorld, down: list[str]
) -> None:
    browser = logged_in(world, "bea")
    browser.post("/bulk", confirm_form(browser))
    page = browser.get("/batches/1")
    assert 'action="/batches/1/pause"' in page.text
    assert 'action="/batches/1/resume"' not in page.text
    assert browser.post("/batches/1/pause", {}).status == 403  # no CSRF token
    paused = browser.post("/batches/1/pause", {"csrf": page.csrf()})
    assert (paused.status, paused.header("location")) == (303, "/batches/1?done=pause")
    page = browser.get("/batches/1?done=pause")
    assert "gepauzeerd" in page.text
    assert 'action="/batches/1/resume"' in page.text
    assert run_batches(world) == 0
    viewer = logged_in(world, "vera")
    seen = viewer.get("/batches/1")
    assert seen.status == 200  # a viewer sees the progress...
    assert 'action="/batches/1/' not in seen.text  # ...but has no controls
    assert viewer.post("/batches/1/resume", {"csrf": seen.csrf()}).status == 403
    browser.post("/batches/1/cancel", {"csrf": page.csrf()})
    page = browser.get("/batches/1")
    assert "gestopt" in page.text
    assert '<dd class="remaining">3</dd>' in page.text
    assert browser.post("/batches/1/resume", {"csrf": page.csrf()}).status == 409
    assert browser.get("/batches/99").status == 404
    assert browser.get("/batches/x").status == 404


def api_call(
    world: AdminWorld, token: str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    response = world.browser().request(
        method,
        path,
        b"" if body is None else json.dumps(body).encode(),
        {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    return response.status, json.loads(response.body) if response.body else None


def test_the_api_previews_creates_and_steers_a_batch(world: AdminWorld, down: list[str]) -> None:
    token = world.token("bea")
    request = {"filter": {"kinds": ["parked"], "insurer": DOWN}, "action": "retry"}
    status, preview = api_call(world, token, "POST", "/api/batches/preview", request)
    assert status == 200
    assert preview["count"] == 3
    assert preview["kinds"] == {"parked": 3}
    assert [c["id"] for c in preview["cases"]] == [case_id(CaseKind.PARKED, r) for r in down]
    assert {c["insurer"] for c in preview["cases"]} == {DOWN}
    assert "Voor elk van deze 3 zaken" in preview["consequence"]

    status, problem = api_call(world, token, "POST", "/api/batches", request)
    assert (status, problem["code"]) == (400, "selectie-ontbreekt")
    wrong = {**request, "selection": "0" * 32}
    status, problem = api_call(world, token, "POST", "/api/batches", wrong)
    assert (status, problem["code"]) == (409, "selectie-gewijzigd")
    assert problem["preview"]["selection"] == preview["selection"]
    status, batch = api_call(
        world, token, "POST", "/api/batches", {**request, "selection": preview["selection"]}
    )
    assert status == 201
    assert (batch["state"], batch["progress"]["remaining"]) == ("running", 3)

    status, paused = api_call(world, token, "POST", f"/api/batches/{batch['id']}/pause")
    assert (status, paused["state"]) == (200, "paused")
    status, problem = api_call(world, token, "POST", f"/api/batches/{batch['id']}/pause")
    assert (status, problem["code"]) == (409, "batch-past-niet")
    api_call(world, token, "POST", f"/api/batches/{batch['id']}/resume")
    run_batches(world)
    status, done = api_call(world, token, "GET", f"/api/batches/{batch['id']}")
    assert done["state"] == "finished"
    assert done["progress"] == {"done": 3, "skipped": 0, "failed": 0, "remaining": 0, "total": 3}
    assert [i["outcome"] for i in done["items"]] == ["done"] * 3
    status, listed = api_call(world, token, "GET", "/api/batches")
    assert [b["id"] for b in listed["batches"]] == [batch["id"]]


def test_the_api_refuses_bad_batch_requests(world: AdminWorld, down: list[str]) -> None:
    token = world.token("bea")
    bodies: list[dict[str, Any]] = [
        {"action": "retry", "filter": {"insurer": "abc"}},
        {"action": "retry", "extra": 1},
        {"filter": {}},
    ]
    for body in bodies:
        status, problem = api_call(world, token, "POST", "/api/batches/preview", body)
        assert (status, problem["code"]) == (400, "ongeldig-verzoek"), body
    status, _ = api_call(world, token, "POST", "/api/batches/preview", {"action": "nope"})
    assert status == 404
    status, problem = api_call(world, token, "POST", "/api/batches/1/explode")
    assert status == 404
    # With the session cookie instead of a token, a POST needs the X-CSRF-Token header.
    browser = logged_in(world, "bea")
    response = browser.request(
        "POST",
        "/api/batches/preview",
        json.dumps({"action": "retry"}).encode(),
        {"Content-Type": "application/json"},
    )
    assert response.status == 403


def test_an_action_that_needs_input_per_case_is_refused_in_bulk(
    world: AdminWorld, down: list[str]
) -> None:
    browser = logged_in(world, "bea")
    page = browser.get("/bulk?kind=rejected_line&action=resubmit")
    assert page.status == 400
    assert "vraagt per zaak eigen invoer en kan niet in bulk" in page.text
    token = world.token("bea")
    status, problem = api_call(world, token, "POST", "/api/batches/preview", {"action": "resubmit"})
    assert (status, problem["code"]) == (400, "niet-in-bulk")
