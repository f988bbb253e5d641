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
batch), so uploads per commit. The load generator shares the machine's cores with the
server: on a 2-core machine the figures are a floor.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import psycopg

from gateway.ei import LayoutRegistry, load_layouts
from gateway.pki import CA_CERT
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

__all__ = ["UploadFigures", "bench_uploads", "main"]

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


# --- the script --------------------------------------------------------------------------------


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
    args = parser.parse_args(argv)
    print(f"Python {sys.version.split()[0]}, {sys.platform}; figures of this one run")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
