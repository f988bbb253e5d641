"""The storage port's behaviour, the same on the memory, SQLite and PostgreSQL stores."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from adapters.storage import open_store
from adapters.storage.journal import add_statuses_txn
from gateway.crypto import Keyring
from gateway.ports.messages import (
    Direction,
    MessageStatus,
    NewStatus,
    StoreError,
    StoreUnavailableError,
)
from tests.adapters.storage.builders import KRAAM, MIDWIFE, at, retour, upload
from tests.adapters.storage.conftest import Backend
from tests.adapters.storage.test_lines import KEYS
from tests.threadpump import ThreadPump


def test_an_upload_is_stored_with_its_bytes_and_first_status(backend: Backend) -> None:
    new = upload(1, invoice="F-1", payload=bytes(range(256)) * 3)
    result = backend.wait(backend.store.record_upload(new))
    assert result.created
    assert result.invoice_conflict is None
    stored = result.message
    assert stored is not None
    assert (stored.traceer_id, stored.party, stored.direction) == (
        "up-0001",
        KRAAM,
        Direction.FROM_PARTICIPANT,
    )
    assert (stored.sha256, stored.size) == (new.sha256, len(new.payload))
    assert (stored.invoice_number, stored.payee) == ("F-1", KRAAM)
    assert stored.status is MessageStatus.RECEIVED
    assert stored.created_at == new.created_at
    assert stored.created_at.tzinfo is UTC
    assert stored.confirmed_at is None
    assert stored.metadata == {"afzender": {"rol": "ZORGAANBIEDER", "code": KRAAM}}
    assert backend.wait(backend.store.get_message("up-0001")) == stored
    assert backend.wait(backend.store.payload(new.sha256)) == new.payload
    (entry,) = backend.wait(backend.store.statuses(["up-0001"]))
    assert (entry.traceer_id, entry.at, entry.status) == ("up-0001", new.created_at, stored.status)
    assert entry.description == new.status.description


def test_unknown_ids_and_hashes_are_none(backend: Backend) -> None:
    assert backend.wait(backend.store.get_message("nope")) is None
    assert backend.wait(backend.store.payload("0" * 64)) is None
    assert backend.wait(backend.store.statuses(["nope"])) == []
    assert backend.wait(backend.store.conversation("nope")) == []


def test_messages_are_read_with_their_bytes_at_once_and_unknown_ids_left_out(
    backend: Backend,
) -> None:
    one, two = upload(1, payload=b"first bytes"), upload(2, payload=b"second bytes")
    for new in (one, two):
        backend.wait(backend.store.record_upload(new))
    found = backend.wait(backend.store.messages_with_payloads(["up-0002", "nope", "up-0001"]))
    assert set(found) == {"up-0001", "up-0002"}
    for new in (one, two):
        message, payload = found[new.traceer_id]
        assert message == backend.wait(backend.store.get_message(new.traceer_id))
        assert payload == new.payload
    assert backend.wait(backend.store.messages_with_payloads([])) == {}


def test_the_same_idempotency_key_returns_the_first_message(backend: Backend) -> None:
    first = backend.wait(backend.store.record_upload(upload(1, invoice="F-1")))
    again = upload(2, key="upload:33001234:1", invoice="F-2", payload=b"other bytes")
    second = backend.wait(backend.store.record_upload(again, [retour(2, to=again)]))
    assert not second.created
    assert second.invoice_conflict is None
    assert second.message == first.message
    assert backend.count("messages") == 1
    assert backend.count("journal") == 1
    assert backend.wait(backend.store.get_message("up-0002")) is None


def test_an_upload_under_another_messages_traceer_id_gets_that_message_writes_nothing(
    backend: Backend,
) -> None:
    """The sender chooses the traceer id: one another participant's message already has
    is answered with that message (for the intake to refuse), never stored beside it."""
    first = backend.wait(backend.store.record_upload(upload(1, invoice="F-1")))
    theirs = dataclasses.replace(
        upload(2, party=MIDWIFE, invoice="F-9", payload=b"the midwife's file"),
        traceer_id=first.message.traceer_id if first.message else "",
    )
    second = backend.wait(backend.store.record_upload(theirs, [retour(2, to=theirs)]))
    assert not second.created
    assert second.message == first.message
    assert backend.count("messages") == 1
    assert backend.count("journal") == 1


def test_a_reused_invoice_number_of_the_payee_is_a_conflict_and_writes_nothing(
    backend: Backend,
) -> None:
    first = backend.wait(backend.store.record_upload(upload(1, invoice="F-1")))
    assert first.message is not None
    reused = upload(2, invoice="F-1", payload=b"a second file")
    result = backend.wait(backend.store.record_upload(reused, [retour(2, to=reused)]))
    assert result.message is None
    assert not result.created
    assert result.invoice_conflict == first.message.traceer_id
    assert backend.count("messages") == 1
    assert backend.count("journal") == 1
    assert backend.wait(backend.store.payload(reused.sha256)) is None
    assert backend.wait(backend.store.list_messages(KRAAM, Direction.TO_PARTICIPANT)) == []


def test_the_same_invoice_number_of_another_payee_is_fine(backend: Backend) -> None:
    backend.wait(backend.store.record_upload(upload(1, invoice="F-1")))
    other = backend.wait(backend.store.record_upload(upload(2, party=MIDWIFE, invoice="F-1")))
    assert other.created
    # a message that is not a declaration never holds an invoice number
    answer = dataclasses.replace(retour(3), invoice_number="F-1", payee=KRAAM)
    assert backend.wait(backend.store.put_message(answer)).invoice_number == "F-1"
    # and one without a payee does not either
    no_payee = dataclasses.replace(upload(4, invoice="F-1"), payee=None)
    assert backend.wait(backend.store.record_upload(no_payee)).created
    assert backend.count("messages") == 4


def test_a_rejected_invoice_number_may_be_stored_without_it(backend: Backend) -> None:
    """What intake does for 0030: store the upload again without its invoice number."""
    backend.wait(backend.store.record_upload(upload(1, invoice="F-1")))
    reused = upload(2, invoice="F-1")
    assert backend.wait(backend.store.record_upload(reused)).invoice_conflict == "up-0001"
    bare = dataclasses.replace(reused, invoice_number=None, payee=None)
    result = backend.wait(backend.store.record_upload(bare, [retour(2, to=bare)]))
    assert result.created
    assert result.message is not None
    assert result.message.invoice_number is None


def test_replies_are_stored_with_the_upload_and_wait_for_their_party(backend: Backend) -> None:
    new = upload(1, conversatie_id="conv-x")
    reply = retour(1, to=new)
    result = backend.wait(backend.store.record_upload(new, [reply]))
    assert result.created
    waiting = backend.wait(backend.store.list_messages(KRAAM, Direction.TO_PARTICIPANT))
    assert [m.traceer_id for m in waiting] == ["ret-0001"]
    assert waiting[0].reply_to == "up-0001"
    assert waiting[0].conversatie_id == "conv-x"
    assert waiting[0].status is MessageStatus.DELIVERED
    assert backend.wait(backend.store.payload(reply.sha256)) == reply.payload
    conversation = backend.wait(backend.store.conversation("conv-x"))
    assert [m.traceer_id for m in conversation] == ["up-0001", "ret-0001"]
    statuses = backend.wait(backend.store.statuses(["up-0001", "ret-0001"]))
    assert [(s.traceer_id, s.code) for s in statuses] == [("up-0001", None), ("ret-0001", "0001")]


def test_an_upload_whose_reply_cannot_be_stored_is_not_stored_either(backend: Backend) -> None:
    backend.wait(backend.store.put_message(retour(9, traceer_id="taken")))
    new = upload(1)
    clash = retour(1, to=new, traceer_id="taken", payload=b"different retour")
    error = backend.error(backend.store.record_upload(new, [clash]))
    assert isinstance(error, StoreError)
    assert backend.wait(backend.store.get_message("up-0001")) is None
    assert backend.wait(backend.store.payload(new.sha256)) is None
    assert backend.count("messages") == 1
    assert backend.count("journal") == 1
    assert backend.wait(backend.store.statuses(["up-0001"])) == []


def test_listings_are_per_party_and_direction(backend: Backend) -> None:
    for n, party in enumerate([KRAAM, MIDWIFE, KRAAM], start=1):
        backend.wait(backend.store.put_message(retour(n, party=party)))
    backend.wait(backend.store.record_upload(upload(4)))
    mine = backend.wait(backend.store.list_messages(KRAAM, Direction.TO_PARTICIPANT))
    theirs = backend.wait(backend.store.list_messages(MIDWIFE, Direction.TO_PARTICIPANT))
    sent = backend.wait(backend.store.list_messages(KRAAM, Direction.FROM_PARTICIPANT))
    assert [m.traceer_id for m in mine] == ["ret-0001", "ret-0003"]
    assert [m.traceer_id for m in theirs] == ["ret-0002"]
    assert [m.traceer_id for m in sent] == ["up-0004"]
    assert backend.wait(backend.store.list_messages("nobody", Direction.TO_PARTICIPANT)) == []


def test_listings_are_oldest_first_with_since_and_limit(backend: Backend) -> None:
    for n, seconds in [(1, 30), (2, 10), (3, 20), (4, 20)]:
        backend.wait(backend.store.put_message(retour(n, created_at=at(seconds))))
    store = backend.store
    listed = backend.wait(store.list_messages(KRAAM, Direction.TO_PARTICIPANT))
    assert [m.traceer_id for m in listed] == ["ret-0002", "ret-0003", "ret-0004", "ret-0001"]
    since = backend.wait(store.list_messages(KRAAM, Direction.TO_PARTICIPANT, since=at(20)))
    assert [m.traceer_id for m in since] == ["ret-0003", "ret-0004", "ret-0001"]
    # ``since`` in another zone names the same instant
    cet = at(20).astimezone(timezone(timedelta(hours=1)))
    assert backend.wait(store.list_messages(KRAAM, Direction.TO_PARTICIPANT, since=cet)) == since
    two = backend.wait(store.list_messages(KRAAM, Direction.TO_PARTICIPANT, limit=2))
    assert [m.traceer_id for m in two] == ["ret-0002", "ret-0003"]
    assert backend.wait(store.list_messages(KRAAM, Direction.TO_PARTICIPANT, limit=0)) == []
    error = backend.error(store.list_messages(KRAAM, Direction.TO_PARTICIPANT, limit=-1))
    assert isinstance(error, ValueError)


def test_confirming_another_partys_message_fails_and_leaves_it_waiting(
    backend: Backend,
) -> None:
    backend.wait(backend.store.put_message(retour(1, party=KRAAM)))
    backend.wait(backend.store.record_upload(upload(2, party=MIDWIFE)))
    store = backend.store
    assert backend.wait(store.confirm("ret-0001", MIDWIFE, at(60))) is False
    assert backend.wait(store.confirm("does-not-exist", KRAAM, at(60))) is False
    # only what waits for a participant can be confirmed, not its own upload
    assert backend.wait(store.confirm("up-0002", MIDWIFE, at(60))) is False
    waiting = backend.wait(store.list_messages(KRAAM, Direction.TO_PARTICIPANT))
    assert [m.traceer_id for m in waiting] == ["ret-0001"]
    assert waiting[0].confirmed_at is None
    assert len(backend.wait(store.statuses(["ret-0001", "up-0002"]))) == 2


def test_confirming_ones_own_message_removes_it_from_the_queue(backend: Backend) -> None:
    store = backend.store
    backend.wait(store.put_message(retour(1)))
    backend.wait(store.put_message(retour(2)))
    assert backend.wait(store.confirm("ret-0001", KRAAM, at(60))) is True
    waiting = backend.wait(store.list_messages(KRAAM, Direction.TO_PARTICIPANT))
    assert [m.traceer_id for m in waiting] == ["ret-0002"]
    everything = backend.wait(
        store.list_messages(KRAAM, Direction.TO_PARTICIPANT, include_confirmed=True)
    )
    assert [m.traceer_id for m in everything] == ["ret-0001", "ret-0002"]
    confirmed = everything[0]
    assert confirmed.confirmed_at == at(60)
    assert confirmed.status is MessageStatus.CONFIRMED
    # confirming again is no error and records nothing new
    assert backend.wait(store.confirm("ret-0001", KRAAM, at(90))) is True
    history = backend.wait(store.statuses(["ret-0001"]))
    assert [(s.status, s.at) for s in history] == [
        (MessageStatus.DELIVERED, at(1)),
        (MessageStatus.CONFIRMED, at(60)),
    ]


def test_status_history_is_oldest_first_across_messages(backend: Backend) -> None:
    store = backend.store
    backend.wait(store.record_upload(upload(1)))
    backend.wait(store.record_upload(upload(2)))
    backend.wait(store.add_status("up-0001", NewStatus(MessageStatus.PROCESSING), at(50)))
    backend.wait(store.add_status("up-0002", NewStatus(MessageStatus.FORWARDED, "X1"), at(40)))
    # recorded later but at the same instant: kept after the first
    backend.wait(store.add_status("up-0001", NewStatus(MessageStatus.PROCESSED, None, "b"), at(50)))
    history = backend.wait(store.statuses(["up-0002", "up-0001", "up-0001", "unknown"]))
    assert [(s.traceer_id, s.status) for s in history] == [
        ("up-0001", MessageStatus.RECEIVED),
        ("up-0002", MessageStatus.RECEIVED),
        ("up-0002", MessageStatus.FORWARDED),
        ("up-0001", MessageStatus.PROCESSING),
        ("up-0001", MessageStatus.PROCESSED),
    ]
    assert history[2].code == "X1"
    assert history[4].description == "b"
    assert all(s.at.tzinfo is UTC for s in history)
    latest = backend.wait(store.get_message("up-0001"))
    assert latest is not None
    assert latest.status is MessageStatus.PROCESSED
    error = backend.error(store.add_status("unknown", NewStatus(MessageStatus.PROCESSED), at(60)))
    assert isinstance(error, StoreError)


def test_identical_payloads_are_journaled_once(backend: Backend) -> None:
    same = b"the very same bytes\r\n"
    backend.wait(backend.store.put_message(retour(1, payload=same)))
    backend.wait(backend.store.put_message(retour(2, payload=same)))
    backend.wait(backend.store.record_upload(upload(3, payload=same)))
    assert backend.count("messages") == 3
    assert backend.count("journal") == 1
    assert backend.wait(backend.store.payload(hashlib.sha256(same).hexdigest())) == same


def test_put_message_is_idempotent_on_its_key(backend: Backend) -> None:
    first = backend.wait(backend.store.put_message(retour(1)))
    again = dataclasses.replace(retour(1), traceer_id="another-id", payload=b"x", sha256=_sha(b"x"))
    assert backend.wait(backend.store.put_message(again)) == first
    assert backend.count("messages") == 1
    clash = dataclasses.replace(retour(2), traceer_id="ret-0001")
    assert isinstance(backend.error(backend.store.put_message(clash)), StoreError)


def test_timestamps_come_back_in_utc(backend: Backend) -> None:
    amsterdam = timezone(timedelta(hours=1))
    local = datetime(2026, 2, 3, 10, 30, 0, 123456, tzinfo=amsterdam)
    backend.wait(backend.store.put_message(retour(1, created_at=local)))
    stored = backend.wait(backend.store.get_message("ret-0001"))
    assert stored is not None
    assert stored.created_at == local
    assert stored.created_at.tzinfo is UTC
    assert stored.created_at.hour == 9


def test_inconsistent_messages_are_refused(backend: Backend) -> None:
    wrong_hash = dataclasses.replace(upload(1), sha256="0" * 64)
    assert isinstance(backend.error(backend.store.record_upload(wrong_hash)), ValueError)
    naive = dataclasses.replace(upload(2), created_at=datetime(2026, 1, 1))
    assert isinstance(backend.error(backend.store.record_upload(naive)), ValueError)
    assert backend.count("messages") == 0
    assert backend.count("journal") == 0


def test_ping_answers_while_open_and_a_closed_store_is_unavailable(backend: Backend) -> None:
    assert backend.wait(backend.store.ping()) is None
    backend.close()
    for call in (backend.store.ping(), backend.store.record_upload(upload(1))):
        assert isinstance(backend.error(call), StoreUnavailableError)


def test_a_message_survives_closing_and_reopening_the_store(durable_backend: Backend) -> None:
    new = upload(1, invoice="F-1")
    durable_backend.wait(durable_backend.store.record_upload(new, [retour(1, to=new)]))
    durable_backend.wait(durable_backend.store.confirm("ret-0001", KRAAM, at(30)))
    durable_backend.reopen()
    stored = durable_backend.wait(durable_backend.store.get_message("up-0001"))
    assert stored is not None
    assert stored.invoice_number == "F-1"
    assert durable_backend.wait(durable_backend.store.payload(new.sha256)) == new.payload
    confirmed = durable_backend.wait(durable_backend.store.get_message("ret-0001"))
    assert confirmed is not None
    assert confirmed.confirmed_at == at(30)
    # the rules hold across the restart too
    result = durable_backend.wait(durable_backend.store.record_upload(upload(2, invoice="F-1")))
    assert result.invoice_conflict == "up-0001"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the EPD's own Idempotency-Key -------------------------------------------------------


def test_a_client_key_again_with_the_same_bytes_returns_the_first_message(
    backend: Backend,
) -> None:
    first = backend.wait(backend.store.record_upload(upload(1), client_key="K-1"))
    assert first.created
    # A retry: the same bytes, a new traceer id (the intake gives each attempt one).
    retry = upload(2, key="upload:33001234:1", payload=upload(1).payload)
    again = backend.wait(backend.store.record_upload(retry, client_key="K-1"))
    assert (again.created, again.key_conflict, again.message) == (False, False, first.message)
    assert backend.count("messages") == 1


def test_a_client_key_with_other_bytes_is_a_conflict_and_writes_nothing(
    backend: Backend,
) -> None:
    first = backend.wait(backend.store.record_upload(upload(1), client_key="K-1"))
    other = upload(2)
    refused = backend.wait(
        backend.store.record_upload(other, [retour(2, to=other)], client_key="K-1")
    )
    assert (refused.created, refused.key_conflict) == (False, True)
    assert refused.message == first.message
    assert (backend.count("messages"), backend.count("journal")) == (1, 1)
    assert backend.wait(backend.store.get_message("up-0002")) is None


def test_client_keys_are_scoped_to_the_participant(backend: Backend) -> None:
    mine = backend.wait(backend.store.record_upload(upload(1), client_key="K-1"))
    theirs = backend.wait(backend.store.record_upload(upload(2, party=MIDWIFE), client_key="K-1"))
    assert mine.created
    assert theirs.created
    assert not theirs.key_conflict
    assert backend.count("messages") == 2


def test_bytes_stored_before_under_a_new_key_bind_the_key_to_them(backend: Backend) -> None:
    first = backend.wait(backend.store.record_upload(upload(1)))  # no key at first
    retry = upload(2, key="upload:33001234:1", payload=upload(1).payload)
    again = backend.wait(backend.store.record_upload(retry, client_key="K-9"))
    assert (again.created, again.message) == (False, first.message)
    # From now on the key names that message: other bytes under it are a conflict.
    other = backend.wait(backend.store.record_upload(upload(3), client_key="K-9"))
    assert other.key_conflict
    assert backend.count("messages") == 1


def test_client_keys_survive_a_restart(durable_backend: Backend) -> None:
    backend = durable_backend
    backend.wait(backend.store.record_upload(upload(1), client_key="K-1"))
    backend.reopen()
    refused = backend.wait(backend.store.record_upload(upload(2), client_key="K-1"))
    assert refused.key_conflict


@pytest.mark.parametrize("keyring", [None, KEYS], ids=["plain", "sealed"])
def test_messages_read_with_their_bytes_share_one_payload_and_a_pruned_one_is_none(
    sql_url: str, pump: ThreadPump, keyring: Keyring | None
) -> None:
    same = b"the same bytes"
    one, two = upload(1, payload=same), upload(2, payload=same)
    old = upload(3, payload=b"old bytes", created_at=at(0))
    store = pump.wait(open_store(sql_url, pump, keyring))
    try:
        for new in (one, two, old):
            pump.wait(store.record_upload(new))
        # Retention prunes the oldest payload (its message stays).
        pump.wait(store.retention.prune(at(1) - timedelta(microseconds=1), at(10), limit=1))
        found = pump.wait(store.messages_with_payloads(["up-0001", "up-0002", "up-0003"]))
    finally:
        pump.wait(store.close())
    assert {t: payload for t, (_, payload) in found.items()} == {
        "up-0001": same,
        "up-0002": same,
        "up-0003": None,
    }


def test_statuses_of_many_messages_are_added_at_once_and_an_unknown_one_fails_them_all(
    sql_url: str, pump: ThreadPump
) -> None:
    store = pump.wait(open_store(sql_url, pump))
    try:
        for n in (1, 2):
            assert pump.wait(store.record_upload(upload(n))).created
        sent = NewStatus(MessageStatus.ANSWERED, None, "Beantwoord.")
        when = at(5)
        pump.wait(
            store.database.run_interaction(
                "statuses", add_statuses_txn, [("up-0001", sent), ("up-0002", sent)], when
            )
        )
        for traceer_id in ("up-0001", "up-0002"):
            message = pump.wait(store.get_message(traceer_id))
            assert message is not None
            assert message.status is MessageStatus.ANSWERED
        last = [e for e in pump.wait(store.statuses(["up-0001", "up-0002"])) if e.at == when]
        assert sorted(e.traceer_id for e in last) == ["up-0001", "up-0002"]
        error = pump.wait_error(
            store.database.run_interaction(
                "statuses",
                add_statuses_txn,
                [("up-0001", NewStatus(MessageStatus.RECEIVED, None, "x")), ("nope", sent)],
                at(6),
            )
        )
        assert type(error) is StoreError
        assert "1 of 2 messages to update are unknown" in str(error)
        # nothing of the failed call stayed
        message = pump.wait(store.get_message("up-0001"))
        assert message is not None
        assert message.status is MessageStatus.ANSWERED
        assert [e for e in pump.wait(store.statuses(["up-0001"])) if e.at == at(6)] == []
    finally:
        pump.wait(store.close())
