"""The EPD-facing API: VECOZO's message-exchange shape, served by Twisted.

An EPD that already talks to VECOZO's ``/berichten`` exchange only changes its base URL
and client certificate. Routes:

=======  ==================================  =================================================
POST     /berichten                          upload (multipart: berichtMetadata + payload)
GET      /berichten                          messages waiting for the caller (retours)
POST     /berichten/zoeken                   the same, filtered (JSON body)
GET      /berichten/{traceerId}              one message's metadata
GET      /berichten/{traceerId}/payload      download
DELETE   /berichten/{traceerId}              confirm receipt (removes it from the queue)
GET      /berichtstatussen                   status history (?traceerId=… or ?conversatieId=…)
=======  ==================================  =================================================

The resource is thin: it authenticates the caller (a verified client certificate mapped
to one participant), translates HTTP to calls of :class:`gateway.intake.Intake` and the
store, and the answers back. A message of another participant answers 404, never 403, so
that its existence does not leak.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource, server

from adapters.epd_api.http import UploadFormError, parse_upload, problem
from gateway.collector import CollectedRetour
from gateway.insurer import FetchedRetour
from gateway.intake import BerichtMetadata, Intake, IntakeRefusedError, Receipt, Upload
from gateway.store import Direction, Message, MessageStore, StatusEntry, StoreUnavailableError

__all__ = ["INSURER", "Caller", "EpdApi", "route_name"]

log = Logger()

MAX_METADATA_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Caller:
    """The participant behind a verified client certificate."""

    agb: str
    discipline: str


Authenticate = Callable[[server.Request], Caller | None]
ReceiveRetour = Callable[[str, FetchedRetour], Awaitable[CollectedRetour]]
INSURER = "insurer"  # the discipline of a Caller that is an insurer pushing retours


class _HttpError(Exception):
    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.extra = status, code, detail, extra


class SearchRequest(BaseModel):
    """Body of ``POST /berichten/zoeken``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vanaf: datetime | None = None
    berichtType: str | None = Field(default=None, max_length=20)
    inclusiefBevestigd: bool = False
    maxAantal: int = Field(default=100, ge=1, le=1000)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def message_json(message: Message) -> dict[str, Any]:
    return {
        "traceerId": message.traceer_id,
        "conversatieId": message.conversatie_id,
        "alsAntwoordOp": message.reply_to,
        "referentieId": message.reference_id,
        "berichtType": message.standard,
        "bestandsnaam": message.filename,
        "grootte": message.size,
        "checksum": {"algoritme": "SHA-256", "waarde": message.sha256},
        "status": message.status.value,
        "aangemaaktOp": _iso(message.created_at),
        "ontvangstBevestigdOp": _iso(message.confirmed_at),
    }


def status_json(entry: StatusEntry) -> dict[str, Any]:
    return {
        "traceerId": entry.traceer_id,
        "status": entry.status.value,
        "tijdstip": _iso(entry.at),
        "code": entry.code,
        "omschrijving": entry.description,
    }


def receipt_json(receipt: Receipt) -> dict[str, Any]:
    return {
        "traceerId": receipt.traceer_id,
        "conversatieId": receipt.conversatie_id,
        "status": receipt.status.value,
        "code": receipt.code,
        "nieuw": receipt.created,
        "meldingen": [
            {
                "code": f.retourcode,
                "record": f.record,
                "veld": f.field,
                "omschrijving": f.message,
            }
            for f in receipt.findings
        ],
    }


class EpdApi(resource.Resource):
    isLeaf = True

    def __init__(
        self,
        intake: Intake,
        store: MessageStore,
        authenticate: Authenticate,
        clock: Callable[[], datetime],
        receive_retour: ReceiveRetour | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._intake = intake
        self._store = store
        self._authenticate = authenticate
        self._clock = clock
        self._receive_retour = receive_retour

    # twisted.web entry point -------------------------------------------------------------

    def render(self, request: server.Request) -> bytes | int:
        caller = self._authenticate(request)
        if caller is None:
            return problem(
                request,
                403,
                "certificaat-onbekend",
                "The client certificate does not belong to a participant of this gateway.",
            )
        d = ensureDeferred(self._dispatch(request, caller))
        d.addCallbacks(
            lambda body: self._finish(request, body),
            lambda failure: self._fail(request, failure),
        )
        return server.NOT_DONE_YET

    def _finish(self, request: server.Request, body: bytes) -> None:
        if request._disconnected:  # the client went away; nothing to send
            return
        request.write(body)
        request.finish()

    def _fail(self, request: server.Request, failure: Failure) -> None:
        exc = failure.value
        if isinstance(exc, _HttpError):
            body = problem(request, exc.status, exc.code, exc.detail, **exc.extra)
        elif isinstance(exc, IntakeRefusedError):
            body = problem(request, exc.status, exc.code, exc.detail)
        elif isinstance(exc, StoreUnavailableError):
            log.warn(
                "store unavailable while answering {method} {route}",
                method=request.method.decode("ascii", "replace"),
                route=route_name(request),
            )
            body = problem(
                request,
                503,
                "tijdelijk-niet-beschikbaar",
                "The gateway cannot store or read messages right now; nothing was changed. "
                "Try again later.",
            )
            request.setHeader(b"retry-after", b"30")
        else:
            log.failure("unexpected error in {route}", failure, route=route_name(request))
            body = problem(request, 500, "interne-fout", "An unexpected error occurred.")
        self._finish(request, body)

    async def _dispatch(self, request: server.Request, caller: Caller) -> bytes:
        segments = [s for s in request.postpath or [] if s]
        method = request.method
        if segments == [b"berichten"]:
            if method == b"POST":
                return await self._upload(request, caller)
            if method == b"GET":
                return await self._list(request, caller, SearchRequest())
            raise _not_allowed(request, "GET", "POST")
        if segments == [b"berichten", b"zoeken"]:
            if method != b"POST":
                raise _not_allowed(request, "POST")
            return await self._list(request, caller, self._search_body(request))
        if len(segments) in (2, 3) and segments[0] == b"berichten":
            traceer_id = segments[1].decode("utf-8", "replace")
            if len(segments) == 3:
                if segments[2] != b"payload":
                    raise _not_found()
                if method != b"GET":
                    raise _not_allowed(request, "GET")
                return await self._payload(request, caller, traceer_id)
            if method == b"GET":
                return _json(request, 200, message_json(await self._own(caller, traceer_id)))
            if method == b"DELETE":
                return await self._confirm(request, caller, traceer_id)
            raise _not_allowed(request, "GET", "DELETE")
        if segments == [b"berichtstatussen"]:
            if method != b"GET":
                raise _not_allowed(request, "GET")
            return await self._statuses(request, caller)
        raise _not_found()

    # handlers ----------------------------------------------------------------------------

    async def _upload(self, request: server.Request, caller: Caller) -> bytes:
        metadata_raw, payload, filename = _parse_multipart(request)
        try:
            metadata = BerichtMetadata.model_validate_json(metadata_raw)
        except ValidationError as exc:
            raise _HttpError(
                400,
                "metadata-ongeldig",
                "berichtMetadata is not valid.",
                errors=_validation_errors(exc),
            ) from None
        if caller.discipline == INSURER:
            return await self._pushed_retour(request, caller, metadata, payload, filename)
        receipt = await self._intake.receive(
            Upload(
                participant=caller.agb,
                discipline=caller.discipline,
                metadata=metadata,
                payload=payload,
                filename=filename,
                idempotency_key=_idempotency_key(request),
            )
        )
        log.info(
            "upload {outcome} traceerId={traceer_id} status={status}",
            outcome="stored" if receipt.created else "repeated",
            traceer_id=receipt.traceer_id,
            status=receipt.status.value,
        )
        request.setHeader(b"location", b"/berichten/" + receipt.traceer_id.encode("ascii"))
        return _json(request, 202 if receipt.created else 200, receipt_json(receipt))

    async def _pushed_retour(
        self,
        request: server.Request,
        caller: Caller,
        metadata: BerichtMetadata,
        payload: bytes,
        filename: str | None,
    ) -> bytes:
        """An insurer pushing a retour file: kept and unpacked like one fetched from it."""
        if self._receive_retour is None or metadata.afzender.code != caller.agb:
            raise _HttpError(403, "afzender-onjuist", "This certificate may not send this.")
        kept = await self._receive_retour(
            caller.agb,
            FetchedRetour(
                remote_id=metadata.referentieId or hashlib.sha256(payload).hexdigest()[:24],
                payload=payload,
                in_reply_to=metadata.alsAntwoordOp,
                conversation_id=metadata.conversatieId,
                reference_id=metadata.referentieId,
                filename=filename,
            ),
        )
        log.info(
            "retour pushed by insurer {insurer}: traceerId={traceer_id}",
            insurer=caller.agb,
            traceer_id=kept.message.traceer_id,
        )
        request.setHeader(b"location", b"/berichten/" + kept.message.traceer_id.encode("ascii"))
        return _json(
            request,
            202,
            {
                "traceerId": kept.message.traceer_id,
                "conversatieId": kept.message.conversatie_id,
                "status": kept.message.status.value,
                "alsAntwoordOp": kept.answers.traceer_id if kept.answers else None,
            },
        )

    def _search_body(self, request: server.Request) -> SearchRequest:
        raw = request.content.read(MAX_METADATA_BYTES + 1) if request.content else b""
        if len(raw) > MAX_METADATA_BYTES:
            raise _HttpError(413, "zoekvraag-te-groot", "The search request is too large.")
        try:
            return SearchRequest.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            raise _HttpError(
                400,
                "zoekvraag-ongeldig",
                "The search request is not valid.",
                errors=_validation_errors(exc),
            ) from None

    async def _list(self, request: server.Request, caller: Caller, query: SearchRequest) -> bytes:
        messages = await self._store.list_messages(
            caller.agb,
            Direction.TO_PARTICIPANT,
            include_confirmed=query.inclusiefBevestigd,
            since=query.vanaf,
            limit=query.maxAantal,
        )
        if query.berichtType:
            messages = [m for m in messages if m.standard == query.berichtType]
        return _json(request, 200, {"berichten": [message_json(m) for m in messages]})

    async def _own(self, caller: Caller, traceer_id: str) -> Message:
        message = await self._store.get_message(traceer_id)
        visible = (Direction.FROM_PARTICIPANT, Direction.TO_PARTICIPANT)
        if message is None or message.party != caller.agb or message.direction not in visible:
            raise _not_found()
        return message

    async def _payload(self, request: server.Request, caller: Caller, traceer_id: str) -> bytes:
        message = await self._own(caller, traceer_id)
        data = await self._store.payload(message.sha256)
        if data is None:
            raise _HttpError(410, "payload-verwijderd", "The payload of this message has expired.")
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"application/octet-stream")
        request.setHeader(b"x-checksum-sha256", message.sha256.encode("ascii"))
        if message.filename:
            # ASCII only: a header value has no character set of its own.
            safe = "".join(
                c for c in message.filename if c.isascii() and (c.isalnum() or c in "-_.")
            )[:100]
            request.setHeader(b"content-disposition", f'attachment; filename="{safe}"'.encode())
        return data

    async def _confirm(self, request: server.Request, caller: Caller, traceer_id: str) -> bytes:
        confirmed = await self._store.confirm(traceer_id, caller.agb, self._clock())
        if not confirmed:
            raise _not_found()
        request.setResponseCode(204)
        return b""

    async def _statuses(self, request: server.Request, caller: Caller) -> bytes:
        traceer_ids = _query(request, b"traceerId")
        conversations = _query(request, b"conversatieId")
        if not traceer_ids and not conversations:
            raise _HttpError(
                400, "parameter-ontbreekt", "Give traceerId or conversatieId as a query parameter."
            )
        ids: list[str] = []
        for traceer_id in traceer_ids:
            message = await self._store.get_message(traceer_id)
            if message is not None and message.party == caller.agb:
                ids.append(message.traceer_id)
        for conversatie_id in conversations:
            for message in await self._store.conversation(conversatie_id):
                if message.party == caller.agb and message.direction in (
                    Direction.FROM_PARTICIPANT,
                    Direction.TO_PARTICIPANT,
                ):
                    ids.append(message.traceer_id)
        if not ids:
            raise _not_found()
        entries = await self._store.statuses(sorted(set(ids)))
        return _json(request, 200, {"statussen": [status_json(e) for e in entries]})


# --- helpers ---------------------------------------------------------------------------------


def route_name(request: server.Request) -> str:
    """The route without ids, for logs (no message ids or client data)."""
    parts = [p.decode("ascii", "replace") for p in request.postpath or [] if p]
    if len(parts) >= 2 and parts[0] == "berichten" and parts[1] != "zoeken":
        parts[1] = "{id}"
    return "/" + "/".join(parts)


def _query(request: server.Request, name: bytes) -> list[str]:
    args: dict[bytes, list[bytes]] = request.args or {}
    return [v.decode("utf-8", "replace") for v in args.get(name, [])][:50]


def _json(request: server.Request, status: int, body: Any) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


MAX_IDEMPOTENCY_KEY = 255
_KEY_CHARACTERS = frozenset(chr(c) for c in range(0x21, 0x7F)) - {'"', "\\"}


def _idempotency_key(request: server.Request) -> str | None:
    """The ``Idempotency-Key`` header: a token or a quoted string (as the IETF draft
    writes it) of 1-255 visible ASCII characters; None without one."""
    raw = request.getHeader(b"idempotency-key")
    if raw is None:
        return None
    value = raw.decode("latin-1").strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not 0 < len(value) <= MAX_IDEMPOTENCY_KEY or not set(value) <= _KEY_CHARACTERS:
        raise _HttpError(
            400,
            "idempotency-key-ongeldig",
            f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} visible ASCII characters.",
        )
    return value


def _not_found() -> _HttpError:
    return _HttpError(404, "niet-gevonden", "No such message or resource.")


def _not_allowed(request: server.Request, *allowed: str) -> _HttpError:
    """405, with the ``Allow`` header naming the methods this path answers."""
    request.setHeader(b"allow", ", ".join(allowed).encode("ascii"))
    return _HttpError(
        405,
        "methode-niet-toegestaan",
        f"This method is not allowed here; allowed: {', '.join(allowed)}.",
    )


def _validation_errors(exc: ValidationError) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for err in exc.errors(include_input=False, include_url=False):
        path = ".".join(str(p) for p in err["loc"]) or "berichtMetadata"
        errors.setdefault(path, []).append(err["msg"])
    return errors


def _parse_multipart(request: server.Request) -> tuple[bytes, bytes, str | None]:
    try:
        return parse_upload(request, MAX_METADATA_BYTES)
    except UploadFormError as exc:
        raise _HttpError(exc.status, exc.code, exc.detail) from None
