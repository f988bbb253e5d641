"""HTTP plumbing for the EPD API: request limits and problem+json responses.

:class:`LimitedRequest` refuses an oversized body as soon as its length is known (or, for
chunked bodies, as soon as it passes the limit) with ``413`` — without reading the rest —
and drops clients that take longer than a deadline to send their request (slow-loris). It
keeps the body in memory, never in a temporary file.
"""

from __future__ import annotations

import binascii
import io
import json
import quopri
from typing import Any

import multipart
from twisted.internet.interfaces import IDelayedCall
from twisted.web import http, server

from gateway.metrics import Metrics
from gateway.ports.runtime import Clock

__all__ = [
    "LimitedRequest",
    "MeteredSite",
    "UploadFormError",
    "limited_request_factory",
    "parse_upload",
    "problem",
    "problem_bytes",
]

PROBLEM_TYPE = "urn:igo-gateway:problem:"
CLOSE_GRACE_SECONDS = 2.0


def problem_bytes(status: int, code: str, detail: str, **extra: Any) -> bytes:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + code,
        "title": http.RESPONSES.get(status, b"Error").decode("ascii"),
        "status": status,
        "code": code,
        "detail": detail,
    }
    body.update(extra)
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def problem(request: server.Request, status: int, code: str, detail: str, **extra: Any) -> bytes:
    """Set ``request``'s status and content type for a problem+json body and return it."""
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/problem+json")
    request.setHeader(b"cache-control", b"no-store")
    return problem_bytes(status, code, detail, **extra)


class LimitedRequest(server.Request):
    """A request with a body-size limit and a deadline for receiving the whole request.

    The site sets the class attributes through :func:`limited_request_factory`.
    """

    max_body: int = 20_000_000  # [epd_api] max_upload_bytes sets it
    receive_deadline: float = 30.0
    clock: Clock | None = None

    def __init__(self, channel: http.HTTPChannel, *args: Any, **kwargs: Any) -> None:
        # The body is parsed by the API itself (it needs the file name and the raw bytes),
        # never by twisted.web into request.args.
        super().__init__(channel, *args, parsePOSTFormSubmission=False, **kwargs)  # type: ignore[no-untyped-call]
        self._received = 0
        self._refused = False
        self._deadline: IDelayedCall | None = None
        self.arrived: float | None = None
        if self.clock is not None:
            self.arrived = self.clock.seconds()
            self._deadline = self.clock.callLater(self.receive_deadline, self._too_slow)

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.max_body:
            self._refuse_oversized()
            return
        # Not twisted.web's own choice, which spools a body of 100,000 bytes or more (or of
        # unknown length) to an unencrypted temporary file: uploads carry BSNs, and nothing
        # of them may reach disk outside the store's encryption. In memory instead, bounded
        # by max_body (handleContentChunk cuts a longer body off).
        self.content = io.BytesIO()

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > self.max_body:
            self._refuse_oversized()
            return
        super().handleContentChunk(data)  # type: ignore[no-untyped-call]

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        self._cancel_deadline()
        if self._refused:
            return
        super().requestReceived(command, path, version)  # type: ignore[no-untyped-call]

    def connectionLost(self, reason: Any) -> None:
        self._cancel_deadline()
        super().connectionLost(reason)  # type: ignore[no-untyped-call]

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _write_raw_and_close(self, status: int, code: str, detail: str, **extra: Any) -> None:
        body = problem_bytes(status, code, detail, **extra)
        reason = http.RESPONSES.get(status, b"Error")
        head = (
            b"HTTP/1.1 %d %s\r\n" % (status, reason)
            + b"Content-Type: application/problem+json\r\n"
            + b"Content-Length: %d\r\n" % len(body)
            + b"Connection: close\r\n\r\n"
        )
        transport = self.channel.transport
        if transport is None:
            return
        transport.write(head + body)
        transport.loseConnection()
        # A TLS close waits for the client's close_notify; a client that never sends one
        # (or keeps trickling bytes) is cut off after a grace period.
        if self.clock is not None:
            self.clock.callLater(CLOSE_GRACE_SECONDS, _abort, transport)

    def _refuse_oversized(self) -> None:
        if self._refused:
            return
        self._refused = True
        self.content = None
        detail = f"The request body is larger than the limit of {self.max_body} bytes."
        self._write_raw_and_close(413, "bericht-te-groot", detail, errors={"payload": [detail]})

    def _too_slow(self) -> None:
        self._deadline = None
        if self._refused:
            return
        self._refused = True
        self._write_raw_and_close(
            408,
            "verzoek-te-traag",
            f"The request was not received within {self.receive_deadline:g} seconds.",
        )


def _abort(transport: Any) -> None:
    abort = getattr(transport, "abortConnection", None)
    if abort is not None and getattr(transport, "connected", True):
        abort()


def limited_request_factory(
    max_body: int, receive_deadline: float, clock: Clock
) -> type[LimitedRequest]:
    """A :class:`LimitedRequest` subclass bound to these limits (for ``Site.requestFactory``)."""
    return type(
        "BoundLimitedRequest",
        (LimitedRequest,),
        {"max_body": max_body, "receive_deadline": receive_deadline, "clock": clock},
    )


class MeteredSite(server.Site):
    """A site that counts every answered request, and times it from its arrival, in
    :class:`~gateway.metrics.Metrics` (by route without ids: no client data in labels)."""

    def __init__(self, root: Any, metrics: Metrics, route: Any, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)  # type: ignore[no-untyped-call]
        self._metrics = metrics
        self._route = route

    def log(self, request: http.Request) -> None:
        super().log(request)
        route = self._route(request)
        method = (request.method or b"-").decode("ascii", "replace")
        self._metrics.http_requests.labels(route, method, str(request.code)).inc()
        arrived = getattr(request, "arrived", None)
        clock = getattr(request, "clock", None)
        if arrived is not None and clock is not None:
            self._metrics.http_duration.labels(route).observe(max(0.0, clock.seconds() - arrived))


# --- the VECOZO-style upload body ------------------------------------------------------------


class UploadFormError(Exception):
    """An upload body that cannot be used; answered as problem+json with this status."""

    def __init__(self, status: int, code: str, detail: str, part: str = "body") -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.part = status, code, detail, part


MAX_PART_HEADERS = 8
MAX_PARTS = 16  # an upload has two; a body of thousands of tiny parts is refused early


def parse_upload(
    request: server.Request, max_metadata_bytes: int
) -> tuple[bytes, bytes, str | None]:
    """Split a multipart/form-data upload into (berichtMetadata, payload, file name).

    The body is read by the ``multipart`` package's non-blocking parser (the first part of
    each name counts; a part in base64 or quoted-printable transfer encoding is decoded,
    as RFC 2045 says, although RFC 7578 asks senders not to use them)."""
    ctype = (request.getHeader(b"content-type") or b"").decode("latin-1")
    kind, options = multipart.parse_options_header(ctype)
    if kind != "multipart/form-data":
        raise UploadFormError(400, "geen-multipart", "Send the upload as multipart/form-data.")
    body = request.content.read() if request.content is not None else b""
    unreadable = UploadFormError(400, "multipart-ongeldig", "The multipart body cannot be read.")
    parts: dict[str, tuple[bytes, str | None]] = {}
    try:
        # Leaving the block closes the parser, which raises if the body ended early.
        with multipart.PushMultipartParser(
            options.get("boundary", ""),
            len(body),
            max_header_count=MAX_PART_HEADERS,
            max_segment_count=MAX_PARTS,
        ) as parser:
            segment: multipart.MultipartSegment | None = None
            chunks: list[bytes] = []
            for event in parser.parse(body):
                if isinstance(event, multipart.MultipartSegment):
                    segment, chunks = event, []
                elif event is not None:
                    chunks.append(bytes(event))
                elif segment is not None and segment.name and segment.name not in parts:
                    data = _transfer_decoded(segment, b"".join(chunks))
                    parts[segment.name] = (data, segment.filename)
    except Exception:  # the parser and the decoders raise several types on garbage
        raise unreadable from None
    missing = [n for n in ("berichtMetadata", "payload") if n not in parts]
    if missing:
        raise UploadFormError(
            400,
            "onderdeel-ontbreekt",
            f"The multipart body lacks: {', '.join(missing)}.",
            missing[0],
        )
    metadata = parts["berichtMetadata"][0]
    if len(metadata) > max_metadata_bytes:
        raise UploadFormError(
            400, "metadata-ongeldig", "berichtMetadata is too large.", "berichtMetadata"
        )
    payload, filename = parts["payload"]
    return metadata, payload, filename


def _transfer_decoded(segment: multipart.MultipartSegment, data: bytes) -> bytes:
    encoding = (segment.header("Content-Transfer-Encoding") or "").strip().lower()
    if encoding == "base64":
        return binascii.a2b_base64(data)
    if encoding == "quoted-printable":
        return quopri.decodestring(data)
    return data
