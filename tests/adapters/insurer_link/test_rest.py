"""The REST insurer link against the insurer simulator, in memory: delivery, retours,
confirmation, the simulator's rules, and the faults that retries must survive without a
second claim."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from treq.testing import RequestTraversalAgent, StringStubbingResource
from twisted.internet import defer, error
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.client import ResponseNeverReceived

from adapters.insurer_link.rest import (
    RestInsurerLink,
    _service_status,
    _status_error,
    _transport_error,
    outbound_traceer_id,
)
from gateway.ei import Record, read_records, validate_bytes
from gateway.insurer import Park, RetryPolicy
from gateway.ports.insurer import (
    Delivery,
    FetchedRetour,
    InsurerLinkError,
    LinkErrorReason,
    OutboundFile,
    ServiceStatus,
)
from gateway.vsp import PULL_V1, PUSH_V1, STATUS_V2, STATUS_V3, as_uuid
from tests.adapters.insurer_link.harness import REGISTRY, TIMEOUT, harness
from tests.adapters.insurer_sim.support import IGO, TARIFF, UZOVI, integral_claim
from tests.factories import BSNS

# The in-memory transport of treq.testing has no abortConnection; real transports do.
pytestmark = pytest.mark.filterwarnings("ignore:Using readBody with a transport:DeprecationWarning")
POLICY = RetryPolicy(first_delay=timedelta(seconds=1), max_attempts=5, jitter=0)


def claim_file(message_id: str = "out-0001", **kwargs: Any) -> OutboundFile:
    return OutboundFile(
        message_id=message_id,
        insurer=UZOVI,
        sender=IGO,
        standard="KZ301",
        payload=integral_claim(REGISTRY, **kwargs),
        conversation_id=f"conv-{message_id}",
    )


def retour_lines(retour: FetchedRetour) -> list[tuple[int, list[str]]]:
    result = validate_bytes(REGISTRY, retour.payload)
    assert result.valid, [f.message for f in result.findings]
    assert result.layout is not None
    assert result.layout.standard == "KZ302"
    out = []
    for rec in read_records(REGISTRY, [retour.payload]):
        assert isinstance(rec, Record)
        if rec.type == "04":
            codes = [rec.text(f"retourcode_{i}") for i in (1, 2, 3)]
            out.append((rec.number_value("granted_amount"), [c for c in codes if c.strip("0")]))
    return out


def header_codes(retour: FetchedRetour) -> list[str]:
    head = next(iter(read_records(REGISTRY, [retour.payload])))
    assert isinstance(head, Record)
    return [c for c in (head.text(f"retourcode_{i}") for i in (1, 2, 3)) if c.strip("0")]


def test_send_fetch_and_confirm_a_granted_claim() -> None:
    h = harness()
    delivery = h.run(h.link.send(claim_file(bsns=(BSNS[0], BSNS[1]))))
    # the traceerId is the outbound file's own, the same on every attempt
    assert delivery == Delivery(outbound_traceer_id("out-0001"), repeated=False)
    assert uuid.UUID(delivery.remote_id).version == 5
    (retour,) = h.run(h.link.fetch())
    assert retour.in_reply_to == delivery.remote_id
    assert retour.conversation_id == as_uuid("conv-out-0001")
    assert retour.standard == "KZ302"
    assert retour_lines(retour) == [(TARIFF, []), (TARIFF, [])]
    h.run(h.link.confirm(retour))
    assert h.run(h.link.fetch()) == []
    h.run(h.link.confirm(retour))  # again: it is gone, which is what was wanted
    (entry,) = h.insurer.claims_json()["files"]
    assert entry["referentieId"] == "out-0001"
    assert h.idle()


@pytest.mark.parametrize(
    ("rules", "kwargs", "expected"),
    [
        ({"not_insured": [BSNS[1]]}, {"bsns": (BSNS[1],)}, [(0, ["0320"])]),
        ({"overlap": [{"bsn": BSNS[3]}]}, {"bsns": (BSNS[3],)}, [(0, ["0587"])]),
        ({"tariffs": {"196202": TARIFF}}, {"tariff": TARIFF - 1}, [(0, ["0611"])]),
    ],
    ids=["0320", "0587", "0611"],
)
def test_rejected_lines(rules: dict[str, Any], kwargs: dict[str, Any], expected: list[Any]) -> None:
    h = harness(rules=rules)
    h.run(h.link.send(claim_file(**kwargs)))
    (retour,) = h.run(h.link.fetch())
    assert retour_lines(retour) == expected


def test_a_whole_file_rejection_comes_back_as_a_retour() -> None:
    h = harness(rules={"reject_all": True})
    h.run(h.link.send(claim_file()))
    (retour,) = h.run(h.link.fetch())
    assert header_codes(retour) == ["0001"]
    assert retour_lines(retour) == []
    assert h.insurer.claims_json()["claims"] == 0


def test_an_insurer_down_for_a_while_gets_the_file_once() -> None:
    h = harness(faults={"fail_first": 3})
    errors: list[str] = []
    delivery = h.run(h.deliver(claim_file(), POLICY, errors))
    assert isinstance(delivery, Delivery)
    assert not delivery.repeated
    assert errors == ["unavailable: upload: HTTP 503 (Simulated outage; try again later.)"] * 3
    summary = h.insurer.claims_json()
    assert (summary["uploads"], summary["claims"]) == (4, 1)


def test_an_insurer_down_for_too_long_parks_the_file_with_the_last_error() -> None:
    h = harness(faults={"fail_first": 10})
    parked = h.run(h.deliver(claim_file(), POLICY, []))
    assert isinstance(parked, Park)
    assert parked.attempts == POLICY.max_attempts
    assert "503" in parked.last_error
    assert h.insurer.claims_json()["claims"] == 0


def test_a_timeout_after_the_insurer_stored_the_file_then_a_retry_books_no_second_claim() -> None:
    h = harness(faults={"stall_first": 1, "stall_seconds": 300})
    pending = h.start(h.link.send(claim_file()))
    assert pending == []
    h.link_clock.advance(TIMEOUT)
    h.agent.flush()
    (failure,) = pending
    assert isinstance(failure, Failure)
    assert isinstance(failure.value, InsurerLinkError)
    assert failure.value.reason is LinkErrorReason.TIMEOUT
    assert failure.value.retryable
    # the insurer has the file all the same
    assert h.insurer.claims_json()["claims"] == 1
    again = h.run(h.link.send(claim_file()))  # the same traceerId: taken as the same file
    assert again.remote_id == outbound_traceer_id("out-0001")
    summary = h.insurer.claims_json()
    assert (summary["uploads"], summary["bestanden"], summary["claims"]) == (2, 1, 1)
    assert len(h.run(h.link.fetch())) == 1
    # the held-back answer's timer was cancelled when the client went away
    h.advance(300)
    assert h.idle()


def test_a_slow_insurer_within_the_deadline_is_fine() -> None:
    h = harness(faults={"response_delay_seconds": TIMEOUT / 2})
    pending = h.start(h.link.send(claim_file()))
    h.advance(TIMEOUT / 2)
    (delivery,) = pending
    assert isinstance(delivery, Delivery)
    assert h.idle()


def test_a_retour_appears_once_the_insurer_has_made_it() -> None:
    h = harness(faults={"retour_delay_seconds": 3600})
    h.run(h.link.send(claim_file()))
    assert h.run(h.link.fetch()) == []
    h.sim_clock.advance(3600)
    assert len(h.run(h.link.fetch())) == 1


def test_the_same_id_for_other_bytes_is_a_conflict() -> None:
    h = harness()
    h.run(h.link.send(claim_file("out-7")))
    with pytest.raises(InsurerLinkError) as caught:
        h.run(h.link.send(claim_file("out-7", invoice="IGO2026-0002")))
    assert caught.value.reason is LinkErrorReason.CONFLICT
    assert not caught.value.retryable


# --- the simulator's HTTP side, where the link would never go ---------------------------------


def test_a_caller_without_certificate_is_refused() -> None:
    h = harness()
    h.caller[0] = None
    status, body = h.request(b"GET", f"{PULL_V1}/berichten")
    assert status == 403
    assert json.loads(body)["code"] == "certificaat-onbekend"


NOPE = "00000000-0000-0000-0000-00000000abcd"


@pytest.mark.parametrize(
    ("method", "path", "body", "ctype", "status"),
    [
        (b"POST", f"{PUSH_V1}/berichten", b"x", b"text/plain", 400),
        (b"POST", f"{PUSH_V1}/berichten", b"--b--\r\n", b"multipart/form-data; boundary=b", 400),
        (b"PUT", f"{PUSH_V1}/berichten", b"", None, 405),
        (b"GET", f"{PULL_V1}/berichten?limit=0", b"", None, 400),
        (b"POST", f"{PULL_V1}/berichten/zoeken", b'{"zoekpadType": "x"}', None, 400),
        (b"GET", f"{PULL_V1}/berichten/{NOPE}/payload", b"", None, 404),
        (b"GET", f"{PULL_V1}/berichten/{NOPE}/other", b"", None, 404),
        (b"DELETE", f"{PULL_V1}/berichten/{NOPE}", b"", None, 404),
        (b"GET", f"{STATUS_V3}/berichtstatussen", b"", None, 400),
        (b"GET", f"{STATUS_V3}/berichtstatussen?traceerId=nope", b"", None, 400),
        (b"GET", "/berichten", b"", None, 404),
        (b"GET", "/elders", b"", None, 404),
        (b"PUT", "/sim/faults", b'{"fail_first": -1}', b"application/json", 400),
    ],
)
def test_bad_requests(
    method: bytes, path: str, body: bytes, ctype: bytes | None, status: int
) -> None:
    h = harness()
    got, data = h.request(method, path, body, ctype)
    assert got == status
    assert json.loads(data)["status"] == status


def test_metadata_must_be_vecozos() -> None:
    h = harness()
    body = (
        b'--b\r\nContent-Disposition: form-data; name="berichtMetadata"\r\n\r\n{}\r\n'
        b'--b\r\nContent-Disposition: form-data; name="payload"\r\n\r\nx\r\n--b--\r\n'
    )
    status, data = h.request(
        b"POST", f"{PUSH_V1}/berichten", body, b"multipart/form-data; boundary=b"
    )
    assert status == 400
    assert set(json.loads(data)["errors"]) == {"routeringgegevens", "referentiegegevens"}


def test_faults_can_be_switched_while_running_and_statuses_read() -> None:
    h = harness()
    status, _ = h.request(b"PUT", "/sim/faults", b'{"fail_first": 1, "fail_status": 502}')
    assert status == 200
    with pytest.raises(InsurerLinkError, match="HTTP 502"):
        h.run(h.link.send(claim_file()))
    delivery = h.run(h.link.send(claim_file()))
    status, data = h.request(b"GET", f"{STATUS_V3}/berichtstatussen?traceerId={delivery.remote_id}")
    assert status == 200
    found = json.loads(data)
    assert [(s["referentiegegevens"]["traceerId"], s["berichtstatus"]) for s in found] == [
        (delivery.remote_id, "VerwerkingVoltooid"),
        (found[1]["referentiegegevens"]["traceerId"], "WordtAangeboden"),
    ]
    assert found[1]["referentiegegevens"]["alsAntwoordOp"] == delivery.remote_id
    assert found[0]["berichtstroom"]["berichttype"] == "KZ301"
    status, data = h.request(b"GET", f"{STATUS_V2}/berichtstatussen?traceerId={delivery.remote_id}")
    assert [s["berichtstatus"] for s in json.loads(data)] == ["VerwerkingVoltooid", "Aangeboden"]
    (entry,) = h.insurer.claims_json()["files"]
    assert entry["factuurnummer"] == "IGO2026-0001"


def test_the_simulator_lists_and_searches_as_vecozo_does() -> None:
    h = harness()
    first = h.run(h.link.send(claim_file("out-1", invoice="IGO2026-0001")))
    h.run(h.link.send(claim_file("out-2", invoice="IGO2026-0002")))
    status, data = h.request(b"GET", f"{PULL_V1}/berichten?limit=1")
    (listed,) = json.loads(data)
    assert listed["routeringgegevens"]["afzender"] == {"rol": "Zorgverzekeraar", "code": UZOVI}
    assert listed["basisgegevens"]["payload"]["checksum"]["algoritme"] == "SHA256"
    zoekpad = {"zoekpadType": "ZoekpadOpAlsAntwoordOp", "alsAntwoordOp": first.remote_id}
    status, data = h.request(
        b"POST", f"{PULL_V1}/berichten/zoeken", json.dumps(zoekpad).encode(), b"application/json"
    )
    assert status == 200
    assert [e["referentiegegevens"]["alsAntwoordOp"] for e in json.loads(data)] == [first.remote_id]


def test_the_retours_of_one_file_are_searched_by_als_antwoord_op() -> None:
    """``POST /berichten/zoeken`` with a ZoekpadOpAlsAntwoordOp: the retours answering
    that one file, downloaded and checked as fetched ones are."""
    h = harness()
    first = h.run(h.link.send(claim_file("out-1", invoice="IGO2026-0001")))
    h.run(h.link.send(claim_file("out-2", invoice="IGO2026-0002")))
    (retour,) = h.run(h.link.answers_to(first.remote_id))
    assert retour.in_reply_to == first.remote_id
    assert retour_lines(retour) == [(TARIFF, [])]
    h.run(h.link.confirm(retour))
    assert h.run(h.link.answers_to(first.remote_id)) == []
    assert [r.in_reply_to for r in h.run(h.link.fetch())] != [first.remote_id]


def test_the_status_of_a_delivered_file() -> None:
    h = harness()
    delivery = h.run(h.link.send(claim_file()))
    status = h.run(h.link.status_of(delivery.remote_id))
    assert status == ServiceStatus("VerwerkingVoltooid", rejected=False)
    assert h.run(h.link.status_of(outbound_traceer_id("never-sent"))) is None


def test_a_file_rejected_by_the_service_has_its_codes_and_no_retour() -> None:
    h = harness(faults={"service_reject_first": 1, "service_reject_codes": ["SIM001", "X-2"]})
    delivery = h.run(h.link.send(claim_file()))
    assert h.run(h.link.status_of(delivery.remote_id)) == ServiceStatus(
        "AfgekeurdDoorDienst", rejected=True, codes=("SIM001", "X-2")
    )
    assert h.run(h.link.answers_to(delivery.remote_id)) == []
    assert h.run(h.link.fetch()) == []
    assert h.insurer.claims_json()["claims"] == 0


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"berichtstatus": "WordtVerwerkt"}, ServiceStatus("WordtVerwerkt", rejected=False)),
        (
            {"berichtstatus": "BezorgingAfgebroken"},
            ServiceStatus("BezorgingAfgebroken", rejected=True),
        ),
        (
            {
                "berichtstatus": "AfgekeurdDoorDienst",
                "meldingen": [
                    {"code": "8028", "omschrijving": "x", "toelichting": "BSN 999999990"},
                    {"code": "naam Jansen, geboren 1-1-1990"},  # not a code: left out
                    {"omschrijving": "no code"},
                    "not an object",
                ],
            },
            ServiceStatus("AfgekeurdDoorDienst", rejected=True, codes=("8028",)),
        ),
        ({"berichtstatus": 7}, None),
    ],
    ids=["in-progress", "aborted", "rejected", "nonsense"],
)
def test_a_status_entry_is_read_without_client_data(
    entry: dict[str, Any], expected: ServiceStatus | None
) -> None:
    mine = outbound_traceer_id("out-0001")
    other = {"referentiegegevens": {"traceerId": "x", "alsAntwoordOp": mine}}
    found = [other, {"referentiegegevens": {"traceerId": mine}, **entry}]
    assert _service_status(found, mine) == expected


# --- translating failures ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (500, LinkErrorReason.UNAVAILABLE),
        (503, LinkErrorReason.UNAVAILABLE),
        (429, LinkErrorReason.UNAVAILABLE),
        (408, LinkErrorReason.UNAVAILABLE),
        (409, LinkErrorReason.CONFLICT),
        (422, LinkErrorReason.CONFLICT),
        (400, LinkErrorReason.REFUSED),
        (403, LinkErrorReason.REFUSED),
        (302, LinkErrorReason.PROTOCOL),
    ],
)
def test_statuses_become_link_errors(status: int, reason: LinkErrorReason) -> None:
    err = _status_error(status, b'{"detail": "why"}', "upload")
    assert err.reason is reason
    assert err.status == status
    assert str(err) == f"{reason.value}: upload: HTTP {status} (why)"


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (defer.TimeoutError(), LinkErrorReason.TIMEOUT),
        (defer.CancelledError(), LinkErrorReason.TIMEOUT),
        (error.ConnectionRefusedError(), LinkErrorReason.UNREACHABLE),
        (error.DNSLookupError(), LinkErrorReason.UNREACHABLE),
        (ResponseNeverReceived([]), LinkErrorReason.UNREACHABLE),
    ],
)
def test_transport_failures_become_link_errors(exc: Exception, reason: LinkErrorReason) -> None:
    assert _transport_error(exc, "GET /berichten").reason is reason


def test_a_tls_failure_is_not_retried() -> None:
    from OpenSSL import SSL  # noqa: PLC0415

    err = _transport_error(ResponseNeverReceived([Failure(SSL.Error("bad cert"))]), "POST x")
    assert err.reason is LinkErrorReason.TLS
    assert not err.retryable


def stub_link(answer: tuple[int, dict[str, str], bytes]) -> RestInsurerLink:
    """A link to an endpoint that answers every request with ``answer``."""
    agent = RequestTraversalAgent(StringStubbingResource(lambda *args: answer))
    return RestInsurerLink(Clock(), agent, "https://x.test", sender=IGO, insurer=UZOVI)


def run_stub(coro: Any) -> Any:
    results: list[Any] = []
    defer.Deferred.fromCoroutine(coro).addBoth(results.append)
    (result,) = results
    return result


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (302, LinkErrorReason.PROTOCOL),
        (400, LinkErrorReason.REFUSED),
        (422, LinkErrorReason.CONFLICT),
    ],
)
def test_an_upload_not_answered_204_is_an_error(status: int, reason: LinkErrorReason) -> None:
    link = stub_link((status, {"content-type": "application/problem+json"}, b"{}"))
    failure = run_stub(link.send(claim_file()))
    assert failure.value.reason is reason


def listed(traceer_id: str, checksum: str) -> dict[str, Any]:
    return {
        "basisgegevens": {
            "ontvangenOp": "2026-11-02T10:00:00+01:00",
            "payload": {
                "url": f"https://x.test{PULL_V1}/berichten/{traceer_id}/payload",
                "grootte": 12,
                "checksum": {"algoritme": "SHA256", "waarde": checksum},
            },
        },
        "routeringgegevens": {
            "afzender": {"rol": "Zorgverzekeraar", "code": UZOVI},
            "geadresseerden": [{"rol": "Zorgaanbieder", "code": IGO}],
            "berichtstroom": {
                "berichttype": "KZ302",
                "berichtversie": 3,
                "berichtsubversie": 2,
                "actie": "Retourneren",
            },
        },
        "referentiegegevens": {"traceerId": traceer_id, "conversatieId": NOPE},
    }


def test_a_retour_that_does_not_match_its_checksum_is_corrupt() -> None:
    listing = [listed(NOPE, "00" * 32)]

    def answer(method: bytes, url: str, *rest: Any) -> tuple[int, dict[str, str], bytes]:
        if url.endswith("/payload"):
            return 200, {}, b"retour bytes"
        return 200, {}, json.dumps(listing).encode()

    agent = RequestTraversalAgent(StringStubbingResource(answer))
    link = RestInsurerLink(Clock(), agent, "https://x.test", sender=IGO, insurer=UZOVI)
    failure = run_stub(link.fetch())
    assert failure.value.reason is LinkErrorReason.CORRUPT
    assert failure.value.retryable


@pytest.mark.parametrize("body", [b"{}", b"not json", b'[{"x": 1}]', b"[1]"])
def test_a_listing_that_cannot_be_read_is_a_protocol_error(body: bytes) -> None:
    failure = run_stub(stub_link((200, {}, body)).fetch())
    assert failure.value.reason is LinkErrorReason.PROTOCOL


def test_confirm_fails_on_a_server_error() -> None:
    failure = run_stub(stub_link((500, {}, b"")).confirm(FetchedRetour("r1", b"")))
    assert failure.value.reason is LinkErrorReason.UNAVAILABLE


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout"):
        RestInsurerLink(
            Clock(), RequestTraversalAgent(None), "https://x", sender=IGO, insurer=UZOVI, timeout=0
        )
