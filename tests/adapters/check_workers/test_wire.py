"""The check workers' frames carry exactly what the intake checks give: every fixture
file, valid and invalid, and multi-line uploads of each standard, give the same result,
findings, lines and hash through a reply as from :func:`gateway.upload_checks.check_upload`."""

from __future__ import annotations

import hashlib
import io

import pytest

from adapters.check_workers.wire import (
    HEADER,
    MAX_FRAME,
    checked_from_reply,
    read_frame,
    reply_failed,
    reply_for,
    reply_id,
    request_for,
    unpack_request,
)
from gateway.ei import LayoutRegistry
from gateway.loading import load_layouts
from gateway.ports.intake import CheckedFile
from gateway.upload_checks import check_upload
from tests.factories import kz301, vk301, zh308
from tests.gateway.ei.fixture_table import ROWS

PARTICIPANT = "33001234"
REGISTRY = load_layouts()


def _files() -> list[tuple[str, bytes]]:
    files = [(row.file, row.read()) for row in ROWS]
    files.append(("kz301-40-lines", kz301(REGISTRY, agb=PARTICIPANT, lines=40)))
    files.append(("vk301-40-lines", vk301(REGISTRY, agb=PARTICIPANT, lines=40)))
    files.append(("zh308-12-lines", zh308(REGISTRY, lines=12)))
    return files


def _through_a_reply(registry: LayoutRegistry, payload: bytes) -> CheckedFile:
    result, lines = check_upload(registry, payload, "t-1", PARTICIPANT)
    data = read_frame(io.BytesIO(reply_for(7, hashlib.sha256(payload).hexdigest(), result, lines)))
    assert data is not None
    request_id, values = reply_id(data)
    assert request_id == 7
    return checked_from_reply(registry, values)


@pytest.mark.parametrize(("name", "payload"), _files(), ids=[name for name, _ in _files()])
def test_a_reply_gives_what_the_checks_gave(name: str, payload: bytes) -> None:
    result, lines = check_upload(REGISTRY, payload, "t-1", PARTICIPANT)
    checked = _through_a_reply(REGISTRY, payload)

    assert checked.sha256 == hashlib.sha256(payload).hexdigest()
    got = checked.result
    assert got.layout is result.layout
    assert got.findings == result.findings
    assert (got.records, got.counts, got.truncated) == (
        result.records,
        result.counts,
        result.truncated,
    )
    if result.header is None:
        assert got.header is None
    else:
        assert got.header is not None
        assert got.header.layout is result.header.layout
        assert (got.header.raw, got.header.number) == (result.header.raw, result.header.number)
    assert checked.lines == lines
    assert [type(line.prestatie_date) for line in checked.lines] == [
        type(line.prestatie_date) for line in lines
    ]


def test_the_files_compared_hold_lines_and_findings() -> None:
    """The comparison above is not empty: it sees lines, and findings of several codes."""
    checked = [check_upload(REGISTRY, payload, "t", PARTICIPANT) for _, payload in _files()]
    assert sum(len(lines) for _, lines in checked) >= 80
    codes = {f.retourcode for result, _ in checked for f in result.findings}
    assert len(codes) >= 5


def test_a_request_comes_out_as_it_went_in() -> None:
    data = read_frame(io.BytesIO(request_for(3, b"\x00payload\xff", "t-9", PARTICIPANT)))
    assert data is not None
    assert unpack_request(data) == (3, b"\x00payload\xff", "t-9", PARTICIPANT)


def test_a_failed_reply_has_no_values() -> None:
    data = read_frame(io.BytesIO(reply_failed(5)))
    assert data is not None
    assert reply_id(data) == (5, ())


def test_a_frame_cut_short_is_the_end_and_one_too_large_is_refused() -> None:
    whole = request_for(1, b"x" * 100, "t", PARTICIPANT)
    assert read_frame(io.BytesIO(whole[:-1])) is None
    assert read_frame(io.BytesIO(whole[:2])) is None
    assert read_frame(io.BytesIO(b"")) is None
    with pytest.raises(ValueError, match="MAX_FRAME"):
        read_frame(io.BytesIO(HEADER.pack(MAX_FRAME + 1)))
