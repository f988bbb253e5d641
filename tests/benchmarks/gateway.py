"""How many uploads the real gateway acknowledges per second, and how fast the bundler
settles a national volume of lines.

Run as ``python -m tests.benchmarks.gateway``. It prints figures and asserts nothing about
time (``tests/benchmarks/test_gateway_bench.py`` runs the same functions at toy sizes so
that this script keeps working).

* **intake** — ``igo-gateway serve`` as a real process on SQLite (the embedded default,
  WAL, ``synchronous=FULL``, group commit) on a loopback port with mutual TLS; ``--clients``
  EPD clients on threads, each with one kept-alive connection and the certificate of its
  participant (the kraamzorg organisation or the midwifery practice), upload distinct
  valid files of ``--records`` records as fast as they are answered. Reported: acknowledged
  uploads per second (wall time from the first request to the last answer) and the p50 /
  p99 acknowledgement latency. The client threads run in this same Python process and
  share its GIL and the two cores with the server, so the figure is a floor.
* **bundling** — a SQLite store filled through the intake service directly (no HTTP) with
  the declarations of ``--pregnancies`` women — per woman 4 midwifery lines (20-week scan,
  prenatal, natal at home with the birth, postnatal) and 8 kraamzorg lines (an intake and
  7 days of hours), 100 women per file, births spread over a year — then one
  :meth:`~gateway.bundler.Bundler.run_once` over all of it, as on the first run after a
  year of waiting: every phase is closed, so every line is decided and every phase claimed.
  Reported: lines per second for intake (parse, validate, store) and for bundling
  (decide, build and check the claim files, store claims, provenance and outcomes), and
  both extrapolated linearly to 170,000 births a year.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TextIO

import psycopg
from twisted.internet import defer

from adapters.storage import SqlMessageStore, open_store
from gateway.bundler import Bundler
from gateway.config import RuleSet, Variant
from gateway.ei import FileWriter, LayoutRegistry, bsn_is_valid, load_layouts
from gateway.intake import BerichtMetadata, Intake, Upload
from gateway.pki import CA_CERT
from gateway.rules.catalogue import load_catalogue
from gateway.rules.model import Contract, InsurerTerms, Participant, Settings, Terms
from tests.benchmarks.load import ClientPlan, run_load
from tests.conftest import with_search_path
from tests.factories import kz301, vk301
from tests.gateway.running import (
    KRAAMZORG,
    MIDWIFE,
    GatewayProcess,
    make_pki,
    write_config,
)
from tests.threadpump import ThreadPump

__all__ = [
    "BundlingFigures",
    "UploadFigures",
    "bench_bundling",
    "bench_uploads",
    "main",
    "national_files",
]

NATIONAL_BIRTHS = 170_000
CLIENTS = 32
RECORDS = 50
FILES_PER_CLIENT = 20
CLIENT_PROCESSES = 2
PREGNANCIES = 20_000
WOMEN_PER_FILE = 100
UZOVI = "3311"
MIDWIFE_PERFORMER = "02012345"
KRAAMVERZORGENDE = "33012345"
# Illustrative codes of the shipped example catalogue, with tariffs in eurocents.
VK_SCAN, VK_PRENATAL, VK_NATAL, VK_POSTNATAL = "190010", "190001", "190002", "190004"
KZ_INTAKE, KZ_HOURS = "196201", "196202"
TARIFFS = {
    "IG0001": 60000,
    "IG0002": 150000,
    "IG0003": 180000,
    "IG0004": 90000,
    "IG0006": 120000,
    "IG0007": 100000,
    "IG0008": 130000,
    "IG0009": 40000,
}


REGISTRY: LayoutRegistry = load_layouts()


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- intake through the real server ------------------------------------------------------------


@dataclass(frozen=True)
class UploadFigures:
    clients: int
    uploads: int
    records: int
    seconds: float
    latencies: tuple[float, ...]
    failures: int
    store: str = "SQLite"
    commits: int = 0  # write transactions the store committed during the run
    processes: int = 1  # client processes
    rate: float = 0.0  # uploads/s offered by paced clients (0: as fast as answered)

    @property
    def per_second(self) -> float:
        return self.uploads / self.seconds if self.seconds else 0.0

    @property
    def uploads_per_commit(self) -> float:
        return self.uploads / self.commits if self.commits else 0.0

    @property
    def commits_per_second(self) -> float:
        return self.commits / self.seconds if self.seconds else 0.0

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _upload_file(participant: str, name: str, records: int) -> bytes:
    # 01, 02 and 99 around the prestaties: ``records`` records in all.
    lines = max(records - 3, 1)
    if participant == MIDWIFE:
        return vk301(REGISTRY, agb=MIDWIFE, invoice=name, lines=lines)
    return kz301(REGISTRY, agb=participant, invoice=name, lines=lines)


_COMMITS = re.compile(
    r'^igo_gateway_store_transaction_seconds_count\{kind="write"\} ([0-9.e+]+)$', re.M
)


def _commits(gateway: GatewayProcess) -> int:
    """Write transactions committed so far, from the gateway's own metrics."""
    found = _COMMITS.search(gateway.operations("/metrics").text)
    return int(float(found.group(1))) if found else 0


@contextlib.contextmanager
def _fresh(store_url: str) -> Iterator[str]:
    """``store_url`` as it is for SQLite; for PostgreSQL a fresh schema on that server for
    the run (its tables dropped afterwards), so that runs neither collide nor accumulate."""
    if not store_url.startswith("postgresql://"):
        yield store_url
        return
    schema = f"igo_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(store_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield with_search_path(store_url, schema)
    finally:
        with psycopg.connect(store_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def bench_uploads(
    clients: int = CLIENTS,
    files_per_client: int = FILES_PER_CLIENT,
    records: int = RECORDS,
    *,
    store_url: str = "sqlite:///data/gateway.db",
    processes: int = CLIENT_PROCESSES,
    rate: float = 0.0,
    profile: Path | None = None,
) -> UploadFigures:
    """Start a gateway on ``store_url`` in a temporary directory and measure (see the
    module documentation); the gateway is stopped again before this returns. ``rate``
    paces the clients to offer that many uploads per second together (0: each uploads as
    fast as it is answered). With
    ``profile``, ``py-spy`` records the server while the clients run and writes its
    flame graph there (``.svg``; otherwise collapsed stacks; py-spy must be installed)."""
    with tempfile.TemporaryDirectory(prefix="igo-bench-") as scratch, _fresh(store_url) as url:
        root = Path(scratch)
        pki = root / "pki"
        config = write_config(
            root / "gateway.toml",
            pki,
            make_pki(pki),
            url,
            extra="\n[bundling]\ninterval_seconds = 3600\n",
        )
        gateway = GatewayProcess(config, pki)
        gateway.start()
        try:
            return _drive(gateway, clients, files_per_client, records, processes, rate, profile)
        finally:
            gateway.stop()


def _drive(
    gateway: GatewayProcess,
    clients: int,
    files_per_client: int,
    records: int,
    processes: int,
    rate: float,
    profile: Path | None,
) -> UploadFigures:
    interval = clients / rate if rate > 0 else 0.0
    participants = [KRAAMZORG if n % 2 == 0 else MIDWIFE for n in range(clients)]
    plans = [
        ClientPlan(
            p,
            gateway.pki / f"participant-{p}.pem",
            gateway.pki / f"participant-{p}.key",
            tuple(_upload_file(p, f"B{n:02d}-{i:05d}", records) for i in range(files_per_client)),
            interval,
            interval * n / clients,
        )
        for n, p in enumerate(participants)
    ]
    spy: list[subprocess.Popen[bytes]] = []

    def started() -> None:
        if profile is not None and gateway.process is not None:
            beside = Path(sys.executable).with_name("py-spy")
            tool = str(beside) if beside.exists() else "py-spy"
            kind = "flamegraph" if profile.suffix == ".svg" else "raw"
            command = [tool, "record", "-p", str(gateway.process.pid), "-o", str(profile)]
            spy.append(subprocess.Popen([*command, "--threads", "--gil", "--format", kind]))

    before = _commits(gateway)
    try:
        result = run_load(gateway.port, gateway.pki / CA_CERT, plans, processes, on_start=started)
    finally:
        for recorder in spy:
            recorder.send_signal(signal.SIGINT)
            recorder.wait(60)
    commits = _commits(gateway) - before
    store = "PostgreSQL" if gateway_store_is_postgres(gateway) else "SQLite"
    return UploadFigures(
        clients,
        len(result.latencies),
        records,
        result.seconds,
        result.latencies,
        result.failures,
        store=store,
        commits=commits,
        processes=processes,
        rate=rate,
    )


def gateway_store_is_postgres(gateway: GatewayProcess) -> bool:
    return "postgresql://" in gateway.config.read_text(encoding="utf-8")


# --- bundling a national volume ----------------------------------------------------------------


NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)  # every phase of 2026 is closed by then
ALWAYS = ((None, None, True),)


def terms() -> Terms:
    contract = {
        year: Contract(year, RuleSet.REGULAR_2023, TARIFFS, 0.0, frozenset(), True)
        for year in (2025, 2026)
    }
    return Terms(
        Settings("53001234"),
        {agb: Participant(agb, Variant.A, ALWAYS) for agb in (KRAAMZORG, MIDWIFE)},
        {UZOVI: InsurerTerms(UZOVI, contract, False)},
    )


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
    return [(KZ_INTAKE, d - timedelta(days=40))] + [
        (KZ_HOURS, d + timedelta(days=n)) for n in range(1, 8)
    ]


LINES_PER_PREGNANCY = 4 + 8


def national_files(
    pregnancies: int, women_per_file: int = WOMEN_PER_FILE
) -> Iterator[tuple[str, str, bytes]]:
    """``(participant, discipline, file)`` for ``pregnancies`` women, the midwifery
    practice's and the kraamzorg organisation's declarations, ``women_per_file`` each."""
    everyone = list(women(pregnancies))
    plans: list[tuple[str, str, str, str, Callable[[Woman], list[tuple[str, date]]]]] = [
        (MIDWIFE, "midwifery", "VK301", "045", _midwifery),
        (KRAAMZORG, "kraamzorg", "KZ301", "044", _kraamzorg),
    ]
    for start in range(0, len(everyone), women_per_file):
        batch = everyone[start : start + women_per_file]
        for agb, discipline, standard, lst, care in plans:
            writer = FileWriter(REGISTRY.by_standard(standard))
            days = [day for w in batch for _, day in care(w)]
            invoice = f"{standard[:2]}{start // women_per_file:06d}"
            _header(writer, agb, invoice, days)
            who = MIDWIFE_PERFORMER if agb == MIDWIFE else KRAAMVERZORGENDE
            for w in batch:
                _insured(writer, w)
                for n, (code, day) in enumerate(care(w), start=1):
                    _line(writer, w, lst, code, day, who, f"{w.bsn}-{n}")
            yield agb, discipline, writer.finish()


@dataclass(frozen=True)
class BundlingFigures:
    pregnancies: int
    files: int
    lines: int
    build_seconds: float
    intake_seconds: float
    bundling_seconds: float
    claims: int
    claimed_lines: int
    peak_rss_mib: float

    @property
    def intake_per_second(self) -> float:
        return self.lines / self.intake_seconds if self.intake_seconds else 0.0

    @property
    def bundling_per_second(self) -> float:
        return self.lines / self.bundling_seconds if self.bundling_seconds else 0.0

    def national(self, seconds: float) -> float:
        """``seconds`` measured here, scaled linearly to a year of the whole country."""
        return seconds * NATIONAL_BIRTHS / self.pregnancies


def bench_bundling(
    pregnancies: int = PREGNANCIES, women_per_file: int = WOMEN_PER_FILE
) -> BundlingFigures:
    """Fill a SQLite store in a temporary directory through the intake service, then run the
    bundler once over everything; timings of each step."""
    pump = ThreadPump()
    with tempfile.TemporaryDirectory(prefix="igo-bench-") as scratch:
        began = time.perf_counter()
        files = list(national_files(pregnancies, women_per_file))
        built = time.perf_counter() - began
        store: SqlMessageStore = pump.wait(open_store(f"sqlite:///{scratch}/g.db", pump))
        try:
            intake = Intake(
                store,
                REGISTRY,
                clock=lambda: NOW,
                run_in_thread=lambda work: defer.succeed(work()),
            )
            began = time.perf_counter()
            for agb, discipline, payload in files:
                metadata = BerichtMetadata.model_validate(
                    {"afzender": {"rol": "zorgaanbieder", "code": agb}}
                )
                receipt = pump.wait(intake.receive(Upload(agb, discipline, metadata, payload)))
                if receipt.code is not None:
                    raise RuntimeError(f"a generated file was rejected: {receipt.findings[:1]}")
            intake_seconds = time.perf_counter() - began
            bundler = Bundler(
                store, store.bundles, REGISTRY, load_catalogue(), terms(), now=lambda: NOW
            )
            began = time.perf_counter()
            plan = pump.wait(bundler.run_once(), timeout=3600)
            bundling_seconds = time.perf_counter() - began
            left = pump.wait(store.open_lines())
        finally:
            pump.wait(store.close())
    if left:
        raise RuntimeError(f"{len(left)} lines still open after the run")
    return BundlingFigures(
        pregnancies=pregnancies,
        files=len(files),
        lines=pregnancies * LINES_PER_PREGNANCY,
        build_seconds=built,
        intake_seconds=intake_seconds,
        bundling_seconds=bundling_seconds,
        claims=len(plan.claims),
        claimed_lines=sum(len(c.links) for c in plan.claims),
        peak_rss_mib=_peak_rss_mib(),
    )


# --- the script --------------------------------------------------------------------------------


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def report_uploads(figures: UploadFigures, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    f = figures
    print(
        f"intake over mutual TLS, {f.store}: {f.clients} clients in {f.processes} process(es),"
        f" {f.uploads} uploads of {f.records} records, "
        + (f"paced to offer {f.rate:,.0f} uploads/s" if f.rate else "as fast as answered"),
        file=out,
    )
    print(f"  acknowledged uploads/s  {f.per_second:,.0f}", file=out)
    print(
        f"  latency p50 {f.percentile(0.5) * 1000:.0f} ms, "
        f"p99 {f.percentile(0.99) * 1000:.0f} ms, "
        f"mean {statistics.fmean(f.latencies or (0.0,)) * 1000:.0f} ms",
        file=out,
    )
    print(
        f"  group commit            {f.commits} commits, {f.commits_per_second:,.0f}/s, "
        f"{f.uploads_per_commit:.1f} uploads per commit",
        file=out,
    )
    print(f"  failed uploads          {f.failures}", file=out)


def report_bundling(figures: BundlingFigures, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    f = figures
    print(
        f"national volume, SQLite: {f.pregnancies:,} pregnancies, {f.lines:,} lines in "
        f"{f.files:,} files (built in {f.build_seconds:.1f} s)",
        file=out,
    )
    print(
        f"  intake (parse, validate, store)  {f.intake_seconds:.1f} s, "
        f"{f.intake_per_second:,.0f} lines/s; "
        f"170,000 births: {_minutes(f.national(f.intake_seconds))}",
        file=out,
    )
    print(
        f"  bundling (one run over all)      {f.bundling_seconds:.1f} s, "
        f"{f.bundling_per_second:,.0f} lines/s; "
        f"170,000 births: {_minutes(f.national(f.bundling_seconds))}",
        file=out,
    )
    print(
        f"  {f.claims} claim file(s), {f.claimed_lines:,} integral lines; "
        f"process peak RSS {f.peak_rss_mib:.0f} MiB",
        file=out,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.gateway", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--files-per-client", type=int, default=FILES_PER_CLIENT)
    parser.add_argument("--records", type=int, default=RECORDS, help="records per upload")
    parser.add_argument(
        "--client-processes", type=int, default=CLIENT_PROCESSES, help="load generator processes"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="pace the clients to offer this many uploads/s together (default: unpaced)",
    )
    parser.add_argument(
        "--store",
        default="sqlite:///data/gateway.db",
        help="the intake part's store URL (a postgresql:// URL for PostgreSQL)",
    )
    parser.add_argument(
        "--profile", type=Path, help="record the server with py-spy into this SVG file"
    )
    parser.add_argument("--pregnancies", type=int, default=PREGNANCIES)
    parser.add_argument("--women-per-file", type=int, default=WOMEN_PER_FILE)
    parser.add_argument("--skip-intake", action="store_true", help="only the bundling part")
    parser.add_argument("--skip-bundling", action="store_true", help="only the intake part")
    args = parser.parse_args(argv)
    print(f"Python {sys.version.split()[0]}, {sys.platform}; figures of this one run")
    if not args.skip_intake:
        figures = bench_uploads(
            args.clients,
            args.files_per_client,
            args.records,
            store_url=args.store,
            processes=args.client_processes,
            rate=args.rate,
            profile=args.profile,
        )
        report_uploads(figures)
    if not args.skip_bundling:
        report_bundling(bench_bundling(args.pregnancies, args.women_per_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
