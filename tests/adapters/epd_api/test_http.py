"""The EPD API's request limits and its reading of upload bodies.

With Twisted's in-memory transport and clock: an oversized body is refused before it is
read, a request that is not received in time is answered 408, and a refused client that
does not close is cut off. An upload body gives its parts byte for byte, or a 400 reason."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import cast

import pytest
from twisted.internet.task import Clock
from twisted.web import resource, server

from adapters.epd_api.http import (
    CLOSE_GRACE_SECONDS,
    UploadFormError,
    limited_request_factory,
    parse_upload,
)
from tests.adapters.disk_scan import files_holding, open_files_holding
from tests.adapters.inmemory_http import Connection, connect

LIMIT = 100
DEADLINE = 5.0


class Counting(resource.Resource):
    """Answers with the size of the body it got; counts the requests that reached it."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.seen: list[int] = []

    def render_POST(self, request: server.Request) -> bytes:
        assert request.content is not None
        size = len(request.content.read())
        self.seen.append(size)
        return b"%d" % size


def open_connection(app: Counting, clock: Clock) -> Connection:
    site = server.Site(app, reactor=clock)
    site.requestFactory = limited_request_factory(LIMIT, DEADLINE, clock)
    return connect(site)


def status_and_body(transport: Connection) -> tuple[int, dict[str, object]]:
    status, _, body = transport.response()
    return status, json.loads(body)


def test_a_body_within_the_limit_reaches_the_resource() -> None:
    app, clock = Counting(), Clock()
    transport = open_connection(app, clock)
    transport.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"a" * 100)
    assert app.seen == [100]
    assert transport.written().startswith(b"HTTP/1.1 200 ")


def test_an_announced_oversized_body_is_refused_before_it_is_sent() -> None:
    app, clock = Counting(), Clock()
    transport = open_connection(app, clock)
    transport.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n")
    status, body = status_and_body(transport)
    assert status == 413
    assert body["code"] == "bericht-te-groot"
    assert transport.disconnecting
    transport.send(b"a" * 101)  # whatever still arrives is dropped
    assert app.seen == []


def test_a_chunked_body_is_cut_off_where_it_passes_the_limit() -> None:
    app, clock = Counting(), Clock()
    transport = open_connection(app, clock)
    transport.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    transport.send(b"40\r\n" + b"a" * 64 + b"\r\n")
    assert transport.written() == b""  # 64 bytes: still fine
    transport.send(b"40\r\n" + b"a" * 64 + b"\r\n")
    status, _ = status_and_body(transport)
    assert status == 413
    transport.send(b"0\r\n\r\n")
    assert app.seen == []


def test_a_request_not_received_within_the_deadline_is_answered_408() -> None:
    app, clock = Counting(), Clock()
    transport = open_connection(app, clock)
    transport.send(b"POST / HTTP/1.1\r\nHost: x\r\n")
    for _ in range(4):  # trickling keeps the connection busy, not the request alive
        clock.advance(DEADLINE / 5)
        transport.send(b"X")
    assert transport.written() == b""
    clock.advance(DEADLINE / 5)
    status, body = status_and_body(transport)
    assert status == 408
    assert body["code"] == "verzoek-te-traag"
    assert transport.disconnecting
    assert not transport.disconnected
    clock.advance(CLOSE_GRACE_SECONDS)
    assert transport.disconnected  # cut off: it did not close its side
    assert app.seen == []


def test_a_request_received_in_time_is_not_timed_out_afterwards() -> None:
    app, clock = Counting(), Clock()
    transport = open_connection(app, clock)
    transport.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    clock.advance(DEADLINE * 2)
    assert app.seen == [3]
    assert b" 408 " not in transport.written()


# --- the upload body ---------------------------------------------------------------------------


BOUNDARY = "b0und4ry"


class FormRequest:
    """What :func:`parse_upload` reads of a request: its content type and its body."""

    def __init__(self, body: bytes, content_type: bytes) -> None:
        self.content = io.BytesIO(body)
        self.content_type = content_type

    def getHeader(self, name: bytes) -> bytes | None:
        return self.content_type if name.lower() == b"content-type" else None


def form_request(body: bytes, content_type: str | None = None) -> server.Request:
    kind = content_type or f"multipart/form-data; boundary={BOUNDARY}"
    return cast(server.Request, FormRequest(body, kind.encode()))


def part(name: str, data: bytes, *headers: str, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    head = "".join(f"{h}\r\n" for h in (f"Content-Disposition: {disposition}", *headers))
    return f"--{BOUNDARY}\r\n{head}\r\n".encode() + data + b"\r\n"


METADATA = b'{"afzender": {"rol": "zorgaanbieder", "code": "33001234"}}'
END = f"--{BOUNDARY}--\r\n".encode()


def test_an_upload_body_gives_its_metadata_payload_and_file_name_byte_for_byte() -> None:
    payload = bytes(range(256)) + b"\r\n--not-the-boundary\r\n" + "Zoë".encode("latin-1")
    body = part("berichtMetadata", METADATA, "Content-Type: application/json")
    body += part("payload", payload, filename="decl aratie.asc")

    assert parse_upload(form_request(body + END), 10_000) == (
        METADATA,
        payload,
        "decl aratie.asc",
    )


def test_the_first_part_of_a_name_counts_and_unknown_parts_are_ignored() -> None:
    body = part("payload", b"first", filename="a.asc") + part("payload", b"second")
    body += part("other", b"x") + part("berichtMetadata", METADATA)

    assert parse_upload(form_request(body + END), 10_000) == (METADATA, b"first", "a.asc")


def test_a_part_in_base64_or_quoted_printable_is_decoded() -> None:
    body = part("berichtMetadata", METADATA, "Content-Transfer-Encoding: quoted-printable")
    body += part("payload", b"MDFLWjMwMQ==", "Content-Transfer-Encoding: base64")

    assert parse_upload(form_request(body + END), 10_000)[:2] == (METADATA, b"01KZ301")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (part("berichtMetadata", METADATA) + part("payload", b"x"), "multipart-ongeldig"),  # cut
        (f"--{BOUNDARY}\r\nno headers at all".encode(), "multipart-ongeldig"),
        (
            f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nx\r\n".encode() + END,
            "multipart-ongeldig",
        ),
        (part("payload", b"x", "Content-Transfer-Encoding: base64") + END, "multipart-ongeldig"),
        (b"", "multipart-ongeldig"),
        (
            part("payload", b"x") * 17 + part("berichtMetadata", METADATA) + END,
            "multipart-ongeldig",
        ),
        (part("payload", b"x") + END, "onderdeel-ontbreekt"),
        (part("berichtMetadata", b"{" * 101) + part("payload", b"x") + END, "metadata-ongeldig"),
    ],
)
def test_an_unusable_upload_body_is_refused_with_its_reason(body: bytes, code: str) -> None:
    with pytest.raises(UploadFormError) as refused:
        parse_upload(form_request(body), 100)

    assert (refused.value.status, refused.value.code) == (400, code)


def test_a_body_that_is_not_multipart_is_refused() -> None:
    with pytest.raises(UploadFormError) as refused:
        parse_upload(form_request(b"plain", "text/plain"), 100)

    assert refused.value.code == "geen-multipart"


BSN = b"999990019"  # a synthetic BSN that passes the eleven-proof


def test_a_large_upload_is_never_written_to_disk_in_the_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """twisted.web spools a body of 100,000 bytes or more to a temporary file by itself;
    an upload of 19 MB with BSNs in it stays in memory while and after it is received."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    app, clock = Counting(), Clock()
    site = server.Site(app, reactor=clock)
    made: list[server.Request] = []
    bound = limited_request_factory(20_000_000, DEADLINE, clock)

    class Recorded(bound):  # type: ignore[valid-type,misc]
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    site.requestFactory = Recorded
    transport = connect(site)
    line = b"02" + BSN + b" " * 297 + b"\r\n"
    body = line * (19_000_000 // len(line))
    transport.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
    half = len(body) // 2
    for start in range(0, half, 1_000_000):
        transport.send(body[start : min(start + 1_000_000, half)])
    (request,) = made
    assert isinstance(request.content, io.BytesIO)
    assert open_files_holding(BSN) == []
    assert files_holding(tmp_path, BSN) == []
    for start in range(half, len(body), 1_000_000):
        transport.send(body[start : start + 1_000_000])
    assert app.seen == [len(body)]
    assert transport.written().startswith(b"HTTP/1.1 200 ")
    assert open_files_holding(BSN) == []
    assert files_holding(tmp_path, BSN) == []
