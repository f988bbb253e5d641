"""The participant portal driven in memory (treq's StubTreq), as a practice's browser would
use it: the cookie, the CSRF token from the page, the forms."""

from __future__ import annotations

import hashlib
import html
import re
import uuid
from datetime import UTC, date, datetime
from typing import Any, cast

import pytest
from markupsafe import escape
from treq.testing import StubTreq
from twisted.internet import defer
from twisted.web import resource, server
from twisted.web.test.requesthelper import DummyRequest

from adapters.epd_api.resource import INSURER, ApiSettings, Caller, EpdApi
from adapters.portal.resource import (
    COOKIE,
    PortalResource,
    PortalSettings,
    euro_text,
    portal_route_name,
    retour_codes,
    with_portal,
)
from adapters.storage.memory import MemoryMessageStore
from gateway.config import BerichtstroomConfig
from gateway.ei import LayoutRegistry, Outcome, Record, build_retour, read_records
from gateway.intake import Intake
from gateway.loading import describe, load_layouts
from gateway.ports.messages import (
    Direction,
    Message,
    MessageStatus,
    NewMessage,
    NewStatus,
    StoreUnavailableError,
)
from gateway.vsp import PULL_V1
from tests.factories import BSNS, INSURED, kz301

KRAAM = Caller("33001234", "kraamzorg")
OTHER_KRAAM = Caller("33005678", "kraamzorg")
PUSHING_INSURER = Caller("3311", INSURER)
NOW = datetime(2026, 2, 3, 9, 30, tzinfo=UTC)
BAD_BSN = "123456780"  # fails the eleven-proof: 0435 in record 2, field 0203
BOUNDARY = "portal-test-boundary-1b2c"


@pytest.fixture(scope="module")
def registry() -> LayoutRegistry:
    return load_layouts()


class Browser:
    """One practice's browser: its certificate (a test header standing in for the
    verified client certificate) and its cookie."""

    def __init__(self, site: Site, caller: Caller | None) -> None:
        self.site, self.caller = site, caller
        self.cookie: str | None = None

    def request(
        self, method: str, path: str, *, body: bytes | None = None, ctype: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        headers: dict[str, str] = {}
        if self.caller is not None:
            headers["x-test-caller"] = self.caller.agb
        if self.cookie is not None:
            headers["cookie"] = f"{COOKIE}={self.cookie}"
        if ctype is not None:
            headers["content-type"] = ctype
        status, hdrs, data = self.site.call(method, path, headers, body)
        set_cookie = hdrs.get("set-cookie", "")
        if set_cookie.startswith(COOKIE + "="):
            self.cookie = set_cookie.split(";", 1)[0].split("=", 1)[1]
        return status, hdrs, data

    def page(self, path: str = "/portaal/") -> str:
        status, _, body = self.request("GET", path)
        assert status == 200, (status, body)
        return body.decode("utf-8")

    def upload(
        self, payload: bytes, *, csrf: str | None = None, traceer_id: str | None = None
    ) -> tuple[int, dict[str, str], bytes, str]:
        page = self.page()
        token = _hidden(page, "csrf") if csrf is None else csrf
        traceer = traceer_id or _hidden(page, "traceerId")
        body = _multipart(
            {"csrf": token, "traceerId": traceer}, ("bestand", "declaratie.asc", payload)
        )
        status, hdrs, data = self.request(
            "POST",
            "/portaal/versturen",
            body=body,
            ctype=f"multipart/form-data; boundary={BOUNDARY}",
        )
        return status, hdrs, data, traceer

    def confirm(self, traceer_id: str, csrf: str | None = None) -> tuple[int, dict[str, str]]:
        token = _hidden(self.page(), "csrf") if csrf is None else csrf
        status, hdrs, _ = self.request(
            "POST",
            f"/portaal/berichten/{traceer_id}/bevestigen",
            body=f"csrf={token}".encode(),
            ctype="application/x-www-form-urlencoded",
        )
        return status, hdrs


class Site:
    def __init__(self, registry: LayoutRegistry) -> None:
        self.store = MemoryMessageStore()
        self.intake = Intake(
            self.store,
            registry,
            clock=lambda: NOW,
            run_in_thread=lambda f: defer.succeed(f()),
            berichtstroom=BerichtstroomConfig(),
        )
        callers = {c.agb: c for c in (KRAAM, OTHER_KRAAM, PUSHING_INSURER)}

        def authenticate(request: server.Request) -> Caller | None:
            agb = request.getHeader(b"x-test-caller")
            return callers.get(agb.decode()) if agb else None

        api = EpdApi(
            self.intake,
            self.store,
            authenticate,
            clock=lambda: NOW,
            settings=ApiSettings("53001234"),
        )
        self.portal = PortalResource(
            self.intake,
            self.store,
            registry,
            authenticate,
            clock=lambda: NOW,
            settings=PortalSettings(names={KRAAM.agb: "Kraamzorg De Wieg"}),
        )
        self.root: resource.Resource = with_portal(api, self.portal)

    def call(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, dict[str, str], bytes]:
        # A fresh client per request: no cookie jar of its own, the Browser's cookie only.
        treq: Any = StubTreq(self.root)
        d = treq.request(
            method,
            "https://gateway.test" + path,
            headers=headers,
            data=body,
            allow_redirects=False,
        )
        treq.flush()
        response = _result(d)
        body_d = response.content()
        treq.flush()
        data = _result(body_d)
        hdrs = {k.decode().lower(): v[0].decode() for k, v in response.headers.getAllRawHeaders()}
        return response.code, hdrs, data

    def browser(self, caller: Caller | None) -> Browser:
        return Browser(self, caller)


def _waiting(site: Site) -> list[Message]:
    found: list[Message] = _result(site.store.list_messages(KRAAM.agb, Direction.TO_PARTICIPANT))
    return found


def _result(d: defer.Deferred[Any]) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "the request did not complete"
    if hasattr(results[0], "raiseException"):
        results[0].raiseException()
    return results[0]


def _hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no hidden field {name}"
    return found.group(1)


def _multipart(fields: dict[str, str], file: tuple[str, str, bytes]) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    name, filename, content = file
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(parts)


@pytest.fixture
def site(registry: LayoutRegistry) -> Site:
    return Site(registry)


def test_an_upload_is_stored_through_the_intake_and_shown_with_its_status(
    site: Site, registry: LayoutRegistry
) -> None:
    browser = site.browser(KRAAM)
    status, hdrs, _, traceer = browser.upload(kz301(registry, agb=KRAAM.agb))
    assert status == 303
    assert hdrs["location"] == f"/portaal/berichten/{traceer}"
    stored = site.store._messages[traceer].message
    assert (stored.party, stored.direction, stored.standard) == (
        KRAAM.agb,
        Direction.FROM_PARTICIPANT,
        "KZ301",
    )
    assert stored.metadata["routeringgegevens"]["berichtstroom"]["berichttype"] == "KZ301"
    page = browser.page(hdrs["location"])
    assert "ontvangen en goedgekeurd" in page
    assert "Bestand ontvangen en goedgekeurd." in page
    assert "03-02-2026 10:30" in page  # Europe/Amsterdam, not UTC
    assert "Totaal gedeclareerd" in page
    assert "€ 120,00" in page
    overview = browser.page()
    assert traceer in overview
    assert "Kraamzorg De Wieg" in overview


def test_sending_the_same_form_again_is_a_safe_retry_and_other_bytes_are_refused(
    site: Site, registry: LayoutRegistry
) -> None:
    browser = site.browser(KRAAM)
    data = kz301(registry, agb=KRAAM.agb, invoice="F-1")
    first, _, _, traceer = browser.upload(data)
    again, hdrs, _, _ = browser.upload(data, traceer_id=traceer)
    assert (first, again) == (303, 303)
    assert hdrs["location"] == f"/portaal/berichten/{traceer}"
    assert site.store.message_count() == 1
    status, _, body, _ = browser.upload(
        kz301(registry, agb=KRAAM.agb, invoice="F-2"), traceer_id=traceer
    )
    assert status == 422
    assert "Dit formulier is al gebruikt voor een ander bestand" in body.decode()
    assert site.store.message_count() == 1


def test_a_file_of_another_practice_is_refused_in_dutch_and_nothing_stored(
    site: Site, registry: LayoutRegistry
) -> None:
    status, _, body, _ = site.browser(KRAAM).upload(kz301(registry, agb=OTHER_KRAAM.agb))
    assert status == 422
    assert "niet van uw praktijk" in body.decode()
    assert site.store.message_count() == 0


def test_an_upload_without_a_valid_csrf_token_changes_nothing(
    site: Site, registry: LayoutRegistry
) -> None:
    browser = site.browser(KRAAM)
    data = kz301(registry, agb=KRAAM.agb)
    status, _, body, _ = browser.upload(data, csrf="")
    assert status == 403
    assert "Formulier verlopen" in body.decode()
    status, _, _, _ = browser.upload(data, csrf="0" * 64)
    assert status == 403
    # another practice's token (from its own page) does not fit this practice
    other = site.browser(OTHER_KRAAM)
    other_token = _hidden(other.page(), "csrf")
    assert browser.upload(data, csrf=other_token)[0] == 403
    # another browser of the same practice has its own cookie: a token does not travel
    second = site.browser(KRAAM)
    second_token = _hidden(second.page(), "csrf")
    assert second.cookie != browser.cookie
    assert browser.upload(data, csrf=second_token)[0] == 403
    # a cross-site form: the browser sends the certificate, but no SameSite=Strict cookie
    page = browser.page()
    browser.cookie = None
    body = _multipart(
        {"csrf": _hidden(page, "csrf"), "traceerId": _hidden(page, "traceerId")},
        ("bestand", "declaratie.asc", data),
    )
    status, _, _ = browser.request(
        "POST", "/portaal/versturen", body=body, ctype=f"multipart/form-data; boundary={BOUNDARY}"
    )
    assert status == 403
    assert site.store.message_count() == 0


def test_the_cookie_is_host_only_secure_httponly_and_samesite_strict(site: Site) -> None:
    _, hdrs, _ = site.browser(KRAAM).request("GET", "/portaal/")
    cookie = hdrs["set-cookie"]
    assert cookie.startswith(COOKIE + "=")
    for attribute in ("Secure", "HttpOnly", "SameSite=strict", "Path=/"):
        assert attribute.lower() in cookie.lower()
    assert "domain" not in cookie.lower()


def test_a_rejected_file_shows_the_dutch_explanation_with_record_and_field_but_no_client_data(
    site: Site, registry: LayoutRegistry
) -> None:
    browser = site.browser(KRAAM)
    status, hdrs, _, traceer = browser.upload(kz301(registry, agb=KRAAM.agb, bsn=BAD_BSN))
    assert status == 303
    page = browser.page(hdrs["location"])
    assert "Waarom het bestand is afgekeurd" in page
    assert "0435" in page
    assert "record 2, veld 0203 (burgerservicenummer (bsn) verzekerde)" in page
    assert str(_escaped(describe("0435"))) in page
    for client_value in (BAD_BSN, str(INSURED["surname"]), "19940506", "06-05-1994"):
        assert client_value not in page
    overview = browser.page()
    assert "afgekeurd" in overview
    assert "0435" in overview
    assert BAD_BSN not in overview
    # the technical rejection waits, explained, linked from the upload
    (rejection,) = [
        m.message
        for m in site.store._messages.values()
        if m.message.direction is Direction.TO_PARTICIPANT
    ]
    assert rejection.reply_to == traceer
    assert f"/portaal/berichten/{rejection.traceer_id}/bestand" in page


def _escaped(text: str) -> str:
    return str(escape(text))


def test_a_retour_is_downloaded_and_confirmed(site: Site, registry: LayoutRegistry) -> None:
    browser = site.browser(KRAAM)
    browser.upload(kz301(registry, agb=KRAAM.agb, bsn=BAD_BSN))
    (retour,) = _waiting(site)
    overview = browser.page()
    assert "Klaargezette retourinformatie" in overview
    assert retour.filename is not None
    assert retour.filename in overview
    status, hdrs, data = browser.request("GET", f"/portaal/berichten/{retour.traceer_id}/bestand")
    assert status == 200
    assert hdrs["content-type"] == "application/octet-stream"
    assert hdrs["content-disposition"] == f'attachment; filename="{retour.filename}"'
    assert data == site.store._journal[retour.sha256]
    assert data.startswith(b"01")  # a KZ302 technical rejection
    shown = browser.page(f"/portaal/berichten/{retour.traceer_id}")
    assert "Retourcodes in dit bestand" in shown
    assert "record 1 (voorlooprecord)" in shown
    assert _escaped(describe("0001")) in shown
    assert "Totaal toegekend" not in shown  # a technical rejection has no amounts
    status, hdrs = browser.confirm(retour.traceer_id)
    assert status == 303
    assert hdrs["location"] == f"/portaal/berichten/{retour.traceer_id}"
    page = browser.page(hdrs["location"])
    assert "ontvangst bevestigd" in page
    assert "Ontvangst bevestigen" not in page
    # no longer waiting: not offered here, nor by the EPD API
    assert "Er staat geen retourinformatie klaar." in browser.page()
    assert _waiting(site) == []
    # a second confirmation is no error (as the EPD API's DELETE)
    assert browser.confirm(retour.traceer_id)[0] == 303


def test_confirming_without_a_csrf_token_changes_nothing(
    site: Site, registry: LayoutRegistry
) -> None:
    browser = site.browser(KRAAM)
    browser.upload(kz301(registry, agb=KRAAM.agb, bsn=BAD_BSN))
    (retour,) = _waiting(site)
    status, _ = browser.confirm(retour.traceer_id, csrf="")
    assert status == 403
    assert len(_waiting(site)) == 1


def test_another_practices_messages_are_unknown(site: Site, registry: LayoutRegistry) -> None:
    mine = site.browser(KRAAM)
    _, _, _, upload = mine.upload(kz301(registry, agb=KRAAM.agb, bsn=BAD_BSN))
    (retour,) = _waiting(site)
    other = site.browser(OTHER_KRAAM)
    overview = other.page()
    assert upload not in overview
    assert retour.traceer_id not in overview
    for traceer in (upload, retour.traceer_id):
        for path in (f"/portaal/berichten/{traceer}", f"/portaal/berichten/{traceer}/bestand"):
            status, _, body = other.request("GET", path)
            assert status == 404, path
            assert b"Niet gevonden" in body
            assert traceer.encode() not in body
        assert other.confirm(traceer)[0] == 404
    assert len(_waiting(site)) == 1
    # unknown and malformed ids are answered the same
    for bad in (str(uuid.uuid4()), "not-a-uuid"):
        assert other.request("GET", f"/portaal/berichten/{bad}")[0] == 404


def test_without_a_participant_certificate_nothing_is_shown(site: Site) -> None:
    for caller in (None, PUSHING_INSURER):
        status, hdrs, body = site.browser(caller).request("GET", "/portaal/")
        assert status == 403
        assert "Geen toegang" in body.decode()
        assert "set-cookie" not in hdrs


@pytest.mark.parametrize(
    ("path", "method", "allow"),
    [
        ("/portaal/", "POST", "GET, HEAD"),
        ("/portaal/", "DELETE", "GET, HEAD"),
        ("/portaal/versturen", "GET", "POST"),
        ("/portaal/versturen", "PUT", "POST"),
        (f"/portaal/berichten/{uuid.uuid4()}", "POST", "GET, HEAD"),
        (f"/portaal/berichten/{uuid.uuid4()}/bestand", "DELETE", "GET, HEAD"),
        (f"/portaal/berichten/{uuid.uuid4()}/bevestigen", "GET", "POST"),
        ("/portaal/static/portaal.css", "POST", "GET, HEAD"),
    ],
)
def test_methods_other_than_declared_get_405_with_allow(
    site: Site, path: str, method: str, allow: str
) -> None:
    status, hdrs, body = site.browser(KRAAM).request(method, path)
    assert status == 405
    assert hdrs["allow"] == allow
    assert "Methode niet toegestaan" in body.decode()


def test_head_answers_a_page_without_its_body(site: Site) -> None:
    status, hdrs, body = site.browser(KRAAM).request("HEAD", "/portaal/")
    assert status == 200
    assert hdrs["content-type"] == "text/html; charset=utf-8"
    assert body == b""


def test_every_answer_carries_a_strict_csp_and_no_store(site: Site) -> None:
    browser = site.browser(KRAAM)
    for path in ("/portaal/", "/portaal/bestaat-niet", f"/portaal/berichten/{uuid.uuid4()}"):
        _, hdrs, _ = browser.request("GET", path)
        csp = hdrs["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "script-src" not in csp
        assert "frame-ancestors 'none'" in csp
        assert hdrs["x-frame-options"] == "DENY"
        assert hdrs["x-content-type-options"] == "nosniff"
        assert hdrs["cache-control"] == "no-store"
    status, hdrs, css = browser.request("GET", "/portaal/static/portaal.css")
    assert status == 200
    assert hdrs["content-type"].startswith("text/css")
    assert css


def test_a_file_name_is_escaped_on_the_page(site: Site, registry: LayoutRegistry) -> None:
    browser = site.browser(KRAAM)
    page = browser.page()
    body = _multipart(
        {"csrf": _hidden(page, "csrf"), "traceerId": _hidden(page, "traceerId")},
        ("bestand", "<img src=x onerror=alert(1)>.asc", kz301(registry, agb=KRAAM.agb)),
    )
    status, hdrs, _ = browser.request(
        "POST", "/portaal/versturen", body=body, ctype=f"multipart/form-data; boundary={BOUNDARY}"
    )
    assert status == 303
    shown = browser.page(hdrs["location"])
    assert "<img" not in shown
    assert "&lt;img src=x onerror=alert(1)&gt;.asc" in shown


def test_an_empty_or_unreadable_form_is_answered_in_dutch(site: Site) -> None:
    browser = site.browser(KRAAM)
    status, _, body, _ = browser.upload(b"")
    assert status == 400
    assert "Kies een bestand" in body.decode()
    browser.page()
    status, _, body = browser.request(
        "POST", "/portaal/versturen", body=b"garbage", ctype="text/plain"
    )
    assert status == 400
    assert "Formulier onleesbaar" in body.decode()
    assert site.store.message_count() == 0


def test_the_epd_api_still_answers_beside_the_portal(site: Site) -> None:
    status, _, _ = site.call("GET", f"{PULL_V1}/berichten", {"x-test-caller": KRAAM.agb}, None)
    assert status == 200


def test_an_unavailable_store_is_a_dutch_503(site: Site) -> None:
    def down(*args: Any, **kwargs: Any) -> defer.Deferred[Any]:
        return defer.fail(StoreUnavailableError("down"))

    site.store.list_messages = down  # type: ignore[method-assign]
    status, hdrs, body = site.browser(KRAAM).request("GET", "/portaal/")
    assert status == 503
    assert hdrs["retry-after"] == "30"
    assert "Tijdelijk niet beschikbaar" in body.decode()


def test_route_names_carry_no_ids(site: Site) -> None:
    ids = DummyRequest([b"portaal", b"berichten", str(uuid.uuid4()).encode(), b"bestand"])
    assert portal_route_name(cast(server.Request, ids)) == "/portaal/berichten/{traceerId}/bestand"
    api = DummyRequest([b"berichtenservice", b"x"])
    assert portal_route_name(cast(server.Request, api)) is None


def test_an_insurer_retour_shows_its_codes_by_record_and_its_amounts_without_client_data(
    registry: LayoutRegistry,
) -> None:
    declaration = kz301(registry, agb=KRAAM.agb, lines=2, bsn=BSNS[1])
    records = [e for e in read_records(registry, [declaration]) if isinstance(e, Record)]
    retour = build_retour(
        registry.by_standard("KZ302"),
        records,
        {2: Outcome(granted=12000), 3: Outcome(granted=0, codes=("0581",))},
        insurer_reference="R-1",
        retour_date=date(2026, 2, 10),
    )
    (found,) = retour_codes(registry, retour)
    assert (found.code, found.meaning) == ("0581", describe("0581"))
    assert not found.meaning.startswith("Onbekende")
    assert found.where == "record 4 (prestatierecord)"
    assert retour_codes(registry, declaration) == []  # a declaration is no retour
    assert retour_codes(registry, b"garbage") == []
    site = Site(registry)
    stored = _result(
        site.store.put_message(
            NewMessage(
                traceer_id=str(uuid.uuid4()),
                conversatie_id=str(uuid.uuid4()),
                direction=Direction.TO_PARTICIPANT,
                party=KRAAM.agb,
                payload=retour,
                sha256=hashlib.sha256(retour).hexdigest(),
                created_at=NOW,
                status=NewStatus(MessageStatus.DELIVERED, None, "Retourinformatie klaargezet."),
                idempotency_key="retour-test",
                filename="KZ302-test.asc",
                standard="KZ302",
            )
        )
    )
    page = site.browser(KRAAM).page(f"/portaal/berichten/{stored.traceer_id}")
    assert "0581" in page
    assert "record 4 (prestatierecord)" in page
    assert "Totaal toegekend</dt><dd>€ 120,00" in page
    for client_value in (BSNS[1], str(INSURED["surname"])):
        assert client_value not in page


ENGLISH = re.compile(
    r"\b(received|rejected|accepted|forwarded|delivered|confirmed|processing|processed|"
    r"answered|absorbed|phase|postnatal|upload|download|error|not found|forbidden|method|"
    r"allowed|unknown|file|message|none|true|false|null|eurocent|utc|member_number)\b",
    re.IGNORECASE,
)


def _visible_text(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_every_portal_page_speaks_dutch(site: Site, registry: LayoutRegistry) -> None:
    browser = site.browser(KRAAM)
    _, hdrs, _, _ = browser.upload(kz301(registry, agb=KRAAM.agb, invoice="F-ok"))
    accepted = hdrs["location"]
    _, hdrs, _, _ = browser.upload(kz301(registry, agb=KRAAM.agb, bsn=BAD_BSN, invoice="F-x"))
    rejected = hdrs["location"]
    (retour,) = _waiting(site)
    pages = [
        browser.page(),
        browser.page(accepted),
        browser.page(rejected),
        browser.page(f"/portaal/berichten/{retour.traceer_id}"),
        browser.request("GET", f"/portaal/berichten/{uuid.uuid4()}")[2].decode(),
        browser.request("POST", "/portaal/")[2].decode(),
        browser.upload(kz301(registry, agb=OTHER_KRAAM.agb))[2].decode(),
        browser.upload(b"", csrf="")[2].decode(),
        site.browser(None).request("GET", "/portaal/")[2].decode(),
    ]
    browser.confirm(retour.traceer_id)
    pages.append(browser.page(f"/portaal/berichten/{retour.traceer_id}"))
    for page in pages:
        text = _visible_text(page)
        assert ENGLISH.findall(text) == [], text
        assert '<html lang="nl">' in page


def test_euros_have_a_comma() -> None:
    assert euro_text(101000) == "€ 1.010,00"
    assert euro_text(5) == "€ 0,05"
    assert euro_text(-12345678) == "€ -123.456,78"
