"""The admin site in memory: login and sessions, security headers, CSRF, escaping of what
files bring in, roles, the actions through the forms, and the JSON API."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from adapters.admin.demo import DEMO_BSN
from adapters.admin.site import MAX_BODY_BYTES
from gateway.admin.cases import CaseKind, case_id
from gateway.ports.outbox import OutboundState
from tests.adapters.admin.conftest import XSS_COMMENT, XSS_NAME, AdminWorld, Browser
from tests.adapters.disk_scan import files_holding, open_files_holding
from tests.adapters.inmemory_http import connect

SESSION = "igo_admin_session"


def case_path(kind: CaseKind, ref: str) -> str:
    return "/cases/" + quote(case_id(kind, ref), safe=":")


def logged_in(world: AdminWorld, name: str) -> Browser:
    browser = world.browser()
    response = browser.login(name)
    assert response.status == 303
    assert response.header("location") == "/cases"
    return browser


def test_pages_need_a_login(world: AdminWorld) -> None:
    browser = world.browser()
    response = browser.get("/cases")
    assert (response.status, response.header("location")) == (303, "/login")
    assert browser.post("/cases/parked:demo-claim/retry", {"csrf": "x"}).status == 403


def test_login_sets_a_strict_httponly_cookie_and_refuses_wrong_passwords(
    world: AdminWorld,
) -> None:
    browser = world.browser()
    refused = browser.login("otto", "wrong password!")
    assert refused.status == 401
    assert "Onjuiste gebruikersnaam of wachtwoord" in refused.text
    assert SESSION not in browser.cookies
    ok = browser.login("otto")
    cookie = next(c for c in ok.headers["set-cookie"] if c.startswith(SESSION))
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/" in cookie
    assert browser.get("/cases").status == 200


def test_login_without_its_csrf_token_is_refused(world: AdminWorld) -> None:
    browser = world.browser()
    browser.get("/login")
    response = browser.post("/login", {"name": "otto", "password": "correct horse battery"})
    assert response.status == 403
    assert SESSION not in browser.cookies


def test_a_login_always_gets_a_new_session_id(world: AdminWorld) -> None:
    browser = logged_in(world, "otto")
    first = browser.cookies[SESSION]
    # An attacker-chosen id is never adopted...
    browser.cookies[SESSION] = "attacker-chosen-session-id"
    browser.login("otto")
    second = browser.cookies[SESSION]
    assert second not in (first, "attacker-chosen-session-id")
    # ...and a session brought to a login ends there.
    browser.cookies[SESSION] = first
    browser.login("otto")
    assert browser.cookies[SESSION] not in (first, second)
    stale = world.browser()
    stale.cookies[SESSION] = first
    assert stale.get("/cases").status == 303


def test_every_answer_carries_the_security_headers(world: AdminWorld) -> None:
    browser = logged_in(world, "otto")
    for response in (
        world.browser().get("/login"),
        browser.get("/cases"),
        browser.get(case_path(CaseKind.PARKED, world.seeded.parked)),
        browser.get("/nope"),
    ):
        csp = response.header("content-security-policy")
        assert "default-src 'none'" in csp
        assert "unsafe-inline" not in csp
        assert "script-src" not in csp  # no scripts at all
        assert response.header("x-frame-options") == "DENY"
        assert response.header("cache-control") == "no-store"
        assert response.header("x-content-type-options") == "nosniff"


def test_the_queue_shows_counts_and_filters(world: AdminWorld) -> None:
    browser = logged_in(world, "vera")
    page = browser.get("/cases").text
    assert "<strong>2</strong> Geparkeerd na mislukte verzending" in page
    assert "Aantallen of totaalbedrag" in page  # the meaning of 0040 beside the code
    filtered = browser.get("/cases?kind=parked&insurer=3311").text
    assert "integraal-3311.asc" in filtered
    assert "declaratie-januari.asc" not in filtered
    assert browser.get("/cases?insurer=abc").status == 400


def test_free_text_from_files_is_shown_escaped(world: AdminWorld) -> None:
    browser = logged_in(world, "otto")
    queue = browser.get("/cases").text
    assert "<script>" not in queue
    assert "&lt;script&gt;alert(&#39;naam&#39;)&lt;/script&gt;.asc" in queue
    page = browser.get(case_path(CaseKind.INTAKE_REJECTED, world.xss.intake_rejected)).text
    assert XSS_NAME not in page
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # the 98 comment, escaped
    assert XSS_COMMENT.split(">")[1].strip() in page


def test_bsns_are_masked_until_an_audited_unmask(world: AdminWorld) -> None:
    browser = logged_in(world, "otto")
    path = case_path(CaseKind.INTAKE_REJECTED, world.seeded.intake_rejected)
    page = browser.get(path)
    assert DEMO_BSN not in page.text
    assert "Testpersoon" not in page.text
    assert browser.post(path + "/unmask", {}).status == 403  # no CSRF token
    shown = browser.post(path + "/unmask", {"csrf": page.csrf()})
    assert shown.status == 200
    assert DEMO_BSN in shown.text
    entries = world.pump.wait(
        world.admin.audit_entries(
            subject=case_id(CaseKind.INTAKE_REJECTED, world.seeded.intake_rejected)
        )
    )
    assert [e.action for e in entries] == ["view_case", "unmask"]
    viewer = logged_in(world, "vera")
    page = viewer.get(path)
    assert "Toon persoonsgegevens" not in page.text
    assert viewer.post(path + "/unmask", {"csrf": page.csrf()}).status == 403


def test_an_action_without_a_csrf_token_is_refused_and_changes_nothing(world: AdminWorld) -> None:
    browser = logged_in(world, "otto")
    path = case_path(CaseKind.PARKED, world.seeded.parked)
    assert browser.post(path + "/retry", {}).status == 403
    assert browser.post(path + "/retry", {"csrf": "0" * 64}).status == 403
    outbound = world.pump.wait(world.store.outbox.get(world.seeded.parked))
    assert outbound is not None
    assert outbound.state is OutboundState.PARKED


def test_retry_through_the_confirmation_page(world: AdminWorld) -> None:
    browser = logged_in(world, "otto")
    path = case_path(CaseKind.PARKED, world.seeded.parked)
    confirm = browser.get(path + "/retry")
    assert confirm.status == 200
    assert "met hetzelfde kenmerk en factuurnummer" in confirm.text
    done = browser.post(path + "/retry", {"csrf": confirm.csrf(), "reason": "", "confirm": "yes"})
    assert done.status == 303
    assert done.header("location") == path + "?done=retry"
    outbound = world.pump.wait(world.store.outbox.get(world.seeded.parked))
    assert outbound is not None
    assert outbound.state is OutboundState.QUEUED
    page = browser.get(done.header("location")).text
    assert "Opnieuw aanbieden: gedaan en vastgelegd." in page
    assert "opnieuw aangeboden" in page


def test_write_off_without_a_reason_stays_on_the_form(world: AdminWorld) -> None:
    browser = logged_in(world, "otto")
    path = case_path(CaseKind.UNMATCHED_RETOUR, world.seeded.unmatched_retour)
    confirm = browser.get(path + "/write_off")
    response = browser.post(path + "/write_off", {"csrf": confirm.csrf(), "reason": " "})
    assert response.status == 400
    assert "Vul een reden in" in response.text


def test_wrong_roles_get_403(world: AdminWorld) -> None:
    viewer = logged_in(world, "vera")
    assert viewer.get("/audit").status == 403
    assert viewer.get("/audit/export").status == 403
    path = case_path(CaseKind.PARKED, world.seeded.parked)
    page = viewer.get(path)
    assert "Opnieuw aanbieden" not in page.text
    assert viewer.get(path + "/retry").status == 403
    assert viewer.post(path + "/retry", {"csrf": page.csrf()}).status == 403
    operator = logged_in(world, "otto")
    assert operator.get("/audit").status == 403


def test_the_administrator_sees_and_exports_the_audit_log(world: AdminWorld) -> None:
    boss = logged_in(world, "bea")
    page = boss.get("/audit")
    assert page.status == 200
    assert "Keten intact" in page.text
    export = boss.get("/audit/export")
    lines = [json.loads(line) for line in export.text.splitlines()]
    assert lines[-1]["action"] == "export_audit"
    assert {"seq", "at", "actor", "role", "action", "subject", "detail", "origin", "hash"} <= set(
        lines[0]
    )


def test_the_audit_page_checks_the_role_before_any_work_on_the_chain(
    world: AdminWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[object] = []
    real = world.admin.audit_entries

    def spy(**kwargs: Any) -> Any:
        reads.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(world.admin, "audit_entries", spy)
    for name in ("vera", "otto"):
        browser = logged_in(world, name)
        assert browser.get("/audit").status == 403
        api = world.browser()
        auth = {"Authorization": f"Bearer {world.token(name)}"}
        assert api.get("/api/audit/verify", auth).status == 403
        assert api.get("/api/audit", auth).status == 403
    assert reads == []


def test_the_audit_page_checks_only_what_is_new_since_its_last_check(
    world: AdminWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    boss = logged_in(world, "bea")
    assert "Keten intact" in boss.get("/audit").text
    reads: list[int] = []
    real = world.admin.audit_entries

    def spy(**kwargs: Any) -> Any:
        reads.append(int(kwargs.get("after_seq", 0)))
        return real(**kwargs)

    monkeypatch.setattr(world.admin, "audit_entries", spy)
    assert "Keten intact" in boss.get("/audit").text
    assert 0 not in reads[:-1]  # the last read is the page's own list of entries
    token = world.token("bea")
    full = world.browser().get("/api/audit/verify?full=1", {"Authorization": f"Bearer {token}"})
    assert json.loads(full.body)["intact"] is True
    assert 0 in reads


def test_logout_ends_the_session(world: AdminWorld) -> None:
    browser = logged_in(world, "otto")
    page = browser.get("/cases")
    token = browser.cookies[SESSION]
    assert browser.post("/logout", {"csrf": page.csrf()}).status == 303
    stale = world.browser()
    stale.cookies[SESSION] = token
    assert stale.get("/cases").status == 303


def test_the_administrator_disables_a_user_on_the_site_and_her_session_ends(
    world: AdminWorld,
) -> None:
    leaver = logged_in(world, "vera")
    assert leaver.get("/cases").status == 200
    boss = logged_in(world, "bea")
    page = boss.get("/users")
    assert page.status == 200
    assert "vera" in page.text
    assert 'href="/users"' in page.text
    assert boss.post("/users/vera/disable", {}).status == 403  # no CSRF token: nothing done
    assert leaver.get("/cases").status == 200
    done = boss.post("/users/vera/disable", {"csrf": page.csrf()})
    assert (done.status, done.header("location")) == (303, "/users?done=disable")
    assert "Gebruiker uitgeschakeld" in boss.get(done.header("location")).text
    assert leaver.get("/cases").status == 303  # back to the login
    assert world.browser().login("vera").status == 401

    short = boss.post("/users/otto/password", {"csrf": page.csrf(), "password": "short"})
    assert short.status == 400
    assert "at least 12" in short.text
    assert boss.post("/users/otto/role", {"csrf": page.csrf(), "role": "viewer"}).status == 303
    new_password = "otto's new long password"
    reset = boss.post("/users/otto/password", {"csrf": page.csrf(), "password": new_password})
    assert reset.status == 303
    assert world.browser().login("otto", new_password).status == 303
    entries = world.pump.wait(world.admin.audit_entries())
    actions = [(e.actor, e.action) for e in entries]
    for action in ("user_disabled", "role_changed", "password_reset"):
        assert ("bea", action) in actions
    assert all(new_password not in e.detail for e in entries)


def test_only_administrators_reach_the_users_page(world: AdminWorld) -> None:
    operator = logged_in(world, "otto")
    page = operator.get("/cases")
    assert 'href="/users"' not in page.text
    assert operator.get("/users").status == 403
    assert operator.post("/users/vera/disable", {"csrf": page.csrf()}).status == 403
    refused = operator.post("/users/vera/password", {"csrf": page.csrf(), "password": "x" * 20})
    assert refused.status == 403
    boss = logged_in(world, "bea")
    assert boss.get("/users/vera/disable").status == 405
    assert boss.post("/users/vera/explode", {"csrf": boss.get("/users").csrf()}).status == 404
    assert world.browser().login("vera").status == 303  # nothing was done to vera


# --- the JSON API ----------------------------------------------------------------------------


def test_the_api_with_a_bearer_token(world: AdminWorld) -> None:
    token = world.token("otto")
    api = world.browser()
    auth = {"Authorization": f"Bearer {token}"}
    me = json.loads(api.get("/api/me", auth).body)
    assert me["role"] == "operator"
    queue = json.loads(api.get("/api/cases?kind=parked", auth).body)
    assert queue["counts"]["parked"] == 2
    cid = case_id(CaseKind.PARKED, world.seeded.parked)
    response = api.request(
        "POST",
        f"/api/cases/{cid}/actions/retry",
        json.dumps({"reason": "verbinding hersteld"}).encode(),
        {**auth, "Content-Type": "application/json"},
    )
    assert response.status == 200
    assert json.loads(response.body)["state"] == "retried"
    again = api.request("POST", f"/api/cases/{cid}/actions/retry", b"{}", auth)
    assert again.status == 409
    assert json.loads(again.body)["code"] == "actie-past-niet"
    assert again.header("content-type") == "application/problem+json"


def test_the_api_refuses_missing_credentials_viewers_and_cookie_posts_without_csrf(
    world: AdminWorld,
) -> None:
    anonymous = world.browser()
    assert anonymous.get("/api/cases").status == 401
    assert anonymous.get("/api/cases", {"Authorization": "Bearer nonsense"}).status == 401
    viewer = {"Authorization": f"Bearer {world.token('vera')}"}
    cid = case_id(CaseKind.PARKED, world.seeded.parked)
    assert anonymous.request("POST", f"/api/cases/{cid}/actions/retry", b"{}", viewer).status == 403
    assert anonymous.get("/api/audit/verify", viewer).status == 403
    browser = logged_in(world, "otto")
    assert browser.request("POST", f"/api/cases/{cid}/actions/retry", b"{}").status == 403
    page = browser.get("/cases")
    ok = browser.request(
        "POST", f"/api/cases/{cid}/actions/retry", b"{}", {"X-CSRF-Token": page.csrf()}
    )
    assert ok.status == 200


def test_the_api_shows_a_case_with_its_file_masked(world: AdminWorld) -> None:
    auth = {"Authorization": f"Bearer {world.token('bea')}"}
    api = world.browser()
    cid = case_id(CaseKind.INTAKE_REJECTED, world.seeded.intake_rejected)
    view = json.loads(api.get(f"/api/cases/{cid}", auth).body)
    assert view["retourcodes"][0]["code"] == "0040"
    assert DEMO_BSN not in json.dumps(view)
    unmasked = json.loads(api.request("POST", f"/api/cases/{cid}/unmask", b"", auth).body)
    assert DEMO_BSN in json.dumps(unmasked)
    verify = json.loads(api.get("/api/audit/verify", auth).body)
    assert verify["intact"] is True


def test_the_login_throttle_answers_alike_for_accounts_and_other_names(
    world: AdminWorld,
) -> None:
    """Whether a name is an account cannot be told from the answers: the same attempts
    get the same statuses and pages for "otto" and for a name nobody has."""
    answers = {}
    for name in ("otto", "onbekende-naam"):
        browser = world.browser()
        responses = [browser.login(name, "wrong password!") for _ in range(8)]
        answers[name] = [
            (r.status, "Te veel mislukte pogingen" in r.text, "Onjuiste" in r.text)
            for r in responses
        ]
    assert answers["otto"] == answers["onbekende-naam"]
    assert [status for status, _, _ in answers["otto"]] == [401] * 5 + [429] * 3


def test_a_chunked_form_with_a_bsn_is_never_written_to_disk(
    world: AdminWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """twisted.web spools a body of unknown length to a temporary file by itself; the
    admin site keeps it in memory (the search form carries a BSN)."""
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    bsn = b"123456782"  # a BSN of the eleven-proof that no stored file holds
    connection = connect(world.site)
    connection.send(
        b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
    )
    chunk = b"name=" + bsn + b"&password=x"
    connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    assert open_files_holding(bsn) == []
    connection.send(b"0\r\n\r\n")
    assert connection.response()[0] == 403  # no login form token: refused, and read
    assert open_files_holding(bsn) == []
    assert files_holding(spool, bsn) == []


@pytest.mark.parametrize("chunked", [False, True], ids=["announced", "chunked"])
def test_a_body_over_the_limit_is_refused(world: AdminWorld, chunked: bool) -> None:
    connection = connect(world.site)
    body = b"a" * (MAX_BODY_BYTES + 1)
    if chunked:
        connection.send(b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        connection.send(b"%x\r\n%s\r\n" % (len(body), body))
    else:
        connection.send(
            b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
    assert connection.response()[0] == 413
    assert connection.disconnecting


def test_the_api_manages_accounts_for_administrators_only(world: AdminWorld) -> None:
    api = world.browser()
    boss = {"Authorization": f"Bearer {world.token('bea')}"}
    vera_token = world.token("vera")
    listed = json.loads(api.get("/api/users", boss).body)["users"]
    (vera,) = [u for u in listed if u["name"] == "vera"]
    assert vera == {
        "name": "vera",
        "role": "viewer",
        "disabled": False,
        "createdAt": vera["createdAt"],
        "failedLogins": 0,
        "sessions": 0,
        "tokens": 1,
    }
    changed = api.request("POST", "/api/users/vera/role", b'{"role": "operator"}', boss)
    assert changed.status == 200
    me = json.loads(api.get("/api/me", {"Authorization": f"Bearer {vera_token}"}).body)
    assert me["role"] == "operator"
    revoked = api.request("POST", "/api/users/vera/revoke", b'{"what": "tokens"}', boss)
    assert json.loads(revoked.body)["ended"] == 1
    assert api.get("/api/me", {"Authorization": f"Bearer {vera_token}"}).status == 401

    otto = {"Authorization": f"Bearer {world.token('otto')}"}
    assert api.get("/api/users", otto).status == 403
    assert api.request("POST", "/api/users/bea/disable", b"{}", otto).status == 403
    missing = api.request("POST", "/api/users/nobody/disable", b"{}", boss)
    assert (missing.status, json.loads(missing.body)["code"]) == (404, "onbekend")
    wrong = api.get("/api/users/vera/disable", boss)
    assert (wrong.status, wrong.header("allow")) == (405, "POST")
    last = api.request("POST", "/api/users/bea/disable", b"{}", boss)
    assert last.status == 400
    assert "last active administrator" in json.loads(last.body)["detail"]
    bad = api.request("POST", "/api/users/vera/password", b'{"password": 5}', boss)
    assert bad.status == 400
