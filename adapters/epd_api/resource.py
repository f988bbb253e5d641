"""The EPD-facing API: VECOZO's VSP-Koppeling message exchange, served by Twisted.

An EPD that exchanges messages with VECOZO changes only its base URL and client
certificate: the three services sit at VECOZO's paths below the gateway's base URL, with
VECOZO's JSON shapes, limits and status codes (``schemas/epd-api.openapi.json``, served
at ``/openapi.json``):

=======  ===============================================================  ==================
POST     /berichtenservice/berichten/rest-push/v1/berichten               send (multipart)
GET      /berichtenservice/berichten/rest-pull/v1/berichten               what waits (?limit)
POST     /berichtenservice/berichten/rest-pull/v1/berichten/zoeken        the same, by Zoekpad
GET      /berichtenservice/berichten/rest-pull/v1/berichten/{id}/payload  download
DELETE   /berichtenservice/berichten/rest-pull/v1/berichten/{id}          confirm receipt: 202
GET      /berichtenservice/berichtstatus/rest-pull/v3/berichtstatussen    status (and v2)
=======  ===============================================================  ==================

The resource is thin: it authenticates the caller (a verified client certificate mapped
to one participant), translates HTTP to calls of the intake
(:class:`gateway.ports.intake.UploadIntake`, i.e. :class:`gateway.intake.Intake`) and the
store, and the answers back. Errors are ``ValidationProblemDetails`` (problem+json with
``errors`` naming each field, and a stable ``code``): the API's own refusals are
:class:`adapters.http_errors.HttpError`, the core's errors get their status from
``STATUS_BY_KIND``. A message of another participant is
unknown to the caller (404, or left out of a status answer), so that its existence does
not leak.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError
from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource, server

from adapters.epd_api.http import UploadFormError, parse_upload, problem
from adapters.http_errors import VSP_STATUS_BY_KIND, HttpError
from gateway.config import BerichtstroomConfig
from gateway.errors import ErrorKind
from gateway.loading import describe
from gateway.ports.insurer import FetchedRetour
from gateway.ports.intake import IntakeRefusedError, Upload, UploadIntake
from gateway.ports.messages import (
    Direction,
    Message,
    MessageStore,
    StatusEntry,
    StoreUnavailableError,
)
from gateway.ports.outcomes import CollectedRetour
from gateway.vsp import (
    BERICHTSTATUS_V2,
    BERICHTSTATUS_V3,
    MAX_PULL,
    MAX_STATUSES,
    PULL_V1,
    PUSH_V1,
    STATUS_V2,
    STATUS_V3,
    BerichtMetadata,
    Berichtstatus,
    Berichtstroom,
    as_uuid,
    is_uuid,
    matches,
    pull_entry,
    service_path,
    zoekpad_adapter,
)

__all__ = ["INSURER", "ApiSettings", "Caller", "EpdApi", "route_name"]

log = Logger()

MAX_METADATA_BYTES = 64 * 1024
MAX_SEARCH_SCAN = 10_000  # waiting messages looked through for one Zoekpad search
OPENAPI_PATH = "/openapi.json"


@dataclass(frozen=True, slots=True)
class Caller:
    """The participant (or pushing insurer) behind a verified client certificate."""

    agb: str
    discipline: str


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """What the API says about the messages it offers: the IGO as their afzender, the
    berichtstroom settings, each standard's version, the public base URL (None: the Host
    of the request) and the OpenAPI document it serves."""

    igo_agb: str
    berichtstroom: BerichtstroomConfig = field(default_factory=BerichtstroomConfig)
    versions: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    public_url: str | None = None
    openapi: bytes = b"{}"


Authenticate = Callable[[server.Request], Caller | None]
ReceiveRetour = Callable[[str, FetchedRetour], Awaitable[CollectedRetour]]
INSURER = "insurer"  # the discipline of a Caller that is an insurer pushing retours
_VISIBLE = (Direction.FROM_PARTICIPANT, Direction.TO_PARTICIPANT, Direction.FROM_INSURER)
_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$")


# The API's one mapping of the core's error kinds to statuses: VECOZO's (a refused upload
# is 422, an unknown caller 403).
STATUS_BY_KIND: Final[Mapping[ErrorKind, int]] = VSP_STATUS_BY_KIND


class EpdApi(resource.Resource):
    isLeaf = True

    def __init__(
        self,
        intake: UploadIntake,
        store: MessageStore,
        authenticate: Authenticate,
        clock: Callable[[], datetime],
        receive_retour: ReceiveRetour | None = None,
        settings: ApiSettings | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._intake = intake
        self._store = store
        self._authenticate = authenticate
        self._clock = clock
        self._receive_retour = receive_retour
        self._settings = settings or ApiSettings(igo_agb="00000000")
        self._zoekpad = zoekpad_adapter()

    # twisted.web entry point -------------------------------------------------------------

    def render(self, request: server.Request) -> bytes | int:
        if _path(request) == OPENAPI_PATH and request.method in (b"GET", b"HEAD"):
            request.setHeader(b"content-type", b"application/json")
            return self._settings.openapi
        caller = self._authenticate(request)
        if caller is None:
            return _problem(
                request,
                HttpError(
                    403,
                    "certificaat-onbekend",
                    "The client certificate does not belong to a participant of this gateway.",
                ),
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
        if body:
            request.write(body)
        request.finish()

    def _fail(self, request: server.Request, failure: Failure) -> None:
        exc = failure.value
        if isinstance(exc, HttpError):
            body = _problem(request, exc)
        elif isinstance(exc, IntakeRefusedError):
            errors = {exc.field: [exc.detail]} if exc.field else None
            body = _problem(
                request, HttpError(STATUS_BY_KIND[exc.kind], exc.code, exc.detail, errors)
            )
        elif isinstance(exc, StoreUnavailableError):
            log.warn(
                "store unavailable while answering {method} {route}",
                method=request.method.decode("ascii", "replace"),
                route=route_name(request),
            )
            body = _problem(
                request,
                HttpError(
                    STATUS_BY_KIND[exc.kind],
                    exc.code,
                    "The gateway cannot store or read messages right now; nothing was "
                    "changed. Try again later.",
                ),
            )
            request.setHeader(b"retry-after", b"30")
        else:
            log.failure("unexpected error in {route}", failure, route=route_name(request))
            body = _problem(
                request, HttpError(500, "interne-fout", "An unexpected error occurred.")
            )
        self._finish(request, body)

    async def _dispatch(self, request: server.Request, caller: Caller) -> bytes:
        path = _path(request)
        method = request.method
        for base, handlers in (
            (PUSH_V1, self._push_routes),
            (PULL_V1, self._pull_routes),
            (STATUS_V3, self._status_routes),
            (STATUS_V2, self._status_routes),
        ):
            if path.startswith(base + "/"):
                rest = path[len(base) + 1 :].split("/")
                return await handlers(request, caller, method, rest, base)
        raise _not_found()

    async def _push_routes(
        self, request: server.Request, caller: Caller, method: bytes, rest: list[str], _: str
    ) -> bytes:
        if rest != ["berichten"]:
            raise _not_found()
        if method != b"POST":
            raise _not_allowed(request, "POST")
        return await self._send(request, caller)

    async def _pull_routes(
        self, request: server.Request, caller: Caller, method: bytes, rest: list[str], _: str
    ) -> bytes:
        if rest == ["berichten"]:
            if method != b"GET":
                raise _not_allowed(request, "GET")
            limit = _limit(request)
            waiting = await self._store.list_messages(
                caller.agb, Direction.TO_PARTICIPANT, limit=limit
            )
            return self._listing(request, waiting)
        if rest == ["berichten", "zoeken"]:
            if method != b"POST":
                raise _not_allowed(request, "POST")
            limit = _limit(request)
            return await self._search(request, caller, limit)
        if len(rest) == 3 and rest[0] == "berichten" and rest[2] == "payload":
            if method != b"GET":
                raise _not_allowed(request, "GET")
            return await self._payload(request, caller, rest[1])
        if len(rest) == 2 and rest[0] == "berichten":
            if method != b"DELETE":
                raise _not_allowed(request, "DELETE")
            return await self._confirm(request, caller, rest[1])
        raise _not_found()

    async def _status_routes(
        self, request: server.Request, caller: Caller, method: bytes, rest: list[str], base: str
    ) -> bytes:
        if rest != ["berichtstatussen"]:
            raise _not_found()
        if method != b"GET":
            raise _not_allowed(request, "GET")
        return await self._statuses(request, caller, v2=base == STATUS_V2)

    # send --------------------------------------------------------------------------------

    async def _send(self, request: server.Request, caller: Caller) -> bytes:
        try:
            metadata_raw, payload, filename = parse_upload(request, MAX_METADATA_BYTES)
        except UploadFormError as exc:
            raise HttpError(exc.status, exc.code, exc.detail, {exc.part: [exc.detail]}) from None
        try:
            metadata = BerichtMetadata.model_validate_json(metadata_raw)
        except ValidationError as exc:
            raise HttpError(
                400,
                "metadata-ongeldig",
                "berichtMetadata does not match the BerichtMetadata schema.",
                _validation_errors(exc, "berichtMetadata"),
            ) from None
        if not payload:
            raise HttpError(
                400, "payload-leeg", "The payload is empty.", {"payload": ["The payload is empty."]}
            )
        if caller.discipline == INSURER:
            return await self._pushed_retour(request, caller, metadata, payload, filename)
        receipt = await self._intake.receive(
            Upload(
                participant=caller.agb,
                discipline=caller.discipline,
                metadata=metadata,
                payload=payload,
                filename=filename,
            )
        )
        log.info(
            "upload {outcome} traceerId={traceer_id} status={status}",
            outcome="stored" if receipt.created else "repeated",
            traceer_id=receipt.traceer_id,
            status=receipt.status.value,
        )
        request.setResponseCode(204)
        return b""

    async def _pushed_retour(
        self,
        request: server.Request,
        caller: Caller,
        metadata: BerichtMetadata,
        payload: bytes,
        filename: str | None,
    ) -> bytes:
        """An insurer pushing a retour file: kept and unpacked like one fetched from it."""
        if self._receive_retour is None:
            raise HttpError(403, "afzender-onjuist", "This certificate may not send this.")
        if metadata.routeringgegevens.afzender.code != caller.agb:
            detail = "The afzender in berichtMetadata is not the insurer of the certificate."
            raise HttpError(
                422, "afzender-onjuist", detail, {"routeringgegevens.afzender.code": [detail]}
            )
        reference = metadata.referentiegegevens
        kept = await self._receive_retour(
            caller.agb,
            FetchedRetour(
                remote_id=reference.traceerId,
                payload=payload,
                in_reply_to=reference.alsAntwoordOp,
                conversation_id=reference.conversatieId,
                reference_id=reference.referentieId,
                filename=filename,
            ),
        )
        log.info(
            "retour pushed by insurer {insurer}: traceerId={traceer_id}",
            insurer=caller.agb,
            traceer_id=kept.message.traceer_id,
        )
        request.setResponseCode(204)
        return b""

    # pull --------------------------------------------------------------------------------

    async def _search(self, request: server.Request, caller: Caller, limit: int) -> bytes:
        raw = request.content.read(MAX_METADATA_BYTES + 1) if request.content else b""
        if len(raw) > MAX_METADATA_BYTES:
            detail = "The Zoekpad is too large."
            raise HttpError(400, "zoekpad-ongeldig", detail, {"zoekpad": [detail]})
        try:
            zoekpad = self._zoekpad.validate_json(raw)
        except ValidationError as exc:
            raise HttpError(
                400,
                "zoekpad-ongeldig",
                "The body does not match the Zoekpad schema.",
                _validation_errors(exc, "zoekpad"),
            ) from None
        waiting = await self._store.list_messages(
            caller.agb, Direction.TO_PARTICIPANT, limit=MAX_SEARCH_SCAN
        )
        base = self._base_url(request)
        listed = [self._pull_metadata(m, base) for m in waiting]
        return _json(request, 200, [e for e in listed if matches(zoekpad, e)][:limit])

    def _listing(self, request: server.Request, messages: Sequence[Message]) -> bytes:
        base = self._base_url(request)
        return _json(request, 200, [self._pull_metadata(m, base) for m in messages])

    def _pull_metadata(self, message: Message, base: str) -> dict[str, Any]:
        settings = self._settings
        return pull_entry(
            base_url=base,
            traceer_id=message.traceer_id,
            conversatie_id=message.conversatie_id,
            afzender={"rol": settings.berichtstroom.afzender_rol, "code": settings.igo_agb},
            geadresseerde=self._addressee(message),
            berichtstroom=self._flow(message).model_dump(exclude_none=True),
            received_at=message.created_at,
            size=message.size,
            sha256=message.sha256,
            als_antwoord_op=message.reply_to,
            referentie_id=message.reference_id,
        )

    def _addressee(self, message: Message) -> dict[str, str]:
        return {"rol": self._settings.berichtstroom.geadresseerde_rol, "code": message.party}

    def _flow(self, message: Message) -> Berichtstroom:
        """The berichtstroom an upload was sent with, or the one of a message the gateway
        made: its standard's name and version, and the configured retour actie."""
        recorded = message.metadata.get("routeringgegevens", {})
        if isinstance(recorded, dict) and isinstance(recorded.get("berichtstroom"), dict):
            try:
                return Berichtstroom.model_validate(recorded["berichtstroom"])
            except ValidationError:
                pass
        standard = message.standard or "onbekend"
        version, subversion = self._settings.versions.get(standard, (0, 0))
        actie = (
            self._settings.berichtstroom.retour_actie
            if message.direction is Direction.TO_PARTICIPANT
            else "Onbekend"
        )
        return Berichtstroom(
            berichttype=standard[:60],
            berichtversie=version,
            berichtsubversie=subversion,
            actie=actie,
        )

    @staticmethod
    def _references(message: Message) -> dict[str, str]:
        references = {
            "traceerId": as_uuid(message.traceer_id),
            "conversatieId": as_uuid(message.conversatie_id),
        }
        recorded = message.metadata.get("referentiegegevens", {})
        answers = message.reply_to or (
            recorded.get("alsAntwoordOp") if isinstance(recorded, dict) else None
        )
        if isinstance(answers, str) and answers:
            references["alsAntwoordOp"] = as_uuid(answers)
        reference = message.reference_id
        if reference and len(reference) <= 150:
            references["referentieId"] = reference
        return references

    def _base_url(self, request: server.Request) -> str:
        if self._settings.public_url:
            return self._settings.public_url.rstrip("/")
        host = (request.getHeader(b"host") or b"").decode("latin-1")
        if not _HOST.match(host):
            address = request.getHost()
            host = f"{getattr(address, 'host', 'localhost')}:{getattr(address, 'port', 443)}"
        return f"https://{host}"

    async def _own(self, caller: Caller, traceer_id: str) -> Message:
        if not is_uuid(traceer_id):
            raise _not_found()
        message = await self._store.get_message(traceer_id.lower())
        if message is None or message.party != caller.agb or message.direction not in _VISIBLE:
            raise _not_found()
        return message

    async def _payload(self, request: server.Request, caller: Caller, traceer_id: str) -> bytes:
        message = await self._own(caller, traceer_id)
        data = await self._store.payload(message.sha256)
        if data is None:  # pruned after its retention period: no longer available
            raise _not_found()
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"application/octet-stream")
        if message.filename:
            # ASCII only: a header value has no character set of its own.
            safe = "".join(
                c for c in message.filename if c.isascii() and (c.isalnum() or c in "-_.")
            )[:100]
            request.setHeader(b"content-disposition", f'attachment; filename="{safe}"'.encode())
        return data

    async def _confirm(self, request: server.Request, caller: Caller, traceer_id: str) -> bytes:
        if not is_uuid(traceer_id):
            raise _not_found()
        confirmed = await self._store.confirm(traceer_id.lower(), caller.agb, self._clock())
        if not confirmed:
            raise _not_found()
        request.setResponseCode(202)
        return b""

    # status ------------------------------------------------------------------------------

    async def _statuses(self, request: server.Request, caller: Caller, *, v2: bool) -> bytes:
        args: dict[bytes, list[bytes]] = request.args or {}
        given = {
            name: args[name.encode()][0].decode("utf-8", "replace")
            for name in ("traceerId", "conversatieId")
            if args.get(name.encode()) and args[name.encode()][0]  # empty: not given
        }
        if len(given) != 1:
            detail = "Give one of traceerId and conversatieId."
            raise HttpError(
                400,
                "parameter-ontbreekt",
                detail,
                {"traceerId": [detail], "conversatieId": [detail]},
            )
        ((name, value),) = given.items()
        if not is_uuid(value):
            detail = f"{name} must be a UUID."
            raise HttpError(400, "parameter-ongeldig", detail, {name: [detail]})
        value = value.lower()
        messages: list[Message] = []
        if name == "traceerId":
            own = await self._store.get_message(value)
            if own is not None:
                related = await self._store.conversation(own.conversatie_id)
                messages = [own] + [m for m in related if m.reply_to == value]
        else:
            messages = await self._store.conversation(value)
        visible = [m for m in messages if m.party == caller.agb and m.direction in _VISIBLE]
        unique = list({m.traceer_id: m for m in visible}.values())[:MAX_STATUSES]
        history = await self._store.statuses([m.traceer_id for m in unique])
        last: dict[str, StatusEntry] = {}
        for entry in history:
            last[entry.traceer_id] = entry
        return _json(request, 200, [self._status(m, last.get(m.traceer_id), v2) for m in unique])

    def _status(self, message: Message, last: StatusEntry | None, v2: bool) -> dict[str, Any]:
        status = BERICHTSTATUS_V3[message.status]
        changed = last.at if last is not None else message.created_at
        body: dict[str, Any] = {
            "referentiegegevens": self._references(message),
            "berichtstroom": self._flow(message).model_dump(exclude_none=True),
            "berichtstatus": BERICHTSTATUS_V2[status] if v2 else status.value,
            "berichtstatusGewijzigdOp": changed.isoformat(),
            "berichtOntvangenOp": message.created_at.isoformat(),
        }
        if status is Berichtstatus.AFGEKEURD_DOOR_DIENST:
            meldingen = _meldingen(message, last)
            if meldingen:
                body["meldingen"] = meldingen
        return body


# --- helpers ---------------------------------------------------------------------------------


def _meldingen(message: Message, last: StatusEntry | None) -> list[dict[str, str]]:
    """The retourcodes of a rejected message: code, Dutch meaning, and where (record and
    field) — never the offending value."""
    kept = message.metadata.get("meldingen")
    found: list[dict[str, str]] = []
    if isinstance(kept, list):
        for item in kept[:100]:
            if not isinstance(item, dict) or not isinstance(item.get("code"), str):
                continue
            melding = {"code": item["code"], "omschrijving": describe(item["code"])}
            where = []
            if isinstance(item.get("record"), int) and item["record"] > 0:
                where.append(f"record {item['record']}")
            if isinstance(item.get("veld"), str):
                name = item.get("veldnaam")
                where.append(f"veld {item['veld']}" + (f" ({name})" if name else ""))
            if where:
                melding["toelichting"] = ", ".join(where)
            found.append(melding)
    if not found and last is not None and last.code:
        found.append({"code": last.code, "omschrijving": describe(last.code)})
    return found


def _path(request: server.Request) -> str:
    return service_path(
        "/" + "/".join(p.decode("utf-8", "replace") for p in request.postpath or [])
    )


def route_name(request: server.Request) -> str:
    """The route without ids, for logs and metrics (no message ids or client data)."""
    path = _path(request)
    for base in (PUSH_V1, PULL_V1, STATUS_V3, STATUS_V2):
        if path.startswith(base + "/"):
            parts = path[len(base) + 1 :].split("/")
            if len(parts) >= 2 and parts[0] == "berichten" and parts[1] != "zoeken":
                parts[1] = "{traceerId}"
            return base + "/" + "/".join(parts)[:60]
    return path if path == OPENAPI_PATH else "/(unknown)"


def _limit(request: server.Request) -> int:
    args: dict[bytes, list[bytes]] = request.args or {}
    values = args.get(b"limit")
    if not values:
        return MAX_PULL
    text = values[0].decode("utf-8", "replace")
    if not re.fullmatch(r"[0-9]{1,3}", text) or not 1 <= int(text) <= MAX_PULL:
        detail = f"limit must be a whole number from 1 to {MAX_PULL}."
        raise HttpError(400, "parameter-ongeldig", detail, {"limit": [detail]})
    return int(text)


def _json(request: server.Request, status: int, body: Any) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def _problem(request: server.Request, error: HttpError) -> bytes:
    extra: dict[str, Any] = {"instance": route_name(request)}
    if error.errors:
        extra["errors"] = {k: list(v) for k, v in error.errors.items()}
    return problem(request, error.status, error.code, error.detail, **extra)


def _not_found() -> HttpError:
    return HttpError(404, "niet-gevonden", "No such message or resource.")


def _not_allowed(request: server.Request, *allowed: str) -> HttpError:
    """405, with the ``Allow`` header naming the methods this path answers."""
    request.setHeader(b"allow", ", ".join(allowed).encode("ascii"))
    return HttpError(
        405,
        "methode-niet-toegestaan",
        f"This method is not allowed here; allowed: {', '.join(allowed)}.",
    )


def _validation_errors(exc: ValidationError, root: str) -> dict[str, list[str]]:
    tags = {"ZoekpadOpBerichtstroom", "ZoekpadOpConversatieId", "ZoekpadOpAlsAntwoordOp"}
    errors: dict[str, list[str]] = {}
    for err in exc.errors(include_input=False, include_url=False):
        path = ""
        for part in err["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            elif part not in tags:
                path += ("." if path else "") + str(part)
        errors.setdefault(path or root, []).append(err["msg"])
    return errors
