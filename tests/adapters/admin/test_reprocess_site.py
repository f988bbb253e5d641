"""Reprocessing an upload from the admin site and its JSON API: the confirmation page, the
result, who may, and the audit entry."""

from __future__ import annotations

import json
import shutil

import pytest

from gateway.ei import LayoutRegistry
from gateway.loading import load_layouts
from gateway.resources import schemas_dir
from tests.adapters.admin.conftest import AdminWorld
from tests.gateway.test_reprocess import KZ301, receive


@pytest.fixture(scope="module")
def misconfigured(tmp_path_factory: pytest.TempPathFactory) -> LayoutRegistry:
    directory = tmp_path_factory.mktemp("layouts")
    for path in (schemas_dir() / "layouts").glob("*.xml"):
        shutil.copy(path, directory / path.name)
    wrong = directory / "KZ301-3.2.xml"
    text = wrong.read_text(encoding="utf-8").replace('subversion="02"', 'subversion="01"', 1)
    wrong.write_text(text, encoding="utf-8")
    return load_layouts(directory)


def _audited(world: AdminWorld) -> list[tuple[str, str | None, str]]:
    return [
        (e.action, e.subject, e.actor)
        for e in world.pump.wait(world.admin.audit_entries())
        if e.action == "reprocess"
    ]


def test_the_case_page_offers_it_and_the_page_reprocesses(
    world: AdminWorld, misconfigured: LayoutRegistry
) -> None:
    traceer = receive(world.pump, world.store, misconfigured, KZ301.read_bytes())
    browser = world.browser()
    assert browser.login("otto").status == 303
    case = browser.get(f"/cases/intake_rejected:{traceer}").text
    assert f"/uploads/{traceer}/reprocess" in case
    page = browser.get(f"/uploads/{traceer}/reprocess")
    assert page.status == 200
    assert "opnieuw gecontroleerd met de layouts" in page.text
    missing_reason = browser.post(f"/uploads/{traceer}/reprocess", {"csrf": page.csrf()})
    assert missing_reason.status == 400
    assert _audited(world) == []
    done = browser.post(
        f"/uploads/{traceer}/reprocess", {"csrf": page.csrf(), "reason": "KZ301-layout hersteld"}
    )
    assert done.status == 200, done.text
    assert "nu goedgekeurd" in done.text
    assert _audited(world) == [("reprocess", traceer, "otto")]
    lines = world.pump.wait(world.store.declared_lines(traceer))
    assert lines


def test_a_file_still_invalid_is_said_so(world: AdminWorld) -> None:
    browser = world.browser()
    assert browser.login("otto").status == 303
    traceer = world.seeded.intake_rejected
    page = browser.get(f"/uploads/{traceer}/reprocess")
    done = browser.post(f"/uploads/{traceer}/reprocess", {"csrf": page.csrf(), "reason": "x"})
    assert done.status == 200
    assert "nog steeds technisch afgekeurd" in done.text
    assert _audited(world) == [("reprocess", traceer, "otto")]


def test_the_api(world: AdminWorld) -> None:
    auth = {"Authorization": f"Bearer {world.token('otto')}", "Content-Type": "application/json"}
    traceer = world.seeded.intake_rejected
    answer = world.browser().request(
        "POST", f"/api/uploads/{traceer}/reprocess", json.dumps({"reason": "x"}).encode(), auth
    )
    assert answer.status == 200, answer.body
    body = json.loads(answer.body)
    assert body["outcome"] == "still_rejected"
    assert body["traceerId"] == traceer
    assert body["linesAdded"] == 0
    unknown = world.browser().request(
        "POST", "/api/uploads/nope/reprocess", json.dumps({"reason": "x"}).encode(), auth
    )
    assert unknown.status == 404
    assert unknown.header("content-type") == "application/problem+json"
    no_reason = world.browser().request("POST", f"/api/uploads/{traceer}/reprocess", b"{}", auth)
    assert no_reason.status == 400


def test_a_viewer_may_not(world: AdminWorld) -> None:
    traceer = world.seeded.intake_rejected
    browser = world.browser()
    assert browser.login("vera").status == 303
    assert browser.get(f"/uploads/{traceer}/reprocess").status == 403
    auth = {"Authorization": f"Bearer {world.token('vera')}"}
    api = world.browser().request(
        "POST", f"/api/uploads/{traceer}/reprocess", json.dumps({"reason": "x"}).encode(), auth
    )
    assert api.status == 403
    assert _audited(world) == []
