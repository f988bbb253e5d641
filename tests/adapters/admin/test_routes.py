"""Every route of the admin site and its JSON API against every method.

A method a route does not declare is answered 405 with an ``Allow`` header naming the
ones it does, and does nothing; a declared method that changes something needs the CSRF
token even when it is not POST; GET and HEAD only read. The table below is the site's
contract written out by hand, so a route added to the site without a line here fails
:func:`test_every_route_of_the_site_is_in_this_table`."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest

from adapters.admin.handlers import USER_OPERATIONS
from adapters.admin.routes import ADMIN_ROUTES
from gateway.admin.batches import BatchControl
from gateway.admin.cases import CaseAction, CaseKind, case_id
from tests.adapters.admin.conftest import AdminWorld, Browser

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# Audit actions a read may write (reads of client data are audited too).
READS = {"view_queue", "view_case", "view_pregnancy", "view_audit", "export_audit"}
# Query strings that would make an action do its work if it were reached.
ACT = "?reason=weggezet+door+een+test"
BULK = "?kind=parked&action=write_off&reason=weggezet+door+een+test"

ROUTES: list[tuple[str, str]] = [
    ("/", "GET"),
    ("/static/admin.css", "GET"),
    ("/login", "GET POST"),
    ("/logout", "POST"),
    ("/cases", "GET"),
    ("/cases/{case}", "GET"),
    ("/cases/{case}/unmask", "POST"),
    *[(f"/cases/{{case}}/{action.value}{ACT}", "GET POST") for action in CaseAction],
    ("/pregnancies/{pregnancy}", "GET"),
    ("/uploads/{traceer}/reprocess", "GET POST"),
    ("/search", "GET POST"),
    ("/audit", "GET"),
    ("/audit/export", "GET"),
    ("/users", "GET"),
    *[(f"/users/vera/{operation}", "POST") for operation in USER_OPERATIONS],
    (f"/bulk{BULK}", "GET POST"),
    ("/batches", "GET"),
    ("/batches/1", "GET"),
    *[(f"/batches/1/{control.value}", "POST") for control in BatchControl],
    ("/api/me", "GET"),
    ("/api/cases", "GET"),
    ("/api/cases/{case}", "GET"),
    ("/api/cases/{case}/unmask", "POST"),
    *[(f"/api/cases/{{case}}/actions/{action.value}", "POST") for action in CaseAction],
    ("/api/pregnancies/{pregnancy}", "GET"),
    ("/api/uploads/{traceer}/reprocess", "POST"),
    ("/api/search", "POST"),
    ("/api/audit", "GET"),
    ("/api/audit/verify", "GET"),
    ("/api/users", "GET"),
    *[(f"/api/users/vera/{operation}", "POST") for operation in USER_OPERATIONS],
    ("/api/batches", "GET POST"),
    ("/api/batches/preview", "POST"),
    ("/api/batches/1", "GET"),
    *[(f"/api/batches/1/{control.value}", "POST") for control in BatchControl],
]


def _allowed(methods: str) -> set[str]:
    declared = set(methods.split())
    return declared | {"HEAD"} if "GET" in declared else declared


def _audit_actions(world: AdminWorld) -> list[str]:
    return [e.action for e in world.pump.wait(world.admin.audit_entries())]


def _logged_in(world: AdminWorld) -> Browser:
    browser = world.browser()
    assert browser.login("bea").status == 303  # an administrator: every route is open to her
    return browser


def _path(world: AdminWorld, template: str) -> str:
    case = quote(case_id(CaseKind.PARKED, world.seeded.parked), safe=":")
    return template.format(
        case=case, pregnancy="onbekende-zwangerschap", traceer=world.seeded.intake_rejected
    )


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(("template", "methods"), ROUTES, ids=[t for t, _ in ROUTES])
def test_each_route_answers_only_its_methods(
    world: AdminWorld, template: str, methods: str, method: str
) -> None:
    browser = _logged_in(world)
    path = _path(world, template)
    before = _audit_actions(world)
    # A session cookie and no CSRF token: what a cross-site request can bring.
    response = browser.request(method, path, b"reason=x" if method != "HEAD" else b"")
    added = _audit_actions(world)[len(before) :]
    allowed = _allowed(methods)
    if method not in allowed:
        assert response.status == 405, response.body
        assert set(response.header("allow").replace(" ", "").split(",")) == allowed
        assert added == []
    elif method in ("GET", "HEAD"):
        assert response.status != 405
        assert set(added) <= READS
        if method == "HEAD":
            assert response.body == b""
    else:
        assert response.status == 403, response.body
        assert added == []
    # Whatever was asked, the case is where the seed left it.
    assert not any(a in {"write_off", "note", "retry", "reopen", "reprocess"} for a in added)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS"])
def test_other_methods_are_refused_before_the_login_too(world: AdminWorld, method: str) -> None:
    response = world.browser().request(method, "/cases")
    assert response.status == 405
    assert response.header("allow").replace(" ", "").split(",") == ["GET", "HEAD"]
    api = world.browser().request(method, "/api/cases")
    assert (api.status, api.header("content-type")) == (405, "application/problem+json")
    assert json.loads(api.body)["status"] == 405


def test_a_case_action_by_another_method_does_nothing(world: AdminWorld) -> None:
    """The attack that was found: a session cookie, no token, and a method that is not
    POST, on an action that changes a case."""
    browser = _logged_in(world)
    path = _path(world, "/cases/{case}/write_off" + ACT)
    for method in ("HEAD", "PUT", "PATCH", "DELETE"):
        browser.request(method, path)
        browser.request(method, _path(world, "/cases/{case}/note" + ACT))
    page = browser.get(_path(world, "/cases/{case}")).text
    assert "weggezet door een test" not in page
    assert not {"write_off", "note"} & set(_audit_actions(world))


def test_every_route_of_the_site_is_in_this_table() -> None:
    tested: dict[str, set[str]] = {}
    for template, methods in ROUTES:
        pattern = template.partition("?")[0]
        for action in CaseAction:
            pattern = pattern.replace(f"/{action.value}", "/{action}")
        for control in BatchControl:
            pattern = pattern.replace(f"/{control.value}", "/{control}")
        pattern = pattern.replace("/batches/1", "/batches/{batch}")
        pattern = re.sub(r"/users/vera/\w+$", "/users/{name}/{operation}", pattern)
        tested.setdefault(pattern, set()).update(methods.split())
    declared: dict[str, set[str]] = {}
    for route in ADMIN_ROUTES:
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        declared.setdefault(path, set()).update(route.methods)
    assert declared == tested
