"""Bundling in batches: a run over a backlog bundles it in batches of whole connected
groups (women who share an upload, or a credit and the line it corrects), each recorded on
its own with claim files of their own factuurnummer. The safety conditions: no upload is
split over two batches (its forward would go out twice under the participant's
factuurnummer), no factuurnummer is used twice, corrections and credits are decided with
what they correct whatever the batches, an upload that arrives between the grouping and a
batch's reading joins its group, and a batch whose lines changed under it is decided again
while the batches before it stay recorded — and batching decides exactly what one run over
everything decides."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.defer import Deferred

from adapters.storage import SqlMessageStore, open_store
from adapters.storage.database import Transaction
from gateway.bundler import INVOICE_SEQUENCE, Bundler, BundleRun
from gateway.ei import FileWriter
from gateway.intake import Intake
from gateway.loading import load_layouts
from gateway.metrics import Metrics
from gateway.ports.intake import Upload
from gateway.rules.model import Participant, Terms
from gateway.terms import load_catalogue
from gateway.vsp import send_metadata
from tests.benchmarks.cycle import (
    NOW,
    UZOVI,
    Woman,
    _header,
    _insured,
    _kraamzorg,
    _line,
    _midwifery,
    kraamzorg_organisation,
    midwifery_practice,
    terms,
    women,
)
from tests.threadpump import ThreadPump

REGISTRY = load_layouts()
CATALOGUE = load_catalogue()
MIDWIFE, KRAAM = midwifery_practice(0), kraamzorg_organisation(0)
WOMEN = list(women(6))
TERMS = terms(1)
# The midwifery practice declares for itself: its lines are forwarded, per upload.
SELF_DECLARING = Terms(
    TERMS.settings,
    {
        **TERMS.participants,
        MIDWIFE: Participant(MIDWIFE, TERMS.participants[MIDWIFE].variant, ((None, None, False),)),
    },
    TERMS.insurers,
)


def upload_of(
    agb: str,
    invoice: str,
    who: Sequence[Woman],
    *,
    credit_of: dict[str, str] | None = None,
) -> bytes:
    """A file of ``agb`` (midwifery VK301 or kraamzorg KZ301) with the care of ``who``;
    with ``credit_of`` (reference → BSN), a credit-only file crediting those lines."""
    midwifery = agb == MIDWIFE
    standard, codelist, performer = (
        ("VK301", "032", "02012345") if midwifery else ("KZ301", "044", agb)
    )
    care = _midwifery if midwifery else _kraamzorg
    writer = FileWriter(REGISTRY.by_standard(standard))
    by_bsn = {w.bsn: w for w in WOMEN}
    # The care credited: (reference, the woman it is declared for, code, day).
    credited = [
        (reference, by_bsn[bsn], *care(by_bsn[reference.split("-")[0]])[int(reference[-1]) - 1])
        for reference, bsn in (credit_of or {}).items()
    ]
    days = [day for w in who for _, day in care(w)] + [c[3] for c in credited]
    _header(writer, agb, invoice, days)
    if credit_of is None:
        for w in who:
            _insured(writer, w)
            for n, (code, day) in enumerate(care(w), start=1):
                _line(writer, w, codelist, code, day, performer, f"{w.bsn}-{n}")
        return writer.finish()
    for reference, w, code, day in credited:
        _insured(writer, w)
        writer.prestatie(
            bsn=w.bsn,
            uzovi=UZOVI,
            forwarding_allowed="1",
            prestatie_date=day,
            prestatiecodelijst=codelist,
            prestatiecode=code,
            performer_code=performer,
            tariff=10000,
            number_performed=1,
            calculated_amount=-10000,
            declared_amount=-10000,
            reference=f"C-{reference}",
            previous_reference=reference,
        )
    return writer.finish()


@pytest.fixture
def pump() -> ThreadPump:
    return ThreadPump()


def _open(path: Path, pump: ThreadPump) -> SqlMessageStore:
    store: SqlMessageStore = pump.wait(open_store(f"sqlite:///{path}", pump))
    return store


@pytest.fixture
def store(tmp_path: Path, pump: ThreadPump) -> Iterator[SqlMessageStore]:
    opened = _open(tmp_path / "g.db", pump)
    yield opened
    pump.wait(opened.close())


def take_in(store: SqlMessageStore, pump: ThreadPump, agb: str, payload: bytes) -> str:
    intake = Intake(store, REGISTRY, clock=lambda: NOW, run_in_thread=lambda f: defer.succeed(f()))
    discipline = "midwifery" if agb == MIDWIFE else "kraamzorg"
    receipt = pump.wait(intake.receive(Upload(agb, discipline, send_metadata(agb, "EI"), payload)))
    assert receipt.code is None, receipt
    traceer_id: str = receipt.traceer_id
    return traceer_id


def bundler(
    store: SqlMessageStore,
    batch_lines: int,
    terms: Terms = TERMS,
    **extra: Any,
) -> Bundler:
    return Bundler(
        store,
        store.bundles,
        REGISTRY,
        CATALOGUE,
        terms,
        now=lambda: NOW,
        batch_lines=batch_lines,
        **extra,
    )


def rows(store: SqlMessageStore, pump: ThreadPump, sql: str, *params: Any) -> list[Any]:
    def read(txn: Transaction) -> list[Any]:
        txn.execute(sql, params)
        return txn.fetchall()

    found: list[Any] = pump.wait(store.database.run_read("test", read))
    return found


def women_of(store: SqlMessageStore, pump: ThreadPump, upload: str) -> set[str]:
    return {
        r[0]
        for r in rows(
            store, pump, "SELECT DISTINCT woman FROM declaration_lines WHERE traceer_id = ?", upload
        )
    }


def claims(store: SqlMessageStore, pump: ThreadPump) -> list[tuple[Any, ...]]:
    """Every claimed integral line, as decided (no file or number in it)."""
    return sorted(
        rows(
            store,
            pump,
            "SELECT pregnancy, phase, insurer, prestatie, amount, credits IS NOT NULL"
            " FROM integral_claims",
        )
    )


def invoices(store: SqlMessageStore, pump: ThreadPump) -> list[str]:
    return [
        r[0]
        for r in rows(
            store,
            pump,
            "SELECT m.invoice_number FROM outbound o JOIN messages m ON m.traceer_id = o.traceer_id"
            " WHERE m.invoice_number IS NOT NULL",
        )
    ]


def backlog(store: SqlMessageStore, pump: ThreadPump) -> list[str]:
    """Three groups of two women, each declared by both participants."""
    uploads = []
    for n in range(3):
        pair = WOMEN[2 * n : 2 * n + 2]
        uploads.append(take_in(store, pump, MIDWIFE, upload_of(MIDWIFE, f"VK{n:06d}", pair)))
        uploads.append(take_in(store, pump, KRAAM, upload_of(KRAAM, f"KZ{n:06d}", pair)))
    return uploads


def test_each_batch_is_recorded_with_claim_files_of_its_own_factuurnummer(
    store: SqlMessageStore, pump: ThreadPump, tmp_path: Path
) -> None:
    uploads = backlog(store, pump)
    groups = pump.wait(store.bundles.bundle_groups(1))
    assert [set(g) for g in groups] == sorted(
        (women_of(store, pump, uploads[2 * n]) for n in range(3)), key=min
    )
    done: BundleRun = pump.wait(bundler(store, 1).run())
    assert done.batches == 3
    assert len(done.claim_files) == 3
    assert sorted(invoices(store, pump)) == sorted(done.claim_files)
    assert len(set(done.claim_files)) == 3  # never a factuurnummer twice
    assert pump.wait(store.open_lines()) == []
    # Batched, it decides what one run over everything decides.
    whole = _open(tmp_path / "whole.db", pump)
    try:
        backlog(whole, pump)
        plan = pump.wait(bundler(whole, 1_000_000).run_once())
        assert len(plan.claims) == 1
        assert claims(store, pump) == claims(whole, pump)
        assert done.integral_lines == sum(len(c.links) for c in plan.claims)
    finally:
        pump.wait(whole.close())


def test_batches_are_bounded_by_their_lines_but_a_group_is_never_split(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    backlog(store, pump)  # three groups of 2 women × 21 lines
    assert [len(g) for g in pump.wait(store.bundles.bundle_groups(84))] == [4, 2]
    assert [len(g) for g in pump.wait(store.bundles.bundle_groups(83))] == [2, 2, 2]
    assert [len(g) for g in pump.wait(store.bundles.bundle_groups(10**6))] == [6]


def test_women_sharing_an_upload_are_one_batch_and_each_upload_is_forwarded_once(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    # A chain: upload 1 has women 0 and 1, upload 2 women 1 and 2; woman 3 alone.
    chain = [
        take_in(store, pump, MIDWIFE, upload_of(MIDWIFE, "VK-1", WOMEN[0:2])),
        take_in(store, pump, MIDWIFE, upload_of(MIDWIFE, "VK-2", WOMEN[1:3])),
        take_in(store, pump, MIDWIFE, upload_of(MIDWIFE, "VK-3", WOMEN[3:4])),
    ]
    groups = pump.wait(store.bundles.bundle_groups(1))
    assert sorted(len(g) for g in groups) == [1, 3]
    assert women_of(store, pump, chain[0]) | women_of(store, pump, chain[1]) in map(set, groups)
    done: BundleRun = pump.wait(bundler(store, 1, SELF_DECLARING).run())
    assert done.batches == 2
    assert done.forward_files == 3
    per_upload = rows(
        store,
        pump,
        "SELECT traceer_id, COUNT(DISTINCT outbound), MIN(state), MAX(state)"
        " FROM declaration_lines GROUP BY traceer_id",
    )
    assert sorted(per_upload) == sorted((u, 1, "forwarded", "forwarded") for u in chain)
    forwarded = rows(store, pump, "SELECT COUNT(*) FROM outbound")
    assert forwarded == [(3,)]


def test_a_credit_across_women_and_uploads_is_decided_with_the_line_it_corrects(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    first = take_in(store, pump, KRAAM, upload_of(KRAAM, "KZ-1", WOMEN[0:1]))
    second = take_in(store, pump, KRAAM, upload_of(KRAAM, "KZ-2", WOMEN[1:2]))
    # Woman 1's upload credits woman 0's intake (a line declared for the wrong woman).
    credit = take_in(
        store,
        pump,
        KRAAM,
        upload_of(KRAAM, "KZ-3", WOMEN[1:2], credit_of={f"{WOMEN[0].bsn}-1": WOMEN[1].bsn}),
    )
    groups = pump.wait(store.bundles.bundle_groups(1))
    assert len(groups) == 1
    assert set(groups[0]) == women_of(store, pump, first) | women_of(store, pump, second)
    pump.wait(bundler(store, 1).run())
    credited = f"{WOMEN[0].bsn}-1"
    states = rows(
        store,
        pump,
        "SELECT traceer_id, reference, state FROM declaration_lines WHERE reference IN (?, ?)",
        credited,
        f"C-{credited}",
    )
    assert sorted(states) == sorted(
        [(first, credited, "cancelled"), (credit, f"C-{credited}", "cancelled")]
    )


def test_credits_after_a_batched_run_credit_their_claims_in_a_later_batched_run(
    store: SqlMessageStore, pump: ThreadPump, tmp_path: Path
) -> None:
    def cycle(target: SqlMessageStore, batch_lines: int) -> None:
        backlog(target, pump)
        pump.wait(bundler(target, batch_lines).run_once())
        # One credit-only upload crediting the birth of women 0 and 4 (two batches).
        credited = {f"{WOMEN[n].bsn}-3": WOMEN[n].bsn for n in (0, 4)}
        take_in(target, pump, MIDWIFE, upload_of(MIDWIFE, "VKC-1", [], credit_of=credited))
        pump.wait(bundler(target, batch_lines).run_once())

    cycle(store, 1)
    assert pump.wait(store.open_lines()) == []
    credits = [c for c in claims(store, pump) if c[5]]
    answered = rows(
        store, pump, "SELECT state, outcome FROM declaration_lines WHERE reference LIKE 'C-%'"
    )
    assert answered == [("cancelled", "granted")] * 2  # each credit line answered
    assert len(credits) == 2  # the claimed lines of two pregnancies credited
    numbers = invoices(store, pump)
    assert len(numbers) == len(set(numbers))  # never a factuurnummer twice
    whole = _open(tmp_path / "whole.db", pump)
    try:
        cycle(whole, 10**6)
        assert claims(store, pump) == claims(whole, pump)
    finally:
        pump.wait(whole.close())


def test_an_upload_arriving_after_the_grouping_joins_the_batch_it_connects(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    uploads = backlog(store, pump)
    groups = pump.wait(store.bundles.bundle_groups(1))
    first, second = women_of(store, pump, uploads[0]), women_of(store, pump, uploads[2])
    assert first in map(set, groups)
    assert second in map(set, groups)
    # A new upload of woman 0's and woman 2's care: their groups are one now.
    take_in(store, pump, MIDWIFE, upload_of(MIDWIFE, "VK-late", [WOMEN[0], WOMEN[2]]))
    given = pump.wait(store.bundles.bundle_input_of(sorted(first)))
    assert set(given.women.values()) == first | second


def test_a_batch_that_conflicts_is_decided_again_and_the_batches_before_it_stay(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    backlog(store, pump)
    reached: list[str] = []

    def touch(txn: Transaction) -> None:
        # Another hand changes the lines still open (of the batches not yet recorded).
        txn.execute("UPDATE declaration_lines SET revision = revision + 1 WHERE state = 'open'")

    def checkpoint(point: str) -> Deferred[None]:
        reached.append(point)
        if len(reached) == 2:  # the second batch, decided, not recorded yet
            return store.database.run_interaction("touch", touch)
        return defer.succeed(None)

    metrics = Metrics()
    done: BundleRun = pump.wait(bundler(store, 1, checkpoint=checkpoint, metrics=metrics).run())
    assert metrics.bundling_conflicts._value.get() == 1
    # Three batches: the second decided twice, and the third decided once while the
    # second was being recorded (that work is lost with the conflict) and once again.
    assert len(reached) == 5
    assert done.batches == 3
    assert pump.wait(store.open_lines()) == []
    numbers = invoices(store, pump)
    assert len(numbers) == 3
    assert len(set(numbers)) == 3


def test_numbers_taken_by_another_while_a_batch_was_decided_make_it_decided_again(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    # A batch numbers its claim files on from the last factuurnummer taken and takes them
    # when it is recorded; a correction that took a number meanwhile makes the batch's
    # numbers stale, and it is decided again with the numbers after it (none twice).
    backlog(store, pump)
    taken: list[int] = []

    def checkpoint(point: str) -> Deferred[None]:
        if not taken:  # the first batch, decided, not recorded yet
            return store.bundles.reserve(INVOICE_SEQUENCE, 1).addCallback(taken.append)
        return defer.succeed(None)

    metrics = Metrics()
    done: BundleRun = pump.wait(bundler(store, 1, checkpoint=checkpoint, metrics=metrics).run())
    assert metrics.bundling_conflicts._value.get() == 1
    assert done.batches == 3
    numbers = sorted(invoices(store, pump))
    assert numbers == sorted(done.claim_files)
    assert [int(n.rsplit("-", 1)[1]) for n in numbers] == [2, 3, 4]  # 1 is the correction's
    assert taken == [1]
    assert pump.wait(store.bundles.last_number(INVOICE_SEQUENCE)) == 4


def test_the_next_batch_is_decided_while_the_one_before_is_recorded_one_at_a_time(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    backlog(store, pump)
    events: list[str] = []
    gates: list[Deferred[None]] = []
    real = store.bundles

    class Watched:
        """The real store, but a batch's recording is held until the next batch is
        decided (all but the last): a run that waited for each recording before deciding
        the next would never finish."""

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def record_bundle(self, *args: Any) -> Deferred[None]:
            events.append("record")
            assert events.count("record") == events.count("recorded") + 1  # never two at once
            gate: Deferred[None] = Deferred()
            if len(gates) < 2:
                gates.append(gate)
            else:
                gate.callback(None)

            def recorded(_: None) -> None:
                events.append("recorded")

            return gate.addCallback(lambda _: real.record_bundle(*args)).addCallback(recorded)

    def checkpoint(point: str) -> Deferred[None]:
        events.append(point)
        for gate in gates:
            if not gate.called:
                gate.callback(None)
        return defer.succeed(None)

    run = Bundler(
        store,
        Watched(),
        REGISTRY,
        CATALOGUE,
        TERMS,
        now=lambda: NOW,
        batch_lines=1,
        checkpoint=checkpoint,
    ).run()
    done: BundleRun = pump.wait(run, timeout=5)
    assert done.batches == 3
    assert events == [
        "decided",
        "record",
        "decided",
        "recorded",
        "record",
        "decided",
        "recorded",
        "record",
        "recorded",
    ]
    assert pump.wait(store.open_lines()) == []
    assert len(set(invoices(store, pump))) == 3


def test_a_run_with_nothing_open_goes_through_once_and_claims_nothing(
    store: SqlMessageStore, pump: ThreadPump
) -> None:
    done: BundleRun = pump.wait(bundler(store, 1).run())
    assert (done.batches, done.claim_files, done.forward_files) == (1, [], 0)
    assert pump.wait(store.bundles.bundle_groups(1)) == []
