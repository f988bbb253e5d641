"""The simulated insurer's memory: each claim booked once, queues per caller, faults."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.insurer_sim.config import SimConfig, SimFaults
from adapters.insurer_sim.insurer import ConflictError, SimulatedInsurer, UploadFault
from gateway.loading import load_layouts
from tests.adapters.insurer_sim.support import IGO, OTHER_IGO, UZOVI, integral_claim

REGISTRY = load_layouts()
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Now:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> datetime:
        return self.at


def config(**sections: Any) -> SimConfig:
    tls = {"cert": "s.pem", "key": "s.key", "trust": "ca.pem"}
    return SimConfig.model_validate({"uzovi": UZOVI, "tls": tls, **sections})


def insurer(now: Now | None = None, **sections: Any) -> SimulatedInsurer:
    counter = itertools.count(1)
    return SimulatedInsurer(
        config(**sections), REGISTRY, now or Now(), new_id=lambda: str(uuid.UUID(int=next(counter)))
    )


CLAIM = integral_claim(REGISTRY)


def test_the_same_bytes_again_are_the_same_claim() -> None:
    sim = insurer()
    first, created = sim.receive(IGO, CLAIM)
    again, created_again = sim.receive(IGO, CLAIM)
    assert (created, created_again) == (True, False)
    assert again is first
    assert first.repeats == 1
    assert sim.claims_json()["claims"] == 1
    assert len(sim.waiting(IGO)) == 1


def test_the_same_reference_again_is_the_same_claim_and_other_bytes_conflict() -> None:
    sim = insurer()
    first, _ = sim.receive(IGO, CLAIM, reference_id="out-1")
    assert sim.receive(IGO, CLAIM, reference_id="out-1") == (first, False)
    other = integral_claim(REGISTRY, invoice="IGO2026-0002")
    with pytest.raises(ConflictError):
        sim.receive(IGO, other, reference_id="out-1")
    assert sim.claims_json()["claims"] == 1


def test_the_same_invoice_number_again_is_the_same_claim() -> None:
    sim = insurer()
    first, _ = sim.receive(IGO, CLAIM)
    edited = integral_claim(REGISTRY, comment="tweede poging")
    assert sim.receive(IGO, edited) == (first, False)
    assert sim.claims_json()["claims"] == 1


def test_a_file_rejected_whole_leaves_its_invoice_number_free() -> None:
    sim = insurer()
    broken, created = sim.receive(IGO, CLAIM[:-20] + b"\r\n")
    assert created
    assert not broken.judgement.accepted
    fixed, created = sim.receive(IGO, CLAIM)
    assert created
    assert fixed.judgement.accepted
    summary = sim.claims_json()
    assert (summary["bestanden"], summary["claims"], summary["afgekeurd"]) == (2, 1, 1)


def test_senders_are_kept_apart() -> None:
    sim = insurer()
    mine, _ = sim.receive(IGO, CLAIM)
    theirs, created = sim.receive(OTHER_IGO, CLAIM)
    assert created
    assert theirs.traceer_id != mine.traceer_id
    assert [r.reply_to for r in sim.waiting(IGO)] == [mine.traceer_id]
    assert mine.retour_id is not None
    assert sim.retour(OTHER_IGO, mine.retour_id) is None
    assert not sim.confirm(OTHER_IGO, mine.retour_id)
    assert sim.sent(OTHER_IGO, mine.traceer_id) is None
    assert [e["referentiegegevens"]["traceerId"] for e in sim.status_entries(OTHER_IGO)] == [
        theirs.traceer_id,
        theirs.retour_id,
    ]


def test_a_retour_answers_its_file_in_the_same_conversation() -> None:
    sim = insurer()
    received, _ = sim.receive(IGO, CLAIM, conversatie_id="conv-7")
    (retour,) = sim.waiting(IGO)
    assert (retour.reply_to, retour.conversatie_id) == (received.traceer_id, "conv-7")
    assert retour.standard == "KZ302"
    assert retour.as_json()["checksum"]["waarde"] == retour.sha256


def test_confirming_takes_a_retour_out_of_the_queue_once() -> None:
    sim = insurer()
    received, _ = sim.receive(IGO, CLAIM)
    assert received.retour_id is not None
    assert sim.confirm(IGO, received.retour_id)
    assert not sim.confirm(IGO, received.retour_id)
    assert sim.waiting(IGO) == []
    assert len(sim.waiting(IGO, include_confirmed=True)) == 1


def test_a_retour_can_come_later() -> None:
    now = Now()
    sim = insurer(now, faults={"retour_delay_seconds": 60})
    received, _ = sim.receive(IGO, CLAIM)
    assert sim.waiting(IGO) == []
    assert received.retour_id is not None
    assert sim.retour(IGO, received.retour_id) is None
    now.at = T0 + timedelta(seconds=60)
    assert len(sim.waiting(IGO)) == 1


def test_faults_are_counted_over_uploads() -> None:
    sim = insurer(faults={"fail_first": 2, "stall_first": 1})
    faults = [sim.next_upload_fault() for _ in range(5)]
    assert faults == [UploadFault.FAIL] * 2 + [UploadFault.STALL] + [UploadFault.NONE] * 2
    sim.set_faults(SimFaults(fail_first=1))
    assert [sim.next_upload_fault() for _ in range(2)] == [UploadFault.FAIL, UploadFault.NONE]
    assert sim.uploads == 7


def test_cut_connections_follow_the_stalled_ones() -> None:
    sim = insurer(faults={"fail_first": 1, "stall_first": 1, "cut_first": 2})
    faults = [sim.next_upload_fault() for _ in range(5)]
    fail, stall, cut, none = UploadFault.FAIL, UploadFault.STALL, UploadFault.CUT, UploadFault.NONE
    assert faults == [fail, stall, cut, cut, none]


def test_every_upload_received_is_listed_in_order() -> None:
    sim = insurer()
    sim.receive(IGO, CLAIM, reference_id="out-1")
    sim.receive(IGO, CLAIM, reference_id="out-1")
    with pytest.raises(ConflictError):
        sim.receive(IGO, b"other bytes\r\n", reference_id="out-1")
    received = sim.claims_json()["ontvangen"]
    assert [(r["referentieId"], r["uitkomst"]) for r in received] == [
        ("out-1", "booked"),
        ("out-1", "repeated"),
        ("out-1", "conflict"),
    ]
    assert received[0]["factuurnummer"] == "IGO2026-0001"


def test_statuses_say_processed_or_rejected() -> None:
    sim = insurer()
    good, _ = sim.receive(IGO, CLAIM)
    bad, _ = sim.receive(IGO, b"garbage\r\n")
    found = {e["referentiegegevens"]["traceerId"]: e for e in sim.status_entries(IGO)}
    assert found[good.traceer_id]["berichtstatus"] == "VerwerkingVoltooid"
    assert found[bad.traceer_id]["berichtstatus"] == "AfgekeurdDoorDienst"
    assert found[bad.traceer_id]["meldingen"][0]["code"] == "0001"
    assert found[good.retour_id]["berichtstatus"] == "WordtAangeboden"


def test_the_senders_traceer_id_is_the_files_id() -> None:
    sim = insurer()
    mine = "6f1c2a52-5d0b-4b7e-9a51-000000000001"
    first, created = sim.receive(IGO, CLAIM, traceer_id=mine)
    assert (first.traceer_id, created) == (mine, True)
    assert sim.receive(IGO, CLAIM, traceer_id=mine) == (first, False)
    with pytest.raises(ConflictError):
        sim.receive(IGO, b"other bytes\r\n", traceer_id=mine)
    with pytest.raises(ConflictError):
        sim.receive(OTHER_IGO, CLAIM, traceer_id=mine)
    assert sim.claims_json()["bestanden"] == 1


def test_the_claims_overview_holds_no_client_data() -> None:
    sim = insurer()
    sim.receive(IGO, CLAIM, reference_id="out-1")
    text = str(sim.claims_json())
    assert "111222333" not in text
    assert "Testpersoon" not in text
    (entry,) = sim.claims_json()["files"]
    assert entry["factuurnummer"] == "IGO2026-0001"
    assert (entry["regels"], entry["toegekend"], entry["referentieId"]) == (1, 1, "out-1")


def test_uploads_rejected_by_the_service_come_after_the_other_faults() -> None:
    sim = insurer(faults={"fail_first": 1, "cut_first": 1, "service_reject_first": 2})
    faults = [sim.next_upload_fault() for _ in range(5)]
    reject = UploadFault.SERVICE_REJECT
    assert faults == [UploadFault.FAIL, UploadFault.CUT, reject, reject, UploadFault.NONE]


def test_a_file_rejected_by_the_service_has_meldingen_and_never_a_retour() -> None:
    """VECOZO's side rejecting a message (AfgekeurdDoorDienst): the sender learns it from
    the status only; no claim is booked and no retour will come."""
    sim = insurer(faults={"service_reject_codes": ["SIM001", "SIM002"]})
    mine = "6f1c2a52-5d0b-4b7e-9a51-000000000001"
    rejected, created = sim.receive(IGO, CLAIM, traceer_id=mine, service_reject=True)
    assert created
    assert rejected.service_rejection == ("SIM001", "SIM002")
    assert sim.receive(IGO, CLAIM, traceer_id=mine) == (rejected, False)  # a retry: the same
    assert sim.waiting(IGO) == []
    (entry,) = sim.status_entries(IGO)
    assert entry["berichtstatus"] == "AfgekeurdDoorDienst"
    assert [m["code"] for m in entry["meldingen"]] == ["SIM001", "SIM002"]
    assert all(m["omschrijving"] for m in entry["meldingen"])
    claims = sim.claims_json()
    assert (claims["claims"], claims["afgekeurd"]) == (0, 1)
    (booked,) = claims["files"]
    assert booked["afgekeurdDoorDienst"] == ["SIM001", "SIM002"]
    assert booked["retourTraceerId"] is None
    # Not booked: a corrected file may use the factuurnummer again.
    other = integral_claim(REGISTRY, tariff=12345)
    again, created = sim.receive(IGO, other)
    assert created
    assert again.judgement.accepted
    assert len(sim.waiting(IGO)) == 1
