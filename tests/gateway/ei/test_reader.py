"""The incremental reader: need-more-data versus malformed, any chunking, a bounded buffer."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ei import (
    END,
    NEED_DATA,
    BadLine,
    EIError,
    Finding,
    LayoutRegistry,
    Reader,
    Record,
    read_records,
    records_of,
    validate_bytes,
)
from gateway.loading import load_retourcodes
from tests.gateway.ei.fixture_table import MESSAGES
from tests.gateway.ei.test_fuzz import arbitrary, mutated

KZ = (MESSAGES / "kz301-kraamzorg-33001234.asc").read_bytes()
LINES = KZ.split(b"\r\n")[:-1]
HEADER = LINES[0] + b"\r\n"
RETOURCODES = load_retourcodes()


def test_a_partial_line_needs_more_data(registry: LayoutRegistry) -> None:
    reader = Reader(registry)
    assert reader.next_event() is NEED_DATA
    reader.feed(HEADER[:100])
    assert reader.next_event() is NEED_DATA
    reader.feed(HEADER[100:-1])  # everything but the LF
    assert reader.next_event() is NEED_DATA
    reader.feed(b"\n")
    event = reader.next_event()
    assert isinstance(event, Record)
    assert event.type == "01"
    assert event.number == 1
    assert reader.layout is not None
    assert reader.layout.standard == "KZ301"
    assert reader.next_event() is NEED_DATA
    reader.close()
    assert reader.next_event() is END
    assert reader.lines_read == 1


def test_a_complete_line_of_the_wrong_length_is_malformed_at_once(
    registry: LayoutRegistry,
) -> None:
    reader = Reader(registry)
    reader.feed(HEADER + LINES[1][:-5] + b"\r\n")
    assert isinstance(reader.next_event(), Record)
    bad = reader.next_event()
    assert isinstance(bad, BadLine)
    assert bad.number == 2
    assert bad.kind == "02"
    assert bad.record_id == 1
    assert bad.finding.retourcode == "0804"
    assert "305 positions long" in bad.finding.message
    assert reader.next_event() is NEED_DATA


def test_an_unknown_record_type_is_a_bad_line(registry: LayoutRegistry) -> None:
    reader = Reader(registry)
    reader.feed(HEADER + b"05" + LINES[1][2:] + b"\r\n")
    assert isinstance(reader.next_event(), Record)
    bad = reader.next_event()
    assert isinstance(bad, BadLine)
    assert bad.finding.retourcode == "0002"  # kenmerk record onjuist
    assert "unknown record type '05'" in bad.finding.message


def test_the_last_line_without_line_end_is_read_at_close(registry: LayoutRegistry) -> None:
    reader = Reader(registry)
    reader.feed(HEADER + LINES[1])
    assert isinstance(reader.next_event(), Record)
    assert reader.next_event() is NEED_DATA
    reader.close()
    line_end = reader.next_event()
    assert isinstance(line_end, BadLine)
    assert line_end.finding.retourcode == "8095"
    record = reader.next_event()
    assert isinstance(record, Record)
    assert record.raw == LINES[1]
    assert reader.next_event() is END


def test_a_bare_line_feed_is_reported_and_the_record_still_read(
    registry: LayoutRegistry,
) -> None:
    events = list(read_records(registry, [HEADER + LINES[1] + b"\n" + LINES[2] + b"\r\n"]))
    assert [type(e).__name__ for e in events] == ["Record", "BadLine", "Record", "Record"]
    assert isinstance(events[1], BadLine)
    assert events[1].finding.retourcode == "8095"
    assert events[1].finding.record == 2


@pytest.mark.parametrize(
    ("first", "code", "field"),
    [
        (b"01999" + HEADER[5:], "0010", "0102"),
        (HEADER[:5] + b"0201" + HEADER[9:], "0011", "0103"),
        (LINES[1] + b"\r\n", "8026", None),  # a 02 first: record order
        (b"\r\n", "0002", None),  # no record type at all
    ],
    ids=["unknown standard", "unknown version", "no 01 first", "empty first line"],
)
def test_a_file_that_cannot_be_identified_raises(
    registry: LayoutRegistry, first: bytes, code: str, field: str | None
) -> None:
    reader = Reader(registry)
    reader.feed(first)
    with pytest.raises(EIError) as caught:
        reader.next_event()
    assert caught.value.finding.retourcode == code
    assert caught.value.finding.field == field
    assert caught.value.finding.record == 1
    assert isinstance(caught.value, ValueError)


def test_feeding_after_close_is_a_programming_error(registry: LayoutRegistry) -> None:
    reader = Reader(registry)
    reader.close()
    assert reader.next_event() is END
    with pytest.raises(RuntimeError):
        reader.feed(b"01")


def test_a_reader_told_its_layout_does_not_identify(registry: LayoutRegistry) -> None:
    kz302 = registry.by_standard("KZ302")
    reader = Reader(registry, layout=kz302)
    reader.feed(HEADER)
    bad = reader.next_event()
    assert isinstance(bad, BadLine)
    assert bad.finding.retourcode == "0804"  # a 310-position 01 where KZ302 needs 370
    assert reader.layout is kz302


# --- bounded memory -------------------------------------------------------------------------


def _drain(reader: Reader) -> list[Record | BadLine]:
    return list(reader.events())


@pytest.mark.parametrize("after_header", [True, False], ids=["after the 01", "first line"])
def test_a_huge_line_without_line_end_is_skipped_in_bounded_memory(
    registry: LayoutRegistry, after_header: bool
) -> None:
    reader = Reader(registry)
    events: list[Record | BadLine] = []
    if after_header:
        reader.feed(HEADER)
        events += _drain(reader)
    chunk = b"9" * 65536
    tracemalloc.start()
    try:
        for _ in range(320):  # 20 MiB
            reader.feed(chunk)
            events += _drain(reader)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    bad = [e for e in events if isinstance(e, BadLine)]
    assert len(bad) == 1
    assert bad[0].finding.retourcode == "0804"
    assert "longer than" in bad[0].finding.message
    assert bad[0].finding.value is not None
    assert len(bad[0].finding.value) < 100  # quoted, not copied
    # The reader finds its feet at the next line end.
    reader.feed(b"\r\n" + (b"" if after_header else HEADER) + LINES[1] + b"\r\n")
    reader.close()
    rest = _drain(reader)
    assert [e.type for e in rest if isinstance(e, Record)] == (
        ["02"] if after_header else ["01", "02"]
    )
    assert all(isinstance(e, Record) for e in rest)


def test_a_large_file_is_not_held_in_the_buffer(registry: LayoutRegistry) -> None:
    data = (MESSAGES / "kz301-kraamzorg-large.asc").read_bytes()
    reader = Reader(registry)
    count = 0
    tracemalloc.start()
    try:
        for i in range(0, len(data), 4096):
            reader.feed(data[i : i + 4096])
            count += sum(1 for _ in reader.events())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == data.count(b"\r\n")
    assert peak < len(data) // 4


# --- properties -----------------------------------------------------------------------------


def _events(registry: LayoutRegistry, chunks: list[bytes]) -> list[object]:
    return [
        (e.number, e.raw) if isinstance(e, Record) else (e.number, e.finding)
        for e in read_records(registry, chunks)
    ]


_SAMPLES = [
    KZ,
    (MESSAGES / "zh308-ziekenhuis-06001234.asc").read_bytes(),
    (MESSAGES / "invalid-8095-bare-line-feed.asc").read_bytes(),
    (MESSAGES / "invalid-0804-record-too-short.asc").read_bytes(),
    (MESSAGES / "kz302-retour-kraamzorg-33001234.asc").read_bytes(),
]


@settings(max_examples=40, deadline=None)
@given(
    sample=st.sampled_from(_SAMPLES),
    cuts=st.lists(st.integers(min_value=0, max_value=8000), max_size=30),
)
def test_any_chunking_gives_the_same_events(
    registry: LayoutRegistry, sample: bytes, cuts: list[int]
) -> None:
    points = sorted({c % (len(sample) + 1) for c in cuts})
    pieces = [sample[a:b] for a, b in zip([0, *points], [*points, len(sample)], strict=True)]
    assert b"".join(pieces) == sample
    assert _events(registry, pieces) == _events(registry, [sample])


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=1500), prefix=st.sampled_from([b"", HEADER, b"01130"]))
def test_arbitrary_bytes_only_ever_raise_the_codecs_error(
    registry: LayoutRegistry, data: bytes, prefix: bytes
) -> None:
    events: list[object] = []
    try:
        events.extend(read_records(registry, [prefix + data]))
    except EIError as exc:
        events.append(exc.finding)
    assert all(isinstance(e, Record | BadLine | Finding) for e in events)
    result = validate_bytes(registry, prefix + data)
    assert result.retourcodes <= set(RETOURCODES)


@settings(max_examples=150, deadline=None)
@given(
    sample=st.sampled_from(_SAMPLES[:2]),
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)),
        min_size=1,
        max_size=8,
    ),
)
def test_a_damaged_file_is_reported_never_crashes(
    registry: LayoutRegistry, sample: bytes, edits: list[tuple[int, int]]
) -> None:
    damaged = bytearray(sample)
    for position, value in edits:
        damaged[position % len(damaged)] = value
    result = validate_bytes(registry, bytes(damaged))
    # Whatever is wrong is told with a retourcode of the published list.
    assert result.retourcodes <= set(RETOURCODES)


# --- records_of: a whole file split at once ------------------------------------------------


def _read_through_reader(registry: LayoutRegistry, data: bytes) -> list[tuple[str, bytes, int]]:
    return [
        (e.type, e.raw, e.number) for e in read_records(registry, [data]) if isinstance(e, Record)
    ]


def _records_of(registry: LayoutRegistry, data: bytes) -> list[tuple[str, bytes, int]]:
    return [(r.type, r.raw, r.number) for r in records_of(registry, data)]


def _same_records(registry: LayoutRegistry, data: bytes) -> None:
    def outcome(read: Callable[[LayoutRegistry, bytes], object]) -> object:
        try:
            return read(registry, data)
        except EIError as exc:
            return exc.finding

    assert outcome(_records_of) == outcome(_read_through_reader)


@pytest.mark.parametrize("path", sorted(MESSAGES.glob("*.asc")), ids=lambda p: p.name)
def test_records_of_gives_the_readers_records_for_every_fixture(
    registry: LayoutRegistry, path: Path
) -> None:
    _same_records(registry, path.read_bytes())


@pytest.mark.parametrize(
    "data",
    [
        b"",
        HEADER,
        HEADER + LINES[1],  # the last line without its line end
        HEADER + LINES[1] + b"\n" + LINES[2] + b"\r\n",  # a bare line feed
        HEADER + b"\r\n" + LINES[1] + b"\r\n",  # an empty line between
        HEADER + LINES[1] + b"XX\r\n" + LINES[2] + b"\r\n",  # one line too long
        HEADER + LINES[1][:-3] + b"\r\n" + LINES[2] + b"\r\n",  # one line too short
        HEADER + b"77" + LINES[1][2:] + b"\r\n",  # an unknown record type
        HEADER[:50] + b"\r\n" + LINES[1] + b"\r\n",  # a header of the wrong length
        b"02" + HEADER[2:] + LINES[1] + b"\r\n",  # no header first
        HEADER[:2] + b"999" + HEADER[5:],  # an unknown standard
        LINES[0] + b"\r" + LINES[1] + b"\r",  # carriage returns only
        HEADER + LINES[1] + b"\r\n\r\n",  # an empty last line
        HEADER + HEADER + LINES[1] + b"\r\n",  # a second header
    ],
)
def test_records_of_gives_the_readers_records_for_damaged_files(
    registry: LayoutRegistry, data: bytes
) -> None:
    _same_records(registry, data)


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(arbitrary, mutated()))
def test_records_of_gives_the_readers_records_for_any_bytes(
    registry: LayoutRegistry, data: bytes
) -> None:
    _same_records(registry, data)
