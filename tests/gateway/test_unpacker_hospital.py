"""A hospital's DBC line carries its money on the 06 tariefrecord: absorbed in an integral
claim it is distributed at what it declared, and its ZH309 answers that on the 06 records;
a ZH309 of a forwarded hospital file is read from the 06 records too."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, date, datetime

import pytest

from adapters.storage import MemoryMessageStore
from gateway.ei import Outcome, Record, build_retour, read_records, validate_bytes
from gateway.lines import DeclaredLine, declared_lines
from gateway.loading import load_layouts
from gateway.ports.messages import Direction, MessageStatus, NewMessage, NewStatus
from gateway.ports.outbox import Outbound, OutboundState
from gateway.ports.outcomes import CarriedClaim, CollectedRetour, LineAnswer
from gateway.unpacker import Unpacker
from tests.factories import kz301, zh308
from tests.threadpump import ThreadPump

REGISTRY = load_layouts()
NOW = datetime(2026, 11, 1, tzinfo=UTC)
AMOUNT = 289557  # 2,895.57 declared on the hospital's 06 record


class Outcomes:
    def __init__(self, claims: list[CarriedClaim], forwarded: list[DeclaredLine]) -> None:
        self.claims = claims
        self.forwarded = forwarded
        self.answers: list[LineAnswer] = []
        self.retours: list[NewMessage] = []

    async def claims_in(self, outbound: str) -> list[CarriedClaim]:
        return self.claims

    async def forwarded_in(self, outbound: str) -> list[DeclaredLine]:
        return self.forwarded

    async def record_answers(
        self, answers: Sequence[LineAnswer], retours: Sequence[NewMessage]
    ) -> None:
        self.answers += answers
        self.retours += retours


def _message(
    traceer_id: str, payload: bytes, direction: Direction, party: str, standard: str
) -> NewMessage:
    return NewMessage(
        traceer_id=traceer_id,
        conversatie_id=f"conv-{traceer_id}",
        direction=direction,
        party=party,
        payload=payload,
        sha256=hashlib.sha256(payload).hexdigest(),
        created_at=NOW,
        status=NewStatus(MessageStatus.RECEIVED, None, ""),
        idempotency_key=traceer_id,
        standard=standard,
    )


def _records(data: bytes) -> list[Record]:
    return [r for r in read_records(REGISTRY, [data]) if isinstance(r, Record)]


def _collected(
    store: MemoryMessageStore, pump: ThreadPump, retour: bytes, standard: str
) -> CollectedRetour:
    stored = pump.wait(
        store.put_message(_message("ret-1", retour, Direction.FROM_INSURER, "3311", standard))
    )
    outbound = Outbound(
        "out-1", "3311", "53001234", OutboundState.ANSWERED, 1, NOW, NOW, None, "r", standard,
        "IGO26-00001", "conv-out-1", None, "x",
    )  # fmt: skip
    return CollectedRetour(stored, outbound, True)


def _hospital_upload(store: MemoryMessageStore, pump: ThreadPump) -> list[DeclaredLine]:
    upload = zh308(REGISTRY, agb="06001234", lines=1, amount=AMOUNT)
    pump.wait(
        store.put_message(
            _message("up-zh", upload, Direction.FROM_PARTICIPANT, "06001234", "ZH308")
        )
    )
    return declared_lines(
        _records(upload), traceer_id="up-zh", participant="06001234", standard="ZH308"
    )


@pytest.fixture
def pump() -> ThreadPump:
    return ThreadPump()


def test_an_absorbed_hospital_line_is_paid_and_answered_on_its_tariff_record(
    pump: ThreadPump,
) -> None:
    store = MemoryMessageStore()
    (hospital,) = _hospital_upload(store, pump)
    assert hospital.amount == AMOUNT
    claim_file = kz301(REGISTRY, agb="53001234", invoice="IGO26-00001", lines=1)
    pump.wait(
        store.put_message(_message("out-1", claim_file, Direction.TO_INSURER, "3311", "KZ301"))
    )
    retour = build_retour(
        REGISTRY.by_standard("KZ302"),
        _records(claim_file),
        {2: Outcome(granted=400000)},
        insurer_reference="VZ-1",
        retour_date=date(2026, 11, 2),
    )
    outcomes = Outcomes([CarriedClaim("IGO26-00001-2", 2, 400000, "3311", None, [hospital])], [])
    unpacker = Unpacker(store, outcomes, REGISTRY, now=lambda: NOW)
    pump.wait(unpacker.unpack(_collected(store, pump, retour, "KZ302")))
    (answer,) = outcomes.answers
    assert (answer.outcome, answer.granted) == ("granted", AMOUNT)  # not 0.00
    (participant,) = outcomes.retours
    assert participant.standard == "ZH309"
    checked = validate_bytes(REGISTRY, participant.payload)
    assert checked.valid, checked.findings
    answered = _records(participant.payload)
    tarief = [r for r in answered if r.type == "06"]
    assert [r["granted_amount"] for r in tarief] == [AMOUNT]
    assert answered[-1]["total_granted"] == AMOUNT
    assert answered[-1]["total_declared"] == AMOUNT


def test_a_forwarded_hospital_file_s_retour_is_read_from_its_tariff_records(
    pump: ThreadPump,
) -> None:
    store = MemoryMessageStore()
    (hospital,) = _hospital_upload(store, pump)
    upload = pump.wait(store.get_message("up-zh"))
    assert upload is not None
    payload = pump.wait(store.payload(upload.sha256))
    assert payload is not None
    originals = _records(payload)
    retour = build_retour(
        REGISTRY.by_standard("ZH309", "08"),
        originals,
        {hospital.record_number: Outcome(granted=AMOUNT - 57, calculated=AMOUNT - 57)},
        insurer_reference="VZ-ZH-1",
        retour_date=date(2026, 11, 2),
    )
    outcomes = Outcomes([], [hospital])
    unpacker = Unpacker(store, outcomes, REGISTRY, now=lambda: NOW)
    pump.wait(unpacker.unpack(_collected(store, pump, retour, "ZH309")))
    (answer,) = outcomes.answers
    assert (answer.outcome, answer.granted) == ("granted", AMOUNT - 57)


def test_a_forwarded_hospital_line_rejected_on_its_tariff_record_carries_the_code(
    pump: ThreadPump,
) -> None:
    store = MemoryMessageStore()
    (hospital,) = _hospital_upload(store, pump)
    upload = pump.wait(store.get_message("up-zh"))
    assert upload is not None
    payload = pump.wait(store.payload(upload.sha256))
    assert payload is not None
    retour = build_retour(
        REGISTRY.by_standard("ZH309", "08"),
        _records(payload),
        {hospital.record_number: Outcome(granted=0, codes=("0611",))},
        insurer_reference="VZ-ZH-2",
        retour_date=date(2026, 11, 2),
    )
    # an insurer that puts the code on the 06 only
    lines = retour.split(b"\r\n")
    index = next(i for i, line in enumerate(lines) if line[:2] == b"04")
    lines[index] = lines[index][:570] + b"0000" + lines[index][574:]
    outcomes = Outcomes([], [hospital])
    pump.wait(
        Unpacker(store, outcomes, REGISTRY, now=lambda: NOW).unpack(
            _collected(store, pump, b"\r\n".join(lines), "ZH309")
        )
    )
    (answer,) = outcomes.answers
    assert (answer.outcome, answer.granted, answer.codes) == ("rejected", 0, ("0611",))
