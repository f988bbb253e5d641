"""The benchmark script on tiny sizes, so that ``make bench`` cannot rot unnoticed.
Nothing here is timed."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.ei import LayoutRegistry, validate_bytes
from gateway.loading import load_layouts
from tests.benchmarks import codec as bench


@pytest.fixture(scope="module")
def registry() -> LayoutRegistry:
    return load_layouts()


@pytest.mark.parametrize("records", [3, 4, 5, 9, 101])
def test_the_built_file_is_valid_and_has_the_asked_number_of_records(
    registry: LayoutRegistry, records: int
) -> None:
    result = validate_bytes(registry, bench.build_declaration(registry, records))

    assert result.findings == []
    assert result.records == records


@pytest.mark.parametrize("records", [3, 10, 257])
def test_the_streamed_file_is_the_built_file_in_chunks(
    registry: LayoutRegistry, records: int
) -> None:
    pieces = list(bench.stream_declaration(registry, records, chunk_size=1000))

    assert b"".join(pieces) == bench.build_declaration(registry, records)
    assert {len(p) for p in pieces[:-1]} <= {1000}
    assert 0 < len(pieces[-1]) <= 1000


def test_streaming_uses_64_kib_chunks(registry: LayoutRegistry) -> None:
    pieces = list(bench.stream_declaration(registry, 500))

    assert [len(p) for p in pieces[:-1]] == [64 * 1024] * (len(pieces) - 1)
    assert sum(map(len, pieces)) == 500 * 312


def test_too_small_a_file_is_refused(registry: LayoutRegistry) -> None:
    with pytest.raises(ValueError, match="at least"):
        bench.build_declaration(registry, 2)
    with pytest.raises(ValueError, match="at least"):
        next(bench.stream_declaration(registry, 2))


def test_parse_and_validate_count_every_record(registry: LayoutRegistry) -> None:
    data = bench.build_declaration(registry, 40)

    parse = bench.bench_parse(registry, data, repeat=2)
    validate = bench.bench_validate(registry, data, repeat=1)

    assert parse.records == validate.records == 40
    assert parse.seconds > 0
    assert validate.per_second > 0


def test_a_benchmark_of_an_invalid_file_is_refused(registry: LayoutRegistry) -> None:
    data = bench.build_declaration(registry, 10).replace(b"BENCH-2 ", b"BENCH-3 ")

    with pytest.raises(RuntimeError, match="not valid"):
        bench.count_validated(registry, [data])


def test_stream_memory_is_traced(registry: LayoutRegistry) -> None:
    memory = bench.bench_stream_memory(registry, 300)

    assert memory.records == 300
    assert memory.bytes_streamed == 300 * 312
    assert memory.peak_bytes > 0


def test_the_script_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--records", "30", "--stream-records", "50", "--repeat", "1", "--runs", "1"]
    assert bench.main(argv) == 0

    out = capsys.readouterr().out
    assert "KZ301 v3.2" in out
    assert out.count("peak traced memory") == 2
    assert "process peak RSS" in out
    assert "  parse  " in out
    assert "  parse + validate  " in out
    assert "  same, slow path  " in out
    assert out.count("bytes per reference") == 2
    assert "30 records: CPU s" in out
    assert "start-up (3 records): CPU s" in out
    assert "before" not in out


def test_the_slow_path_is_measured_on_the_same_file(registry: LayoutRegistry) -> None:
    data = bench.build_declaration(registry, 40)

    slow = bench.bench_validate(registry, data, repeat=1, fast=False)

    assert slow.records == 40


def test_validator_memory_counts_the_references(registry: LayoutRegistry) -> None:
    memory = bench.bench_validator_memory(registry, 101)

    assert memory.records == 101
    assert memory.references == 74  # 99 details, one 02 per three 04s
    assert memory.per_reference > 0


def test_whole_processes_are_compared_side_by_side(
    registry: LayoutRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    bench.run_whole(registry, records=20, runs=1, before=bench.ROOT)

    out = capsys.readouterr().out
    assert "before" in out
    assert "now" in out
    assert "20 records: CPU s" in out
    assert "x the records/s" in out


def test_a_failing_command_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.asc"

    with pytest.raises(RuntimeError, match="exited 2"):
        bench.run_process(bench.validate_argv(missing), bench.ROOT)
