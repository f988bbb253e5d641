"""Unpacking a retour: shares of a granted integral amount; a rejected integral line sends
its originals to the IGO's queue; a whole-file rejection rejects every line; each
participant gets a retour of only the lines answered now."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from functools import partial

import pytest

from adapters.storage import MemoryMessageStore
from gateway.ei import (
    Outcome,
    Record,
    build_retour,
    build_technical_rejection,
    read_records,
    validate_bytes,
)
from gateway.lines import DeclaredLine, declared_lines
from gateway.loading import load_layouts
from gateway.ports.messages import Direction, MessageStatus, NewMessage, NewStatus
from gateway.ports.outbox import Outbound, OutboundState
from gateway.ports.outcomes import CarriedClaim, CollectedRetour, LineAnswer
from gateway.rules.model import Discipline, Distribution
from gateway.unpacker import Unpacker, distribute
from tests.factories import kz301
from tests.gateway.rules.test_decide import ln
from tests.threadpump import ThreadPump

REGISTRY = load_layouts()
NOW = datetime(2026, 11, 1, tzinfo=UTC)


def test_declared_model_pays_what_was_declared() -> None:
    a, b = (
        ln("02001234", "VK301", "190001", date(2026, 5, 1), amount=85000),
        ln("33001234", "KZ301", "196201", date(2026, 6, 1), amount=6250),
    )
    parts = distribute(
        150000, [a, b], model=Distribution.DECLARED, shares={}, discipline_of=lambda _: None
    )
    assert list(parts.values()) == [85000, 6250]


def test_shares_split_the_granted_amount_less_overhead_by_discipline() -> None:
    mid1 = ln("02001234", "VK301", "190001", date(2026, 5, 1), amount=30000)
    mid2 = ln("02001234", "VK301", "190010", date(2026, 3, 1), amount=10000)
    kraam = ln("33001234", "KZ301", "196201", date(2026, 6, 1), amount=6250)
    discipline = {"02001234": Discipline.MIDWIFERY, "33001234": Discipline.KRAAMZORG}
    parts = distribute(
        100000,
        [mid1, mid2, kraam],
        model=Distribution.SHARES,
        shares={Discipline.MIDWIFERY: 80, Discipline.KRAAMZORG: 20},
        discipline_of=discipline.get,
        overhead_percent=10,
    )
    # 90,000 after overhead: 72,000 midwifery split 3:1 by declared amounts, 18,000 kraamzorg
    assert list(parts.values()) == [54000, 18000, 18000]


def test_shares_of_disciplines_that_took_no_part_go_to_those_that_did() -> None:
    mid = ln("02001234", "VK301", "190001", date(2026, 5, 1), amount=30000)
    kraam = ln("33001234", "KZ301", "196201", date(2026, 6, 1), amount=6250)
    discipline = {"02001234": Discipline.MIDWIFERY, "33001234": Discipline.KRAAMZORG}
    parts = distribute(
        100000,
        [mid, kraam],
        model=Distribution.SHARES,
        shares={Discipline.MIDWIFERY: 40, Discipline.KRAAMZORG: 35, Discipline.HOSPITAL: 25},
        discipline_of=discipline.get,
    )
    assert sum(parts.values()) == 100000
    assert list(parts.values()) == [53333, 46667]


class Outcomes:
    def __init__(self, claims: list[CarriedClaim]) -> None:
        self.claims = claims
        self.answers: list[LineAnswer] = []
        self.retours: list[NewMessage] = []

    async def claims_in(self, outbound: str) -> list[CarriedClaim]:
        return self.claims

    async def forwarded_in(self, outbound: str) -> list[DeclaredLine]:
        return []

    async def record_answers(
        self, answers: Sequence[LineAnswer], retours: Sequence[NewMessage]
    ) -> None:
        self.answers += answers
        self.retours += retours


def message(traceer_id: str, payload: bytes, direction: Direction, party: str) -> NewMessage:
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
        standard="KZ301",
    )


def setup(pump: ThreadPump) -> tuple[MemoryMessageStore, list[DeclaredLine], bytes]:
    store = MemoryMessageStore()
    upload = kz301(REGISTRY, agb="33001234", lines=3)
    pump.wait(store.put_message(message("up-1", upload, Direction.FROM_PARTICIPANT, "33001234")))
    records = [r for r in read_records(REGISTRY, [upload]) if isinstance(r, Record)]
    lines = declared_lines(records, traceer_id="up-1", participant="33001234", standard="KZ301")
    claim_file = kz301(REGISTRY, agb="53001234", invoice="IGO26-00001", lines=2)
    pump.wait(store.put_message(message("out-1", claim_file, Direction.TO_INSURER, "3311")))
    return store, lines, claim_file


def collected(store: MemoryMessageStore, pump: ThreadPump, retour: bytes) -> CollectedRetour:
    stored = pump.wait(store.put_message(message("ret-1", retour, Direction.FROM_INSURER, "3311")))
    outbound = Outbound(
        "out-1", "3311", "53001234", OutboundState.ANSWERED, 1, NOW, NOW, None, "r", "KZ301",
        "IGO26-00001", "conv-out-1", None, "x",
    )  # fmt: skip
    return CollectedRetour(stored, outbound, True)


@pytest.fixture
def pump() -> ThreadPump:
    return ThreadPump()


def granted_and_rejected(
    lines: list[DeclaredLine], claim_file: bytes
) -> tuple[list[CarriedClaim], bytes]:
    """Two integral lines of the claim file, absorbing two lines and one, and the insurer's
    retour granting the first and rejecting the second (0587)."""
    claims = [
        CarriedClaim("IGO26-00001-2", 2, 150000, "3311", None, lines[:2]),
        CarriedClaim("IGO26-00001-3", 3, 100000, "3311", None, lines[2:]),
    ]
    retour = build_retour(
        REGISTRY.by_standard("KZ302"),
        [r for r in read_records(REGISTRY, [claim_file]) if isinstance(r, Record)],
        {2: Outcome(granted=150000), 3: Outcome(granted=0, codes=("0587",))},
        insurer_reference="VZ-1",
        retour_date=date(2026, 11, 2),
    )
    return claims, retour


def test_a_granted_and_a_rejected_integral_line(pump: ThreadPump) -> None:
    store, lines, claim_file = setup(pump)
    claims, retour = granted_and_rejected(lines, claim_file)
    outcomes = Outcomes(claims)
    unpacker = Unpacker(store, outcomes, REGISTRY, now=lambda: NOW)
    pump.wait(unpacker.unpack(collected(store, pump, retour)))
    by_key = {a.key: a for a in outcomes.answers}
    assert [by_key[(x.traceer_id, x.record_number)].outcome for x in lines] == [
        "granted",
        "granted",
        "review",
    ]
    assert by_key[("up-1", 4)].codes == ("0587",)
    (participant_retour,) = outcomes.retours
    assert participant_retour.reply_to == "up-1"
    assert participant_retour.party == "33001234"
    # named after itself, not the upload: an upload answered by several claims gets
    # several retours, each under its own name
    assert participant_retour.filename == f"KZ302-{participant_retour.traceer_id}.asc"
    checked = validate_bytes(REGISTRY, participant_retour.payload)
    assert checked.valid, checked.findings
    answered = [
        r
        for r in read_records(REGISTRY, [participant_retour.payload])
        if isinstance(r, Record) and r.type == "04"
    ]
    assert [r.number_value("record_id") for r in answered] == [2, 3]  # the rest later
    assert [r.get("granted_amount") for r in answered] == [12000, 12000]


def test_the_records_the_collector_read_unpack_as_the_stored_file_does(
    pump: ThreadPump,
) -> None:
    """Handed the records the collector's check read, the unpacker gives the same answers
    and the same participant retour as when it reads the stored retour itself."""
    store, lines, claim_file = setup(pump)
    claims, retour = granted_and_rejected(lines, claim_file)
    checked: list[Record] = []
    assert validate_bytes(REGISTRY, retour, on_record=checked.append).valid
    plain = collected(store, pump, retour)
    results = []
    for item in (plain, replace(plain, records=checked)):
        outcomes = Outcomes(claims)
        unpacker = Unpacker(store, outcomes, REGISTRY, now=lambda: NOW, new_id=lambda: "ret-p")
        pump.wait(unpacker.unpack(item))
        results.append((outcomes.answers, outcomes.retours))
    assert results[0] == results[1]
    assert [a.outcome for a in results[1][0]] == ["granted", "granted", "review"]
    assert len(results[1][1]) == 1


def test_a_whole_file_rejection_sends_every_line_to_review(pump: ThreadPump) -> None:
    store, lines, claim_file = setup(pump)
    claim_records = [r for r in read_records(REGISTRY, [claim_file]) if isinstance(r, Record)]
    retour = build_technical_rejection(
        REGISTRY.by_standard("KZ302"), "0001", extra_codes=("0030",), header=claim_records[0],
        insurer_reference="VZ-2", retour_date=date(2026, 11, 2),
    )  # fmt: skip
    outcomes = Outcomes([CarriedClaim("IGO26-00001-2", 2, 150000, "3311", None, lines)])
    pump.wait(
        Unpacker(store, outcomes, REGISTRY, now=lambda: NOW).unpack(collected(store, pump, retour))
    )
    assert {a.outcome for a in outcomes.answers} == {"review"}
    assert {a.codes for a in outcomes.answers} == {("0001", "0030")}
    assert outcomes.retours == []


def test_a_retour_unpacked_again_on_another_day_is_the_same_participant_retour(
    pump: ThreadPump,
) -> None:
    """A crash after unpacking, before the insurer was told the retour arrived: it is
    fetched and unpacked again, maybe after midnight. The rebuilt file carries another
    date, but it is the same answer to the participant: the store keeps one (same key)."""
    store, lines, claim_file = setup(pump)
    claim_records = [r for r in read_records(REGISTRY, [claim_file]) if isinstance(r, Record)]
    retour = build_retour(
        REGISTRY.by_standard("KZ302"),
        claim_records,
        {2: Outcome(granted=150000)},
        insurer_reference="VZ-3",
        retour_date=date(2026, 11, 2),
    )
    outcomes = Outcomes([CarriedClaim("IGO26-00001-2", 2, 150000, "3311", None, lines)])
    fetched = collected(store, pump, retour)
    for day in (NOW, NOW.replace(day=2)):
        clock: Callable[[], datetime] = partial(lambda at: at, day)
        pump.wait(Unpacker(store, outcomes, REGISTRY, now=clock).unpack(fetched))
    first, again = outcomes.retours
    assert first.payload != again.payload  # another retour date
    assert first.idempotency_key == again.idempotency_key
