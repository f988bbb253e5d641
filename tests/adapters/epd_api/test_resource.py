"""The EPD API driven in memory (treq's StubTreq), as an EPD would use it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import count
from typing import Any

import pytest
from treq.testing import StubTreq
from twisted.internet import defer
from twisted.web import server

from adapters.epd_api.resource import Caller, EpdApi
from adapters.storage.memory import MemoryMessageStore
from gateway.ei import LayoutRegistry, load_layouts, validate_bytes
from gateway.intake import Intake
from gateway.store import StoreUnavailableError
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

    def __init__(self, registry: LayoutRegistry) -> None:
        self.store = MemoryMessageStore()
        ids = count(1)
        self.intake = Intake(
            self.store,
            registry,
            clock=lambda: NOW,
            run_in_thread=lambda f: defer.succeed(f()),
            new_id=lambda: f"id-{next(ids):04d}",
        )
        callers = {c.agb: c for c in (MIDWIFE, KRAAM, OTHER_KRAAM, HOSPITAL)}

        def authenticate(request: server.Request) -> Caller | None:
            agb = request.getHeader(b"x-test-caller")
            return callers.get(agb.decode()) if agb else None

        self.resource = EpdApi(self.intake, self.store, authenticate, clock=lambda: NOW)
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

    @staticmethod
    def _result(d: defer.Deferred[Any]) -> Any:
        results: list[Any] = []
        d.addBoth(results.append)
        assert results, "the request did not complete"
        if hasattr(results[0], "raiseException"):
            results[0].raiseException()
        return results[0]

    def upload(
        self, caller: Caller, payload: bytes, *, sender: str | None = None, **meta: Any
    ) -> tuple[int, dict[str, Any]]:
        metadata = {"afzender": {"rol": "ZORGAANBIEDER", "code": sender or caller.agb}, **meta}
        status, _, body = self.call(
            "POST",
            "/berichten",
            caller,
            data={"berichtMetadata": json.dumps(metadata)},
            files={"payload": ("declaratie.asc", payload, "application/octet-stream")},
        )
        return status, json.loads(body)


@pytest.fixture
def api(registry: LayoutRegistry) -> Api:
    return Api(registry)


def test_valid_upload_is_acknowledged_and_its_status_visible(
    api: Api, registry: LayoutRegistry
) -> None:
    status, receipt = api.upload(KRAAM, kz301(registry, agb=KRAAM.agb))
    assert status == 202
    assert receipt["status"] == "ontvangen"
    assert receipt["nieuw"] is True
    code, _, body = api.call("GET", f"/berichtstatussen?traceerId={receipt['traceerId']}", KRAAM)
    assert code == 200
    statuses = json.loads(body)["statussen"]
    assert [s["status"] for s in statuses] == ["ontvangen"]
    # nothing waits for the sender yet: a valid file is answered later, by the insurer
    code, _, body = api.call("GET", "/berichten", KRAAM)
    assert json.loads(body) == {"berichten": []}


def test_same_bytes_again_return_the_same_traceer_id(api: Api, registry: LayoutRegistry) -> None:
    data = kz301(registry, agb=KRAAM.agb)
    first_status, first = api.upload(KRAAM, data)
    again_status, again = api.upload(KRAAM, data)
    assert (first_status, again_status) == (202, 200)
    assert again["traceerId"] == first["traceerId"]
    assert again["nieuw"] is False


def test_invalid_file_gets_a_technical_rejection_in_the_senders_queue(
    api: Api, registry: LayoutRegistry
) -> None:
    broken = kz301(registry, agb=KRAAM.agb).replace(b"\r\n", b"\n", 1)
    status, receipt = api.upload(KRAAM, broken)
    assert status == 202
    assert receipt["status"] == "afgekeurd"
    assert receipt["code"] == "8095"
    code, _, body = api.call("GET", "/berichten", KRAAM)
    waiting = json.loads(body)["berichten"]
    assert len(waiting) == 1
    assert waiting[0]["alsAntwoordOp"] == receipt["traceerId"]
    assert waiting[0]["berichtType"] == "KZ302"
    code, headers, payload = api.call("GET", f"/berichten/{waiting[0]['traceerId']}/payload", KRAAM)
    assert code == 200
    result = validate_bytes(registry, payload)
    assert result.valid, result.findings
    assert result.layout is not None
    assert result.layout.standard == "KZ302"
    records = payload.split(b"\r\n")[:-1]
    assert [r[:2] for r in records] == [b"01", b"99"]
    header = records[0]
    assert header[342:350] == b"00018095"  # retourcodes 1 and 2 of the 01 tail
    assert headers["x-checksum-sha256"] == waiting[0]["checksum"]["waarde"]


def test_unknown_standard_is_rejected_with_0010(api: Api, registry: LayoutRegistry) -> None:
    data = bytearray(kz301(registry, agb=KRAAM.agb))
    data[2:5] = b"999"
    status, receipt = api.upload(KRAAM, bytes(data))
    assert status == 202
    assert receipt["code"] == "0010"


def test_confirming_removes_a_retour_from_the_queue(api: Api, registry: LayoutRegistry) -> None:
    api.upload(KRAAM, b"not an EI file")
    _, _, body = api.call("GET", "/berichten", KRAAM)
    (waiting,) = json.loads(body)["berichten"]
    code, _, _ = api.call("DELETE", f"/berichten/{waiting['traceerId']}", KRAAM)
    assert code == 204
    _, _, body = api.call("GET", "/berichten", KRAAM)
    assert json.loads(body)["berichten"] == []
    code, _, body = api.call("POST", "/berichten/zoeken", KRAAM, json={"inclusiefBevestigd": True})
    assert code == 200
    assert [m["traceerId"] for m in json.loads(body)["berichten"]] == [waiting["traceerId"]]


def test_reused_invoice_number_is_rejected_with_0030(api: Api, registry: LayoutRegistry) -> None:
    api.upload(KRAAM, kz301(registry, agb=KRAAM.agb, invoice="F-1", lines=1))
    status, receipt = api.upload(KRAAM, kz301(registry, agb=KRAAM.agb, invoice="F-1", lines=2))
    assert status == 202
    assert receipt["status"] == "afgekeurd"
    assert receipt["code"] == "0030"
    # another payee may use the same number
    status, receipt = api.upload(OTHER_KRAAM, kz301(registry, agb=OTHER_KRAAM.agb, invoice="F-1"))
    assert receipt["status"] == "ontvangen"


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
    api: Api, caller: Caller, retour: str, declaration: str
) -> None:
    """A participant sends declarations only: a retour (here one carrying the same
    factuurnummer as the participant's real declaration) is technically rejected with
    0010, and the real declaration is then taken as if the retour never came."""
    status, receipt = api.upload(caller, (MESSAGES / f"{retour}.asc").read_bytes())
    assert status == 202
    assert (receipt["status"], receipt["code"]) == ("afgekeurd", "0010")
    assert receipt["meldingen"][0]["veld"] == "0102"
    _, _, body = api.call("GET", "/berichten", caller)
    (answer,) = json.loads(body)["berichten"]
    assert answer["alsAntwoordOp"] == receipt["traceerId"]
    status, receipt = api.upload(caller, (MESSAGES / f"{declaration}.asc").read_bytes())
    assert (status, receipt["status"], receipt["code"]) == (202, "ontvangen", None)


def test_sender_mismatch_is_refused_and_nothing_is_stored(
    api: Api, registry: LayoutRegistry
) -> None:
    status, body = api.upload(KRAAM, kz301(registry, agb=KRAAM.agb), sender=OTHER_KRAAM.agb)
    assert status == 403
    assert body["code"] == "afzender-onjuist"
    # a file declaring under another participant's code
    status, body = api.upload(KRAAM, kz301(registry, agb=OTHER_KRAAM.agb))
    assert status == 403
    assert body["code"] == "declarant-onjuist"
    assert api.store.message_count() == 0


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"data": b"plain text", "headers": {"content-type": "text/plain"}}, "geen-multipart"),
        (
            {"data": {"berichtMetadata": "{not json"}, "files": {"payload": ("a", b"x")}},
            "metadata-ongeldig",
        ),
        (
            {"data": {"berichtMetadata": "{}"}, "files": {"payload": ("a", b"x")}},
            "metadata-ongeldig",
        ),
        (
            {"data": {"berichtMetadata": '{"afzender": {"rol": "Z", "code": "1"}}'}, "files": {}},
            "onderdeel-ontbreekt",
        ),
        (
            {
                "data": b"--x\r\nbroken",
                "headers": {"content-type": "multipart/form-data; boundary=x"},
            },
            "multipart-ongeldig",
        ),
    ],
)
def test_malformed_uploads_get_400_problem_json(
    api: Api, kwargs: dict[str, Any], code: str
) -> None:
    status, headers, body = api.call("POST", "/berichten", KRAAM, **kwargs)
    assert status == 400
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body)["code"] == code


def test_another_participants_message_answers_404_everywhere(
    api: Api, registry: LayoutRegistry
) -> None:
    _, receipt = api.upload(KRAAM, b"broken")
    _, _, body = api.call("GET", "/berichten", KRAAM)
    (retour,) = json.loads(body)["berichten"]
    for method, path in [
        ("GET", f"/berichten/{receipt['traceerId']}"),
        ("GET", f"/berichten/{retour['traceerId']}/payload"),
        ("DELETE", f"/berichten/{retour['traceerId']}"),
        ("GET", f"/berichtstatussen?traceerId={receipt['traceerId']}"),
        ("GET", f"/berichtstatussen?conversatieId={receipt['conversatieId']}"),
        ("GET", "/berichten/does-not-exist"),
    ]:
        status, _, _ = api.call(method, path, OTHER_KRAAM)
        assert status == 404, (method, path)
    _, _, body = api.call("GET", "/berichten", OTHER_KRAAM)
    assert json.loads(body)["berichten"] == []


def test_unknown_certificate_gets_403(api: Api) -> None:
    status, _headers, body = api.call("GET", "/berichten", None)
    assert status == 403
    assert json.loads(body)["code"] == "certificaat-onbekend"


def test_store_outage_answers_503_and_stores_nothing(
    api: Api, registry: LayoutRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*args: Any, **kwargs: Any) -> Any:
        return defer.fail(StoreUnavailableError("disk full"))

    monkeypatch.setattr(api.store, "record_upload", down)
    status, body = api.upload(KRAAM, kz301(registry, agb=KRAAM.agb))
    assert status == 503
    assert body["code"] == "tijdelijk-niet-beschikbaar"
    assert api.store.message_count() == 0


def test_conversation_statuses_cover_upload_and_rejection(
    api: Api, registry: LayoutRegistry
) -> None:
    _, receipt = api.upload(KRAAM, b"broken", conversatieId="conv-1")
    assert receipt["conversatieId"] == "conv-1"
    status, _, body = api.call("GET", "/berichtstatussen?conversatieId=conv-1", KRAAM)
    assert status == 200
    kinds = [s["status"] for s in json.loads(body)["statussen"]]
    assert "afgekeurd" in kinds


def test_the_lines_of_an_accepted_file_are_stored_with_it(
    api: Api, registry: LayoutRegistry
) -> None:
    _, receipt = api.upload(KRAAM, kz301(registry, agb=KRAAM.agb, lines=3))
    assert [(line.traceer_id, line.record_number) for line in api.store.lines] == [
        (receipt["traceerId"], 2),
        (receipt["traceerId"], 3),
        (receipt["traceerId"], 4),
    ]
    assert {line.participant for line in api.store.lines} == {KRAAM.agb}
    # A rejected file's lines are not taken into bundling.
    api.upload(KRAAM, kz301(registry, agb=KRAAM.agb, invoice="F2").replace(b"\r\n", b"\n", 1))
    assert len(api.store.lines) == 3


# --- Idempotency-Key --------------------------------------------------------------------


def keyed_upload(
    api: Api, caller: Caller, payload: bytes, key: str
) -> tuple[int, dict[str, str], dict[str, Any]]:
    metadata = {"afzender": {"rol": "ZORGAANBIEDER", "code": caller.agb}}
    status, headers, body = api.call(
        "POST",
        "/berichten",
        caller,
        headers={"idempotency-key": key},
        data={"berichtMetadata": json.dumps(metadata)},
        files={"payload": ("declaratie.asc", payload, "application/octet-stream")},
    )
    return status, headers, json.loads(body)


def test_the_same_key_with_the_same_bytes_gets_the_same_answer(
    api: Api, registry: LayoutRegistry
) -> None:
    data = kz301(registry, agb=KRAAM.agb)
    first = keyed_upload(api, KRAAM, data, "8e03978e-40d5-43e8-bc93-6894a57f9324")
    again = keyed_upload(api, KRAAM, data, '"8e03978e-40d5-43e8-bc93-6894a57f9324"')
    assert (first[0], again[0]) == (202, 200)
    assert again[2]["traceerId"] == first[2]["traceerId"]
    assert again[2]["nieuw"] is False
    assert api.store.message_count() == 1


def test_the_same_key_with_other_bytes_is_refused_422_and_stores_nothing(
    api: Api, registry: LayoutRegistry
) -> None:
    keyed_upload(api, KRAAM, kz301(registry, agb=KRAAM.agb, invoice="F-1"), "key-1")
    status, headers, problem = keyed_upload(
        api, KRAAM, kz301(registry, agb=KRAAM.agb, invoice="F-2"), "key-1"
    )
    assert status == 422
    assert headers["content-type"] == "application/problem+json"
    assert problem["code"] == "idempotency-key-hergebruikt"
    assert problem["status"] == 422
    assert api.store.message_count() == 1
    # A broken file under a used key is refused too: no rejection retour is queued.
    broken = kz301(registry, agb=KRAAM.agb, invoice="F-3").replace(b"\r\n", b"\n", 1)
    assert keyed_upload(api, KRAAM, broken, "key-1")[0] == 422
    assert api.store.message_count() == 1


def test_keys_are_scoped_per_participant(api: Api, registry: LayoutRegistry) -> None:
    mine = keyed_upload(api, KRAAM, kz301(registry, agb=KRAAM.agb), "shared-key")
    theirs = keyed_upload(api, OTHER_KRAAM, kz301(registry, agb=OTHER_KRAAM.agb), "shared-key")
    assert (mine[0], theirs[0]) == (202, 202)
    assert mine[2]["traceerId"] != theirs[2]["traceerId"]


@pytest.mark.parametrize("key", ["", "  ", "x" * 256, "met spatie\u00e9", '"', 'a"b'])
def test_a_malformed_key_is_refused_400(api: Api, registry: LayoutRegistry, key: str) -> None:
    status, _, problem = keyed_upload(api, KRAAM, kz301(registry, agb=KRAAM.agb), key)
    assert (status, problem["code"]) == (400, "idempotency-key-ongeldig")
    assert api.store.message_count() == 0


def test_a_retry_while_the_first_is_in_flight_is_refused_409_never_stored_twice(
    registry: LayoutRegistry,
) -> None:
    api = Api(registry)
    held: list[defer.Deferred[Any]] = []

    def run_in_thread(work: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        held.append(d)
        d.addCallback(lambda _: work())
        return d

    api.intake._run_in_thread = run_in_thread
    data = kz301(registry, agb=KRAAM.agb)
    metadata = json.dumps({"afzender": {"rol": "ZORGAANBIEDER", "code": KRAAM.agb}})
    body, content_type = multipart(
        {"berichtMetadata": metadata}, {"payload": ("d.asc", data, "application/octet-stream")}
    )
    first = api.treq.request(
        "POST",
        "https://gateway.test/berichten",
        headers={"idempotency-key": "k", "content-type": content_type, "x-test-caller": KRAAM.agb},
        data=body,
    )
    api.treq.flush()
    assert len(held) == 1  # the first is being checked
    status, _, problem = keyed_upload(api, KRAAM, data, "k")
    assert (status, problem["code"]) == (409, "idempotency-key-in-behandeling")
    held[0].callback(None)
    api.treq.flush()
    assert api._result(first).code == 202
    held.clear()
    api.intake._run_in_thread = lambda work: defer.succeed(work())
    status, _, receipt = keyed_upload(api, KRAAM, data, "k")
    assert (status, receipt["nieuw"]) == (200, False)
    assert api.store.message_count() == 1


EPD_ROUTES = [
    ("/berichten", {"GET", "POST"}),
    ("/berichten/zoeken", {"POST"}),
    ("/berichten/{id}", {"GET", "DELETE"}),
    ("/berichten/{id}/payload", {"GET"}),
    ("/berichtstatussen", {"GET"}),
]


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest.mark.parametrize(("template", "allowed"), EPD_ROUTES, ids=[r for r, _ in EPD_ROUTES])
def test_each_route_answers_405_with_allow_to_other_methods(
    api: Api, registry: LayoutRegistry, template: str, allowed: set[str], method: str
) -> None:
    _, receipt = api.upload(KRAAM, b"not an EI file")  # a message of the caller's own
    path = template.format(id=receipt["traceerId"])
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
