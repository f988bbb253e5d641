"""How many uploads the real gateway acknowledges per second, and how fast.

Run as ``python -m tests.benchmarks.gateway`` (``--store postgresql://…`` for PostgreSQL,
``--rate N`` for paced clients, ``--profile FILE`` to record the server with py-spy). It
prints figures and asserts nothing about time (``tests/benchmarks/test_gateway_bench.py``
runs the same functions at toy sizes so that this script keeps working). A year of the
whole country through the whole cycle is ``tests.benchmarks.cycle``.

``igo-gateway serve`` runs as a real process on SQLite (the embedded default: WAL,
``synchronous=FULL``, group commit) or on a fresh schema of a PostgreSQL server, on a
loopback port with mutual TLS. ``--clients`` EPD clients — threads of ``--client-processes``
load-generator processes of their own (:mod:`tests.benchmarks.load`), each client with one
kept-alive connection and the certificate of its participant (the kraamzorg organisation
or the midwifery practice) — upload distinct valid files of ``--records`` records, as fast
as they are answered or paced to offer ``--rate`` uploads per second together. Reported:
acknowledged uploads per second (from the clients' common start to the last answer), the
p50 / p99 acknowledgement latency, and the store's write transactions in that time (from
the gateway's own ``igo_gateway_store_transaction_seconds`` metric: one per group-committed
batch), so uploads per commit, and the server process's CPU time (user + system, all its
threads, from ``/proc``) per upload — on a machine whose cores the load generator shares,
a steadier figure than the rate.

``--parts`` measures the gateway's own work per upload without HTTP, in this process, on
the same upload files: the CPU time of each file's checks and lines alone, then of the
whole intake (:meth:`~gateway.intake.Intake.receive` into a fresh SQLite store, as many
uploads waiting for their group commit at once as there are ``--clients``); the difference
is the message, the store and the commit. Beside the server's CPU time per upload (above)
and the bare server's, it says where the gateway's time goes.

``--vs-bare`` measures the gateway against a yardstick in the same run:
:mod:`tests.benchmarks.bare`, a bare Twisted server doing only mutual TLS (the EPD API's
settings), the multipart parsing and a durable group-committed SQLite insert, driven by
the same load generator with the same upload bodies. The gateway (SQLite), the bare server
and, with ``--postgres URL``, the gateway on PostgreSQL run one after the other,
``--rounds`` times alternately; the medians and the ratios gateway/bare (throughput, p99,
server CPU per upload) and PostgreSQL/SQLite are printed. The load generator shares the
machine's cores with the server: on a 2-core machine the figures are a floor.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import re
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import psycopg
from twisted.internet import defer

from adapters.storage import open_store
from gateway.config import load_config
from gateway.ei import LayoutRegistry
from gateway.intake import Intake
from gateway.loading import load_layouts
from gateway.pki import CA_CERT, SERVER_CERT, SERVER_KEY
from gateway.ports.intake import Receipt, Upload
from gateway.upload_checks import check_upload
from gateway.vsp import send_metadata
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
    "Comparison",
    "IntakeParts",
    "UploadFigures",
    "bench_bare",
    "bench_parts",
    "bench_uploads",
    "compare",
    "main",
    "taken_in",
]

CLIENTS = 32
RECORDS = 50
FILES_PER_CLIENT = 20
CLIENT_PROCESSES = 2

REGISTRY: LayoutRegistry = load_layouts()


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
    cpu_seconds: float | None = None  # the server process's CPU time (user + system), if known
    check_processes: int = 0  # the gateway's check workers ([epd_api] check_processes)

    @property
    def per_second(self) -> float:
        return self.uploads / self.seconds if self.seconds else 0.0

    @property
    def uploads_per_commit(self) -> float:
        return self.uploads / self.commits if self.commits else 0.0

    @property
    def commits_per_second(self) -> float:
        return self.commits / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_upload(self) -> float | None:
        """The server's CPU seconds per acknowledged upload (all its threads)."""
        if self.cpu_seconds is None or not self.latencies:
            return None
        return self.cpu_seconds / len(self.latencies)

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of process ``pid`` and all its threads so far, and of
    its running child processes (the gateway's check workers) (from ``/proc``; None
    where there is no ``/proc``)."""
    own = _process_cpu(pid)
    if own is None:
        return None
    return own + sum(_process_cpu(child) or 0.0 for child in _children(pid))


def _process_cpu(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    # The command name (field 2) may hold spaces: the fields after its closing parenthesis
    # start with field 3, so utime and stime (fields 14 and 15) are at 11 and 12.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    """The running child processes of ``pid`` (from ``/proc``; none where it has none)."""
    children: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text(encoding="ascii")
            children += [int(child) for child in text.split()]
    except OSError:
        return children
    return children


def _cpu_used(pid: int, before: float | None) -> float | None:
    after = cpu_seconds(pid)
    return None if before is None or after is None else after - before


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


def _settled_commits(gateway: GatewayProcess, quiet: float = 0.5, limit: float = 15.0) -> int:
    """The write count once the jobs ``serve`` runs at start (the first bundling run takes
    and gives back its lease, two writes) have written: unchanged for ``quiet`` seconds,
    or after ``limit`` seconds whatever it is. So the run counts only its own commits."""
    deadline = time.monotonic() + limit
    last = _commits(gateway)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = _commits(gateway)
        if now == last:
            return now
        last = now
    return last


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
    check_processes: int | None = None,
) -> UploadFigures:
    """Start a gateway on ``store_url`` in a temporary directory and measure (see the
    module documentation); the gateway is stopped again before this returns. ``rate``
    paces the clients to offer that many uploads per second together (0: each uploads as
    fast as it is answered). With
    ``profile``, ``py-spy`` records the server while the clients run and writes its
    flame graph there (``.svg``; otherwise collapsed stacks; py-spy must be installed).
    ``check_processes`` is the gateway's ``[epd_api] check_processes`` (None: its
    default); the server CPU counts the workers' too."""
    with tempfile.TemporaryDirectory(prefix="igo-bench-") as scratch, _fresh(store_url) as url:
        root = Path(scratch)
        pki = root / "pki"
        config = write_config(
            root / "gateway.toml",
            pki,
            make_pki(pki),
            url,
            extra="\n[bundling]\ninterval_seconds = 3600\n",
            **_check_settings(check_processes),
        )
        gateway = GatewayProcess(config, pki)
        gateway.start()
        try:
            figures = _drive(gateway, clients, files_per_client, records, processes, rate, profile)
            return replace(figures, check_processes=_workers_of(config, check_processes))
        finally:
            gateway.stop()


def _check_settings(check_processes: int | None) -> dict[str, Any]:
    """The ``[epd_api]`` settings of ``check_processes`` (none: the gateway's default)."""
    return {} if check_processes is None else {"check_processes": check_processes}


def _workers_of(config: Path, check_processes: int | None) -> int:
    """The check workers the gateway of ``config`` runs."""
    if check_processes is not None:
        return check_processes
    return load_config(config).epd_api.check_processes


def _plans(
    pki: Path, clients: int, files_per_client: int, records: int, rate: float
) -> list[ClientPlan]:
    """The clients: alternately the kraamzorg organisation and the midwifery practice, each
    with its own distinct files (the same ones on every server of a run)."""
    interval = clients / rate if rate > 0 else 0.0
    participants = [KRAAMZORG if n % 2 == 0 else MIDWIFE for n in range(clients)]
    return [
        ClientPlan(
            p,
            pki / f"participant-{p}.pem",
            pki / f"participant-{p}.key",
            tuple(_upload_file(p, f"B{n:02d}-{i:05d}", records) for i in range(files_per_client)),
            interval,
            interval * n / clients,
        )
        for n, p in enumerate(participants)
    ]


def _drive(
    gateway: GatewayProcess,
    clients: int,
    files_per_client: int,
    records: int,
    processes: int,
    rate: float,
    profile: Path | None,
) -> UploadFigures:
    plans = _plans(gateway.pki, clients, files_per_client, records, rate)
    spy: list[subprocess.Popen[bytes]] = []

    def started() -> None:
        if profile is not None and gateway.process is not None:
            beside = Path(sys.executable).with_name("py-spy")
            tool = str(beside) if beside.exists() else "py-spy"
            kind = "flamegraph" if profile.suffix == ".svg" else "raw"
            command = [tool, "record", "-p", str(gateway.process.pid), "-o", str(profile)]
            spy.append(subprocess.Popen([*command, "--threads", "--gil", "--format", kind]))

    before = _settled_commits(gateway)
    assert gateway.process is not None
    pid = gateway.process.pid
    cpu_before = cpu_seconds(pid)
    try:
        result = run_load(gateway.port, gateway.pki / CA_CERT, plans, processes, on_start=started)
    finally:
        for recorder in spy:
            recorder.send_signal(signal.SIGINT)
            recorder.wait(60)
    cpu = _cpu_used(pid, cpu_before)
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
        cpu_seconds=cpu,
    )


def gateway_store_is_postgres(gateway: GatewayProcess) -> bool:
    return "postgresql://" in gateway.config.read_text(encoding="utf-8")


# --- the bare server, for comparison -------------------------------------------------------------


REPOSITORY = Path(__file__).resolve().parents[2]


def bench_bare(
    clients: int = CLIENTS,
    files_per_client: int = FILES_PER_CLIENT,
    records: int = RECORDS,
    *,
    processes: int = CLIENT_PROCESSES,
    rate: float = 0.0,
) -> UploadFigures:
    """The same measurement against :mod:`tests.benchmarks.bare` (mutual TLS with the EPD
    API's settings and a fresh PKI made the same way, the gateway's multipart parser, a
    durable group-committed SQLite insert), run as a process of its own like the gateway."""
    with tempfile.TemporaryDirectory(prefix="igo-bare-") as scratch:
        root = Path(scratch)
        pki = root / "pki"
        make_pki(pki)
        command = [
            sys.executable,
            "-m",
            "tests.benchmarks.bare",
            "--cert",
            str(pki / SERVER_CERT),
            "--key",
            str(pki / SERVER_KEY),
            "--trust",
            str(pki / CA_CERT),
            "--database",
            str(root / "bare.db"),
        ]
        bare = subprocess.Popen(command, cwd=REPOSITORY, stdout=subprocess.PIPE, text=True)
        try:
            assert bare.stdout is not None
            line = bare.stdout.readline()
            if not line.startswith("listening on "):
                raise RuntimeError(f"the bare server did not start: {line!r}")
            port = int(line.split()[-1])
            plans = _plans(pki, clients, files_per_client, records, rate)
            before = _bare_commits(port, pki)
            cpu_before = cpu_seconds(bare.pid)
            result = run_load(port, pki / CA_CERT, plans, processes)
            cpu = _cpu_used(bare.pid, cpu_before)
            commits = _bare_commits(port, pki) - before
        finally:
            bare.terminate()
            bare.wait(30)
    return UploadFigures(
        clients,
        len(result.latencies),
        records,
        result.seconds,
        result.latencies,
        result.failures,
        store="bare server, SQLite",
        commits=commits,
        processes=processes,
        rate=rate,
        cpu_seconds=cpu,
    )


def _bare_commits(port: int, pki: Path) -> int:
    context = ssl.create_default_context(cafile=str(pki / CA_CERT))
    context.load_cert_chain(
        str(pki / f"participant-{KRAAMZORG}.pem"), str(pki / f"participant-{KRAAMZORG}.key")
    )
    connection = http.client.HTTPSConnection("localhost", port, context=context, timeout=30)
    try:
        connection.request("GET", "/commits")
        return int(connection.getresponse().read())
    finally:
        connection.close()


@dataclass(frozen=True)
class Comparison:
    """Rounds of the gateway (SQLite, and PostgreSQL if asked) and the bare server, run
    alternately; the figures compared are each one's median over the rounds."""

    gateway: tuple[UploadFigures, ...]
    bare: tuple[UploadFigures, ...]
    postgres: tuple[UploadFigures, ...] = ()


def compare(
    rounds: int = 1,
    clients: int = CLIENTS,
    files_per_client: int = FILES_PER_CLIENT,
    records: int = RECORDS,
    *,
    postgres_url: str | None = None,
    processes: int = CLIENT_PROCESSES,
    out: TextIO | None = None,
    check_processes: int | None = None,
) -> Comparison:
    """``rounds`` times: the gateway on SQLite, the bare server, then (with
    ``postgres_url``) the gateway on PostgreSQL — each run reported as it ends."""
    gateway: list[UploadFigures] = []
    bare: list[UploadFigures] = []
    postgres: list[UploadFigures] = []
    for _ in range(rounds):
        gateway.append(
            bench_uploads(
                clients,
                files_per_client,
                records,
                store_url="sqlite:///data/gateway.db",
                processes=processes,
                check_processes=check_processes,
            )
        )
        report_uploads(gateway[-1], out)
        bare.append(bench_bare(clients, files_per_client, records, processes=processes))
        report_uploads(bare[-1], out)
        if postgres_url:
            postgres.append(
                bench_uploads(
                    clients,
                    files_per_client,
                    records,
                    store_url=postgres_url,
                    processes=processes,
                    check_processes=check_processes,
                )
            )
            report_uploads(postgres[-1], out)
    return Comparison(tuple(gateway), tuple(bare), tuple(postgres))


def _median(runs: Sequence[UploadFigures]) -> tuple[float, float, float]:
    """Uploads/s, p50 and p99 (seconds): each the median over the runs."""
    return (
        statistics.median(r.per_second for r in runs),
        statistics.median(r.percentile(0.5) for r in runs),
        statistics.median(r.percentile(0.99) for r in runs),
    )


def _median_cpu(runs: Sequence[UploadFigures]) -> float | None:
    """The server's CPU seconds per upload, the median over the runs (None if unknown)."""
    known = [r.cpu_per_upload for r in runs if r.cpu_per_upload is not None]
    return statistics.median(known) if known else None


def report_comparison(comparison: Comparison, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    rows = [("gateway, SQLite", comparison.gateway), ("bare server", comparison.bare)]
    if comparison.postgres:
        rows.append(("gateway, PostgreSQL", comparison.postgres))
    print(f"median of {len(comparison.gateway)} alternated round(s):", file=out)
    for name, runs in rows:
        rate, p50, p99 = _median(runs)
        cpu = _median_cpu(runs)
        print(
            f"  {name:<20} {rate:8,.0f} uploads/s   p50 {p50 * 1000:5.0f} ms"
            f"   p99 {p99 * 1000:5.0f} ms"
            + (f"   server CPU {cpu * 1000:.2f} ms/upload" if cpu is not None else ""),
            file=out,
        )
    gw, bare = _median(comparison.gateway), _median(comparison.bare)
    print(
        f"  gateway / bare: throughput {gw[0] / bare[0]:.0%} (target >= 45 %), "
        f"p99 {gw[2] / bare[2]:.1f}x the bare p99 (target <= 2x)",
        file=out,
    )
    gw_cpu, bare_cpu = _median_cpu(comparison.gateway), _median_cpu(comparison.bare)
    if gw_cpu is not None and bare_cpu is not None:
        # /proc counts CPU time in clock ticks (10 ms): a toy run of the bare server may
        # use less than one.
        ratio = f"{gw_cpu / bare_cpu:.1f}x" if bare_cpu else "not measurable (a run this short)"
        print(f"  gateway / bare: server CPU per upload {ratio}", file=out)
    if comparison.postgres:
        pg = _median(comparison.postgres)
        print(
            f"  PostgreSQL / SQLite (gateway): throughput {pg[0] / gw[0]:.0%} (target >= 70 %)",
            file=out,
        )


# --- the gateway's own work per upload, part by part ---------------------------------------------


@dataclass(frozen=True)
class IntakeParts:
    """CPU seconds (this process, all its threads) over ``uploads`` uploads: the file
    checks and lines alone (:func:`~gateway.upload_checks.check_upload`), and the whole intake
    without HTTP (:meth:`~gateway.intake.Intake.receive`: the same checks, the message,
    and the durable, group-committed store)."""

    uploads: int
    records: int
    checks_seconds: float
    intake_seconds: float
    commits: int

    @property
    def checks_per_upload(self) -> float:
        return self.checks_seconds / self.uploads

    @property
    def intake_per_upload(self) -> float:
        return self.intake_seconds / self.uploads

    @property
    def rest_per_upload(self) -> float:
        """What the intake does beyond the checks: the message, the store, the commit."""
        return self.intake_per_upload - self.checks_per_upload


def bench_parts(
    clients: int = CLIENTS,
    files_per_client: int = FILES_PER_CLIENT,
    records: int = RECORDS,
    *,
    in_flight: int | None = None,
) -> IntakeParts:
    """The gateway's CPU time per upload without HTTP, on the upload files the load
    generator sends (the same participants and names): first each file's checks and
    lines alone, then every upload through :class:`~gateway.intake.Intake` into a fresh
    SQLite store (WAL, ``synchronous=FULL``, group commit) with up to ``in_flight``
    (default: ``clients``) uploads waiting for their commit at once, as from that many
    clients. The store's writer is a thread of this process, so its CPU time is counted."""
    in_flight = in_flight or clients
    participants = [KRAAMZORG if n % 2 == 0 else MIDWIFE for n in range(clients)]
    files = [
        (p, _upload_file(p, f"B{n:02d}-{i:05d}", records))
        for i in range(files_per_client)
        for n, p in enumerate(participants)
    ]
    began = time.process_time()
    for n, (participant, payload) in enumerate(files):
        check_upload(REGISTRY, payload, f"check-{n}", participant)
    checks = time.process_time() - began
    uploads = [
        Upload(p, "midwifery" if p == MIDWIFE else "kraamzorg", send_metadata(p, "EI"), payload)
        for p, payload in files
    ]
    pump = ThreadPump()
    with tempfile.TemporaryDirectory(prefix="igo-parts-") as scratch:
        store = pump.wait(open_store(f"sqlite:///{scratch}/gateway.db", pump))
        try:
            intake = Intake(
                store,
                REGISTRY,
                clock=lambda: datetime.now(UTC),
                run_in_thread=lambda work: defer.succeed(work()),
            )
            commits = store.database.commits
            waiting: deque[defer.Deferred[Receipt]] = deque()
            began = time.process_time()
            for upload in uploads:
                receiving = defer.ensureDeferred(intake.receive(upload))
                waiting.append(receiving.addCallback(taken_in))
                if len(waiting) >= in_flight:
                    pump.wait(waiting.popleft())
            while waiting:
                pump.wait(waiting.popleft())
            whole = time.process_time() - began
            commits = store.database.commits - commits
        finally:
            pump.wait(store.close())
    return IntakeParts(len(files), records, checks, whole, commits)


def taken_in(receipt: Receipt) -> Receipt:
    """``receipt`` if its upload was stored and accepted; an error otherwise (the
    benchmarks' files are all valid and distinct, so anything else is a fault)."""
    if not receipt.created or receipt.code is not None:
        raise RuntimeError(f"an upload was not taken in: {receipt.code} {receipt.findings[:1]}")
    return receipt


def report_parts(parts: IntakeParts, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    p = parts
    print(
        f"the gateway's CPU time per upload without HTTP, {p.uploads} uploads of "
        f"{p.records} records, SQLite, {p.uploads / p.commits:.1f} uploads per commit:",
        file=out,
    )
    print(f"  file checks and lines   {p.checks_per_upload * 1000:.2f} ms", file=out)
    print(f"  message, store, commit  {p.rest_per_upload * 1000:.2f} ms", file=out)
    print(f"  intake without HTTP     {p.intake_per_upload * 1000:.2f} ms", file=out)


# --- the script --------------------------------------------------------------------------------


def report_uploads(figures: UploadFigures, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    f = figures
    print(
        f"intake over mutual TLS, {f.store}"
        + (f" with {f.check_processes} check worker(s)" if f.check_processes else "")
        + f": {f.clients} clients in {f.processes} process(es),"
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
    if f.cpu_per_upload is not None:
        print(
            f"  server CPU              {f.cpu_per_upload * 1000:.2f} ms per upload "
            f"({f.cpu_seconds:.1f} s, all threads)",
            file=out,
        )
    print(f"  failed uploads          {f.failures}", file=out)


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
    parser.add_argument(
        "--vs-bare",
        action="store_true",
        help="run the gateway (SQLite) and the bare server alternately and compare them",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="with --vs-bare: alternated rounds (default 1)"
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="with --vs-bare: also run the gateway on this PostgreSQL server each round",
    )
    parser.add_argument(
        "--check-processes",
        type=int,
        metavar="N",
        help="the gateway's [epd_api] check_processes (default: the gateway's default, 1)",
    )
    parser.add_argument(
        "--parts",
        action="store_true",
        help="the gateway's CPU time per upload without HTTP: the checks, then the rest",
    )
    args = parser.parse_args(argv)
    print(f"Python {sys.version.split()[0]}, {sys.platform}; figures of this one run")
    if args.parts:
        report_parts(bench_parts(args.clients, args.files_per_client, args.records))
        return 0
    if args.vs_bare:
        comparison = compare(
            args.rounds,
            args.clients,
            args.files_per_client,
            args.records,
            postgres_url=args.postgres,
            processes=args.client_processes,
            check_processes=args.check_processes,
        )
        report_comparison(comparison)
        return 0
    figures = bench_uploads(
        args.clients,
        args.files_per_client,
        args.records,
        store_url=args.store,
        processes=args.client_processes,
        rate=args.rate,
        profile=args.profile,
        check_processes=args.check_processes,
    )
    report_uploads(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
