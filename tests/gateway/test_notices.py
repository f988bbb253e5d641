"""Notices: digests of new cases per channel, remembered in the store so that no case is
noticed twice, tried again after a failed delivery, sent by one process at a time, and
free of client data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from adapters.storage import SqlMessageStore, Transaction, open_store
from adapters.storage.notices import SqlNoticeStore
from gateway.admin.cases import Case, CaseFacts, CaseKind, CaseRecord, CaseState, build_case
from gateway.config import NoticeChannel
from gateway.jobs import JobLock
from gateway.notices import NOTICES_JOB, NoticeMetrics, Notifier, build_digest
from gateway.ports.notices import DeliveryUncertainError, Digest, digest_json, digest_text
from tests.threadpump import ThreadPump

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
BSN = "999993653"
ADMIN = "https://beheer.igo.example"


def case(kind: CaseKind, ref: str, *, closed: bool = False, minutes: int = 0) -> Case:
    facts = CaseFacts(
        kind=kind,
        ref=ref,
        since=T0 + timedelta(minutes=minutes),
        active=True,
        party="02001234",
        participant="02001234",
        summary=f"client {BSN} Jansen",  # what a case may hold, and a notice never shows
        details={"bsn": BSN, "naam": "J. Jansen"},
    )
    record = (
        CaseRecord(facts.id, CaseState.WRITTEN_OFF, "", T0 + timedelta(days=1), "otto")
        if closed
        else None
    )
    return build_case(facts, record)


class Recorder:
    """A transport that keeps what it was given, or fails while ``failing``."""

    def __init__(self) -> None:
        self.digests: list[Digest] = []
        self.failing = False
        self.hold: Deferred[None] | None = None
        self.entered: Deferred[None] = Deferred()

    async def deliver(self, digest: Digest) -> None:
        if not self.entered.called:
            self.entered.callback(None)
        if self.hold is not None:
            await self.hold
        if self.failing:
            raise ConnectionRefusedError("451 try again later")
        self.digests.append(digest)


@pytest.fixture
def store(sql_url: str, pump: ThreadPump) -> Iterator[SqlMessageStore]:
    opened = pump.wait(open_store(sql_url, pump))
    yield opened
    pump.wait(opened.close())


@pytest.fixture
def pump() -> ThreadPump:
    return ThreadPump()


ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=ENGINES)
def sql_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


class World:
    def __init__(self, store: SqlMessageStore, pump: ThreadPump) -> None:
        self.store = store
        self.pump = pump
        self.cases: list[Case] = []
        self.clock = Clock()

    def notifier(
        self, *channels: tuple[NoticeChannel, Recorder], metrics: NoticeMetrics | None = None
    ) -> Notifier:
        async def cases() -> list[Case]:
            return list(self.cases)

        return Notifier(
            SqlNoticeStore(self.store.database),
            cases,
            channels,
            JobLock(self.store.leases, NOTICES_JOB, self.clock, seconds=60),
            now=lambda: T0 + timedelta(days=2),
            admin_url=ADMIN,
            metrics=metrics,
        )

    def run(self, notifier: Notifier) -> dict[str, int]:
        return self.pump.wait(Deferred.fromCoroutine(notifier.run_once()))


@pytest.fixture
def world(store: SqlMessageStore, pump: ThreadPump) -> World:
    return World(store, pump)


def channel(name: str = "beheer", *kinds: CaseKind) -> NoticeChannel:
    settings: dict[str, Any] = {"name": name, "webhook": {"url": "http://127.0.0.1:1/"}}
    if kinds:
        settings["kinds"] = [k.value for k in kinds]
    return NoticeChannel.model_validate(settings)


def test_new_cases_go_out_once_in_a_digest(world: World) -> None:
    world.cases = [
        case(CaseKind.INTAKE_REJECTED, "t1"),
        case(CaseKind.PARKED, "o1", minutes=5),
        case(CaseKind.INTAKE_REJECTED, "t0", closed=True),  # not open: not news
    ]
    sink = Recorder()
    notifier = world.notifier((channel(), sink))
    assert world.run(notifier) == {"beheer": 2}
    (digest,) = sink.digests
    assert [c.id for c in digest.cases] == ["intake_rejected:t1", "parked:o1"]
    assert digest.counts == {CaseKind.INTAKE_REJECTED: 1, CaseKind.PARKED: 1}
    assert digest.cases[0].link == f"{ADMIN}/cases/intake_rejected%3At1"
    assert world.run(notifier) == {}  # nothing new: no digest at all
    world.cases.append(case(CaseKind.REJECTED_LINE, "l1", minutes=9))
    assert world.run(notifier) == {"beheer": 1}
    assert [c.id for c in sink.digests[-1].cases] == ["rejected_line:l1"]
    # another process (a new Notifier on the same store) sends nothing again either
    assert world.run(world.notifier((channel(), sink))) == {}
    assert len(sink.digests) == 2


def test_each_channel_notices_its_own_kinds(world: World) -> None:
    world.cases = [case(CaseKind.INTAKE_REJECTED, "t1"), case(CaseKind.PARKED, "o1")]
    mail, hook = Recorder(), Recorder()
    notifier = world.notifier((channel("mail", CaseKind.PARKED), mail), (channel("hook"), hook))
    assert world.run(notifier) == {"mail": 1, "hook": 2}
    assert [c.id for c in mail.digests[0].cases] == ["parked:o1"]
    assert {c.id for c in hook.digests[0].cases} == {"parked:o1", "intake_rejected:t1"}


def test_a_failed_delivery_goes_again_with_the_next_digest(world: World) -> None:
    world.cases = [case(CaseKind.PARKED, "o1")]
    sink = Recorder()
    sink.failing = True
    registry = CollectorRegistry()
    notifier = world.notifier((channel(), sink), metrics=NoticeMetrics(registry))
    assert world.run(notifier) == {}
    assert sink.digests == []
    sink.failing = False
    world.cases.append(case(CaseKind.PARKED, "o2", minutes=1))
    assert world.run(notifier) == {"beheer": 2}
    assert [c.id for c in sink.digests[0].cases] == ["parked:o1", "parked:o2"]

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"channel": "beheer", **labels})

    assert value("igo_gateway_notice_digests_total", outcome="failed") == 1
    assert value("igo_gateway_notice_digests_total", outcome="sent") == 1
    assert value("igo_gateway_notice_cases_total") == 2


def test_one_process_at_a_time_sends(world: World) -> None:
    world.cases = [case(CaseKind.PARKED, "o1")]
    first_sink, second_sink = Recorder(), Recorder()
    first_sink.hold = Deferred()
    first = Deferred.fromCoroutine(world.notifier((channel(), first_sink)).run_once())
    # the first holds the lease while it sends; the second process leaves it the work
    world.pump.wait(first_sink.entered)
    assert world.run(world.notifier((channel(), second_sink))) == {}
    first_sink.hold.callback(None)
    assert world.pump.wait(first) == {"beheer": 1}
    assert second_sink.digests == []
    # had the second not left it alone, it would have taken the first's digest for one
    # cut off while sending
    assert world.pump.wait(world.store.database.run_read("states", _states_txn)) == ["sent"]
    assert world.run(world.notifier((channel(), second_sink))) == {}


def _states_txn(txn: Transaction) -> list[str]:
    txn.execute("SELECT state FROM notices_sent ORDER BY case_id")
    return [str(row[0]) for row in txn.fetchall()]


def test_a_digest_cut_off_while_sending_is_never_sent_again(world: World) -> None:
    world.cases = [case(CaseKind.PARKED, "o1")]
    notices = SqlNoticeStore(world.store.database)
    # a process wrote the digest's rows, then died before it knew whether it arrived
    assert world.pump.wait(notices.begin("beheer", "d0", ["parked:o1"], T0))
    sink = Recorder()
    assert world.run(world.notifier((channel(), sink))) == {}
    assert sink.digests == []
    assert world.pump.wait(notices.noticed("beheer")) == frozenset({"parked:o1"})


def test_a_notice_holds_no_client_data() -> None:

    cases = [case(CaseKind.INTAKE_REJECTED, "t1"), case(CaseKind.REJECTED_LINE, "l1")]
    made = build_digest(
        channel(), cases, frozenset(), admin_url=ADMIN, made_at=T0, digest_id="d1", max_listed=1
    )
    assert made is not None
    digest, covered = made
    assert covered == ("intake_rejected:t1", "rejected_line:l1")
    text, body = digest_text(digest), json.dumps(digest_json(digest))
    for shown in (text, body, digest.subject):
        assert BSN not in shown
        assert "Jansen" not in shown
    assert "intake_rejected:t1" in text
    assert "en 1 meer" in text  # listed: one; counted: both
    assert json.loads(body)["counts"] == {"intake_rejected": 1, "rejected_line": 1}


class Unsure(Recorder):
    async def deliver(self, digest: Digest) -> None:
        self.digests.append(digest)
        raise DeliveryUncertainError("TimeoutError")


def test_a_digest_that_may_have_arrived_is_not_sent_again(world: World) -> None:
    world.cases = [case(CaseKind.PARKED, "o1")]
    unsure = Unsure()
    assert world.run(world.notifier((channel(), unsure))) == {}
    assert len(unsure.digests) == 1
    sink = Recorder()
    assert world.run(world.notifier((channel(), sink))) == {}
    assert sink.digests == []
    assert world.pump.wait(world.store.database.run_read("states", _states_txn)) == ["unconfirmed"]


def test_which_errors_leave_a_digest_uncertain() -> None:
    from twisted.internet.defer import TimeoutError as DeferTimeout  # noqa: PLC0415
    from twisted.python.failure import Failure  # noqa: PLC0415
    from twisted.web.client import ResponseNeverReceived  # noqa: PLC0415

    from adapters.notices import uncertain  # noqa: PLC0415

    for error in (DeferTimeout(), ResponseNeverReceived([])):
        with pytest.raises(DeliveryUncertainError):
            uncertain(Failure(error))
    refused = Failure(ConnectionRefusedError())
    assert uncertain(refused) is refused  # never reached the server: tried again
