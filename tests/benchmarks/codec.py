"""How fast the EI codec parses and validates, and how little memory streaming takes.

Run as ``python -m tests.benchmarks.codec`` (``make bench``). It prints figures and
asserts nothing about time: speed depends on the machine, and a timed test would only
flake. ``tests/benchmarks/test_codec_bench.py`` runs the same functions on tiny sizes so
that this script keeps working.

What is measured:

* **parse** — a KZ301 file built in memory (default 100,001 records) fed to
  :class:`~gateway.ei.Reader` in 64 KiB chunks; every record is produced, no field is
  decoded (decoding is lazy);
* **parse + validate** — the same file through :class:`~gateway.ei.Validator`, which
  decodes and checks every field an insurer's intake checks;
* **streaming memory** — a file of 1,000,000 records produced 64 KiB at a time by a
  generator (never held whole) and read by the Reader; peak memory traced with
  :mod:`tracemalloc`, for the full size and for a tenth of it, so that one can see it does
  not grow with the file; and the same through the Validator, whose reference numbers do
  grow with it (printed per reference);
* **fast and slow path** — parse + validate in-process with the fast path (the default)
  and with ``fast=False`` (every record through the slow checks);
* **whole process** — ``igo-gateway validate`` (as ``python -m gateway.cli``) on the
  100,001-record file and, for its start-up, on a 3-record file, each in its own process,
  CPU seconds (user + system, the operating system's own accounting of the child), wall
  seconds and peak RSS, median of ``--runs``. With ``--before DIR`` (a checkout of other
  code) or ``--before-rev REV`` (a git revision, unpacked into a temporary directory) the
  same commands of that code run in turn with this code's (A B A B ...), and the figures
  are printed side by side. The gateway's modules are compiled to bytecode first in both
  (as an installed package has them), so that neither pays for compiling at each start.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from gateway.ei import (
    FieldLayout,
    FileWriter,
    Layout,
    LayoutRegistry,
    Reader,
    Validator,
    bsn_is_valid,
    build_record,
)
from gateway.loading import load_layouts
from tests.factories import BSNS, header, insured, prestatie

# Synthetic BSNs that pass the eleven-proof (so that validation finds nothing).
VALID_BSNS = tuple(bsn for bsn in BSNS if bsn_is_valid(bsn))

CHUNK = 64 * 1024
PARSE_RECORDS = 100_001  # as in issue 17: a 01, 99,999 details and a 99
STREAM_RECORDS = 1_000_000
REPEAT = 3
PRESTATIES_PER_CLIENT = 3  # each client's 02 record is followed by this many 04 records
TARIFF = 12_000  # eurocents


# --- building the files --------------------------------------------------------------------


def _header(writer: FileWriter) -> None:
    header(writer, agb="33001234", invoice="BENCH-0001")


def _insured(writer: FileWriter, bsn: str) -> None:
    insured(writer, bsn)


def _prestatie(writer: FileWriter, bsn: str, reference: str, day: int) -> None:
    prestatie(
        writer,
        bsn=bsn,
        day=date(2026, 1, day),
        reference=reference,
        performer="33001234",
        tariff=TARIFF,
    )


def _day(i: int) -> int:
    return 1 + i % 28


def build_declaration(registry: LayoutRegistry, records: int) -> bytes:
    """A valid KZ301 file of exactly ``records`` records (01 and 99 included), written
    record by record with :class:`FileWriter`: clients with a few prestaties each."""
    if records < 3:
        raise ValueError("a declaration has at least a 01, a 02 and a 99 record")
    writer = FileWriter(registry.by_standard("KZ301"))
    _header(writer)
    details = records - 2
    client = -1
    for i in range(details):
        if i % (PRESTATIES_PER_CLIENT + 1) == 0:
            client += 1
            _insured(writer, VALID_BSNS[client % len(VALID_BSNS)])
        else:
            _prestatie(writer, VALID_BSNS[client % len(VALID_BSNS)], f"BENCH-{i + 1}", _day(i))
    return writer.finish()


def stream_declaration(
    registry: LayoutRegistry, records: int, chunk_size: int = CHUNK
) -> Iterator[bytes]:
    """The same kind of file as :func:`build_declaration`, produced ``chunk_size`` bytes
    at a time and never held whole.

    Records are written once by :class:`FileWriter` as templates (one per BSN and prestatie
    day); per record only its number and reference are patched, straight into the chunk
    being filled, so that generating costs little next to the parsing it feeds (and few
    allocations, which matters under :mod:`tracemalloc`).
    """
    if records < 3:
        raise ValueError("a declaration has at least a 01, a 02 and a 99 record")
    layout = registry.by_standard("KZ301")
    templates = FileWriter(layout)
    _header(templates)
    _insured(templates, VALID_BSNS[0])
    _prestatie(templates, VALID_BSNS[0], "BENCH-1", 1)
    header, insured, prestatie = (line + b"\r\n" for line in templates.finish().split(b"\r\n")[:3])
    insured_rec, prestatie_rec = layout.record("02"), layout.record("04")

    def patched(template: bytes, field: FieldLayout, value: bytes) -> bytes:
        return template[: field.start - 1] + value + template[field.end :]

    insured_by_client = [patched(insured, insured_rec.field("bsn"), b.encode()) for b in VALID_BSNS]
    prestatie_by_client_day = [
        [
            patched(
                patched(prestatie, prestatie_rec.field("bsn"), b.encode()),
                prestatie_rec.field("prestatie_date"),
                b"202601%02d" % day,
            )
            for day in range(29)
        ]
        for b in VALID_BSNS
    ]
    record_id = prestatie_rec.field("record_id")
    reference = prestatie_rec.field("reference")
    assert insured_rec.field("record_id").slice == record_id.slice
    id_start, id_end = record_id.start - 1, record_id.end
    ref_start, ref_end = reference.start - 1, reference.end
    group = PRESTATIES_PER_CLIENT + 1

    def generate() -> Iterator[bytes]:
        buf = bytearray(header)
        prestaties = 0
        for i in range(records - 2):
            client = (i // group) % len(VALID_BSNS)
            pos = len(buf)
            if i % group == 0:
                buf += insured_by_client[client]
            else:
                buf += prestatie_by_client_day[client][_day(i)]
                buf[pos + ref_start : pos + ref_end] = (b"BENCH-%d" % (i + 1)).ljust(
                    reference.length
                )
                prestaties += 1
            buf[pos + id_start : pos + id_end] = b"%012d" % (i + 1)
            if len(buf) >= chunk_size:
                yield bytes(buf[:chunk_size])
                del buf[:chunk_size]
        trailer = build_record(
            layout.record("99"),
            {
                "count_02": records - 2 - prestaties,
                "count_04": prestaties,
                "count_detail": records - 2,
                "total_declared": prestaties * TARIFF,
            },
        )
        buf += trailer.to_bytes()
        while buf:
            yield bytes(buf[:chunk_size])
            del buf[:chunk_size]

    return generate()


def chunks(data: bytes, size: int = CHUNK) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


# --- measuring -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Throughput:
    records: int
    seconds: float  # the best of the runs

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds else float("inf")


@dataclass(frozen=True, slots=True)
class StreamMemory:
    records: int
    bytes_streamed: int
    peak_bytes: int  # traced by tracemalloc while streaming
    seconds: float


def count_parsed(registry: LayoutRegistry, pieces: Iterable[bytes]) -> int:
    """Feed ``pieces`` to a Reader and count the records (and bad lines) it returns."""
    reader = Reader(registry)
    count = 0
    for piece in pieces:
        reader.feed(piece)
        for _ in reader.events():
            count += 1
    reader.close()
    for _ in reader.events():
        count += 1
    return count


def count_validated(registry: LayoutRegistry, pieces: Iterable[bytes], *, fast: bool = True) -> int:
    """Validate ``pieces``; the number of records, or an error if the file is not valid
    (a benchmark of a file with findings would measure the wrong thing)."""
    validator = Validator(registry, fast=fast)
    for piece in pieces:
        validator.feed(piece)
    result = validator.close()
    if not result.valid:
        raise RuntimeError(f"the benchmark file is not valid: {result.findings[:3]}")
    return result.records


def _best(run: Callable[[], int], repeat: int) -> Throughput:
    best = float("inf")
    records = 0
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        records = run()
        best = min(best, time.perf_counter() - start)
    return Throughput(records, best)


def bench_parse(registry: LayoutRegistry, data: bytes, repeat: int = REPEAT) -> Throughput:
    return _best(lambda: count_parsed(registry, chunks(data)), repeat)


def bench_validate(
    registry: LayoutRegistry, data: bytes, repeat: int = REPEAT, *, fast: bool = True
) -> Throughput:
    return _best(lambda: count_validated(registry, chunks(data), fast=fast), repeat)


def bench_stream_memory(registry: LayoutRegistry, records: int) -> StreamMemory:
    """Stream a generated file of ``records`` records through the Reader and trace the
    peak memory allocated meanwhile (the layouts, loaded before, are not counted)."""
    streamed = 0

    def counted(pieces: Iterable[bytes]) -> Iterator[bytes]:
        nonlocal streamed
        for piece in pieces:
            streamed += len(piece)
            yield piece

    gc.collect()
    tracemalloc.start()
    try:
        start = time.perf_counter()
        parsed = count_parsed(registry, counted(stream_declaration(registry, records)))
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return StreamMemory(parsed, streamed, peak, seconds)


@dataclass(frozen=True, slots=True)
class ValidatorMemory:
    records: int
    references: int  # distinct reference numbers kept
    peak_bytes: int  # traced while streaming through the Validator

    @property
    def per_reference(self) -> float:
        return self.peak_bytes / self.references if self.references else 0.0


def bench_validator_memory(registry: LayoutRegistry, records: int) -> ValidatorMemory:
    """Stream a generated file through the Validator under :mod:`tracemalloc`: what grows
    with the file is its set of reference numbers."""
    gc.collect()
    tracemalloc.start()
    try:
        validator = Validator(registry)
        for piece in stream_declaration(registry, records):
            validator.feed(piece)
        result = validator.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if not result.valid:
        raise RuntimeError(f"the benchmark file is not valid: {result.findings[:3]}")
    references = result.counts["04"]  # one distinct reference per prestatie
    return ValidatorMemory(result.records, references, peak)


# --- whole processes -------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class ProcessRun:
    cpu: float  # user + system seconds of the child
    wall: float
    peak_rss: int  # bytes


def run_process(argv: Sequence[str], cwd: Path) -> ProcessRun:
    """Run ``argv`` in ``cwd`` (output thrown away) and account for that one child."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} in {cwd} exited {proc.returncode}")
    rss = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
    return ProcessRun(usage.ru_utime + usage.ru_stime, wall, rss)


def validate_argv(path: Path) -> list[str]:
    """``igo-gateway validate PATH`` of the code in the working directory."""
    return [sys.executable, "-m", "gateway.cli", "validate", str(path)]


def compile_bytecode(code: Path) -> None:
    """Write the bytecode of ``code``'s gateway package, as an installed package has it."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "gateway", "adapters"],
        cwd=code,
        stdout=subprocess.DEVNULL,
        check=False,
    )


def unpack_revision(rev: str, into: Path) -> Path:
    """The files of git revision ``rev`` of this repository, unpacked under ``into``."""
    archive = into / "code.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", rev], cwd=ROOT, stdout=out, check=True)
    target = into / "code"
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target


@dataclass(frozen=True, slots=True)
class Median:
    cpu: float
    wall: float
    peak_rss: int


def _median(runs: Sequence[ProcessRun]) -> Median:
    return Median(
        statistics.median(r.cpu for r in runs),
        statistics.median(r.wall for r in runs),
        int(statistics.median(r.peak_rss for r in runs)),
    )


def bench_processes(
    codes: Sequence[Path], files: Sequence[Path], runs: int
) -> dict[tuple[Path, Path], Median]:
    """Each file validated by each code's command, ``runs`` times after one warm-up,
    the codes taking turns; the median per (code, file)."""
    for code in codes:
        compile_bytecode(code)
    seen: dict[tuple[Path, Path], list[ProcessRun]] = {}
    for path in files:
        for code in codes:
            run_process(validate_argv(path), code)  # warm-up
        for _ in range(runs):
            for code in codes:
                seen.setdefault((code, path), []).append(run_process(validate_argv(path), code))
    return {key: _median(values) for key, values in seen.items()}


def max_rss_bytes() -> int:
    """The process's peak resident set size so far (Linux reports KiB, macOS bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


# --- the report ----------------------------------------------------------------------------


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


def run(
    registry: LayoutRegistry,
    *,
    records: int = PARSE_RECORDS,
    stream_records: int = STREAM_RECORDS,
    repeat: int = REPEAT,
    out: Callable[[str], object] = print,
) -> None:
    layout: Layout = registry.by_standard("KZ301")
    out(f"EI codec benchmark: {layout.label}, Python {sys.version.split()[0]}, {sys.platform}")

    out(f"\nstreaming memory (Reader, {CHUNK // 1024} KiB chunks from a generator):")
    for n in sorted({max(3, stream_records // 10), stream_records}):
        m = bench_stream_memory(registry, n)
        out(
            f"  {m.records:>9,} records, {_mib(m.bytes_streamed):>10} streamed: "
            f"peak traced memory {_mib(m.peak_bytes)} ({m.seconds:.1f} s under tracemalloc)"
        )
    out(f"  process peak RSS so far: {_mib(max_rss_bytes())}")

    start = time.perf_counter()
    data = build_declaration(registry, records)
    built = time.perf_counter() - start
    out(f"\nthroughput on a {records:,}-record file ({_mib(len(data))}, built in {built:.1f} s),")
    out(f"best of {repeat}:")
    parse = bench_parse(registry, data, repeat)
    out(f"  parse             {parse.per_second:>10,.0f} records/s  ({parse.seconds:.2f} s)")
    validate = bench_validate(registry, data, repeat)
    out(f"  parse + validate  {validate.per_second:>10,.0f} records/s  ({validate.seconds:.2f} s)")
    slow = bench_validate(registry, data, repeat, fast=False)
    out(
        f"  same, slow path   {slow.per_second:>10,.0f} records/s  ({slow.seconds:.2f} s)"
        f"  (fast path {validate.per_second / slow.per_second:.1f}x)"
    )


def run_memory(
    registry: LayoutRegistry, stream_records: int, out: Callable[[str], object] = print
) -> None:
    out("\nvalidator memory (streamed from a generator, traced):")
    for n in sorted({max(3, stream_records // 10), stream_records}):
        m = bench_validator_memory(registry, n)
        out(
            f"  {m.records:>9,} records, {m.references:>9,} reference numbers: peak "
            f"{_mib(m.peak_bytes)}, {m.per_reference:,.0f} bytes per reference"
        )


def run_whole(
    registry: LayoutRegistry,
    *,
    records: int,
    runs: int,
    before: Path | None,
    out: Callable[[str], object] = print,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        big, small = Path(tmp) / "big.asc", Path(tmp) / "small.asc"
        # Written by a child: this process stays small, and Linux counts a parent's pages
        # in the peak RSS of the children it starts later.
        subprocess.run(
            [sys.executable, "-m", "tests.benchmarks.codec", "--write", str(big), str(records)],
            cwd=ROOT,
            check=True,
        )
        subprocess.run(
            [sys.executable, "-m", "tests.benchmarks.codec", "--write", str(small), "3"],
            cwd=ROOT,
            check=True,
        )
        floor = max_rss_bytes()
        codes = [ROOT] if before is None else [before, ROOT]
        got = bench_processes(codes, [big, small], runs)
    out(f"\nwhole process, `igo-gateway validate`, median of {runs} (CPU = user + system):")
    names = ["now"] if before is None else ["before", "now"]
    out("  " + " " * 34 + "".join(f"{n:>12}" for n in names))

    def row(label: str, values: Sequence[str]) -> None:
        out(f"  {label:<34}" + "".join(f"{v:>12}" for v in values))

    row(f"{records:,} records: CPU s", [f"{got[c, big].cpu:.3f}" for c in codes])
    row("  records/s (CPU)", [f"{records / got[c, big].cpu:,.0f}" for c in codes])
    row("  wall s", [f"{got[c, big].wall:.3f}" for c in codes])
    row("  peak RSS", [_mib(got[c, big].peak_rss) for c in codes])
    row("start-up (3 records): CPU s", [f"{got[c, small].cpu:.3f}" for c in codes])
    row("  wall s", [f"{got[c, small].wall:.3f}" for c in codes])
    row("  peak RSS", [_mib(got[c, small].peak_rss) for c in codes])
    out(f"  (a peak RSS reads at least this benchmark's own, {_mib(floor)}: see run_whole)")
    if before is not None:
        ratio = got[before, big].cpu / got[ROOT, big].cpu
        start = got[before, small].cpu / got[ROOT, small].cpu
        out(f"  now is {ratio:.1f}x the records/s and starts in 1/{start:.1f} of the CPU time")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.codec", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--records", type=int, default=PARSE_RECORDS, help="throughput file")
    parser.add_argument("--stream-records", type=int, default=STREAM_RECORDS)
    parser.add_argument("--repeat", type=int, default=REPEAT)
    parser.add_argument("--runs", type=int, default=5, help="whole-process runs per command")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--before", type=Path, metavar="DIR", help="a checkout to compare with")
    which.add_argument("--before-rev", metavar="REV", help="a git revision to compare with")
    parser.add_argument(
        "--only-process", action="store_true", help="only the whole-process figures"
    )
    parser.add_argument("--write", nargs=2, metavar=("FILE", "RECORDS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    registry = load_layouts()
    if args.write:
        Path(args.write[0]).write_bytes(build_declaration(registry, int(args.write[1])))
        return 0
    # The whole processes first, while this process is small (see run_whole).
    with tempfile.TemporaryDirectory() as tmp:
        before = args.before
        if args.before_rev is not None:
            before = unpack_revision(args.before_rev, Path(tmp))
        run_whole(registry, records=args.records, runs=args.runs, before=before)
    if not args.only_process:
        run(registry, records=args.records, stream_records=args.stream_records, repeat=args.repeat)
        run_memory(registry, args.stream_records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
