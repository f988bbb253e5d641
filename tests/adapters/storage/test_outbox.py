"""The outbound queue on SQLite and PostgreSQL: stored before the first attempt, claimed
under a lease, due again when a claim's lease ends, and each outcome recorded."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from adapters.storage import SqlMessageStore, open_store
from adapters.storage.outbox import SqlOutbox
from gateway.ports.messages import Direction, MessageStatus, NewMessage, NewStatus
from gateway.ports.outbox import OutboundState
from tests.threadpump import ThreadPump

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def claim_file(n: int, *, at: datetime = T0, insurer: str = "3311") -> NewMessage:
    payload = b"KZ301 integral claim %d\r\n" % n
    return NewMessage(
        traceer_id=f"out-{n:04d}",
        conversatie_id=f"conv-out-{n:04d}",
        direction=Direction.TO_INSURER,
        party=insurer,
        payload=payload,
        sha256=hashlib.sha256(payload).hexdigest(),
        created_at=at,
        status=NewStatus(MessageStatus.PROCESSING, None, "Klaar om te versturen."),
        idempotency_key=f"claim:{insurer}:{n}",
        filename=f"claim-{n}.asc",
        standard="KZ301",
        invoice_number=f"IGO-{n:06d}",
    )


@pytest.fixture
def store(sql_url: str, pump: ThreadPump) -> Iterator[SqlMessageStore]:
    opened = pump.wait(open_store(sql_url, pump))
    yield opened
    pump.wait(opened.close())


@pytest.fixture
def outbox(store: SqlMessageStore) -> SqlOutbox:
    return store.outbox


def test_a_queued_file_is_stored_once_and_due_at_once(
    outbox: SqlOutbox, store: SqlMessageStore, pump: ThreadPump
) -> None:
    first = pump.wait(outbox.enqueue(claim_file(1), "3311", "53001234"))
    again = pump.wait(outbox.enqueue(claim_file(1), "3311", "53001234"))
    assert again.traceer_id == first.traceer_id
    item = pump.wait(outbox.get("out-0001"))
    assert item is not None
    assert (item.state, item.attempts, item.due_at) == (OutboundState.QUEUED, 0, T0)
    assert pump.wait(store.payload(item.sha256)) == claim_file(1).payload
    assert pump.wait(outbox.counts()) == {("3311", OutboundState.QUEUED): 1}


def test_claims_take_due_files_oldest_first_under_a_lease(
    outbox: SqlOutbox, pump: ThreadPump
) -> None:
    for n, minutes in ((1, 2), (2, 0), (3, 30)):
        pump.wait(outbox.enqueue(claim_file(n, at=T0 + timedelta(minutes=minutes)), "3311", "X"))
    pump.wait(outbox.enqueue(claim_file(4), "9999", "X"))  # another insurer's queue

    claimed = pump.wait(outbox.claim_due("3311", T0 + timedelta(minutes=5), LEASE, 10))
    assert [item.traceer_id for item, _ in claimed] == ["out-0002", "out-0001"]
    item, payload = claimed[0]
    assert payload == claim_file(2).payload
    assert (item.state, item.attempts) == (OutboundState.SENDING, 1)
    assert item.first_attempt_at == T0 + timedelta(minutes=5)
    # Claimed files are not claimed again while their lease runs.
    assert pump.wait(outbox.claim_due("3311", T0 + timedelta(minutes=6), LEASE, 10)) == []


def test_a_claim_whose_lease_ended_is_due_again_with_its_attempt_counted(
    outbox: SqlOutbox, pump: ThreadPump
) -> None:
    pump.wait(outbox.enqueue(claim_file(1), "3311", "X"))
    pump.wait(outbox.claim_due("3311", T0, LEASE, 10))  # ... and the sender died
    (again,) = pump.wait(outbox.claim_due("3311", T0 + LEASE, LEASE, 10))
    assert again[0].attempts == 2
    assert again[0].first_attempt_at == T0


def test_every_outcome_is_recorded(outbox: SqlOutbox, pump: ThreadPump) -> None:
    for n in (1, 2, 3):
        pump.wait(outbox.enqueue(claim_file(n), "3311", "X"))
    pump.wait(outbox.claim_due("3311", T0, LEASE, 10))
    later = T0 + timedelta(minutes=1)
    pump.wait(outbox.delivered("out-0001", "remote-1", later))
    pump.wait(outbox.retry_at("out-0002", T0 + timedelta(hours=1), "timeout: no answer", later))
    pump.wait(outbox.park("out-0003", "refused: 400", later))

    delivered = pump.wait(outbox.get("out-0001"))
    assert delivered is not None
    assert (delivered.state, delivered.remote_id) == (OutboundState.DELIVERED, "remote-1")
    retried = pump.wait(outbox.get("out-0002"))
    assert retried is not None
    assert retried.state is OutboundState.QUEUED
    assert retried.last_error == "timeout: no answer"
    assert pump.wait(outbox.claim_due("3311", T0 + timedelta(minutes=59), LEASE, 10)) == []
    (due,) = pump.wait(outbox.claim_due("3311", T0 + timedelta(hours=1), LEASE, 10))
    assert due[0].traceer_id == "out-0002"

    pump.wait(outbox.answered("out-0001", later))
    assert pump.wait(outbox.counts()) == {
        ("3311", OutboundState.ANSWERED): 1,
        ("3311", OutboundState.SENDING): 1,
        ("3311", OutboundState.PARKED): 1,
    }
    # Parked and delivered files are never claimed again.
    assert (
        pump.wait(outbox.claim_due("3311", T0 + timedelta(days=9), LEASE, 10))[0][0].traceer_id
        == "out-0002"
    )


def test_an_answered_file_stays_answered_when_a_late_attempt_ends(
    outbox: SqlOutbox, pump: ThreadPump
) -> None:
    """A repeat attempt (after a crash or a timeout) is still on its way when the retour
    is matched: its outcome, arriving later, does not make the file due or undelivered
    again — found by tests/crash/test_insurer_faults.py."""
    for n in (1, 2, 3):
        pump.wait(outbox.enqueue(claim_file(n), "3311", "X"))
    pump.wait(outbox.claim_due("3311", T0, LEASE, 10))
    later = T0 + timedelta(minutes=1)
    for n in (1, 2, 3):
        pump.wait(outbox.answered(f"out-000{n}", later))
    pump.wait(outbox.delivered("out-0001", "remote-1", later))
    pump.wait(outbox.retry_at("out-0002", later, "timeout: no answer", later))
    pump.wait(outbox.park("out-0003", "refused: 400", later))
    assert pump.wait(outbox.counts()) == {("3311", OutboundState.ANSWERED): 3}
    first = pump.wait(outbox.get("out-0001"))
    assert first is not None
    assert first.remote_id == "remote-1"
    assert pump.wait(outbox.claim_due("3311", T0 + timedelta(days=9), LEASE, 10)) == []


def test_only_files_for_insurers_are_queued(outbox: SqlOutbox) -> None:
    wrong = claim_file(1)
    wrong = NewMessage(
        **{
            **{n: getattr(wrong, n) for n in NewMessage.__dataclass_fields__},
            "direction": Direction.TO_PARTICIPANT,
        }
    )
    with pytest.raises(ValueError, match="insurer"):
        outbox.enqueue(wrong, "3311", "X")


def test_the_oldest_unanswered_file_per_insurer(outbox: SqlOutbox, pump: ThreadPump) -> None:
    assert pump.wait(outbox.oldest_unanswered()) == {}
    day = timedelta(days=1)
    pump.wait(outbox.enqueue(claim_file(1, at=T0), "3311", "53001234"))
    pump.wait(outbox.enqueue(claim_file(2, at=T0 + day), "3311", "53001234"))
    pump.wait(outbox.enqueue(claim_file(3, at=T0 + 2 * day), "3311", "53001234"))
    pump.wait(outbox.enqueue(claim_file(4, at=T0 - day, insurer="7095"), "7095", "53001234"))
    pump.wait(outbox.delivered("out-0002", "remote-2", T0 + day))
    assert pump.wait(outbox.oldest_unanswered()) == {"3311": T0, "7095": T0 - day}
    pump.wait(outbox.answered("out-0001", T0 + 3 * day))  # answered: no longer waiting
    pump.wait(outbox.park("out-0004", "refused", T0 + 3 * day))  # parked: its own alert
    assert pump.wait(outbox.oldest_unanswered()) == {"3311": T0 + day}


def test_delivered_files_without_a_retour_are_followed_up_in_turn(
    outbox: SqlOutbox, pump: ThreadPump
) -> None:
    """Files the insurer has but has not answered are handed out for a follow-up (asking
    for their retours and their status), each at most once per interval, over every
    gateway instance: a file handed out is due again only ``every`` later."""
    every = timedelta(minutes=10)
    for n in (1, 2, 3, 4, 5):
        pump.wait(outbox.enqueue(claim_file(n), "3311", "X"))
    pump.wait(outbox.enqueue(claim_file(6, insurer="7095"), "7095", "X"))
    pump.wait(outbox.claim_due("3311", T0, LEASE, 10))
    pump.wait(outbox.claim_due("7095", T0, LEASE, 10))
    pump.wait(outbox.delivered("out-0002", "remote-2", T0 + timedelta(minutes=1)))
    pump.wait(outbox.delivered("out-0001", "remote-1", T0 + timedelta(minutes=2)))
    pump.wait(outbox.delivered("out-0003", "remote-3", T0 + timedelta(minutes=2)))
    pump.wait(outbox.answered("out-0003", T0 + timedelta(minutes=3)))  # answered: done
    pump.wait(outbox.park("out-0004", "refused: 400", T0))  # parked: the administrator's
    pump.wait(outbox.delivered("out-0006", "remote-6", T0))  # another insurer's
    # out-0005 is still being sent

    now = T0 + timedelta(minutes=3)
    first = pump.wait(outbox.awaiting_answer("3311", now, every, 1))
    assert [(i.traceer_id, i.remote_id) for i in first] == [("out-0002", "remote-2")]
    assert first[0].state is OutboundState.DELIVERED
    rest = pump.wait(outbox.awaiting_answer("3311", now, every, 10))
    assert [i.traceer_id for i in rest] == ["out-0001"]
    assert pump.wait(outbox.awaiting_answer("3311", now + every / 2, every, 10)) == []
    again = pump.wait(outbox.awaiting_answer("3311", now + every, every, 10))
    assert [i.traceer_id for i in again] == ["out-0001", "out-0002"]  # equally due: as made
    # Handing out changes nothing else.
    item = pump.wait(outbox.get("out-0002"))
    assert item is not None
    assert (item.state, item.attempts, item.remote_id) == (
        OutboundState.DELIVERED,
        1,
        "remote-2",
    )


def test_a_file_rejected_by_the_service_is_parked_once(outbox: SqlOutbox, pump: ThreadPump) -> None:
    """Parking a rejected file is idempotent over instances: only a delivered file that
    is still unanswered is parked, and only the first caller is told it did."""
    for n in (1, 2):
        pump.wait(outbox.enqueue(claim_file(n), "3311", "X"))
    pump.wait(outbox.claim_due("3311", T0, LEASE, 10))
    pump.wait(outbox.delivered("out-0001", "remote-1", T0))
    pump.wait(outbox.delivered("out-0002", "remote-2", T0))
    later = T0 + timedelta(minutes=1)
    why = "rejected by the service (AfgekeurdDoorDienst): SIM001"
    assert pump.wait(outbox.rejected("out-0001", why, later)) is True
    assert pump.wait(outbox.rejected("out-0001", why, later)) is False
    item = pump.wait(outbox.get("out-0001"))
    assert item is not None
    assert (item.state, item.last_error) == (OutboundState.PARKED, why)
    assert pump.wait(outbox.awaiting_answer("3311", later + LEASE, LEASE, 10)) == [
        i for i in [pump.wait(outbox.get("out-0002"))] if i is not None
    ]
    # An answered file is not parked by a rejection seen late.
    pump.wait(outbox.answered("out-0002", later))
    assert pump.wait(outbox.rejected("out-0002", why, later)) is False
    answered = pump.wait(outbox.get("out-0002"))
    assert answered is not None
    assert answered.state is OutboundState.ANSWERED
