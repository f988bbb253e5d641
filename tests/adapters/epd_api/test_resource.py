"""The EPD API driven in memory (treq's StubTreq), as an EPD built against VECOZO's
VSP-Koppeling documents would use it."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from treq.testing import StubTreq
from twisted.internet import defer
from twisted.web import server

from adapters.epd_api.resource import ApiSettings, Caller, EpdApi
from adapters.storage.memory import MemoryMessageStore
from gateway.config import BerichtstroomConfig
from gateway.ei import LayoutRegistry, validate_bytes
from gateway.intake import Intake
from gateway.loading import load_layouts
from gateway.ports.messages import StoreUnavailableError
from gateway.vsp import PULL_V1, PUSH_V1, STATUS_V2, STATUS_V3, retour_reference, send_metadata
from tests.factories import kz301
from tests.gateway.ei.fixture_table import MESSAGES

MIDWIFE = Caller("02001234", "midwifery")
KRAAM = Caller("33001234", "kraamzorg")
OTHER_KRAAM = Caller("33005678", "kraamzorg")
HOSPITAL = Caller("06001234", "hospital")
NOW = datetime(2026, 2, 3, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def registry() -> LayoutRegistry:
    return load_layouts()


def multipart(
    fields: dict[str, str], files: dict[str, tuple[str, bytes] | tuple[str, bytes, str]]
) -> tuple[bytes, str]:
    """A multipart/form-data body, as an EPD's HTTP client sends it."""
    boundary = "gateway-test-boundary-7f3a"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
            f"Content-Type: application/json\r\n\r\n".encode()
            + value.encode()
            + b"\r\n"
        )
    for name, spec in files.items():
        filename, content = spec[0], spec[1]
        kind = spec[2] if len(spec) > 2 else "application/octet-stream"
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: {kind}\r\n\r\n'.encode()
            + content
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Api:
    """An API over a memory store; the caller is chosen per request with a test header
    (the real server takes it from the verified client certificate)."""

    def __init__(
        self, registry: LayoutRegistry, berichtstroom: BerichtstroomConfig | None = None
    ) -> None:
        self.store = MemoryMessageStore()
        self.intake = Intake(
            self.store,
            registry,
            clock=lambda: NOW,
            run_in_thread=lambda f: defer.succeed(f()),
            berichtstroom=berichtstroom,
        )
        callers = {c.agb: c for c in (MIDWIFE, KRAAM, OTHER_KRAAM, HOSPITAL)}

        def authenticate(request: server.Request) -> Caller | None:
            agb = request.getHeader(b"x-test-caller")
            return callers.get(agb.decode()) if agb else None

        settings = ApiSettings(
            igo_agb="53001234", versions={"KZ302": (3, 2)}, openapi=b'{"openapi": "3.0.3"}'
        )
        self.resource = EpdApi(
            self.intake, self.store, authenticate, clock=lambda: NOW, settings=settings
        )
        self.treq: Any = StubTreq(self.resource)

    def call(
        self, method: str, path: str, caller: Caller | None, **kwargs: Any
    ) -> tuple[int, dict[str, str], bytes]:
        headers = kwargs.pop("headers", {})
        if "files" in kwargs:
            body, content_type = multipart(kwargs.pop("data", {}), kwargs.pop("files"))
            kwargs["data"] = body
            headers["content-type"] = content_type
        if caller is not None:
            headers["x-test-caller"] = caller.agb
        d = self.treq.request(method, "https://gateway.test" + path, headers=headers, **kwargs)
        self.treq.flush()
        response = self._result(d)
        body_d = response.content()
        self.treq.flush()
        body = self._result(body_d)
        hdrs = {k.decode().lower(): v[0].decode() for k, v in response.headers.getAllRawHeaders()}
        return response.code, hdrs, body

    def json(self, method: str, path: str, caller: Caller | None, **kwargs: Any) -> Any:
        status, _, body = self.call(method, path, caller, **kwargs)
        assert status == 200, (status, body)
        return json.loads(body)

    @staticmethod
    def _result(d: defer.Deferred[Any]) -> Any:
        results: list[Any] = []
        d.addBoth(results.append)
        assert results, "the request did not complete"
        if hasattr(results[0], "raiseException"):
            results[0].raiseException()
        return results[0]

    def send(
        self,
        caller: Caller,
        payload: bytes,
        *,
        sender: str | None = None,
        berichttype: str = "KZ301",
        metadata: dict[str, Any] | None = None,
        **references: Any,
    ) -> tuple[int, dict[str, Any], dict[str, Any]]:
        """POST an upload; (status, problem or {}, the metadata sent)."""
        if metadata is None:
            metadata = send_metadata(sender or caller.agb, berichttype, **references).recorded()
        status, _, body = self.call(
            "POST",
            f"{PUSH_V1}/berichten",
            caller,
            data={"berichtMetadata": json.dumps(metadata)},
            files={"payload": ("declaratie.asc", payload, "application/octet-stream")},
        )
        return status, json.loads(body) if body else {}, metadata

    def waiting(self, caller: Caller, query: str = "") -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self.json("GET", f"{PULL_V1}/berichten{query}", caller)
        return listed

    def statuses(self, caller: Caller, query: str, version: str = STATUS_V3) -> Any:
        return self.json("GET", f"{version}/berichtstatussen?{query}", caller)


def traceer(metadata: dict[str, Any]) -> str:
    value: str = metadata["referentiegegevens"]["traceerId"]
    return value


@pytest.fixture
def api(registry: LayoutRegistry) -> Api:
    return Api(registry)


def test_a_valid_upload_is_204_and_its_status_ontvangen(api: Api, registry: LayoutRegistry) -> None:
    status, problem, sent = api.send(KRAAM, kz301(registry, agb=KRAAM.agb))
    assert (status, problem) == (204, {})
    (entry,) = api.statuses(KRAAM, f"traceerId={traceer(sent)}")
    assert entry == {
        "referentiegegevens": sent["referentiegegevens"],
        "berichtstroom": sent["routeringgegevens"]["berichtstroom"],
        "berichtstatus": "Ontvangen",
        "berichtstatusGewijzigdOp": "2026-02-03T09:30:00+00:00",
        "berichtOntvangenOp": "2026-02-03T09:30:00+00:00",
    }
    # the message's id is the sender's traceerId, its conversation the sender's
    stored = api.store._messages[traceer(sent)].message
    assert stored.conversatie_id == sent["referentiegegevens"]["conversatieId"]
    # the berichtstroom (and the rest of the metadata) is recorded with the upload
    assert stored.metadata["routeringgegevens"] == sent["routeringgegevens"]
    # nothing waits for the sender yet: a valid file is answered later, by the insurer
    assert api.waiting(KRAAM) == []


def test_the_same_traceer_id_with_the_same_bytes_is_a_safe_retry(
    api: Api, registry: LayoutRegistry
) -> None:
    data = kz301(registry, agb=KRAAM.agb)
    first, _, sent = api.send(KRAAM, data)
    again, _, _ = api.send(KRAAM, data, metadata=sent)
    assert (first, again) == (204, 204)
    assert api.store.message_count() == 1
    assert len(api.store.lines) == 1


def test_the_same_traceer_id_with_other_bytes_is_refused_422_and_nothing_stored(
    api: Api, registry: LayoutRegistry
) -> None:
    _, _, sent = api.send(KRAAM, kz301(registry, agb=KRAAM.agb, invoice="F-1"))
    status, problem, _ = api.send(
        KRAAM, kz301(registry, agb=KRAAM.agb, invoice="F-2"), metadata=sent
    )
    assert status == 422
    assert problem["code"] == "traceerid-hergebruikt"
    assert list(problem["errors"]) == ["referentiegegevens.traceerId"]
    # a broken file under a used traceerId is refused too: no rejection retour is queued
    broken = kz301(registry, agb=KRAAM.agb, invoice="F-3").replace(b"\r\n", b"\n", 1)
    assert api.send(KRAAM, broken, metadata=sent)[0] == 422
    assert api.store.message_count() == 1


def test_another_senders_traceer_id_is_refused_422_and_nothing_stored(
    api: Api, registry: LayoutRegistry
) -> None:
    _, _, sent = api.send(KRAAM, kz301(registry, agb=KRAAM.agb))
    theirs = json.loads(json.dumps(sent))
    theirs["routeringgegevens"]["afzender"]["code"] = OTHER_KRAAM.agb
    status, problem, _ = api.send(
        OTHER_KRAAM, kz301(registry, agb=OTHER_KRAAM.agb), metadata=theirs
    )
    assert (status, problem["code"]) == (422, "traceerid-in-gebruik")
    assert list(problem["errors"]) == ["referentiegegevens.traceerId"]
    # even with the very same bytes (they are someone else's message)
    same = api.send(OTHER_KRAAM, kz301(registry, agb=KRAAM.agb), metadata=theirs)
    assert same[0] == 422
    # a gateway-made message's id (a retour waiting for KRAAM) is taken as well
    api.send(KRAAM, b"not an EI file")
    (retour,) = api.waiting(KRAAM)
    reuse = api.send(
        KRAAM,
        kz301(registry, agb=KRAAM.agb, invoice="F-9"),
        traceer_id=retour["referentiegegevens"]["traceerId"],
    )
    assert (reuse[0], reuse[1]["code"]) == (422, "traceerid-in-gebruik")
    assert api.store.message_count() == 3


def test_a_concurrent_retry_is_stored_once(registry: LayoutRegistry) -> None:
    api = Api(registry)
    held: list[defer.Deferred[Any]] = []

    def run_in_thread(work: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        held.append(d)
        d.addCallback(lambda _: work())
        return d

    api.intake._run_in_thread = run_in_thread
    data = kz301(registry, agb=KRAAM.agb)
    metadata = json.dumps(send_metadata(KRAAM.agb, "KZ301").recorded())
    body, content_type = multipart(
        {"berichtMetadata": metadata}, {"payload": ("d.asc", data, "application/octet-stream")}
    )
    headers = {"content-type": content_type, "x-test-caller": KRAAM.agb}
    url = f"https://gateway.test{PUSH_V1}/berichten"
    first = api.treq.request("POST", url, headers=headers, data=body)
    second = api.treq.request("POST", url, headers=headers, data=body)
    api.treq.flush()
    assert len(held) == 2  # both are being checked
    for d in held:
        d.callback(None)
    api.treq.flush()
    assert (api._result(first).code, api._result(second).code) == (204, 204)
    assert api.store.message_count() == 1


def test_an_invalid_file_is_afgekeurd_with_its_retourcodes_and_a_rejection_waits(
    api: Api, registry: LayoutRegistry
) -> None:
    broken = kz301(registry, agb=KRAAM.agb).replace(b"\r\n", b"\n", 1)
    status, _, sent = api.send(KRAAM, broken)
    assert status == 204
    (entry, rejection) = api.statuses(KRAAM, f"traceerId={traceer(sent)}")
    assert entry["berichtstatus"] == "AfgekeurdDoorDienst"
    (melding,) = entry["meldingen"]
    assert melding["code"] == "8095"
    assert melding["omschrijving"]
    assert melding["toelichting"].startswith("record 1")
    assert rejection["berichtstatus"] == "WordtAangeboden"
    assert rejection["referentiegegevens"]["alsAntwoordOp"] == traceer(sent)

    (waiting,) = api.waiting(KRAAM)
    references = waiting["referentiegegevens"]
    assert references["alsAntwoordOp"] == traceer(sent)
    assert references["conversatieId"] == sent["referentiegegevens"]["conversatieId"]
    assert waiting["routeringgegevens"] == {
        "afzender": {"rol": "IGO", "code": "53001234"},
        "geadresseerden": [{"rol": "Zorgaanbieder", "code": KRAAM.agb}],
        "berichtstroom": {
            "berichttype": "KZ302",
            "berichtversie": 3,
            "berichtsubversie": 2,
            "actie": "Retourneren",
        },
    }
    download = waiting["basisgegevens"]["payload"]
    assert download["url"] == (
        f"https://gateway.test{PULL_V1}/berichten/{references['traceerId']}/payload"
    )
    code, headers, payload = api.call(
        "GET", download["url"].removeprefix("https://gateway.test"), KRAAM
    )
    assert code == 200
    assert headers["content-type"] == "application/octet-stream"
    assert download["grootte"] == len(payload)
    assert download["checksum"] == {
        "algoritme": "SHA256",
        "waarde": hashlib.sha256(payload).hexdigest(),
    }
    result = validate_bytes(registry, payload)
    assert result.valid, result.findings
    assert result.layout is not None
    assert result.layout.standard == "KZ302"
    records = payload.split(b"\r\n")[:-1]
    assert [r[:2] for r in records] == [b"01", b"99"]
    assert records[0][342:350] == b"00018095"  # retourcodes 1 and 2 of the 01 tail
    # the reference field holds the whole traceerId in a form that fits its 24 positions
    reference = records[0][310:334].decode().strip()
    assert reference == retour_reference(traceer(sent))
    assert uuid.UUID(bytes=base64.urlsafe_b64decode(reference + "==")) == uuid.UUID(traceer(sent))


def test_unknown_standard_is_rejected_with_0010(api: Api, registry: LayoutRegistry) -> None:
    data = bytearray(kz301(registry, agb=KRAAM.agb))
    data[2:5] = b"999"
    status, _, sent = api.send(KRAAM, bytes(data), berichttype="EI")
    assert status == 204
    (entry, _) = api.statuses(KRAAM, f"traceerId={traceer(sent)}")
    assert [m["code"] for m in entry["meldingen"]] == ["0010"]


def test_delete_confirms_receipt_202_and_the_status_becomes_bezorgd(api: Api) -> None:
    _, _, sent = api.send(KRAAM, b"not an EI file")
    (waiting,) = api.waiting(KRAAM)
    retour_id = waiting["referentiegegevens"]["traceerId"]
    code, _, body = api.call("DELETE", f"{PULL_V1}/berichten/{retour_id}", KRAAM)
    assert (code, body) == (202, b"")
    assert api.waiting(KRAAM) == []
    statuses = api.statuses(KRAAM, f"traceerId={retour_id}")
    assert [s["berichtstatus"] for s in statuses] == ["Bezorgd"]
    # v2 says the same in its own words
    v2 = api.statuses(KRAAM, f"traceerId={traceer(sent)}", STATUS_V2)
    assert [s["berichtstatus"] for s in v2] == ["AfgekeurdDoorDienst", "Bezorgd"]
    # confirming again is no error
    assert api.call("DELETE", f"{PULL_V1}/berichten/{retour_id}", KRAAM)[0] == 202


def test_v2_says_aangeboden_where_v3_says_wordt_aangeboden(api: Api) -> None:
    _, _, sent = api.send(KRAAM, b"not an EI file")
    conversation = sent["referentiegegevens"]["conversatieId"]
    v3 = api.statuses(KRAAM, f"conversatieId={conversation}")
    v2 = api.statuses(KRAAM, f"conversatieId={conversation}", STATUS_V2)
    assert [s["berichtstatus"] for s in v3] == ["AfgekeurdDoorDienst", "WordtAangeboden"]
    assert [s["berichtstatus"] for s in v2] == ["AfgekeurdDoorDienst", "Aangeboden"]


def test_limit_and_the_three_zoekpaden(api: Api) -> None:
    sent = [api.send(KRAAM, f"not an EI file {n}".encode())[2] for n in range(3)]
    assert len(api.waiting(KRAAM)) == 3
    assert len(api.waiting(KRAAM, "?limit=2")) == 2
    for bad in ("0", "251", "x", "-1", "2.5"):
        status, headers, body = api.call("GET", f"{PULL_V1}/berichten?limit={bad}", KRAAM)
        assert status == 400, bad
        assert headers["content-type"] == "application/problem+json"
        assert list(json.loads(body)["errors"]) == ["limit"]

    def search(zoekpad: dict[str, Any], query: str = "") -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = api.json(
            "POST", f"{PULL_V1}/berichten/zoeken{query}", KRAAM, json=zoekpad
        )
        return found

    answers = search({"zoekpadType": "ZoekpadOpAlsAntwoordOp", "alsAntwoordOp": traceer(sent[1])})
    assert [a["referentiegegevens"]["alsAntwoordOp"] for a in answers] == [traceer(sent[1])]
    conversation = sent[2]["referentiegegevens"]["conversatieId"]
    in_conversation = search(
        {"zoekpadType": "ZoekpadOpConversatieId", "conversatieId": conversation}
    )
    assert [a["referentiegegevens"]["alsAntwoordOp"] for a in in_conversation] == [traceer(sent[2])]
    by_flow = {"zoekpadType": "ZoekpadOpBerichtstroom", "berichttype": "KZ302"}
    assert len(search(by_flow)) == 3
    assert len(search(by_flow, "?limit=1")) == 1
    assert search({**by_flow, "geadresseerdeCode": OTHER_KRAAM.agb}) == []
    assert search({**by_flow, "berichttype": "ZH309"}) == []
    assert len(search({**by_flow, "actie": "Retourneren", "berichtversie": 3})) == 3
    zoekpad: Any
    for zoekpad in (
        {"zoekpadType": "ZoekpadOpAlsAntwoordOp"},
        {"zoekpadType": "ZoekpadOpAlsAntwoordOp", "alsAntwoordOp": "nope"},
        {"zoekpadType": "Anders"},
        {"zoekpadType": "ZoekpadOpBerichtstroom", "berichttype": "KZ302", "extra": 1},
        {"zoekpadType": "ZoekpadOpBerichtstroom", "berichttype": "KZ302", "berichtversie": "3"},
        [],
    ):
        status, _, body = api.call("POST", f"{PULL_V1}/berichten/zoeken", KRAAM, json=zoekpad)
        assert status == 400, zoekpad
        assert json.loads(body)["errors"], zoekpad


def test_the_sender_must_be_the_certificates_participant_nothing_stored(
    api: Api, registry: LayoutRegistry
) -> None:
    status, problem, _ = api.send(KRAAM, kz301(registry, agb=KRAAM.agb), sender=OTHER_KRAAM.agb)
    assert (status, problem["code"]) == (422, "afzender-onjuist")
    assert list(problem["errors"]) == ["routeringgegevens.afzender.code"]
    # a file declaring under another participant's code
    status, problem, _ = api.send(KRAAM, kz301(registry, agb=OTHER_KRAAM.agb))
    assert (status, problem["code"]) == (422, "declarant-onjuist")
    assert list(problem["errors"]) == ["payload"]
    assert api.store.message_count() == 0


def test_a_berichttype_naming_another_standard_is_refused_nothing_stored(
    registry: LayoutRegistry,
) -> None:
    api = Api(registry)
    status, problem, _ = api.send(KRAAM, kz301(registry, agb=KRAAM.agb), berichttype="ZH308")
    assert (status, problem["code"]) == (422, "berichtstroom-onjuist")
    assert list(problem["errors"]) == ["routeringgegevens.berichtstroom.berichttype"]
    assert "ZH308" in problem["detail"]
    assert "KZ301" in problem["detail"]
    assert api.send(KRAAM, kz301(registry, agb=KRAAM.agb), berichttype="kz301")[0] == 204
    assert api.store.message_count() == 1
    # configured aliases name a standard too, and the accepted values are configuration
    strict = Api(
        registry,
        BerichtstroomConfig(
            berichttypen=["EI-ZH308", "EI-KZ301"],
            acties=["Declareren"],
            standaarden={"EI-ZH308": "ZH308", "EI-KZ301": "KZ301"},
        ),
    )
    data = kz301(registry, agb=KRAAM.agb)
    refused = [
        strict.send(KRAAM, data, berichttype="EI-ZH308"),
        strict.send(KRAAM, data, berichttype="KZ301"),
        strict.send(KRAAM, data, berichttype="EI-KZ301", actie="Anders"),
    ]
    assert [(r[0], list(r[1]["errors"])) for r in refused] == [
        (422, ["routeringgegevens.berichtstroom.berichttype"]),
        (422, ["routeringgegevens.berichtstroom.berichttype"]),
        (422, ["routeringgegevens.berichtstroom.actie"]),
    ]
    assert strict.store.message_count() == 0
    assert strict.send(KRAAM, data, berichttype="EI-KZ301")[0] == 204


def valid_metadata() -> dict[str, Any]:
    return send_metadata(KRAAM.agb, "KZ301").recorded()


def changed(path: str, value: Any) -> dict[str, Any]:
    """Valid metadata with one field set (``None``: removed)."""
    metadata = valid_metadata()
    *parents, last = path.split(".")
    node: Any = metadata
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return metadata


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        (changed("referentiegegevens.traceerId", "not-a-uuid"), "referentiegegevens.traceerId"),
        (changed("referentiegegevens.traceerId", None), "referentiegegevens.traceerId"),
        (changed("referentiegegevens.conversatieId", 7), "referentiegegevens.conversatieId"),
        (changed("referentiegegevens.referentieId", "x" * 151), "referentiegegevens.referentieId"),
        (changed("referentiegegevens.extra", "x"), "referentiegegevens.extra"),
        (changed("routeringgegevens.afzender.rol", ""), "routeringgegevens.afzender.rol"),
        (
            changed("routeringgegevens.geadresseerden", [{"rol": "Z"}] * 101),
            "routeringgegevens.geadresseerden",
        ),
        (
            changed("routeringgegevens.berichtstroom.berichtversie", 1000),
            "routeringgegevens.berichtstroom.berichtversie",
        ),
        (
            changed("routeringgegevens.berichtstroom.berichtversie", "3"),
            "routeringgegevens.berichtstroom.berichtversie",
        ),
        (
            changed("routeringgegevens.berichtstroom.actie", None),
            "routeringgegevens.berichtstroom.actie",
        ),
        (changed("x", 1), "x"),
        (changed("verwerkingscontext", []), "verwerkingscontext"),
        (
            changed("verwerkingscontext", [{"sleutel": "a", "waarde": ["x" * 251]}]),
            "verwerkingscontext[0].waarde[0]",
        ),
        (changed("routeringgegevens", None), "routeringgegevens"),
    ],
)
def test_metadata_against_the_schema_400_naming_the_field_nothing_stored(
    api: Api, registry: LayoutRegistry, metadata: dict[str, Any], field: str
) -> None:
    status, problem, _ = api.send(KRAAM, kz301(registry, agb=KRAAM.agb), metadata=metadata)
    assert status == 400
    assert problem["status"] == 400
    assert problem["code"] == "metadata-ongeldig"
    assert field in problem["errors"], problem["errors"]
    assert api.store.message_count() == 0


@pytest.mark.parametrize(
    ("kwargs", "code", "field"),
    [
        (
            {"data": b"plain text", "headers": {"content-type": "text/plain"}},
            "geen-multipart",
            "body",
        ),
        (
            {"data": {"berichtMetadata": "{not json"}, "files": {"payload": ("a", b"x")}},
            "metadata-ongeldig",
            "berichtMetadata",
        ),
        (
            {"data": {"berichtMetadata": "[]"}, "files": {"payload": ("a", b"x")}},
            "metadata-ongeldig",
            "berichtMetadata",
        ),
        (
            {"data": {"berichtMetadata": json.dumps(valid_metadata())}, "files": {}},
            "onderdeel-ontbreekt",
            "payload",
        ),
        (
            {"data": {}, "files": {"payload": ("a", b"x")}},
            "onderdeel-ontbreekt",
            "berichtMetadata",
        ),
        (
            {
                "data": {"berichtMetadata": json.dumps(valid_metadata())},
                "files": {"payload": ("a", b"")},
            },
            "payload-leeg",
            "payload",
        ),
        (
            {
                "data": b"--x\r\nbroken",
                "headers": {"content-type": "multipart/form-data; boundary=x"},
            },
            "multipart-ongeldig",
            "body",
        ),
    ],
)
def test_malformed_uploads_get_400_validation_problem_details(
    api: Api, kwargs: dict[str, Any], code: str, field: str
) -> None:
    status, headers, body = api.call("POST", f"{PUSH_V1}/berichten", KRAAM, **kwargs)
    assert status == 400
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["code"] == code
    assert list(problem["errors"]) == [field]
    assert {"type", "title", "status", "detail", "instance"} <= set(problem)
    assert api.store.message_count() == 0


def test_another_participants_messages_are_unknown(api: Api, registry: LayoutRegistry) -> None:
    _, _, sent = api.send(KRAAM, b"broken")
    (retour,) = api.waiting(KRAAM)
    retour_id = retour["referentiegegevens"]["traceerId"]
    for method, path in [
        ("GET", f"{PULL_V1}/berichten/{retour_id}/payload"),
        ("GET", f"{PULL_V1}/berichten/{traceer(sent)}/payload"),
        ("DELETE", f"{PULL_V1}/berichten/{retour_id}"),
        ("DELETE", f"{PULL_V1}/berichten/{traceer(sent)}"),
        ("GET", f"{PULL_V1}/berichten/does-not-exist/payload"),
        ("GET", f"{PULL_V1}/berichten/{uuid.uuid4()}/payload"),
    ]:
        status, _, _ = api.call(method, path, OTHER_KRAAM)
        assert status == 404, (method, path)
    assert api.statuses(OTHER_KRAAM, f"traceerId={traceer(sent)}") == []
    conversation = sent["referentiegegevens"]["conversatieId"]
    assert api.statuses(OTHER_KRAAM, f"conversatieId={conversation}") == []
    assert api.waiting(OTHER_KRAAM) == []
    # the sender's own upload cannot be confirmed (it is not waiting for it)
    assert api.call("DELETE", f"{PULL_V1}/berichten/{traceer(sent)}", KRAAM)[0] == 404


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("", ["traceerId", "conversatieId"]),
        (
            f"traceerId={uuid.UUID(int=1)}&conversatieId={uuid.UUID(int=2)}",
            ["traceerId", "conversatieId"],
        ),
        ("traceerId=nope", ["traceerId"]),
        ("traceerId=nope&conversatieId=", ["traceerId"]),  # an empty parameter is no parameter
        ("conversatieId=", ["traceerId", "conversatieId"]),
    ],
)
def test_status_needs_one_uuid_parameter(api: Api, query: str, fields: list[str]) -> None:
    for version in (STATUS_V3, STATUS_V2):
        status, _, body = api.call("GET", f"{version}/berichtstatussen?{query}", KRAAM)
        assert status == 400
        assert sorted(json.loads(body)["errors"]) == sorted(fields)


def test_old_and_unknown_paths_are_404_and_the_openapi_document_is_served(api: Api) -> None:
    for path in (
        "/berichten",
        "/berichtstatussen",
        f"{PUSH_V1}/anders",
        f"{PULL_V1}/berichten/x/y",
    ):
        assert api.call("GET", path, KRAAM)[0] == 404, path
    status, _, body = api.call("GET", "/openapi.json", None)
    assert status == 200
    assert json.loads(body) == {"openapi": "3.0.3"}
    assert api.call("GET", f"{PUSH_V1}/berichten", KRAAM)[0] == 405


@pytest.mark.parametrize(
    "prefix",
    ["", "/acc", "/tst"],
    ids=["production", "acceptatie", "test"],
)
def test_the_services_answer_under_vecozos_environment_prefixes(api: Api, prefix: str) -> None:
    """A client configured with a VECOZO test-environment base (``/acc``, ``/tst``), or
    with a base URL that leaves out ``/berichtenservice``, finds the same services."""
    _, _, sent = api.send(KRAAM, b"not an EI file")
    for path in (
        f"{prefix}{PULL_V1}/berichten",
        PULL_V1.removeprefix("/berichtenservice") + "/berichten",
    ):
        assert len(api.json("GET", path, KRAAM)) == 1, path
    status_path = f"{prefix}{STATUS_V3}/berichtstatussen?traceerId={traceer(sent)}"
    assert len(api.json("GET", status_path, KRAAM)) == 2
    assert api.call("GET", f"/prd{PULL_V1}/berichten", KRAAM)[0] == 404


def test_unknown_certificate_gets_403(api: Api) -> None:
    status, _headers, body = api.call("GET", f"{PULL_V1}/berichten", None)
    assert status == 403
    assert json.loads(body)["code"] == "certificaat-onbekend"


def test_store_outage_answers_503_and_stores_nothing(
    api: Api, registry: LayoutRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: Any, **kwargs: Any) -> Any:
        return defer.fail(StoreUnavailableError("disk full"))

    monkeypatch.setattr(api.store, "record_upload", down)
    status, problem, _ = api.send(KRAAM, kz301(registry, agb=KRAAM.agb))
    assert status == 503
    assert problem["code"] == "tijdelijk-niet-beschikbaar"
    assert api.store.message_count() == 0


def test_reused_invoice_number_is_rejected_with_0030(api: Api, registry: LayoutRegistry) -> None:
    api.send(KRAAM, kz301(registry, agb=KRAAM.agb, invoice="F-1", lines=1))
    status, _, sent = api.send(KRAAM, kz301(registry, agb=KRAAM.agb, invoice="F-1", lines=2))
    assert status == 204
    (entry, _) = api.statuses(KRAAM, f"traceerId={traceer(sent)}")
    assert entry["berichtstatus"] == "AfgekeurdDoorDienst"
    assert [m["code"] for m in entry["meldingen"]] == ["0030"]
    # the same bytes under a new traceerId are a new message: rejected the same way
    again = api.send(KRAAM, kz301(registry, agb=KRAAM.agb, invoice="F-1", lines=1))[2]
    (entry, _) = api.statuses(KRAAM, f"traceerId={traceer(again)}")
    assert [m["code"] for m in entry["meldingen"]] == ["0030"]
    # another payee may use the same number
    _, _, theirs = api.send(OTHER_KRAAM, kz301(registry, agb=OTHER_KRAAM.agb, invoice="F-1"))
    (entry,) = api.statuses(OTHER_KRAAM, f"traceerId={traceer(theirs)}")
    assert entry["berichtstatus"] == "Ontvangen"


def test_the_lines_of_an_accepted_file_are_stored_with_it(
    api: Api, registry: LayoutRegistry
) -> None:
    _, _, sent = api.send(KRAAM, kz301(registry, agb=KRAAM.agb, lines=3))
    assert [(line.traceer_id, line.record_number) for line in api.store.lines] == [
        (traceer(sent), 2),
        (traceer(sent), 3),
        (traceer(sent), 4),
    ]
    assert {line.participant for line in api.store.lines} == {KRAAM.agb}
    # A rejected file's lines are not taken into bundling.
    api.send(KRAAM, kz301(registry, agb=KRAAM.agb, invoice="F2").replace(b"\r\n", b"\n", 1))
    assert len(api.store.lines) == 3


@pytest.mark.parametrize(
    ("caller", "retour", "declaration"),
    [
        (KRAAM, "kz302-retour-kraamzorg-33001234", "kz301-kraamzorg-33001234"),
        (MIDWIFE, "vk302-retour-verloskunde-02001234", "vk301-verloskunde-02001234"),
        (HOSPITAL, "zh309-retour-ziekenhuis-06001234", "zh308-ziekenhuis-06001234"),
    ],
    ids=["KZ302", "VK302", "ZH309"],
)
def test_a_participant_uploading_a_retour_standard_is_rejected_and_changes_nothing(
    registry: LayoutRegistry, caller: Caller, retour: str, declaration: str
) -> None:
    """A participant sends declarations only: a retour (here one carrying the same
    factuurnummer as the participant's real declaration) is technically rejected with
    0010, and the real declaration is then taken as if the retour never came."""
    api = Api(registry)
    payload = (MESSAGES / f"{retour}.asc").read_bytes()
    standard = retour[:5].upper()
    status, problem, sent = api.send(caller, payload, berichttype=standard)
    assert (status, problem) == (204, {})
    entry, rejection = api.statuses(caller, f"traceerId={traceer(sent)}")
    assert entry["berichtstatus"] == "AfgekeurdDoorDienst"
    assert [m["code"] for m in entry["meldingen"]] == ["0010"]
    assert rejection["berichtstatus"] == "WordtAangeboden"
    payload = (MESSAGES / f"{declaration}.asc").read_bytes()
    status, problem, sent = api.send(caller, payload, berichttype=declaration[:5].upper())
    assert (status, problem) == (204, {})
    (entry,) = api.statuses(caller, f"traceerId={traceer(sent)}")
    assert entry["berichtstatus"] == "Ontvangen"


EPD_ROUTES = [
    (f"{PUSH_V1}/berichten", {"POST"}),
    (f"{PULL_V1}/berichten", {"GET"}),
    (f"{PULL_V1}/berichten/zoeken", {"POST"}),
    (f"{PULL_V1}/berichten/{{id}}", {"DELETE"}),
    (f"{PULL_V1}/berichten/{{id}}/payload", {"GET"}),
    (f"{STATUS_V3}/berichtstatussen", {"GET"}),
    (f"{STATUS_V2}/berichtstatussen", {"GET"}),
]


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest.mark.parametrize(("template", "allowed"), EPD_ROUTES, ids=[r for r, _ in EPD_ROUTES])
def test_each_route_answers_405_with_allow_to_other_methods(
    api: Api, registry: LayoutRegistry, template: str, allowed: set[str], method: str
) -> None:
    _, _, sent = api.send(KRAAM, kz301(registry, agb=KRAAM.agb))
    path = template.format(id=traceer(sent))
    before = api.store.message_count()
    code, headers, body = api.call(method, path, KRAAM)
    if method in allowed:
        assert code != 405
        return
    assert code == 405
    assert set(headers["allow"].replace(" ", "").split(",")) == allowed
    if method != "HEAD":  # an answer to HEAD has no body
        assert json.loads(body)["code"] == "methode-niet-toegestaan"
    assert api.store.message_count() == before
