"""The retour collector against the real store (SQLite) and a scripted insurer link: each
retour kept and tied to the file it answers by id, conversation or factuurnummer — or kept
and flagged when it is malformed or answers nothing — and confirmed only once stored."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from adapters.storage import SqlMessageStore, open_store
from gateway.collector import RetourCollector
from gateway.ei import Outcome, Record, build_retour, read_records
from gateway.loading import load_layouts
from gateway.metrics import Metrics
from gateway.ports.insurer import (
    Delivery,
    FetchedRetour,
    InsurerLinkError,
    LinkErrorReason,
    OutboundFile,
    ServiceStatus,
)
from gateway.ports.messages import Direction, MessageStatus, NewMessage, NewStatus
from gateway.ports.outbox import OutboundState
from gateway.ports.outcomes import CollectedRetour
from tests.factories import kz301
from tests.gateway.ei.fixture_table import MESSAGES
from tests.threadpump import ThreadPump

REGISTRY = load_layouts()
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
INSURER = "3311"


class Inbox:
    """A scripted insurer: what waits, and what was confirmed."""

    def __init__(self, *retours: FetchedRetour, fail_confirm: bool = False) -> None:
        self.waiting = list(retours)
        self.confirmed: list[str] = []
        self.fail_confirm = fail_confirm

    async def send(self, file: OutboundFile) -> Delivery:
        raise AssertionError("the collector sends nothing")

    async def fetch(self) -> Sequence[FetchedRetour]:
        return list(self.waiting)

    async def confirm(self, retour: FetchedRetour) -> None:
        if self.fail_confirm:
            raise InsurerLinkError(LinkErrorReason.UNAVAILABLE, "503")
        self.confirmed.append(retour.remote_id)
        self.waiting = [r for r in self.waiting if r.remote_id != retour.remote_id]


@pytest.fixture
def pump() -> ThreadPump:
    return ThreadPump()


@pytest.fixture
def store(tmp_path: Path, pump: ThreadPump) -> Iterator[SqlMessageStore]:
    opened = pump.wait(open_store(f"sqlite:///{tmp_path / 'g.db'}", pump))
    yield opened
    pump.wait(opened.close())


def claim(n: int) -> bytes:
    return kz301(REGISTRY, agb="53001234", invoice=f"IGO26-{n:04d}")


def send_claim(store: SqlMessageStore, pump: ThreadPump, n: int, remote: str) -> str:
    payload = claim(n)
    message = NewMessage(
        traceer_id=f"out-{n}",
        conversatie_id=f"conv-{n}",
        direction=Direction.TO_INSURER,
        party=INSURER,
        payload=payload,
        sha256=hashlib.sha256(payload).hexdigest(),
        created_at=T0,
        status=NewStatus(MessageStatus.PROCESSING, None, "Klaar om te versturen."),
        idempotency_key=f"claim:{n}",
        standard="KZ301",
        invoice_number=f"IGO26-{n:04d}",
    )
    pump.wait(store.outbox.enqueue(message, INSURER, "53001234"))
    pump.wait(store.outbox.claim_due(INSURER, T0, timedelta(minutes=5), 10))
    pump.wait(store.outbox.delivered(message.traceer_id, remote, T0))
    return message.traceer_id


def retour_of(n: int) -> bytes:
    records = [r for r in read_records(REGISTRY, [claim(n)]) if isinstance(r, Record)]
    return build_retour(
        REGISTRY.by_standard("KZ302"),
        records,
        {2: Outcome(granted=12000)},
        insurer_reference=f"VZ-{n}",
        retour_date=date(2026, 11, 2),
    )


def fetched(n: int, **kw: str | None) -> FetchedRetour:
    return FetchedRetour(remote_id=f"r-{n}", payload=retour_of(n), **kw)  # type: ignore[arg-type]


def collector(
    store: SqlMessageStore, link: Inbox, seen: list[CollectedRetour] | None = None
) -> RetourCollector:
    async def remember(item: CollectedRetour) -> None:
        if seen is not None:
            seen.append(item)

    return RetourCollector(
        store,
        store.outbox,
        {INSURER: link},
        REGISTRY,
        now=lambda: T0,
        metrics=Metrics(),
        on_retour=remember,
    )


@pytest.mark.parametrize(
    "how",
    [{"in_reply_to": "remote-1"}, {"conversation_id": "conv-1"}, {}],
    ids=["by-insurer-id", "by-conversation", "by-factuurnummer"],
)
def test_a_retour_is_tied_to_the_file_it_answers(
    store: SqlMessageStore, pump: ThreadPump, how: dict[str, str]
) -> None:
    send_claim(store, pump, 2, "remote-2")  # another file, never the answer
    sent = send_claim(store, pump, 1, "remote-1")
    link = Inbox(fetched(1, **how))
    seen: list[CollectedRetour] = []
    (item,) = pump.wait(collector(store, link, seen).run_once(INSURER))
    assert item.valid
    assert item.answers is not None
    assert item.answers.traceer_id == sent
    assert item.message.reply_to == sent
    assert item.message.conversatie_id == "conv-1"
    assert item.message.direction is Direction.FROM_INSURER
    assert pump.wait(store.payload(item.message.sha256)) == retour_of(1)
    outbound = pump.wait(store.outbox.get(sent))
    assert outbound is not None
    assert outbound.state is OutboundState.ANSWERED
    assert link.confirmed == ["r-1"]
    assert seen == [item]


def test_a_valid_retour_is_handed_on_with_the_records_its_check_read(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    """The unpacker gets the records the check read: the records of the file, the same
    as reading it again would give (it is read once)."""
    send_claim(store, pump, 1, "remote-1")
    seen: list[CollectedRetour] = []
    (item,) = pump.wait(
        collector(store, Inbox(fetched(1, in_reply_to="remote-1")), seen).run_once(INSURER)
    )
    read = [r for r in read_records(REGISTRY, [retour_of(1)]) if isinstance(r, Record)]
    assert item.records is not None
    assert list(item.records) == read
    assert [r.type for r in read] == ["01", "02", "04", "99"]
    assert seen == [item]


def test_a_retour_that_answers_nothing_is_kept_and_flagged(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    link = Inbox(fetched(7))
    seen: list[CollectedRetour] = []
    (item,) = pump.wait(collector(store, link, seen).run_once(INSURER))
    assert item.answers is None
    assert item.message.reply_to is None
    (status,) = pump.wait(store.statuses([item.message.traceer_id]))
    assert "geen verstuurd bestand" in status.description
    assert link.confirmed == ["r-7"]
    assert seen == []  # nothing to unpack


def test_a_malformed_retour_is_kept_flagged_and_changes_nothing(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    sent = send_claim(store, pump, 1, "remote-1")
    broken = FetchedRetour(remote_id="r-x", payload=retour_of(1)[:-5], in_reply_to="remote-1")
    link = Inbox(broken)
    seen: list[CollectedRetour] = []
    (item,) = pump.wait(collector(store, link, seen).run_once(INSURER))
    assert not item.valid
    assert item.records is None  # nothing to unpack: none handed on
    assert item.message.status is MessageStatus.REJECTED
    outbound = pump.wait(store.outbox.get(sent))
    assert outbound is not None
    assert outbound.state is OutboundState.DELIVERED  # not answered by a broken file
    assert seen == []
    assert link.confirmed == ["r-x"]  # kept safely, so it leaves the insurer's queue


def test_a_retour_kept_but_not_confirmed_is_kept_once(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    send_claim(store, pump, 1, "remote-1")
    link = Inbox(fetched(1, in_reply_to="remote-1"), fail_confirm=True)
    first = pump.wait(collector(store, link).run_once(INSURER))
    link.fail_confirm = False
    again = pump.wait(collector(store, link).run_once(INSURER))
    assert first[0].message.traceer_id == again[0].message.traceer_id
    assert link.confirmed == ["r-1"]
    assert link.waiting == []


def test_an_insurer_that_cannot_be_reached_is_tried_next_round(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    class Down(Inbox):
        async def fetch(self) -> Sequence[FetchedRetour]:
            raise InsurerLinkError(LinkErrorReason.UNREACHABLE, "connection refused")

    assert pump.wait(collector(store, Down()).run_once(INSURER)) == []


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(lambda: claim(1), id="KZ301-the-claim-itself"),
        pytest.param((MESSAGES / "vk301-verloskunde-02001234.asc").read_bytes, id="VK301"),
        pytest.param((MESSAGES / "zh308-ziekenhuis-06001234.asc").read_bytes, id="ZH308"),
    ],
)
def test_a_declaration_from_an_insurer_is_no_answer_and_changes_nothing(
    store: SqlMessageStore, pump: ThreadPump, payload: Callable[[], bytes]
) -> None:
    """An insurer sends retours only: a declaration standard it sends (even one naming the
    claim it would answer, by id and by factuurnummer) is kept, technically rejected with
    0010, and answers nothing."""
    sent = send_claim(store, pump, 1, "remote-1")
    link = Inbox(FetchedRetour(remote_id="r-d", payload=payload(), in_reply_to="remote-1"))
    seen: list[CollectedRetour] = []
    (item,) = pump.wait(collector(store, link, seen).run_once(INSURER))
    assert not item.valid
    assert item.answers is None
    assert item.message.reply_to is None
    assert item.message.status is MessageStatus.REJECTED
    (status,) = pump.wait(store.statuses([item.message.traceer_id]))
    assert status.code == "0010"
    outbound = pump.wait(store.outbox.get(sent))
    assert outbound is not None
    assert outbound.state is OutboundState.DELIVERED
    assert seen == []
    assert link.confirmed == ["r-d"]


# --- following up delivered files ---------------------------------------------------------------

EVERY = timedelta(minutes=10)


class Exchange(Inbox):
    """A scripted VECOZO: besides the listing, the retours of one file (zoeken by
    alsAntwoordOp) and the status of one file (berichtstatussen)."""

    def __init__(
        self,
        *retours: FetchedRetour,
        listed: bool = True,
        statuses: dict[str, ServiceStatus] | None = None,
        down: bool = False,
    ) -> None:
        super().__init__(*retours)
        self.listed = listed  # False: GET /berichten does not show them (e.g. past its limit)
        self.statuses = dict(statuses or {})
        self.down = down
        self.asked: list[tuple[str, str]] = []

    async def fetch(self) -> Sequence[FetchedRetour]:
        return list(self.waiting) if self.listed else []

    async def answers_to(self, remote_id: str) -> Sequence[FetchedRetour]:
        self.asked.append(("answers", remote_id))
        if self.down:
            raise InsurerLinkError(LinkErrorReason.UNAVAILABLE, "503")
        return [r for r in self.waiting if r.in_reply_to == remote_id]

    async def status_of(self, remote_id: str) -> ServiceStatus | None:
        self.asked.append(("status", remote_id))
        return self.statuses.get(remote_id)


def following(
    store: SqlMessageStore, link: Inbox, now: list[datetime], metrics: Metrics | None = None
) -> RetourCollector:
    return RetourCollector(
        store,
        store.outbox,
        {INSURER: link},
        REGISTRY,
        now=lambda: now[0],
        metrics=metrics or Metrics(),
        follow_up={INSURER: EVERY},
    )


def test_a_retour_not_listed_is_found_by_the_file_it_answers(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    sent = send_claim(store, pump, 1, "remote-1")
    link = Exchange(fetched(1, in_reply_to="remote-1"), listed=False)
    (item,) = pump.wait(following(store, link, [T0]).run_once(INSURER))
    assert item.answers is not None
    assert item.answers.traceer_id == sent
    assert link.asked == [("answers", "remote-1")]  # answered: no status needed
    assert link.confirmed == ["r-1"]
    outbound = pump.wait(store.outbox.get(sent))
    assert outbound is not None
    assert outbound.state is OutboundState.ANSWERED


def test_a_file_rejected_by_the_service_is_parked_with_its_codes_once(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    sent = send_claim(store, pump, 1, "remote-1")
    rejected = ServiceStatus("AfgekeurdDoorDienst", rejected=True, codes=("SIM001", "8028"))
    link = Exchange(statuses={"remote-1": rejected})
    metrics = Metrics()
    now = [T0]
    # two gateway instances sharing the store, one round each
    first, second = following(store, link, now, metrics), following(store, link, now, metrics)
    assert pump.wait(first.run_once(INSURER)) == []
    assert pump.wait(second.run_once(INSURER)) == []
    assert link.asked == [("answers", "remote-1"), ("status", "remote-1")]
    outbound = pump.wait(store.outbox.get(sent))
    assert outbound is not None
    assert outbound.state is OutboundState.PARKED
    assert outbound.last_error == (
        "rejected by the exchange service (AfgekeurdDoorDienst), meldingen: SIM001, 8028"
    )
    # a later round, past the interval, no longer asks after a parked file
    now[0] = T0 + 2 * EVERY
    pump.wait(first.run_once(INSURER))
    assert len(link.asked) == 2
    assert metrics.outbound_attempts.labels(INSURER, "rejected")._value.get() == 1
    assert pump.wait(store.list_messages(INSURER, Direction.FROM_INSURER)) == []


def test_a_file_still_in_progress_is_asked_after_again_later(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    sent = send_claim(store, pump, 1, "remote-1")
    link = Exchange(statuses={"remote-1": ServiceStatus("WordtVerwerkt", rejected=False)})
    now = [T0]
    gateway = following(store, link, now)
    pump.wait(gateway.run_once(INSURER))
    now[0] = T0 + EVERY / 2
    pump.wait(gateway.run_once(INSURER))
    assert link.asked == [("answers", "remote-1"), ("status", "remote-1")]
    now[0] = T0 + EVERY
    pump.wait(gateway.run_once(INSURER))
    assert len(link.asked) == 4
    outbound = pump.wait(store.outbox.get(sent))
    assert outbound is not None
    assert outbound.state is OutboundState.DELIVERED


def test_an_exchange_down_during_the_follow_up_changes_nothing(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    sent = send_claim(store, pump, 1, "remote-1")
    send_claim(store, pump, 2, "remote-2")
    rejected = ServiceStatus("AfgekeurdDoorDienst", rejected=True, codes=("SIM001",))
    link = Exchange(statuses={"remote-1": rejected}, down=True)
    assert pump.wait(following(store, link, [T0]).run_once(INSURER)) == []
    assert link.asked == [("answers", "remote-1")]  # the rest of the round is left
    outbound = pump.wait(store.outbox.get(sent))
    assert outbound is not None
    assert outbound.state is OutboundState.DELIVERED
