"""The validator's fast path gives what the slow path gives, finding for finding.

Both paths run over every fixture in ``fixtures/messages`` (in several chunkings) and over
files hypothesis makes: fixtures mutated byte- and line-wise (as the fuzz tests do), and
valid files with one field overwritten by a value chosen to trip a check (empty, zero,
no date, a credit sign, a duplicate reference, a BSN one digit off). Every result must be
equal: the findings (retourcode, record, field, positions, value and message, in order),
the record count and the counts per record type, the header, and the records handed to
``on_record``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.ei import FieldLayout, LayoutRegistry, Record, RecordLayout, Validator, validate_bytes
from gateway.ei import fast as fast_module
from gateway.ei import validate as validate_module
from gateway.ei.checking import is_prestatie
from gateway.ei.validate import field_problem
from gateway.loading import load_layouts
from tests.benchmarks.codec import build_declaration
from tests.factories import kz301, vk301, zh308
from tests.gateway.ei.fixture_table import MESSAGES, ROWS, Row, chunked
from tests.gateway.ei.test_fuzz import arbitrary, mutated
from tests.gateway.ei.test_fuzz import chunked as random_chunks

REGISTRY = load_layouts()
SAMPLES = {path.name: path.read_bytes() for path in sorted(MESSAGES.glob("*.asc"))}
VALID = sorted(row.file for row in ROWS if row.valid)
SMALL_VALID = [name for name in VALID if len(SAMPLES[name]) < 20_000]
EQUAL = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _run(
    pieces: Iterable[bytes], *, fast: bool, max_findings: int = 1000, watch: bool = True
) -> tuple[object, ...]:
    """The result, and the records handed to ``on_record`` (none given unless ``watch``)."""
    records: list[tuple[str, bytes, int]] = []

    def seen(rec: Record) -> None:
        records.append((rec.type, rec.raw, rec.number))

    validator = Validator(
        REGISTRY, max_findings=max_findings, on_record=seen if watch else None, fast=fast
    )
    for piece in pieces:
        validator.feed(piece)
    result = validator.close()
    header = result.header.raw if result.header is not None else None
    return (
        result.layout.id if result.layout else None,
        result.findings,
        result.records,
        dict(result.counts),
        result.truncated,
        header,
        records,
    )


def _same(data: bytes, pieces: Sequence[bytes] | None = None, max_findings: int = 1000) -> None:
    pieces = [data] if pieces is None else pieces
    slow = _run(pieces, fast=False, max_findings=max_findings)
    quick = _run(pieces, fast=True, max_findings=max_findings)
    assert quick == slow
    unwatched = _run(pieces, fast=True, max_findings=max_findings, watch=False)
    assert unwatched[:-1] == slow[:-1]


# --- every fixture ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [None, 1, 7, 4096], ids=["whole", "1-byte", "7-byte", "4k"])
@pytest.mark.parametrize("row", ROWS, ids=[row.file for row in ROWS])
def test_every_fixture_gives_the_same_result_on_both_paths(row: Row, size: int | None) -> None:
    data = row.read()
    _same(data, list(chunked(data, size)))


@pytest.mark.parametrize("row", ROWS, ids=[row.file for row in ROWS])
def test_the_paths_agree_when_findings_are_cut_off(row: Row) -> None:
    _same(row.read(), max_findings=1)


def test_every_standard_has_a_fast_path() -> None:
    for layout in REGISTRY.standards():
        built = fast_module.program(layout, field_problem, is_prestatie)
        assert built is not None, layout.id
        assert built.strict, layout.id
        assert len(built.loose) == len(built.strict), layout.id


@pytest.mark.parametrize("name", VALID)
def test_a_valid_file_reads_only_its_01_98_and_99_records_the_slow_way(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path really runs: the slow check sees only the records it is not built
    for (the 01 and 99 records, comment records, and records tied to their parent's
    fields — a ZH308 06 under its 04 — with that parent)."""
    slow: list[str] = []
    check = Validator._check

    def counting(self: Validator, rec: Record) -> None:
        slow.append(rec.type)
        check(self, rec)

    monkeypatch.setattr(Validator, "_check", counting)
    data = SAMPLES[name]
    result = _run([data], fast=True)
    assert result[1] == []
    layout = REGISTRY.by_id(str(result[0]))
    tied = {
        t for r in layout.records.values() if r.parent_keys and r.parent for t in (r.type, r.parent)
    }
    assert set(slow) <= {"01", "98", "99", *tied}, slow
    assert slow.count("01") == slow.count("99") == 1


# --- generated files -------------------------------------------------------------------------


@EQUAL
@given(data=st.data(), raw=arbitrary)
def test_arbitrary_bytes_give_the_same_result(data: st.DataObject, raw: bytes) -> None:
    _same(raw, data.draw(random_chunks(raw)))


@EQUAL
@given(data=st.data(), raw=mutated())
def test_mutated_fixtures_give_the_same_result(data: st.DataObject, raw: bytes) -> None:
    _same(raw, data.draw(random_chunks(raw)))


def _valid_file(draw: st.DrawFn) -> bytes:
    """A valid file: a fixture (declarations and retours) or a generated declaration."""
    kind = draw(st.sampled_from(["fixture", "bench", "kz301", "vk301", "zh308"]))
    lines = draw(st.integers(min_value=1, max_value=9))
    if kind == "fixture":
        return SAMPLES[draw(st.sampled_from(VALID))]
    if kind == "bench":  # several women, a few prestaties each
        return build_declaration(REGISTRY, 2 + lines * 2)
    if kind == "kz301":
        comment = draw(st.sampled_from([None, "opmerking"]))
        return kz301(REGISTRY, lines=lines, comment=comment)
    if kind == "vk301":
        return vk301(REGISTRY, lines=lines)
    return zh308(REGISTRY, lines=lines, activities=draw(st.integers(0, 2)))


def _interesting(length: int, kind: str, other: bytes | None) -> list[bytes]:
    values = [b"0" * length, b" " * length, b"9" * length, b"1".rjust(length, b"0")]
    if kind == "date":
        values += [b"20260231", b"20261301", b"20251231", b"20260301", b"00010101"]
    if kind == "amount":
        values += [b"0" * (length - 1) + b"C", b"1".rjust(length - 1, b"0") + b"C"]
    if length == 9:
        values += [b"123456781", b"111222334", b"000000000"]
    if length == 8:
        values += [b"00123456", b"01234567", b"12345678"]
    if other is not None:
        values.append(other)  # the same field of another record: duplicates
    # Bytes no field may hold, or only where the line ends: the loose patterns must not
    # be used for a block that has them.
    values += [c + b" " * (length - 1) for c in (b"\t", b"\r", b"\x00", b"\x7f", b"\x85")]
    values += [b"A\xa0\xff".ljust(length)[:length]]
    return [v for v in values if len(v) == length]


@st.composite
def field_mutated(draw: st.DrawFn) -> bytes:
    """A valid generated file with a few fields overwritten by values that trip checks."""
    lines = _valid_file(draw).split(b"\r\n")
    layout = REGISTRY.lookup(lines[0][2:5].decode(), lines[0][5:7].decode(), lines[0][7:9].decode())
    assert layout is not None
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        at = draw(st.integers(min_value=0, max_value=len(lines) - 2))
        rec = layout.records[lines[at][:2].decode()]
        f = draw(st.sampled_from(rec.fields[1:]))
        others = [line for line in lines[:-1] if line[:2] == lines[at][:2] and line != lines[at]]
        other = draw(st.sampled_from(others))[f.slice] if others else None
        value = draw(st.sampled_from(_interesting(f.length, f.kind, other)))
        line = lines[at]
        lines[at] = line[: f.start - 1] + value + line[f.end :]
    return b"\r\n".join(lines)


@pytest.mark.parametrize("name", SMALL_VALID)
def test_every_field_of_every_record_type_set_to_each_tripping_value(name: str) -> None:
    """Exhaustive where hypothesis samples: in each valid fixture (the large one left out
    for time), the first record of each type gets each of its fields set to each value of
    ``_interesting``, one at a time."""
    lines = SAMPLES[name].split(b"\r\n")
    layout = REGISTRY.lookup(lines[0][2:5].decode(), lines[0][5:7].decode(), lines[0][7:9].decode())
    assert layout is not None
    firsts: dict[bytes, int] = {}
    for at, line in enumerate(lines[:-1]):
        firsts.setdefault(line[:2], at)
    tried = 0
    for kenmerk, at in firsts.items():
        rec = layout.records[kenmerk.decode()]
        others = [line for line in lines[:-1] if line[:2] == kenmerk and line != lines[at]]
        for f in rec.fields[1:]:
            other = others[0][f.slice] if others else None
            for value in _interesting(f.length, f.kind, other):
                changed = list(lines)
                changed[at] = lines[at][: f.start - 1] + value + lines[at][f.end :]
                _same(b"\r\n".join(changed))
                tried += 1
    assert tried > 50


@EQUAL
@given(data=st.data(), raw=field_mutated())
def test_files_with_fields_set_to_tripping_values_give_the_same_result(
    data: st.DataObject, raw: bytes
) -> None:
    _same(raw)
    _same(raw, data.draw(random_chunks(raw)))


def test_a_second_header_with_another_period_is_checked_against_its_own_period() -> None:
    """The fast path remembers which prestatie dates passed, per period and invoice date:
    a date that fitted the first 01 record's period is checked again under the second."""
    data = kz301(REGISTRY, lines=2)
    lines = data.split(b"\r\n")
    header = lines[0]
    layout = REGISTRY.by_standard("KZ301")
    begin = layout.record("01").field("period_begin")
    end = layout.record("01").field("period_end")
    later = header[: begin.start - 1] + b"20260301" + header[begin.end : end.start - 1]
    later += b"20260331" + header[end.end :]
    other = kz301(REGISTRY, lines=2, invoice="F2026-0002").split(b"\r\n")  # other references
    numbered = [line[:2] + b"%012d" % (i + 3) + line[14:] for i, line in enumerate(other[1:3])]
    twice = b"\r\n".join([*lines[:3], later, *numbered, *lines[3:]])
    slow = _run([twice], fast=False)
    codes = [f.retourcode for f in slow[1]]  # type: ignore[attr-defined]
    assert "8007" in codes
    assert "0588" not in codes
    _same(twice)


def test_a_forgetful_memo_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The remembered field verdicts are bounded; forgetting them often gives the same."""
    monkeypatch.setattr(fast_module, "MEMO_LIMIT", 2)
    monkeypatch.setattr(fast_module, "_programs", {})
    data = build_declaration(REGISTRY, 60)
    broken = data.replace(b"20260103", b"20260133", 1)
    assert broken != data
    for raw in (data, broken, SAMPLES["kz301-kraamzorg-large.asc"]):
        _same(raw)
    validator = Validator(REGISTRY)
    validator.feed(SAMPLES["kz301-kraamzorg-large.asc"])
    assert validator.close().valid
    memos = validator._s.memos
    assert memos
    assert all(len(memo) <= 2 for memo in memos)
    assert all(len(seen) <= 2 for seen in validator._s.passed.values())


def test_what_the_fast_path_remembers_belongs_to_one_file() -> None:
    """No value read (a BSN, say) outlives the file it was read from."""
    first = Validator(REGISTRY)
    first.feed(SAMPLES["kz301-kraamzorg-large.asc"])
    first.close()
    second = Validator(REGISTRY)

    assert any(first._s.memos)
    assert not second._s.memos
    built = fast_module.program(REGISTRY.by_standard("KZ301"), field_problem, is_prestatie)
    assert built is not None
    kept = [k for k, v in built.namespace.items() if isinstance(v, dict | set) and v]
    assert kept == ["__builtins__"]


def test_a_rule_the_fast_path_does_not_know_leaves_its_record_type_to_the_slow_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Should the slow path learn a field rule that the generated patterns do not say
    (here: a mandatory number may not be zero), the record types with such a field are
    left to it, and both paths still agree."""

    def stricter(f: FieldLayout, raw: bytes) -> tuple[str, str] | None:
        if f.kind == "number" and f.required == "M" and raw.strip(b"0") == b"":
            return "0806", "zero"
        return field_problem(f, raw)

    monkeypatch.setattr(validate_module, "field_problem", stricter)
    monkeypatch.setattr(fast_module, "_programs", {})
    layout = REGISTRY.by_standard("KZ301")
    built = fast_module.program(layout, stricter, is_prestatie)
    assert built is not None
    kinds = {v.type for v in built.namespace.values() if isinstance(v, RecordLayout)}
    assert kinds == {"03"}  # 02 and 04 have mandatory numbers, 03 has none

    lines = kz301(REGISTRY, lines=2).split(b"\r\n")
    house = layout.record("02").field("house_number")
    lines[1] = lines[1][: house.start - 1] + b"0" * house.length + lines[1][house.end :]
    data = b"\r\n".join(lines)
    assert "0806" in {f.retourcode for f in _run([data], fast=False)[1]}  # type: ignore[attr-defined]
    _same(data)


def test_programs_of_layouts_loaded_again_do_not_pile_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_module, "_PROGRAMS_KEPT", 2)
    monkeypatch.setattr(fast_module, "_programs", {})
    layouts = REGISTRY.standards()[:3]
    built = [fast_module.program(layout, field_problem, is_prestatie) for layout in layouts]

    assert len(fast_module._programs) == 2
    assert fast_module.program(layouts[2], field_problem, is_prestatie) is built[2]


def test_validators_on_several_threads_agree_with_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """As the gateway runs them on its worker threads, programs being built meanwhile."""
    monkeypatch.setattr(fast_module, "_programs", {})
    names = sorted(SAMPLES)
    alone = {name: _run([SAMPLES[name]], fast=False) for name in names}
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda name: _run([SAMPLES[name]], fast=True), names * 3))
    assert together == [alone[name] for name in names * 3]


def _results(registry: LayoutRegistry, data: bytes, *, fast: bool) -> tuple[object, ...]:
    result = validate_bytes(registry, data, fast=fast)
    return (result.findings, result.records, dict(result.counts))


def test_a_new_layout_just_works(tmp_path: Path) -> None:
    """The fast path follows the layout files: here the tariff made an amount (with a
    sign), in a copy of the layouts; a credit tariff is then caught by both paths."""
    layouts = tmp_path / "layouts"
    shutil.copytree(MESSAGES.parents[1] / "schemas" / "layouts", layouts)
    frame = layouts / "frame-generic-310.xml"
    text = frame.read_text(encoding="utf-8")
    assert text.count('name="tariff" type="N" kind="number"') == 1
    frame.write_text(
        text.replace(
            'name="tariff" type="N" kind="number"', 'name="tariff" type="N" kind="amount"'
        ),
        encoding="utf-8",
    )
    registry = load_layouts(layouts)
    tariff = registry.by_standard("KZ301").record("04").field("tariff")
    assert tariff.kind == "amount"
    data = kz301(registry, lines=3)
    lines = data.split(b"\r\n")
    assert lines[2][tariff.end - 1 : tariff.end] == b"D"
    lines[2] = lines[2][: tariff.end - 1] + b"C" + lines[2][tariff.end :]
    credit = b"\r\n".join(lines)

    for raw in (data, credit):
        assert _results(registry, raw, fast=True) == _results(registry, raw, fast=False)
    assert validate_bytes(registry, data).valid
    assert "0612" in validate_bytes(registry, credit).retourcodes
