"""Fuzzing the codec with hypothesis: arbitrary bytes and structurally mutated fixture files
(bytes flipped, inserted and deleted; lines dropped, doubled, swapped and cut; files
spliced), fed in random chunkings.

What must hold for every input:

* the :class:`~gateway.ei.Reader` yields records and bad lines, and raises nothing but the
  codec's one error, :class:`~gateway.ei.EIError`;
* every record it yields gives its raw bytes back unchanged, and every field of it either
  decodes or raises :class:`~gateway.ei.EIError` (never another exception);
* the :class:`~gateway.ei.Validator` raises nothing at all, and gives the same result
  however the bytes are chunked;
* every finding carries a retourcode of ``schemas/retourcodes.xml`` and a line number
  inside the file (0 for the file as a whole).

Bounded for CI: a few hundred examples per property (``max_examples``), no deadline (the
machine is shared), the whole module in seconds. The hypothesis database keeps what it
finds between local runs; a failing input is printed and belongs in ``fixtures/`` as a
regression.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.ei import BadLine, EIError, Finding, LayoutRegistry, Record, Validator, read_records
from gateway.loading import load_layouts, load_retourcodes
from tests.gateway.ei.fixture_table import MESSAGES

REGISTRY = load_layouts()
RETOURCODES = frozenset(load_retourcodes())
SAMPLES = {path.name: path.read_bytes() for path in sorted(MESSAGES.glob("*.asc"))}
# Small files mutate fastest; the large one is kept for splicing and cutting.
SMALL = sorted(name for name, data in SAMPLES.items() if 0 < len(data) < 20_000)
HEADERS = sorted({data.split(b"\r\n", 1)[0] + b"\r\n" for data in SAMPLES.values() if data})
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- strategies ------------------------------------------------------------------------------


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n")


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A fixture file with a few structural and byte-level mutations."""
    data = SAMPLES[draw(st.sampled_from(SMALL))]
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        kind = draw(
            st.sampled_from(
                ["flip", "insert", "delete", "drop", "double", "swap", "cut", "splice", "widen"]
            )
        )
        size = max(len(data), 1)
        at = draw(st.integers(min_value=0, max_value=size - 1))
        lines = _lines(data)
        line = draw(st.integers(min_value=0, max_value=max(len(lines) - 1, 0)))
        if kind == "flip":
            value = draw(st.sampled_from([0, 9, 10, 13, 32, 45, 48, 57, 67, 68, 0x80, 0xFF]))
            data = data[:at] + bytes([value]) + data[at + 1 :]
        elif kind == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + draw(st.integers(min_value=1, max_value=40)) :]
        elif kind == "drop":
            data = b"\r\n".join(lines[:line] + lines[line + 1 :])
        elif kind == "double":
            data = b"\r\n".join(lines[: line + 1] + lines[line:])
        elif kind == "swap" and len(lines) > 2:
            other = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines[line], lines[other] = lines[other], lines[line]
            data = b"\r\n".join(lines)
        elif kind == "cut":
            data = data[:at]
        elif kind == "splice":
            other_data = SAMPLES[draw(st.sampled_from(sorted(SAMPLES)))]
            data = data[:at] + other_data[draw(st.integers(0, max(len(other_data) - 1, 0))) :]
        elif kind == "widen":
            lines[line] = lines[line] + b" " * draw(st.integers(min_value=1, max_value=400))
            data = b"\r\n".join(lines)
    return data


arbitrary = st.one_of(
    st.binary(max_size=2000),
    st.tuples(st.sampled_from(HEADERS), st.binary(max_size=2000)).map(lambda t: t[0] + t[1]),
    st.lists(
        st.sampled_from([*HEADERS, b"\r\n", b"\n", b"\r", b"04", b"99", b"0" * 308, b" " * 308]),
        max_size=12,
    ).map(b"".join),
)


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at random points (empty pieces included)."""
    cuts = draw(st.lists(st.integers(min_value=0, max_value=len(data)), max_size=20))
    points = sorted(cuts)
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


# --- checks ----------------------------------------------------------------------------------


def _line_count(data: bytes) -> int:
    """Lines as the reader counts them: ended by LF (a bare CR LF or LF alike)."""
    return data.count(b"\n") + 1


def _check_finding(finding: Finding, lines: int) -> None:
    assert finding.retourcode in RETOURCODES, finding
    assert 0 <= finding.record <= lines + 1, (finding, lines)
    assert finding.message


def _read(registry: LayoutRegistry, pieces: Sequence[bytes]) -> list[Record | BadLine]:
    """Every event, or the events up to the codec's error (which must carry a finding)."""
    events: list[Record | BadLine] = []
    error: EIError | None = None
    try:
        events.extend(read_records(registry, pieces))
    except EIError as exc:
        error = exc
    if error is not None:
        assert isinstance(error.finding, Finding)
        _check_finding(error.finding, _line_count(b"".join(pieces)))
    return events


def _decode_every_field(record: Record) -> None:
    assert record.to_bytes() == record.raw + b"\r\n"
    for f in record.layout.fields:
        error: EIError | None = None
        try:
            record[f.name]
        except EIError as exc:
            error = exc
        if error is not None:
            assert error.finding.retourcode in RETOURCODES, error.finding


def _validate(registry: LayoutRegistry, pieces: Sequence[bytes]) -> tuple[object, ...]:
    validator = Validator(registry, max_findings=200)
    for piece in pieces:
        validator.feed(piece)
    result = validator.close()
    lines = _line_count(b"".join(pieces))
    for finding in result.findings:
        _check_finding(finding, lines)
    layout = result.layout.standard if result.layout else None
    return (layout, result.findings, result.records, dict(result.counts), result.truncated)


def _fuzz_once(data: bytes, pieces: list[bytes]) -> None:
    assert b"".join(pieces) == data
    whole = _read(REGISTRY, [data])
    assert _read(REGISTRY, pieces) == whole
    for event in whole:
        if isinstance(event, Record):
            _decode_every_field(event)
        else:
            _check_finding(event.finding, _line_count(data))
    assert _validate(REGISTRY, pieces) == _validate(REGISTRY, [data])


# --- properties ------------------------------------------------------------------------------


@FUZZ
@given(data=st.data(), raw=arbitrary)
def test_arbitrary_bytes_in_any_chunking(data: st.DataObject, raw: bytes) -> None:
    _fuzz_once(raw, data.draw(chunked(raw)))


@FUZZ
@given(data=st.data(), raw=mutated())
def test_mutated_fixture_files_in_any_chunking(data: st.DataObject, raw: bytes) -> None:
    _fuzz_once(raw, data.draw(chunked(raw)))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), name=st.sampled_from(sorted(SAMPLES)))
def test_every_fixture_gives_the_same_answer_in_any_chunking(
    data: st.DataObject, name: str
) -> None:
    raw = SAMPLES[name]
    _fuzz_once(raw, data.draw(chunked(raw)))


# --- what fuzzing found, kept as regressions ---------------------------------------------------


def test_found_an_overlong_line_is_told_alike_however_it_arrives() -> None:
    """A record two positions too long, its CR in one chunk and its LF in the next, was told
    as "longer than 310 positions" and, in one chunk, as "313 positions long"."""
    lines = _lines(SAMPLES["kz301-minimal.asc"])
    lines[1] += b"  "
    data = b"\r\n".join(lines)
    cut = data.index(b"\r\n", len(lines[0]) + 2) + 1  # between the widened line's CR and LF
    _fuzz_once(data, [data[:cut], data[cut:]])
