"""The bundler: decides what to claim now, writes the files, and stores them batch by batch.

A run (:meth:`Bundler.run` or :meth:`Bundler.run_once`) takes every woman with a line still
open, in batches of whole connected groups (women who share an upload, or a credit and
the line it corrects, are always in one batch; a batch has about ``batch_lines`` lines,
a bigger group is a batch of its own), so that its memory does not grow with the backlog.
For each batch it takes every line of those women, the integral lines claimed before and
the phases closed by hand; lets the rules decide; builds per insurer one integral claim
file (KZ301, declared by the IGO, checked by the codec, with a factuurnummer of its own)
and, per original upload and insurer, one monodisciplinary forward file of the lines
forwarded unchanged; and stores the files (queued for the forwarder), the claimed lines
with their provenance and where every settled line ended — in one transaction per batch,
under the run's lease and guarded line by line (:class:`RunGuard`). Waiting lines stay
open for the next run. With bundle workers (:class:`BatchWorkers`, ``[bundling]
worker_processes``), :meth:`Bundler.run` has a worker process read, decide and build each
batch (:meth:`Bundler.prepare_batch`) while this process records the one before; a batch
the worker cannot prepare is prepared here. :meth:`Bundler.plan` does the same without
storing or numbering anything (``igo-gateway bundle --dry-run``).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from gateway import crashpoints
from gateway.ei import (
    FieldValue,
    FileWriter,
    LayoutRegistry,
    Outcome,
    Record,
    records_of,
    validate_bytes,
)
from gateway.jobs import JobLock
from gateway.lines import AnswerOutcome, DeclaredLine
from gateway.metrics import Metrics
from gateway.ports.bundling import (
    BatchTally,
    BatchWorkers,
    BatchWorkerUnavailableError,
    BundleConflictError,
    BundlePlan,
    BundleStore,
    DecisionRecord,
    ForwardFile,
    LateLine,
    LineAnswerNow,
    LineOutcome,
    PreparedBatch,
    QueuedFile,
    RecordBundle,
    ReturnedRetour,
    RunGuard,
)
from gateway.ports.jobs import LeaseLostError
from gateway.ports.messages import (
    Direction,
    Message,
    MessageStatus,
    MessageStore,
    NewMessage,
    NewStatus,
)
from gateway.ports.runtime import RunInThread, run_inline
from gateway.retours import participant_retour
from gateway.rules.catalogue import Catalogue
from gateway.rules.claims import ClaimLink, PlannedLine, build_claim_file
from gateway.rules.decide import decide
from gateway.rules.model import (
    RETURN_TO_DECLARE_ITSELF,
    Decision,
    Distribution,
    LineKey,
    Place,
    Terms,
    line_key,
)

__all__ = [
    "BUNDLING_JOB",
    "BatchTally",
    "BatchWorkerUnavailableError",
    "BatchWorkers",
    "BundlePlan",
    "BundleRun",
    "Bundler",
    "ForwardFile",
    "PreparedBatch",
    "outbound_message",
]

log = Logger()

INVOICE_SEQUENCE = "igo-invoice"
BUNDLING_JOB = "bundling"  # the name of the bundling lease
# Where a line stands once declared monodisciplinarily (by the IGO or by the participant).
_MONO = frozenset({Place.FORWARDED.value, Place.RETURNED.value})
# Retourcode 8084 (COD954): the debit line has been credited already.
DEBIT_CREDITED = "8084"
# A modelled retourcode (the IGO's own band): "no separate amount — paid through the
# integral line named in the retour" (a late line under the ``shares`` distribution).
PAID_THROUGH_INTEGRAL = "9002"


@dataclass
class BundleRun:
    """What a run stored, counted (:meth:`Bundler.run`): no plan is kept."""

    batches: int = 0
    claim_files: list[str] = field(default_factory=list)  # their factuurnummers
    integral_lines: int = 0
    forward_files: int = 0
    lines: Counter[str] = field(default_factory=Counter)  # settled lines by place

    def add(self, tally: BatchTally) -> None:
        self.batches += 1
        self.claim_files += tally.claim_files
        self.integral_lines += len(tally.integral)
        self.forward_files += tally.forward_files
        self.lines.update(tally.lines)


# A test-only pause point: awaited with the step's name ("decided": read, decided and
# built, nothing recorded yet), so a test can hold a run there while another goes.
Checkpoint = Callable[[str], Awaitable[None]]


# How often a batch whose lines changed under it is decided again before the run gives up.
RUN_ATTEMPTS = 3
# About how many lines a batch of a run holds (whole connected groups; a bigger one alone).
BATCH_LINES = 50_000


class Bundler:
    def __init__(
        self,
        messages: MessageStore,
        bundles: BundleStore,
        registry: LayoutRegistry,
        catalogue: Catalogue,
        terms: Terms,
        *,
        now: Callable[[], datetime],
        metrics: Metrics | None = None,
        run_in_thread: RunInThread | None = None,
        distribution: Distribution = Distribution.DECLARED,
        lock: JobLock | None = None,
        checkpoint: Checkpoint | None = None,
        batch_lines: int = BATCH_LINES,
        workers: BatchWorkers | None = None,
    ) -> None:
        if batch_lines < 1:
            raise ValueError("a batch needs at least one line")
        self._batch_lines = batch_lines
        self._workers = workers
        self._lock = lock
        self._checkpoint = checkpoint
        self._metrics = metrics
        self._distribution = distribution
        self._run: RunInThread = run_in_thread or run_inline
        self._messages = messages
        self._bundles = bundles
        self._registry = registry
        self._catalogue = catalogue
        self._terms = terms
        self._now = now
        # Per run: the uploads read for it (messages, and their records once parsed).
        self._uploads: dict[str, Message | None] = {}
        self._sources: dict[str, list[Record]] = {}
        # Per upload of the batch: each woman's 02 record (the first for her BSN), by BSN.
        self._insured_of: dict[str, dict[FieldValue, dict[str, FieldValue]]] = {}
        self._states: dict[LineKey, str] = {}
        self._revisions: dict[LineKey, int] = {}
        self._answered: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._outcomes: dict[LineKey, tuple[str, int | None]] = {}

    async def decisions(
        self, women: Sequence[str] | None = None
    ) -> tuple[list[Decision], list[DeclaredLine]]:
        """The decisions over every woman with a line still open, or over ``women`` (and
        the women connected to them)."""
        given = await (
            self._bundles.bundle_input() if women is None else self._bundles.bundle_input_of(women)
        )
        self._states = given.states
        self._revisions = given.revisions
        self._answered = given.answered
        self._outcomes = given.outcomes
        today = self._now().date()
        decisions: list[Decision] = await self._run(
            lambda: decide(
                given.lines,
                self._terms,
                self._catalogue,
                today=today,
                existing=given.existing,
                closed=given.closed,
                broken=given.broken,
                woman=partial(_woman, given.women, self._bundles.woman_of),
                mono={k for k, state in given.states.items() if state in _MONO},
            )
        )
        return decisions, given.lines

    async def plan(self) -> BundlePlan:
        """What would be claimed and forwarded now, batch by batch as a run would; nothing
        stored or numbered."""
        whole = BundlePlan([])
        numbered = 0
        for women in await self._bundles.bundle_groups(self._batch_lines):
            self._forget()
            decisions, lines = await self.decisions(women)
            plan = await self._build(decisions, lines, invoice=partial(_concept, numbered))
            numbered += len(plan.claims)
            whole.extend(plan)
        self._forget()
        return whole

    async def run_once(self, *, wait: bool = True) -> BundlePlan:
        """Decide, build and store one run, and the plan of all its batches (kept in
        memory: :meth:`run` keeps none). With a lock, the run holds the bundling lease
        of every process on the store (waiting its turn, or :class:`JobBusyError` without
        ``wait``); a batch whose lines changed before it recorded them is decided again."""
        whole = BundlePlan([])

        def keep(prepared: PreparedBatch) -> None:
            assert prepared.plan is not None  # prepared here: the plan is kept
            whole.extend(prepared.plan)

        await self._batches(keep, wait=wait, plans=True)
        return whole

    async def run(self, *, wait: bool = True) -> BundleRun:
        """:meth:`run_once`, counting what each batch stored instead of keeping it (its
        batches prepared by the bundle worker, when it has one)."""
        counted = BundleRun()
        await self._batches(lambda prepared: counted.add(prepared.tally), wait=wait)
        return counted

    async def _batches(
        self, each: Callable[[PreparedBatch], None], *, wait: bool, plans: bool = False
    ) -> None:
        """Every batch of the run, each decided, built and recorded on its own (and handed
        to ``each``). The next batch is read and decided while the one before it is being
        recorded (the two use different lines; on PostgreSQL the database server records
        while the gateway decides); at most one batch is being recorded at a time, in
        order. With a bundle worker (and no plan to keep), the worker reads, decides and
        builds the next batch, so that this process only records. A batch that hits a
        conflict, or finds the lease lost, is decided again under the lease taken anew
        (at most :data:`RUN_ATTEMPTS` times); the batches recorded before it stay
        recorded."""
        done: set[str] = set()  # the women of the batches recorded
        recorded = 0
        attempt = 1
        while True:
            if self._lock is not None:
                await self._lock.acquire(wait=wait)
            recording: _Recording | None = None
            try:
                groups = await self._bundles.bundle_groups(self._batch_lines)
                batches = [[w for w in group if w not in done] for group in groups]
                batches = [women for women in batches if women]
                if not batches and not recorded:
                    batches = [[]]  # a run with nothing to decide still goes through
                # The factuurnummers are given as the batches are decided, on from the
                # last one taken; each batch's recording takes its own, unless another
                # took numbers meanwhile (a conflict: decided again).
                taken = await self._bundles.last_number(INVOICE_SEQUENCE)
                for women in [*batches, None]:
                    try:
                        prepared = (
                            None if women is None else await self._prepare(women, taken, plan=plans)
                        )
                    finally:
                        # The batch before is recorded (or failed) before this one starts
                        # recording, and before the lease is let go.
                        if recording is not None:
                            finished, recording = recording, None
                            each(await self._finish(finished))
                            done.update(finished.women)
                            recorded += 1
                            attempt = 1
                    if prepared is not None:
                        recording = self._record(prepared)
                        taken += prepared.numbers
                return
            except (BundleConflictError, LeaseLostError) as exc:
                if self._metrics is not None:
                    self._metrics.bundling_conflicts.inc()
                if attempt == RUN_ATTEMPTS:
                    raise
                attempt += 1
                log.warn(
                    "a bundling run was not stored ({error}); it is decided again",
                    error=str(exc),
                )
            finally:
                if self._lock is not None:
                    await self._lock.release()

    async def _prepare(self, women: Sequence[str], taken: int, *, plan: bool) -> PreparedBatch:
        """A batch prepared (:meth:`prepare_batch`): by a bundle worker when there is one
        and no ``plan`` is to be kept (nor a test's checkpoint), else here; one the worker
        could not prepare is prepared here."""
        arrivals = self._metrics is not None
        if self._workers is not None and not plan and self._checkpoint is None:
            try:
                prepared = await self._workers.prepare(tuple(women), taken, self._now(), arrivals)
            except BatchWorkerUnavailableError as exc:
                if self._metrics is not None:
                    self._metrics.bundle_batches_here.inc()
                log.warn(
                    "a bundle worker could not prepare a batch ({error}); "
                    "it is prepared in this process",
                    error=str(exc),
                )
            else:
                return self._leased(prepared)
        return await self.prepare_batch(women, taken, arrivals=arrivals)

    def _leased(self, prepared: PreparedBatch) -> PreparedBatch:
        """``prepared`` (by a worker, which holds no lease) guarded by this run's lease."""
        if self._lock is None:
            return prepared
        outbound, claims, outcomes, at, records, retours, late, guard = prepared.recording
        leased = replace(
            guard,
            lease_job=self._lock.job,
            lease_holder=self._lock.holder,
            lease_seconds=self._lock.seconds,
        )
        recording = (outbound, claims, outcomes, at, records, retours, late, leased)
        return replace(prepared, recording=recording)

    async def prepare_batch(
        self, women: Sequence[str], taken: int, *, arrivals: bool = False
    ) -> PreparedBatch:
        """A batch read, decided, numbered (on from ``taken``, the last factuurnummer
        taken before it) and built, with all it records and when its uploads arrived
        (with ``arrivals``); nothing recorded."""
        self._forget()
        decisions, lines = await self.decisions(women)
        # One number per insurer with a claim line (as _build numbers them); a batch that
        # claims nothing takes no factuurnummer.
        count = len({d.insurer for d in decisions if d.phase is not None and d.claims})
        first = taken + 1
        year = self._now().year % 100
        plan = await self._build(
            decisions, lines, invoice=lambda n: f"IGO{year:02d}-{first + n - 1:05d}"
        )
        if self._checkpoint is not None:
            await self._checkpoint("decided")
        numbers = (INVOICE_SEQUENCE, taken, count) if count else None
        prepared = PreparedBatch(
            tuple(women),
            plan,
            BatchTally.of(plan),
            await self._recording_of(plan, numbers),
            await self._uploaded_at(plan) if arrivals else {},
            count,
        )
        self._forget()
        return prepared

    def _record(self, prepared: PreparedBatch) -> _Recording:
        """Start recording a prepared batch (the store's writer takes it in turn)."""
        return _Recording(
            prepared, ensureDeferred(_awaited(self._bundles.record_bundle(*prepared.recording)))
        )

    async def _finish(self, recording: _Recording) -> PreparedBatch:
        """Wait for a batch to be recorded; count and log it."""
        prepared = recording.prepared
        await recording.stored
        tally = prepared.tally
        if prepared.recording[0]:  # files queued for the insurers
            crashpoints.reached("bundled")
        try:
            self._count(tally, prepared.uploaded_at)
        except Exception:  # the batch is stored: counting it must not make it look failed
            log.failure("a bundling run was stored, but counting it in the metrics failed")
        log.info(
            "bundled: {claims} claim file(s), {forwards} forward file(s), lines {lines}",
            claims=len(tally.claim_files),
            forwards=tally.forward_files,
            lines=tally.lines,
        )
        return prepared

    async def _uploaded_at(self, plan: BundlePlan) -> dict[str, datetime]:
        """When each upload a claim of ``plan`` absorbs arrived (for the metrics)."""
        at: dict[str, datetime] = {}
        for claim in plan.claims:
            for link in claim.links:
                for upload, _ in link.absorbs:
                    if upload not in at:
                        message = await self._upload(upload)
                        if message is not None:
                            at[upload] = message.created_at
        return at

    def _count(self, tally: BatchTally, uploaded_at: dict[str, datetime]) -> None:
        if self._metrics is None:
            return
        m = self._metrics
        for place, count in tally.lines.items():
            if place != Place.WAITING.value:
                m.lines_decided.labels(place).inc(count)
        now = self._now()
        for insurer, amount, uploads in tally.integral:
            m.count_integral_line(insurer, amount)
            for upload in uploads:
                if upload in uploaded_at:
                    waited = (now - uploaded_at[upload]).total_seconds()
                    m.bundling_seconds.observe(max(0.0, waited))

    # --- building ------------------------------------------------------------------------

    async def _upload(self, traceer_id: str) -> Message | None:
        if traceer_id not in self._uploads:
            self._uploads[traceer_id] = await self._messages.get_message(traceer_id)
        return self._uploads[traceer_id]

    async def _read_uploads(self, traceer_ids: Iterable[str]) -> None:
        """Read the uploads not read yet for this batch in one go, and parse them in one
        worker call (what :meth:`_upload` and :meth:`_records` then give)."""
        wanted = sorted(set(traceer_ids) - self._sources.keys())
        if not wanted:
            return
        found = await self._messages.messages_with_payloads(wanted)
        parsed = await self._run(
            lambda: {
                traceer_id: records_of(self._registry, payload or b"")
                for traceer_id, (_, payload) in found.items()
            }
        )
        for traceer_id in wanted:
            self._uploads[traceer_id] = found[traceer_id][0] if traceer_id in found else None
            self._sources[traceer_id] = parsed.get(traceer_id, [])

    async def _records(self, traceer_id: str) -> list[Record]:
        if traceer_id not in self._sources:
            message = await self._upload(traceer_id)
            payload = await self._messages.payload(message.sha256) if message else None
            self._sources[traceer_id] = await self._run(
                partial(records_of, self._registry, payload or b"")
            )
        return self._sources[traceer_id]

    def _forget(self) -> None:
        """Drop what was read of the uploads (a run holds one batch's at a time)."""
        self._uploads, self._sources, self._insured_of = {}, {}, {}

    async def _insured(self, bsn: str, keys: Sequence[LineKey]) -> dict[str, FieldValue]:
        """The woman's 02 record in the first of the uploads of ``keys`` that has one."""
        for traceer_id, _ in keys:
            found = (await self._insured_in(traceer_id)).get(bsn)
            if found is not None:
                return found
        return {}

    async def _insured_in(self, traceer_id: str) -> dict[FieldValue, dict[str, FieldValue]]:
        """The 02 records of an upload by BSN (the first of each BSN), read once a batch."""
        if traceer_id not in self._insured_of:
            by_bsn: dict[FieldValue, dict[str, FieldValue]] = {}
            for record in await self._records(traceer_id):
                if record.type == "02":
                    by_bsn.setdefault(record.get("bsn"), dict(record.items()))
            self._insured_of[traceer_id] = by_bsn
        return self._insured_of[traceer_id]

    async def _build(
        self,
        decisions: list[Decision],
        lines: list[DeclaredLine],
        *,
        invoice: Callable[[int], str],
    ) -> BundlePlan:
        plan = BundlePlan(decisions)
        # The uploads of the batch's open lines and of the lines its claims absorb, read
        # in one go: their 02 records name the women claimed for, and forwards and
        # retours are made of their records (any other upload is read when it is needed).
        await self._read_uploads(
            {line.traceer_id for line in lines if self._states.get(line_key(line)) == "open"}
            | {key[0] for d in decisions for claim in d.claims for key in claim.absorbs}
        )
        by_insurer: dict[str, list[PlannedLine]] = defaultdict(list)
        for d in decisions:
            if d.phase is not None:
                by_insurer[d.insurer] += [PlannedLine(d.pregnancy, d.phase, c) for c in d.claims]
        today = self._now().date()
        # Only an insurer with claim lines takes a number (the batch counted one for each).
        with_claims = [
            (insurer, planned) for insurer, planned in sorted(by_insurer.items()) if planned
        ]
        for n, (insurer, planned) in enumerate(with_claims, start=1):
            insured = {}
            for p in planned:
                if p.line.bsn not in insured:
                    insured[p.line.bsn] = await self._insured(
                        p.line.bsn, _source_keys(p, decisions)
                    )
            claim = build_claim_file(
                planned,
                registry=self._registry,
                catalogue=self._catalogue,
                igo_agb=self._terms.settings.igo_agb,
                insurer=insurer,
                invoice_number=invoice(n),
                invoice_date=today,
                insured=insured,
            )
            if claim is None:
                continue
            checked = await self._run(partial(validate_bytes, self._registry, claim.payload))
            if not checked.valid:  # a fault of the gateway's own: never send it
                raise RuntimeError(
                    f"the claim file for insurer {insurer} does not pass the codec's own "
                    f"checks: {checked.findings[0].retourcode} {checked.findings[0].message}"
                )
            plan.claims.append(claim)
        plan.forwards = await self._forwards(decisions, lines)
        return plan

    async def _forwards(
        self, decisions: list[Decision], lines: list[DeclaredLine]
    ) -> list[ForwardFile]:
        # The lines by key, made only when a line of the batch is forwarded.
        by_key: dict[LineKey, DeclaredLine] = {}
        groups: dict[tuple[str, str], list[DeclaredLine]] = defaultdict(list)
        for d in decisions:
            for key, placement in d.placements.items():
                if placement.place is Place.FORWARDED:
                    by_key = by_key or {line_key(line): line for line in lines}
                    line = by_key[key]
                    groups[(line.traceer_id, line.insurer)].append(line)
        out = []
        for (source, insurer), own in sorted(groups.items()):
            payload = await self._forward_file(source, own)
            if payload is not None:
                out.append(
                    ForwardFile(
                        insurer,
                        own[0].participant,
                        source,
                        payload,
                        tuple(map(line_key, own)),
                        own[0].standard,
                    )
                )
        return out

    async def _forward_file(self, source: str, lines: list[DeclaredLine]) -> bytes | None:
        """The participant's own records of ``lines``, unchanged but for their numbering."""
        records = await self._records(source)
        if not records or records[0].type != "01":
            return None
        wanted = {line.record_number for line in lines}
        layout = self._registry.lookup(
            records[0].text("standard_code"),
            records[0].text("version"),
            records[0].text("subversion"),
        )
        if layout is None:
            return None
        writer = FileWriter(layout)
        header = dict(records[0].items())
        for name in ("kenmerk", "standard_code", "version", "subversion"):
            header.pop(name, None)
        writer.header(**header)
        insured: Record | None = None
        written_insured: set[int] = set()
        keep_comments = False
        for record in records[1:]:
            if record.type == "02":
                insured = record
                keep_comments = False
            elif record.type == "04" and record.number_value("record_id") in wanted:
                if insured is not None and insured.number not in written_insured:
                    writer.detail("02", _values(insured))
                    written_insured.add(insured.number)
                writer.detail("04", _values(record))
                keep_comments = True
            elif record.type == "04":
                keep_comments = False
            elif record.layout.parent == "04" and keep_comments:
                # a kept 04's own records (ZH308's 06 tariefrecords carry its amounts)
                writer.detail(record.type, _values(record))
            elif record.type == "98" and keep_comments:
                writer.detail("98", _values(record))
        return writer.finish()

    # --- storing ---------------------------------------------------------------------------

    async def _recording_of(
        self, plan: BundlePlan, numbers: tuple[str, int, int] | None
    ) -> RecordBundle:
        """What recording ``plan`` writes (read now, while the batch's lines are known)."""
        now = self._now()
        outbound = []
        claims: list[tuple[ClaimLink, str, str]] = []
        reference_of: dict[LineKey, str] = {}
        outbound_of: dict[LineKey, str] = {}
        for claim in plan.claims:
            message = outbound_message(
                claim.payload,
                insurer=claim.insurer,
                key=f"claim:{claim.insurer}:{claim.invoice_number}",
                at=now,
                invoice=claim.invoice_number,
                name=f"KZ301-{claim.invoice_number}.asc",
                standard="KZ301",
            )
            outbound.append(QueuedFile(message, claim.insurer, self._terms.settings.igo_agb))
            for link in claim.links:
                claims.append((link, message.traceer_id, claim.insurer))
                for key in link.absorbs:
                    reference_of[key] = link.reference
        for forward in plan.forwards:
            digest = hashlib.sha256(forward.payload).hexdigest()[:16]
            message = outbound_message(
                forward.payload,
                insurer=forward.insurer,
                key=f"forward:{forward.source}:{forward.insurer}:{digest}",
                at=now,
                invoice=None,
                name=f"doorgestuurd-{forward.source}.asc",
                standard=forward.standard,
            )
            outbound.append(QueuedFile(message, forward.insurer, forward.participant))
            for key in forward.lines:
                outbound_of[key] = message.traceer_id
        outcomes = []
        lines = lines_of(plan)
        late: list[LateLine] = []
        for d in plan.decisions:
            # A credit and a new debit that cancel out are not sent (the claimed line
            # stands): a line absorbed into that debit joins the claimed line instead.
            credited = {c.prestatie: c.credits for c in d.claims if c.credits is not None}
            for key, placement in d.placements.items():
                joins = placement.joins
                if (
                    joins is None
                    and placement.place is Place.ABSORBED
                    and placement.claim is not None
                    and key not in reference_of
                ):
                    joins = credited.get(d.claims[placement.claim].prestatie)
                if joins is not None and self._states.get(key) != "absorbed":
                    late.append(self._late(joins, lines.get(key), key))
                outcomes.append(
                    LineOutcome(
                        key,
                        placement.place,
                        placement.reason,
                        placement.code,
                        reference_of.get(key) or joins,
                        outbound_of.get(key),
                        d.pregnancy,
                        d.phase,
                        d.kind,
                    )
                )
        settings = self._terms.settings
        records = [DecisionRecord.of(d, settings) for d in plan.decisions]
        returned = [
            LineAnswerNow(
                key,
                AnswerOutcome.RETURNED,
                0,
                (placement.code or RETURN_TO_DECLARE_ITSELF,),
            )
            for d in plan.decisions
            for key, placement in d.placements.items()
            if placement.place is Place.RETURNED and self._states.get(key) != "returned"
        ]
        answered_late = [
            item.answer
            for item in late
            if item.answer is not None
            and item.answer.outcome in (AnswerOutcome.GRANTED, AnswerOutcome.REJECTED)
        ]
        corrections = self._corrections(plan, lines)
        retours = await self._answer_now([*returned, *answered_late, *corrections], lines)
        guard = RunGuard(
            {
                outcome.key: (self._states[outcome.key], self._revisions.get(outcome.key, 0))
                for outcome in outcomes
                if outcome.key in self._states
            },
            None if self._lock is None else self._lock.job,
            None if self._lock is None else self._lock.holder,
            0.0 if self._lock is None else self._lock.seconds,
            numbers,
        )
        return (outbound, claims, outcomes, now, records, retours, late, guard)

    def _corrections(
        self, plan: BundlePlan, lines: dict[LineKey, DeclaredLine]
    ) -> list[LineAnswerNow]:
        """The answers to the credit lines this run cancels against the lines they correct.
        A credit of a line already granted reverses that grant (its granted amount, as a
        credit); a credit of a line not granted (not answered yet, or under review) grants
        nothing, and that line is answered too: nothing granted, 8084 (the debit is
        credited) — a cancelled line is never reported as granted."""
        out: list[LineAnswerNow] = []
        for d in plan.decisions:
            for key, placement in d.placements.items():
                line = lines.get(key)
                if (
                    placement.place is not Place.CANCELLED
                    or placement.pair is None
                    or line is None
                    or not line.is_credit
                    or self._states.get(key) == "cancelled"  # answered when cancelled
                ):
                    continue
                outcome, granted = self._outcomes.get(placement.pair, ("", None))
                if outcome == AnswerOutcome.GRANTED and granted:
                    out.append(LineAnswerNow(key, AnswerOutcome.GRANTED, -granted, ()))
                    continue
                out.append(LineAnswerNow(key, AnswerOutcome.GRANTED, 0, ()))
                if outcome in ("", AnswerOutcome.REVIEW):
                    out.append(
                        LineAnswerNow(placement.pair, AnswerOutcome.REJECTED, 0, (DEBIT_CREDITED,))
                    )
        return out

    def _late(self, reference: str, line: DeclaredLine | None, key: LineKey) -> LateLine:
        """A late line joins ``reference``; the answer that line has already, if any.
        Modelled: a granted claim gives a late line what it declared under the
        ``declared`` distribution and nothing under ``shares`` (the phase's money was
        shared out already)."""
        answer = self._answered.get(reference)
        if answer is None:
            return LateLine(reference, key, None)
        outcome, codes = answer
        granted = 0
        if (
            outcome == AnswerOutcome.GRANTED
            and self._distribution is Distribution.DECLARED
            and line
        ):
            granted = max(line.amount or 0, 0)
        if outcome == AnswerOutcome.GRANTED and granted == 0:
            codes = (PAID_THROUGH_INTEGRAL,)
        now = LineAnswerNow(key, AnswerOutcome(outcome), granted, codes, reference)
        return LateLine(reference, key, now)

    async def _answer_now(
        self, answers: Sequence[LineAnswerNow], lines: dict[LineKey, DeclaredLine]
    ) -> list[ReturnedRetour]:
        """Per upload a retour answering ``answers``: lines newly returned (9001) — the
        participant learns in its own retour standard, line by line, what to declare
        itself — and late lines given their claimed line's answer."""
        by_upload: dict[str, dict[int, Outcome]] = defaultdict(dict)
        own: dict[str, list[LineAnswerNow]] = defaultdict(list)
        for answer in answers:
            line = lines.get(answer.key)
            by_upload[answer.key[0]][answer.key[1]] = Outcome(
                granted=answer.granted,
                calculated=line.amount if line is not None else None,
                codes=answer.codes[:3],
            )
            own[answer.key[0]].append(answer)
        out = []
        for upload, outcomes in sorted(by_upload.items()):
            message = await self._upload(upload)
            if message is None:
                continue
            originals = await self._records(upload)
            # The integral line the answers come from, when they come from one.
            references = {a.reference for a in own[upload] if a.reference is not None}
            retour = await self._run(
                partial(
                    participant_retour,
                    self._registry,
                    message,
                    originals,
                    outcomes,
                    insurer_reference=references.pop()[:24] if len(references) == 1 else "",
                    at=self._now(),
                )
            )
            if retour is not None:
                out.append(ReturnedRetour(retour, tuple(own[upload])))
        return out


@dataclass(frozen=True)
class _Recording:
    """A prepared batch whose recording has started."""

    prepared: PreparedBatch
    stored: Deferred[None]

    @property
    def women(self) -> tuple[str, ...]:
        return self.prepared.women


async def _awaited(work: Awaitable[None]) -> None:
    await work


def _concept(before: int, n: int) -> str:
    """A dry run's stand-in factuurnummer: its claim files numbered on over the batches."""
    return f"CONCEPT-{before + n:04d}"


def _woman(
    known: dict[LineKey, str], compute: Callable[[DeclaredLine], str], line: DeclaredLine
) -> str:
    """A line's woman: as the store read it, or computed when it did not give it."""
    return known.get(line_key(line)) or compute(line)


def lines_of(plan: BundlePlan) -> dict[LineKey, DeclaredLine]:
    return {line_key(line): line for d in plan.decisions for line in d.lines}


def _values(record: Record) -> dict[str, FieldValue]:
    values = dict(record.items())
    values.pop("record_id", None)
    values.pop("kenmerk", None)
    return values


def _source_keys(planned: PlannedLine, decisions: Sequence[Decision]) -> list[LineKey]:
    keys = list(planned.line.absorbs)
    if not keys:  # a credit line: any line of the same pregnancy will do
        keys = [k for d in decisions if d.pregnancy == planned.pregnancy for k in d.placements]
    return keys


def outbound_message(
    payload: bytes,
    *,
    insurer: str,
    key: str,
    at: datetime,
    invoice: str | None,
    name: str,
    standard: str | None,
) -> NewMessage:
    identity = hashlib.sha256(key.encode()).hexdigest()[:32]
    return NewMessage(
        traceer_id=f"out-{identity}",
        conversatie_id=f"conv-{identity}",
        direction=Direction.TO_INSURER,
        party=insurer,
        payload=payload,
        sha256=hashlib.sha256(payload).hexdigest(),
        created_at=at,
        status=NewStatus(MessageStatus.PROCESSING, None, "Klaar om te versturen."),
        idempotency_key=key,
        filename=name,
        standard=standard,
        invoice_number=invoice,
    )
