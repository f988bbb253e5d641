"""The gateway benchmark on toy sizes, so that ``python -m tests.benchmarks.gateway`` cannot
rot unnoticed. Nothing here is timed."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import psycopg
import pytest

from tests.benchmarks import gateway as bench

pytestmark = pytest.mark.slow


def test_uploads_through_the_real_server_are_all_acknowledged() -> None:
    figures = bench.bench_uploads(clients=2, files_per_client=2, records=5)

    assert (figures.uploads, figures.failures) == (4, 0)
    assert figures.per_second > 0
    assert 0 < figures.percentile(0.5) <= figures.percentile(0.99)
    # Read from the gateway's own metrics: at most one commit an upload, and a job of
    # serve's own (a lease, a status) may commit during the run on a busy machine, so
    # the uploads per commit may then be fewer than one.
    assert 1 <= figures.commits <= figures.uploads + 2
    assert figures.uploads_per_commit == figures.uploads / figures.commits
    # The server's own CPU time over the run, from /proc (this suite runs on Linux).
    assert figures.cpu_seconds is not None
    assert figures.cpu_seconds > 0
    out = io.StringIO()
    bench.report_uploads(figures, out)
    assert "acknowledged uploads/s" in out.getvalue()
    assert "uploads per commit" in out.getvalue()
    assert "ms per upload" in out.getvalue()


def test_paced_clients_from_one_process_are_all_acknowledged() -> None:
    figures = bench.bench_uploads(clients=3, files_per_client=2, records=4, processes=1, rate=30)

    assert (figures.uploads, figures.failures, figures.processes) == (6, 0, 1)
    assert figures.store == "SQLite"
    # Paced at 30/s, six uploads cannot all be done before the last one is due.
    assert figures.seconds >= 5 / 30


@pytest.mark.postgres
def test_uploads_on_postgresql_are_all_acknowledged_and_the_schema_dropped(
    postgres_url: str,
) -> None:
    figures = bench.bench_uploads(clients=2, files_per_client=2, records=5, store_url=postgres_url)

    assert (figures.uploads, figures.failures, figures.store) == (4, 0, "PostgreSQL")
    assert figures.commits >= 1
    with psycopg.connect(postgres_url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'igo_bench_%'"
        ).fetchone()
    assert left == (0,)


def test_the_script_runs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--clients", "2", "--files-per-client", "1", "--records", "4"]
    assert bench.main(args) == 0

    assert "uploads/s" in capsys.readouterr().out


def test_the_bare_server_acknowledges_every_upload_in_group_commits() -> None:
    figures = bench.bench_bare(clients=2, files_per_client=2, records=5, processes=1)

    assert (figures.uploads, figures.failures) == (4, 0)
    assert 1 <= figures.commits <= 4
    # Measured (from /proc), though a toy run may take less than one clock tick (10 ms).
    assert figures.cpu_seconds is not None
    assert figures.cpu_seconds >= 0


def test_the_comparison_with_the_bare_server_prints_both_and_the_ratios(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["--vs-bare", "--clients", "2", "--files-per-client", "1", "--records", "4"]
    assert bench.main(args) == 0

    out = capsys.readouterr().out
    assert "bare server" in out
    assert "gateway / bare: throughput" in out
    assert "the bare p99" in out
    assert "server CPU per upload" in out


def test_cpu_seconds_reads_this_process_and_grows_with_work() -> None:
    before = bench.cpu_seconds(os.getpid())
    sum(i * i for i in range(2_000_000))
    after = bench.cpu_seconds(os.getpid())

    assert before is not None
    assert after is not None
    assert after > before


def test_cpu_seconds_of_no_such_process_is_unknown() -> None:
    # Above Linux's largest possible process id (2**22).
    assert bench.cpu_seconds(2**22 + 12345) is None


def test_the_parts_take_every_upload_in_and_count_their_cpu_time() -> None:
    parts = bench.bench_parts(clients=2, files_per_client=3, records=5, in_flight=2)

    assert (parts.uploads, parts.records) == (6, 5)
    assert 1 <= parts.commits <= parts.uploads
    assert parts.checks_seconds > 0
    assert parts.intake_seconds > 0
    assert parts.intake_per_upload == pytest.approx(parts.checks_per_upload + parts.rest_per_upload)
    out = io.StringIO()
    bench.report_parts(parts, out)
    assert "file checks and lines" in out.getvalue()
    assert "intake without HTTP" in out.getvalue()


def test_the_script_prints_the_parts(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--parts", "--clients", "2", "--files-per-client", "1", "--records", "4"]
    assert bench.main(args) == 0

    assert "message, store, commit" in capsys.readouterr().out


def test_a_bare_server_under_one_clock_tick_is_said_to_be_unmeasurable() -> None:
    def run(cpu: float) -> bench.UploadFigures:
        return bench.UploadFigures(2, 2, 4, 1.0, (0.1, 0.2), 0, cpu_seconds=cpu)

    out = io.StringIO()
    bench.report_comparison(bench.Comparison((run(0.01),), (run(0.0),)), out)
    assert "server CPU per upload not measurable" in out.getvalue()

    out = io.StringIO()
    bench.report_comparison(bench.Comparison((run(0.04),), (run(0.02),)), out)
    assert "server CPU per upload 2.0x" in out.getvalue()


def test_uploads_with_check_workers_are_all_acknowledged() -> None:
    figures = bench.bench_uploads(clients=2, files_per_client=2, records=6, check_processes=1)

    assert (figures.uploads, figures.failures, figures.check_processes) == (4, 0, 1)


def test_cpu_seconds_counts_the_running_children_too() -> None:
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    child = subprocess.Popen(
        [sys.executable, "-c", burn + "print('done', flush=True)\ntime.sleep(30)"],
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"done\n"
        alone = bench._process_cpu(os.getpid())
        with_children = bench.cpu_seconds(os.getpid())
        assert alone is not None
        assert with_children is not None
        assert with_children - alone >= 0.25  # the child's 0.3 s, counted once
    finally:
        child.kill()
        child.wait()
