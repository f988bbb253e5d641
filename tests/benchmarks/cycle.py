"""A year of declarations of the whole country (or a share of it) through the gateway's
whole cycle, timed step by step: intake, bundling, claims to the insurer, the insurer's
retours, and a retour to every participant.

Run as ``python -m tests.benchmarks.cycle --share 0.01`` (1% of a year; ``--share 1`` is
the whole country). It prints figures and asserts nothing about time
(``tests/benchmarks/test_cycle_bench.py`` runs it at toy size so that it keeps working).

The volume, modelled on the issue's figures for a year of the Netherlands: 170,000
pregnancies, each declared by one of 200 midwifery practices (4 lines: 20-week scan,
prenatal, natal at home with the birth, postnatal) and one of 200 kraamzorg organisations
(17 lines: an intake and two blocks of hours on each of 8 days) — 21 lines a pregnancy,
about 3.6 million lines from 400 participants, in files of 6 women each (about 57,000
files). At a share of the year the number of participants shrinks with it (at least one
of each), so that files per participant stay the same. Births are spread over 2026 and
the cycle runs on 1 March 2027, when every phase is closed: the worst case of a year's
backlog bundled at once.

The steps, in one process on the embedded default (SQLite, WAL, ``synchronous=FULL``,
group commit), with the gateway's own services (no HTTP: the intake over mutual TLS is
measured by ``tests.benchmarks.gateway``) and, as ``serve`` has by default, a check worker
for the intake's checks (``--check-processes``) and a bundle worker that prepares
bundling's batches (``--bundle-workers``), each a process of its own; ``0`` for both runs
everything in this one process (as every run before the eleventh national round of
docs/benchmarks.md did):

* **intake** — every file through :class:`~gateway.intake.Intake` (parse, validate,
  journal, lines), with up to ``UPLOADS_AT_ONCE`` (32) uploads in flight at once, as
  from 32 EPDs uploading concurrently: a file is parsed and checked by the check worker
  (or on this thread without one), then its upload waits for its durable commit while
  the next files are taken in, so that the store's group commit joins the uploads queued
  together into one commit as it does in production (until this benchmark took the files
  one after the other, each upload its own commit — the figures from before that are not
  comparable). The files are generated
  on the fly and never held all at once beyond those in flight (generating them and the
  berichtMetadata each is sent with is the EPD's part: timed separately and not counted);
* **bundling** — one :meth:`~gateway.bundler.Bundler.run` over everything (in batches of
  connected groups, each with claim files of its own; each batch prepared by the bundle
  worker, or on this thread without one, and recorded by this process's store);
* **claims** — the :class:`~gateway.forwarder.Forwarder` sends the claim files to a
  simulated insurer (:class:`~adapters.insurer_sim.insurer.SimulatedInsurer`, in this
  process, through an in-memory link), which checks and judges each file and queues its
  retour;
* **insurer retours** — the :class:`~gateway.collector.RetourCollector` fetches them,
  checks and journals them and has the :class:`~gateway.unpacker.Unpacker` write a retour
  for every participant's upload (**per-participant retours**).

``--store postgresql://…`` runs the same cycle on a fresh schema of that PostgreSQL server
(dropped afterwards). ``--through-api CLIENTS`` takes the uploads in as EPDs would instead:
a real ``igo-gateway serve`` process on the same store, with a development PKI and a config
holding every participant of the set, fed by that many concurrent mutual-TLS clients (the
load generator of :mod:`tests.benchmarks.load`, at least one client per participant, each
uploading a share of its participant's files as fast as it is answered); the intake step
is then the wall time from the clients' common start to the last acknowledgement, and the
uploads/s and p50/p99 acknowledgement latency are reported too. The files are generated
beforehand and held in memory for this (not counted); the later steps run in this
process on the store the gateway wrote, after it was stopped.

``--sealed`` runs the cycle with encryption at rest, as a gateway with ``[encryption]
key_file`` runs: a fresh key file, each upload's payload and each line's client data
sealed (AES-GCM) and the woman's and BSN's index keys hashed with its index key (HMAC),
and everything opened again where it is read. Without it the store keeps them unsealed
(plain SHA-256 index keys), as a gateway without a key file does.

Reported per step: wall time, lines per second, and the process's peak RSS when it ended
(``ru_maxrss`` only grows, so each figure is the peak up to then).

The process's garbage collector is set as every ``igo-gateway`` command sets it
(:func:`gateway.process.tune_garbage_collector`), so that the services run here as they run
in the gateway.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import resource
import sqlite3
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import psycopg
from twisted.internet import defer

from adapters.bundle_workers import BundleWorkers, WorkerSpec
from adapters.check_workers import CheckWorkers
from adapters.insurer_sim.config import SimConfig, SimTLS
from adapters.insurer_sim.insurer import SimulatedInsurer
from adapters.storage import SqlMessageStore, open_store
from gateway.bundler import Bundler
from gateway.collector import RetourCollector
from gateway.config import BundlingConfig, EpdApiConfig
from gateway.crypto import Keyring, new_key_file
from gateway.ei import FileWriter, bsn_is_valid
from gateway.forwarder import Forwarder
from gateway.intake import Intake
from gateway.metrics import Metrics
from gateway.pki import CA_CERT, Party, init_pki
from gateway.ports.insurer import Delivery, FetchedRetour, OutboundFile
from gateway.ports.intake import Receipt, Upload
from gateway.ports.outcomes import CollectedRetour
from gateway.process import tune_garbage_collector
from gateway.rules.model import (
    Contract,
    Distribution,
    InsurerTerms,
    Participant,
    RuleSet,
    Settings,
    Terms,
    Variant,
)
from gateway.terms import load_catalogue
from gateway.unpacker import Unpacker
from gateway.vsp import send_metadata
from tests.benchmarks.gateway import REGISTRY, taken_in
from tests.benchmarks.gateway import _fresh as fresh_store
from tests.benchmarks.load import ClientPlan, LoadResult, run_load
from tests.benchmarks.reactor_pump import ReactorPump
from tests.gateway.rules.test_decide import TARIFFS
from tests.gateway.running import KRAAMZORG, MIDWIFE, GatewayProcess, write_config
from tests.threadpump import ThreadPump

__all__ = ["CycleFigures", "bench_cycle", "main", "national_files"]

NATIONAL_BIRTHS = 170_000
NATIONAL_PRACTICES = 200  # of each discipline: 400 participants
WOMEN_PER_FILE = 6
IGO = "53001234"
MIDWIFE_PERFORMER = "02012345"
KRAAMVERZORGENDE = "33012345"
UPLOADS_AT_ONCE = 32  # uploads in flight in the in-process intake, as from 32 EPDs at once


UZOVI = "3311"
# Illustrative codes of the shipped example catalogue, with tariffs in eurocents.
# VK301 v2.2 prestatiecodes (list 032): echo, volledige prenatale, natale, postnatale zorg
VK_SCAN, VK_PRENATAL, VK_NATAL, VK_POSTNATAL = "1603", "1101", "1102", "1103"
KZ_INTAKE, KZ_HOURS = "196203", "KZUREN"  # intake at home; hours (placeholder code)


NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)  # every phase of 2026 is closed by then
ALWAYS = ((None, None, True),)


@dataclass(frozen=True, slots=True)
class Woman:
    bsn: str
    birth_date: date
    delivery: date


def women(count: int, seed: int = 170) -> Iterator[Woman]:
    """``count`` synthetic women: BSNs that pass the eleven-proof from 100000000 up (no
    real person's are known to be in that range in test data), births spread over 2026."""
    rng = random.Random(seed)
    number = 100_000_000
    made = 0
    while made < count:
        number += 1
        bsn = f"{number:09d}"
        if not bsn_is_valid(bsn):
            continue
        made += 1
        delivery = date(2026, 1, 10) + timedelta(days=rng.randrange(0, 300))
        yield Woman(bsn, date(1985, 1, 1) + timedelta(days=rng.randrange(0, 5000)), delivery)


def _header(writer: FileWriter, agb: str, invoice: str, days: Sequence[date]) -> None:
    writer.header(
        message_kind="P",
        uzovi=UZOVI,
        praktijk_code=agb,
        payee="03",
        period_begin=min(days),
        period_end=max(days),
        invoice_number=invoice,
        invoice_date=max(days) + timedelta(days=3),
        currency="EUR",
    )


def _insured(writer: FileWriter, woman: Woman) -> None:
    writer.insured(
        bsn=woman.bsn,
        uzovi=UZOVI,
        birth_date=woman.birth_date,
        gender="2",
        name_code_1="1",
        surname="Steekproef",
        initials="A",
        house_number=1,
        deceased="2",
    )


def _line(
    writer: FileWriter, woman: Woman, lst: str, code: str, day: date, who: str, ref: str
) -> None:
    tariff = 10000
    writer.prestatie(
        bsn=woman.bsn,
        uzovi=UZOVI,
        forwarding_allowed="1",
        prestatie_date=day,
        prestatiecodelijst=lst,
        prestatiecode=code,
        performer_code=who,
        tariff=tariff,
        number_performed=1,
        calculated_amount=tariff,
        declared_amount=tariff,
        reference=ref,
    )


def _midwifery(woman: Woman) -> list[tuple[str, date]]:
    d = woman.delivery
    return [
        (VK_SCAN, d - timedelta(days=140)),
        (VK_PRENATAL, d - timedelta(days=1)),
        (VK_NATAL, d),
        (VK_POSTNATAL, d + timedelta(days=10)),
    ]


def _kraamzorg(woman: Woman) -> list[tuple[str, date]]:
    d = woman.delivery
    hours = [(KZ_HOURS, d + timedelta(days=n)) for n in range(1, 9) for _ in range(2)]
    return [(KZ_INTAKE, d - timedelta(days=40)), *hours]


LINES_PER_PREGNANCY = 4 + 17


def practices_for(pregnancies: int) -> int:
    """Practices of each discipline for ``pregnancies``: 200 for a whole year, in
    proportion below that, at least one."""
    return max(1, round(NATIONAL_PRACTICES * pregnancies / NATIONAL_BIRTHS))


def midwifery_practice(n: int) -> str:
    return f"02{100_000 + n:06d}"


def kraamzorg_organisation(n: int) -> str:
    return f"33{100_000 + n:06d}"


def national_files(
    pregnancies: int, women_per_file: int = WOMEN_PER_FILE, practices: int | None = None
) -> Iterator[tuple[str, str, bytes]]:
    """``(participant, discipline, file)`` for ``pregnancies`` women, made one at a time:
    woman ``i`` is cared for by midwifery practice and kraamzorg organisation
    ``i % practices``; each declares its women ``women_per_file`` to a file."""
    count = practices or practices_for(pregnancies)
    plans: list[tuple[Callable[[int], str], str, str, str, str, Any]] = [
        (midwifery_practice, "midwifery", "VK301", "032", MIDWIFE_PERFORMER, _midwifery),
        (kraamzorg_organisation, "kraamzorg", "KZ301", "044", KRAAMVERZORGENDE, _kraamzorg),
    ]
    waiting: list[list[Woman]] = [[] for _ in range(count)]
    numbers = [0] * count

    def files(practice: int, batch: list[Woman]) -> Iterator[tuple[str, str, bytes]]:
        numbers[practice] += 1
        for agb_of, discipline, standard, lst, who, care in plans:
            agb = agb_of(practice)
            writer = FileWriter(REGISTRY.by_standard(standard))
            days = [day for w in batch for _, day in care(w)]
            _header(writer, agb, f"{standard[:2]}{numbers[practice]:06d}", days)
            for w in batch:
                _insured(writer, w)
                for n, (code, day) in enumerate(care(w), start=1):
                    _line(writer, w, lst, code, day, who, f"{w.bsn}-{n}")
            yield agb, discipline, writer.finish()

    for n, woman in enumerate(women(pregnancies)):
        practice = n % count
        waiting[practice].append(woman)
        if len(waiting[practice]) == women_per_file:
            yield from files(practice, waiting[practice])
            waiting[practice] = []
    for practice, batch in enumerate(waiting):
        if batch:
            yield from files(practice, batch)


def terms(practices: int) -> Terms:
    contract = {
        year: Contract(year, RuleSet.REGULAR_2023, TARIFFS, 0.0, frozenset(), True)
        for year in (2025, 2026)
    }
    agbs = [f(n) for n in range(practices) for f in (midwifery_practice, kraamzorg_organisation)]
    return Terms(
        Settings(IGO),
        {agb: Participant(agb, Variant.A, ALWAYS) for agb in agbs},
        {UZOVI: InsurerTerms(UZOVI, contract, False)},
    )


class SimulatorLink:
    """The :class:`~gateway.ports.insurer.InsurerLink` to a simulated insurer in this process:
    what the REST link does over HTTP, without the network."""

    def __init__(self, insurer: SimulatedInsurer) -> None:
        self.insurer = insurer

    async def send(self, file: OutboundFile) -> Delivery:
        received, new = self.insurer.receive(
            file.sender,
            file.payload,
            reference_id=file.message_id,
            conversatie_id=file.conversation_id,
            filename=file.filename,
        )
        return Delivery(received.traceer_id, repeated=not new)

    async def fetch(self) -> Sequence[FetchedRetour]:
        return [
            FetchedRetour(
                remote_id=r.traceer_id,
                payload=r.payload,
                in_reply_to=r.reply_to,
                conversation_id=r.conversatie_id,
                standard=r.standard,
                filename=r.filename,
                received_at=r.created_at,
            )
            for r in self.insurer.waiting(IGO)
        ]

    async def confirm(self, retour: FetchedRetour) -> None:
        self.insurer.confirm(IGO, retour.remote_id)


def simulated_insurer(scratch: Path) -> SimulatedInsurer:
    """A simulated insurer that grants every line as declared (its TLS files are never
    used: nothing listens)."""
    unused = scratch / "unused.pem"
    config = SimConfig(uzovi=UZOVI, tls=SimTLS(cert=unused, key=unused, trust=unused))
    return SimulatedInsurer(config, REGISTRY, clock=lambda: NOW)


@dataclass
class Step:
    name: str
    seconds: float
    peak_rss_mib: float


@dataclass
class CycleFigures:
    pregnancies: int
    participants: int
    files: int
    lines: int
    generate_seconds: float = 0.0
    steps: list[Step] = field(default_factory=list)
    claim_files: int = 0
    integral_lines: int = 0
    insurer_retours: int = 0
    participant_retours: int = 0
    granted_lines: int = 0  # lines the insurer's retour granted, each answered to its participant
    granted_amount: int = 0  # eurocents granted over those lines
    declared_amount: int = 0  # eurocents declared over all lines
    store: str = "SQLite"
    intake_commits: int = 0  # write transactions of the in-process intake (group commit)
    api_clients: int = 0  # with the intake through the EPD API: its concurrent clients
    api_latencies: tuple[float, ...] = ()  # and each upload's acknowledgement latency
    gateway_peak_rss_mib: float = 0.0  # and the gateway process's peak RSS
    sealed: bool = False  # encryption at rest (a key file), as with [encryption] key_file
    check_processes: int = 0  # the in-process intake's check workers ([epd_api] check_processes)
    checked_here: int = 0  # and the uploads they could not check (checked in this process)
    bundle_workers: int = 0  # bundling's worker process ([bundling] worker_processes)
    workers_peak_rss_mib: float = 0.0  # the largest peak RSS of a worker process

    def api_percentile(self, share: float) -> float:
        ordered = sorted(self.api_latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0

    @property
    def cycle_seconds(self) -> float:
        return sum(s.seconds for s in self.steps)

    @property
    def peak_rss_mib(self) -> float:
        return max((s.peak_rss_mib for s in self.steps), default=0.0)

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_cycle(
    pregnancies: int,
    women_per_file: int = WOMEN_PER_FILE,
    directory: Path | None = None,
    progress: Callable[[Step], None] | None = None,
    *,
    store_url: str | None = None,
    api_clients: int = 0,
    client_processes: int = 2,
    sealed: bool = False,
    check_processes: int = 0,
    bundle_workers: int = 0,
) -> CycleFigures:
    """Run the whole cycle over ``pregnancies`` women in a fresh SQLite store (in
    ``directory``, or a temporary one) — or, with a ``postgresql://`` ``store_url``, in a
    fresh schema on that server, dropped afterwards — and time each step (see the module
    docs); ``progress`` is told of each step as it ends. With ``api_clients``, the intake
    goes through a real gateway process's EPD API instead, fed by that many concurrent
    mutual-TLS clients (from ``client_processes`` load-generator processes). ``sealed``:
    with a fresh key file, so that the store seals what it keeps (encryption at rest).
    ``check_processes``: the in-process intake has the checks of its uploads run by that
    many check workers, as ``serve`` does with ``[epd_api] check_processes`` (the cycle
    then runs on the global reactor, which stays started: for a script of its own).
    ``bundle_workers`` (0 or 1): bundling's batches are prepared by a worker process, as
    ``serve`` does with ``[bundling] worker_processes``."""
    with (
        tempfile.TemporaryDirectory(prefix="igo-cycle-", dir=directory) as scratch,
        fresh_store(store_url or f"sqlite:///{Path(scratch) / 'gateway.db'}") as url,
    ):
        return _cycle(
            Path(scratch),
            url,
            pregnancies,
            women_per_file,
            progress,
            (api_clients, client_processes),
            _key_file(Path(scratch)) if sealed else None,
            check_processes,
            bundle_workers,
        )


def _key_file(scratch: Path) -> Path:
    """A fresh key file in ``scratch`` (readable by its owner only, as the gateway wants)."""
    path = scratch / "keys.toml"
    new_key_file(path, now=NOW)
    return path


def _cycle(
    scratch: Path,
    store_url: str,
    pregnancies: int,
    women_per_file: int,
    progress: Callable[[Step], None] | None,
    api: tuple[int, int] = (0, 2),
    key_file: Path | None = None,
    check_processes: int = 0,
    bundle_workers: int = 0,
) -> CycleFigures:
    # The check workers need a running reactor (and the intake in this process).
    with_checks = bool(check_processes) and not api[0]
    pump: ThreadPump | ReactorPump = ReactorPump() if with_checks else ThreadPump()
    practices = practices_for(pregnancies)
    figures = CycleFigures(pregnancies, 2 * practices, 0, pregnancies * LINES_PER_PREGNANCY)
    figures.sealed = key_file is not None
    keyring = Keyring.load(key_file) if key_file is not None else None
    if store_url.startswith("postgresql://"):
        figures.store = "PostgreSQL"

    def run_in_thread(work: Callable[[], Any]) -> Any:
        return defer.succeed(work())

    def ended(step: Step) -> None:
        figures.steps.append(step)
        if progress is not None:
            progress(step)

    def timed(name: str, work: Callable[[], Any]) -> Any:
        began = time.perf_counter()
        result = work()
        ended(Step(name, time.perf_counter() - began, _peak_rss_mib()))
        return result

    def wait(coroutine: Any, timeout: float = 3600) -> Any:
        return pump.wait(defer.ensureDeferred(coroutine), timeout=timeout)

    if api[0]:
        began = time.perf_counter()
        files = list(national_files(pregnancies, women_per_file, practices))
        figures.generate_seconds = time.perf_counter() - began
        result = _through_api(scratch, store_url, files, *api, key_file=key_file)
        figures.files = len(files)
        figures.api_clients = len(result.clients)
        figures.api_latencies = result.latencies
        figures.gateway_peak_rss_mib = _children_peak_rss_mib()
        del files
        ended(Step("intake", result.seconds, _peak_rss_mib()))
    reactor: Any = pump.reactor if isinstance(pump, ReactorPump) else pump
    store: SqlMessageStore = pump.wait(open_store(store_url, reactor, keyring))
    workers = None
    metrics = Metrics()
    if with_checks:
        workers = CheckWorkers(reactor, REGISTRY, check_processes, metrics=metrics)
        figures.check_processes = check_processes
    try:
        intake = Intake(
            store, REGISTRY, clock=lambda: NOW, run_in_thread=run_in_thread, checks=workers
        )

        def accepted(receipt: Receipt) -> None:
            taken_in(receipt)
            figures.files += 1

        def take_in() -> None:
            made = national_files(pregnancies, women_per_file, practices)
            outstanding: deque[defer.Deferred[None]] = deque()
            while True:
                began = time.perf_counter()
                upload = next(made, None)
                if upload is None:
                    figures.generate_seconds += time.perf_counter() - began
                    break
                agb, discipline, payload = upload
                metadata = send_metadata(agb, "EI")  # the EPD's part, as the file is
                figures.generate_seconds += time.perf_counter() - began
                receiving = defer.ensureDeferred(
                    intake.receive(Upload(agb, discipline, metadata, payload))
                )
                outstanding.append(receiving.addCallback(accepted))
                if len(outstanding) >= UPLOADS_AT_ONCE:
                    pump.wait(outstanding.popleft())
            while outstanding:
                pump.wait(outstanding.popleft())

        if not api[0]:
            began = time.perf_counter()
            commits = store.database.commits
            if workers is not None:
                workers.start()
            take_in()
            figures.intake_commits = store.database.commits - commits
            if workers is not None:
                pump.wait(workers.stop())
                figures.checked_here = int(metrics.checks_here._value.get())
            ended(
                Step(
                    "intake",
                    time.perf_counter() - began - figures.generate_seconds,
                    _peak_rss_mib(),
                )
            )
        catalogue, bundle_terms = load_catalogue(), terms(practices)
        preparers = None
        if bundle_workers:
            spec = WorkerSpec(store_url, key_file, catalogue, bundle_terms, Distribution.DECLARED)
            preparers = BundleWorkers(reactor, spec)
            figures.bundle_workers = bundle_workers
        bundler = Bundler(
            store,
            store.bundles,
            REGISTRY,
            catalogue,
            bundle_terms,
            now=lambda: NOW,
            workers=preparers,
        )
        bundled = timed("bundling", lambda: wait(bundler.run()))
        if preparers is not None:
            preparers.stop(wait=True)
        figures.workers_peak_rss_mib = _children_peak_rss_mib()
        figures.claim_files = len(set(bundled.claim_files))
        figures.integral_lines = bundled.integral_lines

        insurer = simulated_insurer(scratch)
        link = SimulatorLink(insurer)
        forwarder = Forwarder(store.outbox, {UZOVI: link}, now=lambda: NOW)

        def send_all() -> None:
            while wait(forwarder.run_once(UZOVI)).delivered:
                pass

        timed("claims", send_all)
        unpacker = Unpacker(
            store, store.outcomes, REGISTRY, now=lambda: NOW, run_in_thread=run_in_thread
        )

        async def unpack(collected: CollectedRetour) -> None:
            await unpacker.unpack(collected)

        collector = RetourCollector(
            store,
            store.outbox,
            {UZOVI: link},
            REGISTRY,
            now=lambda: NOW,
            run_in_thread=run_in_thread,
            on_retour=unpack,
        )
        collected = timed("retours", lambda: wait(collector.run_once(UZOVI)))
        figures.insurer_retours = len(collected)
    finally:
        pump.wait(store.close())
    check: Any = (
        psycopg.connect(store_url)
        if figures.store == "PostgreSQL"
        else sqlite3.connect(store_url.removeprefix("sqlite:///"))
    )
    with contextlib.closing(check):
        (figures.participant_retours,) = check.execute(
            "SELECT count(*) FROM messages WHERE direction = 'to_participant'"
        ).fetchone()
        figures.granted_lines, figures.granted_amount, figures.declared_amount = check.execute(
            "SELECT count(*) FILTER (WHERE outcome = 'granted' AND answered_in IS NOT NULL),"
            " coalesce(sum(granted_amount) FILTER (WHERE outcome = 'granted'), 0),"
            " coalesce(sum(amount), 0) FROM declaration_lines"
        ).fetchone()
    return figures


def _children_peak_rss_mib() -> float:
    """The largest peak RSS of the child processes waited for so far (the gateway, or a
    load generator if larger)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _through_api(
    scratch: Path,
    store_url: str,
    files: Sequence[tuple[str, str, bytes]],
    clients: int,
    processes: int,
    *,
    key_file: Path | None = None,
) -> LoadResult:
    """Take ``files`` in through a real ``igo-gateway serve`` on ``store_url``: a PKI and a
    config with every participant of the set, ``clients`` concurrent EPD clients (at least
    one per participant, each with its participant's certificate and a share of its files)
    uploading as fast as they are answered. The gateway is stopped before this returns; a
    failed upload is an error."""
    participants = sorted({(agb, discipline) for agb, discipline, _ in files})
    pki = scratch / "pki"
    index = init_pki(
        pki,
        [
            Party(KRAAMZORG, "Kraamzorg Test"),
            Party(MIDWIFE, "Verloskundigen Test"),
            Party(IGO, "IGO Test", "igo"),
            *(Party(agb, f"Praktijk {agb}") for agb, _ in participants),
        ],
        now=datetime.now(UTC),
    )
    fingerprints = {c.agb: c.fingerprint_sha256 for c in index.clients}
    blocks = "".join(
        f'\n[[participants]]\nagb = "{agb}"\nname = "Praktijk {agb}"\n'
        f'discipline = "{discipline}"\nvariant = "A"\n'
        f'certificates = ["{fingerprints[agb]}"]\n'
        for agb, discipline in participants
    )
    config = write_config(
        scratch / "gateway.toml",
        pki,
        fingerprints,
        store_url,
        key_file=key_file,
        extra="\n[bundling]\ninterval_seconds = 36000\n" + blocks,
    )
    count = max(clients, len(participants))
    own = {agb: [p for a, _, p in files if a == agb] for agb, _ in participants}
    mine = [participants[n % len(participants)][0] for n in range(count)]
    plans = []
    for n, agb in enumerate(mine):
        sharing = [m for m, a in enumerate(mine) if a == agb]
        share = own[agb][sharing.index(n) :: len(sharing)]
        if share:
            stem = pki / f"participant-{agb}"
            plans.append(
                ClientPlan(agb, stem.with_suffix(".pem"), stem.with_suffix(".key"), tuple(share))
            )
    gateway = GatewayProcess(config, pki)
    gateway.start()
    try:
        result = run_load(gateway.port, pki / CA_CERT, plans, processes)
    finally:
        gateway.stop()
    if result.failures:
        raise RuntimeError(f"{result.failures} upload(s) were not acknowledged")
    return result


# --- the script --------------------------------------------------------------------------------


def _step_line(step: Step, lines: int) -> str:
    rate = lines / step.seconds if step.seconds else 0.0
    return (
        f"{step.name:<9} {step.seconds:8.1f} s  {rate:>9,.0f} lines/s  "
        f"peak RSS {step.peak_rss_mib:,.0f} MiB"
    )


def report(figures: CycleFigures, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    f = figures
    store = f"{f.store}, sealed" if f.sealed else f.store
    print(
        f"national cycle, {store}: {f.pregnancies:,} pregnancies, {f.lines:,} lines in "
        f"{f.files:,} files from {f.participants} participants "
        f"(generated in {f.generate_seconds:.1f} s, not counted)",
        file=out,
    )
    if f.api_clients:
        print(
            f"  intake through the EPD API: {f.api_clients} concurrent mutual-TLS clients, "
            f"{f.files / f.step('intake').seconds:,.0f} uploads/s, "
            f"p50 {f.api_percentile(0.5) * 1000:.0f} ms, "
            f"p99 {f.api_percentile(0.99) * 1000:.0f} ms;"
            f" peak RSS of the gateway (or a load generator) {f.gateway_peak_rss_mib:,.0f} MiB",
            file=out,
        )
    elif f.intake_commits:
        print(
            f"  intake in this process: up to {UPLOADS_AT_ONCE} uploads in flight, "
            f"{f.files:,} uploads in {f.intake_commits:,} commits "
            f"({f.files / f.intake_commits:.1f} per commit); "
            + (
                f"checked by {f.check_processes} check worker(s), "
                f"{f.checked_here:,} upload(s) checked in this process"
                if f.check_processes
                else "checked in this process (no check workers)"
            ),
            file=out,
        )
    if f.bundle_workers:
        print("  bundling's batches prepared by a worker process", file=out)
    if f.workers_peak_rss_mib:
        print(f"  peak RSS of a worker process {f.workers_peak_rss_mib:,.0f} MiB", file=out)
    for step in f.steps:
        print(f"  {_step_line(step, f.lines)}", file=out)
    print(
        f"  cycle     {f.cycle_seconds:8.1f} s ({f.cycle_seconds / 60:.1f} min); "
        f"{f.claim_files} claim file(s), {f.integral_lines:,} integral lines, "
        f"{f.insurer_retours} insurer retour(s), {f.participant_retours:,} participant retours",
        file=out,
    )
    print(
        f"  answered  {f.granted_lines:,} of {f.lines:,} lines granted and answered to their "
        f"participant; granted {f.granted_amount / 100:,.2f} of {f.declared_amount / 100:,.2f} "
        "EUR declared",
        file=out,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.cycle", description=(__doc__ or "").split("\n\n")[0]
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--share", type=float, default=0.01, help="share of a year (1 = all)")
    group.add_argument("--pregnancies", type=int, help="instead of --share")
    parser.add_argument("--women-per-file", type=int, default=WOMEN_PER_FILE)
    parser.add_argument("--directory", type=Path, help="where the store is made (default: /tmp)")
    parser.add_argument(
        "--store",
        metavar="URL",
        help="a postgresql:// URL: the cycle on a fresh schema of that server (default: SQLite)",
    )
    parser.add_argument(
        "--through-api",
        type=int,
        default=0,
        metavar="CLIENTS",
        help="take the uploads in through a real gateway's EPD API from this many concurrent"
        " mutual-TLS clients (as EPDs would) instead of calling the intake directly",
    )
    parser.add_argument(
        "--client-processes", type=int, default=2, help="with --through-api: load generators"
    )
    parser.add_argument(
        "--sealed",
        action="store_true",
        help="with encryption at rest: a fresh key file, as with [encryption] key_file",
    )
    parser.add_argument(
        "--check-processes",
        type=int,
        default=EpdApiConfig.model_fields["check_processes"].default,
        metavar="N",
        help="check workers for the in-process intake, as [epd_api] check_processes"
        " (default: the gateway's default; 0: the checks in this process)",
    )
    parser.add_argument(
        "--bundle-workers",
        type=int,
        choices=(0, 1),
        default=BundlingConfig.model_fields["worker_processes"].default,
        help="a worker process that prepares bundling's batches, as [bundling]"
        " worker_processes (default: the gateway's default; 0: all in this process)",
    )
    args = parser.parse_args(argv)
    tune_garbage_collector()
    pregnancies = args.pregnancies or max(1, round(NATIONAL_BIRTHS * args.share))
    print(f"Python {sys.version.split()[0]}, {sys.platform}; figures of this one run", flush=True)
    lines = pregnancies * LINES_PER_PREGNANCY

    def step(done: Step) -> None:
        print(f"  {_step_line(done, lines)}  (step done)", flush=True)

    report(
        bench_cycle(
            pregnancies,
            args.women_per_file,
            args.directory,
            step,
            store_url=args.store,
            api_clients=args.through_api,
            client_processes=args.client_processes,
            sealed=args.sealed,
            check_processes=args.check_processes,
            bundle_workers=args.bundle_workers,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
