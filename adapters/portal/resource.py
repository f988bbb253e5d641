"""The participant portal: server-rendered pages for a practice without an EPD link.

A practice whose software cannot speak the EPD API uses the gateway as VECOZO's portal is
used: in a browser holding its client certificate. The portal is served on the EPD API's
TLS listener below ``/portaal/``, so the same verified client certificate identifies the
same participant (:func:`with_portal` puts it in front of the API). Pages (Dutch, HTML
with Jinja2 autoescaping, no JavaScript):

=======  ======================================  ==========================================
GET      /portaal/                               uploads (status, retourcodes), waiting
                                                 retours, the upload form
POST     /portaal/versturen                      send a file (multipart: csrf, traceerId,
                                                 bestand); 303 to its page
GET      /portaal/berichten/{traceerId}          one message: status history with each
                                                 retourcode explained, the retours to it
GET      /portaal/berichten/{traceerId}/bestand  download the file
POST     /portaal/berichten/{traceerId}/bevestigen  confirm receipt of a retour (csrf)
GET      /portaal/static/portaal.css             the style sheet
=======  ======================================  ==========================================

Every other method is answered 405 with an ``Allow`` header, before anything runs.

The rules are the EPD API's, through the same ports: an upload goes to the intake
(:class:`gateway.ports.intake.UploadIntake`; :class:`gateway.intake.Intake` in the gateway:
the same checks, durability and retry semantics), reads and confirmations to the same
store calls. The upload form carries a traceerId made when
the page was shown: sending the same form with the same file again is a safe retry (the
first upload's page), with another file it is refused and nothing is stored. A message of
another participant is unknown (404), as in the API.

Safety: a browser sends its client certificate with cross-site requests too, so every POST
carries a CSRF token: an HMAC of the participant's AGB code keyed by a random value in a
``__Host-`` cookie (HttpOnly, Secure, SameSite=Strict), which another site can neither
read nor set, nor send along. It needs no state or key on the server, so it holds over
restarts and over several gateway instances behind one address. Every
answer has a strict CSP (nothing but this site's style sheet and forms),
``X-Frame-Options: DENY``, ``nosniff``, no referrer and ``Cache-Control: no-store``. A
rejected file shows its retourcodes with their Dutch meaning and where (record and field),
never a value from the file.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from importlib import resources
from typing import Any, Final
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import jinja2
import multipart
from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource, server

from adapters.epd_api.resource import INSURER, Authenticate, Caller
from adapters.http_errors import VSP_STATUS_BY_KIND
from gateway.config import BerichtstroomConfig
from gateway.ei import EIError, Layout, LayoutRegistry, Record, read_records
from gateway.errors import ErrorKind
from gateway.loading import describe
from gateway.ports.intake import IntakeRefusedError, Upload, UploadIntake
from gateway.ports.messages import (
    Direction,
    Message,
    MessageStatus,
    MessageStore,
    StatusEntry,
    StoreUnavailableError,
)
from gateway.vsp import DEFAULT_ACTIE, is_uuid, send_metadata

__all__ = [
    "PREFIX",
    "PortalResource",
    "PortalSettings",
    "euro_text",
    "portal_route_name",
    "retour_codes",
    "with_portal",
]

log = Logger()

PREFIX: Final = "portaal"
COOKIE: Final = "__Host-igo-portaal"
MAX_FORM_BYTES: Final = 64 * 1024
MAX_PARTS: Final = 8
LISTED_DAYS: Final = 90
MAX_LISTED: Final = 200
AMSTERDAM: Final = ZoneInfo("Europe/Amsterdam")
_CSP: Final = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_SECURITY_HEADERS: Final = {
    b"content-security-policy": _CSP.encode("ascii"),
    b"x-frame-options": b"DENY",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"cache-control": b"no-store",
    b"cross-origin-opener-policy": b"same-origin",
}
# The declaration standard of a discipline: the berichttype of an unreadable file.
_DECLARATION_BY_DISCIPLINE: Final = {
    "hospital": "ZH308",
    "kraamzorg": "KZ301",
    "midwifery": "VK301",
}
STATUS_LABELS: Final = {
    MessageStatus.RECEIVED: "ontvangen en goedgekeurd",
    MessageStatus.REJECTED: "afgekeurd",
    MessageStatus.PROCESSING: "in behandeling",
    MessageStatus.PROCESSED: "verwerkt",
    MessageStatus.FORWARDED: "doorgestuurd naar de zorgverzekeraar",
    MessageStatus.ANSWERED: "beantwoord: retourinformatie klaargezet",
    MessageStatus.DELIVERED: "klaargezet om op te halen",
    MessageStatus.CONFIRMED: "ontvangst bevestigd",
}
_REFUSALS: Final = {
    "traceerid-hergebruikt": "Dit formulier is al gebruikt voor een ander bestand. Er is "
    "niets opgeslagen: laad de pagina opnieuw en kies het bestand nog eens.",
    "traceerid-in-gebruik": "Dit formulier is al gebruikt voor een ander bericht. Er is "
    "niets opgeslagen: laad de pagina opnieuw en kies het bestand nog eens.",
    "declarant-onjuist": "Dit bestand is niet van uw praktijk: geen van de codes "
    "zorgverlener, praktijk en instelling in het voorlooprecord is uw AGB-code. Er is "
    "niets opgeslagen.",
    "berichtstroom-onbekend": "De gateway is niet ingesteld om dit soort bestand aan te "
    "nemen. Er is niets opgeslagen; neem contact op met de IGO.",
    "berichtstroom-onjuist": "Dit soort declaratiebestand neemt de gateway niet aan. Er is "
    "niets opgeslagen; neem contact op met de IGO.",
    "afzender-onjuist": "Uw certificaat hoort niet bij de afzender van dit bestand. Er is "
    "niets opgeslagen.",
}
_VISIBLE: Final = (Direction.FROM_PARTICIPANT, Direction.TO_PARTICIPANT)


@dataclass(frozen=True, slots=True)
class PortalSettings:
    """The berichtstroom policy of the EPD API (an upload through the portal is named as
    an EPD would name it) and the participants' names by AGB code."""

    berichtstroom: BerichtstroomConfig = field(default_factory=BerichtstroomConfig)
    names: Mapping[str, str] = field(default_factory=dict)


# The portal's one mapping of the core's error kinds to statuses: a refused upload is
# shown on the overview with 422, as the EPD API answers it.
STATUS_BY_KIND: Final[Mapping[ErrorKind, int]] = VSP_STATUS_BY_KIND


class _PageError(Exception):
    def __init__(self, status: int, title: str, text: str) -> None:
        super().__init__(title)
        self.status, self.title, self.text = status, title, text


@dataclass(frozen=True, slots=True)
class _Route:
    name: str  # for logs and metrics: no ids
    methods: tuple[str, ...]
    handler: str
    traceer_id: str | None = None


@dataclass(frozen=True, slots=True)
class Melding:
    """A retourcode of a rejected file: its Dutch meaning and where it was found."""

    code: str
    meaning: str
    where: str


class PortalResource(resource.Resource):
    isLeaf = True

    def __init__(
        self,
        intake: UploadIntake,
        store: MessageStore,
        registry: LayoutRegistry,
        authenticate: Authenticate,
        clock: Any,
        settings: PortalSettings | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._intake = intake
        self._store = store
        self._registry = registry
        self._authenticate = authenticate
        self._clock = clock
        self._settings = settings or PortalSettings()
        self._env = _templates()
        self._titles = {layout.standard: layout.title for layout in registry.standards()}
        self._css = resources.files("adapters.portal").joinpath("static/portaal.css").read_bytes()

    # twisted.web entry point -------------------------------------------------------------

    def render(self, request: server.Request) -> bytes | int:
        for name, value in _SECURITY_HEADERS.items():
            request.setHeader(name, value)
        route = _route(_subpath(request))
        if route is None:
            return self._error(request, _not_found())
        method = (request.method or b"").decode("ascii", "replace")
        if method not in route.methods:
            request.setHeader(b"allow", ", ".join(route.methods).encode("ascii"))
            return self._error(
                request,
                _PageError(
                    405,
                    "Methode niet toegestaan",
                    f"Deze pagina kent alleen: {', '.join(route.methods)}.",
                ),
            )
        if route.handler == "css":
            request.setHeader(b"content-type", b"text/css; charset=utf-8")
            request.setHeader(b"cache-control", b"max-age=3600")
            return self._css
        caller = self._authenticate(request)
        if caller is None or caller.discipline == INSURER:
            return self._error(
                request,
                _PageError(
                    403,
                    "Geen toegang",
                    "Het certificaat in uw browser hoort bij geen deelnemer van deze "
                    "gateway. Kies het certificaat van uw praktijk, of vraag de IGO om "
                    "het te registreren.",
                ),
            )
        handler = getattr(self, "_" + route.handler)
        d = ensureDeferred(handler(request, caller, route))
        d.addCallbacks(
            lambda body: self._finish(request, body),
            lambda failure: self._fail(request, failure),
        )
        return server.NOT_DONE_YET

    def _finish(self, request: server.Request, body: bytes) -> None:
        if request._disconnected:
            return
        if body:
            request.write(body)
        request.finish()

    def _fail(self, request: server.Request, failure: Failure) -> None:
        exc = failure.value
        if isinstance(exc, _PageError):
            body = self._error(request, exc)
        elif isinstance(exc, StoreUnavailableError):
            log.warn("store unavailable while answering portal {route}", route=_route_name(request))
            request.setHeader(b"retry-after", b"30")
            body = self._error(
                request,
                _PageError(
                    STATUS_BY_KIND[exc.kind],
                    "Tijdelijk niet beschikbaar",
                    "De gateway kan nu geen berichten opslaan of lezen; er is niets "
                    "veranderd. Probeer het over een paar minuten opnieuw.",
                ),
            )
        else:
            log.failure("unexpected error in portal {route}", failure, route=_route_name(request))
            body = self._error(
                request,
                _PageError(500, "Er ging iets mis", "Er is een onverwachte fout opgetreden."),
            )
        self._finish(request, body)

    def _error(self, request: server.Request, error: _PageError) -> bytes:
        return self._page(
            request, "error.html", status=error.status, title=error.title, text=error.text
        )

    def _page(
        self,
        request: server.Request,
        template: str,
        *,
        status: int = 200,
        caller: Caller | None = None,
        **context: Any,
    ) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        csrf = self._csrf_for(request, caller) if caller is not None else ""
        page = self._env.get_template(template).render(
            caller=caller,
            practice=self._settings.names.get(caller.agb, "") if caller else "",
            csrf=csrf,
            prefix="/" + PREFIX,
            **context,
        )
        return page.encode("utf-8")

    # pages --------------------------------------------------------------------------------

    async def _overview(
        self,
        request: server.Request,
        caller: Caller,
        route: _Route,
        *,
        status: int = 200,
        error: str | None = None,
    ) -> bytes:
        since = self._clock() - timedelta(days=LISTED_DAYS)
        uploads = await self._store.list_messages(
            caller.agb,
            Direction.FROM_PARTICIPANT,
            include_confirmed=True,
            since=since,
            limit=5 * MAX_LISTED,
        )
        waiting = await self._store.list_messages(
            caller.agb, Direction.TO_PARTICIPANT, limit=MAX_LISTED
        )
        return self._page(
            request,
            "overview.html",
            status=status,
            caller=caller,
            uploads=[self._row(m) for m in reversed(uploads[-MAX_LISTED:])],
            waiting=[self._row(m) for m in waiting],
            days=LISTED_DAYS,
            traceer_id=str(uuid.uuid4()),
            error=error,
        )

    async def _message(self, request: server.Request, caller: Caller, route: _Route) -> bytes:
        message = await self._own(caller, route.traceer_id)
        history = await self._store.statuses([message.traceer_id])
        related = await self._store.conversation(message.conversatie_id)
        mine = [m for m in related if m.party == caller.agb and m.traceer_id != message.traceer_id]
        if message.direction is Direction.FROM_PARTICIPANT:
            retours = [
                m
                for m in mine
                if m.direction is Direction.TO_PARTICIPANT and m.reply_to == message.traceer_id
            ]
            answers = None
        else:
            retours = []
            answers = next(
                (
                    m
                    for m in mine
                    if m.direction is Direction.FROM_PARTICIPANT
                    and m.traceer_id == message.reply_to
                ),
                None,
            )
        payload = await self._store.payload(message.sha256)
        totals = _totals(self._registry, payload) if payload is not None else {}
        in_file = retour_codes(self._registry, payload) if payload is not None else []
        return self._page(
            request,
            "message.html",
            caller=caller,
            m=self._row(message),
            history=[_history_row(e) for e in history],
            meldingen=meldingen(message),
            retours=[self._row(m) for m in retours],
            answers=self._row(answers) if answers is not None else None,
            totals=totals,
            in_file=in_file,
            available=payload is not None,
        )

    async def _download(self, request: server.Request, caller: Caller, route: _Route) -> bytes:
        message = await self._own(caller, route.traceer_id)
        data = await self._store.payload(message.sha256)
        if data is None:  # pruned after its retention period
            raise _PageError(
                404,
                "Bestand niet meer beschikbaar",
                "Dit bestand is na de bewaartermijn verwijderd.",
            )
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"application/octet-stream")
        request.setHeader(
            b"content-disposition",
            f'attachment; filename="{_safe_filename(message)}"'.encode("ascii"),
        )
        return data

    async def _confirm(self, request: server.Request, caller: Caller, route: _Route) -> bytes:
        form = _urlencoded(request)
        self._check_csrf(request, caller, form.get("csrf", ""))
        traceer_id = route.traceer_id
        if traceer_id is None or not is_uuid(traceer_id):
            raise _not_found()
        if not await self._store.confirm(traceer_id.lower(), caller.agb, self._clock()):
            raise _not_found()
        return _see_other(request, f"/{PREFIX}/berichten/{traceer_id.lower()}")

    async def _send(self, request: server.Request, caller: Caller, route: _Route) -> bytes:
        parts = _multipart(request)
        csrf = parts.get("csrf", (b"", None))[0].decode("ascii", "replace")
        self._check_csrf(request, caller, csrf)
        traceer_id = parts.get("traceerId", (b"", None))[0].decode("ascii", "replace").lower()
        payload, filename = parts.get("bestand", (b"", None))
        if not is_uuid(traceer_id):
            raise _PageError(
                400,
                "Formulier onvolledig",
                "Het verzendformulier mist een onderdeel. Laad de pagina opnieuw.",
            )
        if not payload:
            return await self._overview(
                request, caller, route, status=400, error="Kies een bestand om te versturen."
            )
        berichttype, versie, subversie, actie = self._flow_for(payload, caller.discipline)
        metadata = send_metadata(
            caller.agb,
            berichttype,
            versie=versie,
            subversie=subversie,
            actie=actie,
            traceer_id=traceer_id,
            conversatie_id=traceer_id,
        )
        try:
            receipt = await self._intake.receive(
                Upload(
                    participant=caller.agb,
                    discipline=caller.discipline,
                    metadata=metadata,
                    payload=payload,
                    filename=_plain_filename(filename),
                )
            )
        except IntakeRefusedError as exc:
            text = _REFUSALS.get(exc.code, "Het bestand is geweigerd; er is niets opgeslagen.")
            log.info("portal upload refused: {code}", code=exc.code)
            return await self._overview(
                request, caller, route, status=STATUS_BY_KIND[exc.kind], error=text
            )
        log.info(
            "portal upload {outcome} traceerId={traceer_id} status={status}",
            outcome="stored" if receipt.created else "repeated",
            traceer_id=receipt.traceer_id,
            status=receipt.status.value,
        )
        return _see_other(request, f"/{PREFIX}/berichten/{receipt.traceer_id}")

    # helpers ------------------------------------------------------------------------------

    def _row(self, message: Message) -> _Row:
        row = _row(message)
        title = self._titles.get(message.standard or "")
        return replace(row, kind=title) if title else row

    async def _own(self, caller: Caller, traceer_id: str | None) -> Message:
        if traceer_id is None or not is_uuid(traceer_id):
            raise _not_found()
        message = await self._store.get_message(traceer_id.lower())
        if message is None or message.party != caller.agb or message.direction not in _VISIBLE:
            raise _not_found()
        return message

    def _flow_for(self, payload: bytes, discipline: str) -> tuple[str, int, int, str]:
        """The berichtstroom an EPD would send this file with: its own standard's name
        (or a configured berichttype naming it) and version, the first configured actie."""
        policy = self._settings.berichtstroom
        layout = _sniff(self._registry, payload)
        standard = layout.standard if layout else _DECLARATION_BY_DISCIPLINE.get(discipline, "")
        berichttype = standard or "onbekend"
        if policy.berichttypen:
            standards = {s.standard for s in self._registry.standards()}

            def names(value: str) -> str | None:
                named = policy.standaarden.get(value)
                return named if named else (value.upper() if value.upper() in standards else None)

            own = [t for t in policy.berichttypen if names(t) == standard]
            general = [t for t in policy.berichttypen if names(t) is None]
            berichttype = (own or general or list(policy.berichttypen))[0]
        versie = int(layout.version) if layout and layout.version.isdigit() else 0
        subversie = int(layout.subversion) if layout and layout.subversion.isdigit() else 0
        actie = policy.acties[0] if policy.acties else DEFAULT_ACTIE
        return berichttype, versie, subversie, actie

    # CSRF ---------------------------------------------------------------------------------

    def _csrf_for(self, request: server.Request, caller: Caller) -> str:
        nonce = _nonce(request)
        if nonce is None:
            nonce = secrets.token_urlsafe(24)
            request.addCookie(
                COOKIE, nonce, path="/", secure=True, httpOnly=True, sameSite="strict"
            )
        return self._token(caller, nonce)

    @staticmethod
    def _token(caller: Caller, nonce: str) -> str:
        message = f"igo-portaal-csrf:{caller.agb}".encode()
        return hmac.new(nonce.encode("ascii"), message, hashlib.sha256).hexdigest()

    def _check_csrf(self, request: server.Request, caller: Caller, given: str) -> None:
        nonce = _nonce(request)
        if nonce is None or not given or not hmac.compare_digest(self._token(caller, nonce), given):
            raise _PageError(
                403,
                "Formulier verlopen",
                "Dit formulier is verlopen of komt niet van deze site; er is niets "
                "veranderd. Laad de pagina opnieuw en probeer het nog eens.",
            )


# --- in front of the EPD API ----------------------------------------------------------------


class _WithPortal(resource.Resource):
    isLeaf = True

    def __init__(self, api: resource.Resource, portal: PortalResource) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._api, self._portal = api, portal

    def render(self, request: server.Request) -> bytes | int:
        if _is_portal(request):
            result: bytes | int = self._portal.render(request)
        else:
            result = self._api.render(request)
        return result


def with_portal(api: resource.Resource, portal: PortalResource) -> resource.Resource:
    """A root resource for the EPD API's site: ``/portaal`` and below to the portal, every
    other path to the API."""
    return _WithPortal(api, portal)


def portal_route_name(request: server.Request) -> str | None:
    """The portal route without ids (for logs and metrics), or None for a path that is
    not the portal's."""
    return _route_name(request) if _is_portal(request) else None


def _is_portal(request: server.Request) -> bool:
    postpath = request.postpath or []
    return bool(postpath) and postpath[0] == PREFIX.encode("ascii")


def _subpath(request: server.Request) -> list[str]:
    parts = [p.decode("utf-8", "replace") for p in (request.postpath or [])]
    if parts and parts[0] == PREFIX:
        parts = parts[1:]
    return [p for p in parts if p]  # /portaal and /portaal/ are the same page


def _route(parts: Sequence[str]) -> _Route | None:
    reads = ("GET", "HEAD")
    if not parts:
        return _Route(f"/{PREFIX}/", reads, "overview")
    if parts == ["static", "portaal.css"]:
        return _Route(f"/{PREFIX}/static/portaal.css", reads, "css")
    if parts == ["versturen"]:
        return _Route(f"/{PREFIX}/versturen", ("POST",), "send")
    if parts[0] == "berichten" and len(parts) in (2, 3):
        base = f"/{PREFIX}/berichten/{{traceerId}}"
        if len(parts) == 2:
            return _Route(base, reads, "message", parts[1])
        if parts[2] == "bestand":
            return _Route(base + "/bestand", reads, "download", parts[1])
        if parts[2] == "bevestigen":
            return _Route(base + "/bevestigen", ("POST",), "confirm", parts[1])
    return None


def _route_name(request: server.Request) -> str:
    route = _route(_subpath(request))
    return route.name if route is not None else f"/{PREFIX}/(onbekend)"


def _not_found() -> _PageError:
    return _PageError(
        404,
        "Niet gevonden",
        "Deze pagina of dit bericht bestaat niet, of hoort niet bij uw praktijk.",
    )


def _see_other(request: server.Request, location: str) -> bytes:
    request.setResponseCode(303)
    request.setHeader(b"location", location.encode("ascii"))
    return b""


def _nonce(request: server.Request) -> str | None:
    value = request.getCookie(COOKIE.encode("ascii"))
    if not isinstance(value, bytes) or not 16 <= len(value) <= 64:
        return None
    text = value.decode("ascii", "replace")
    return text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else None


def _body(request: server.Request, limit: int) -> bytes:
    content = request.content
    if content is None:
        return b""
    content.seek(0)
    data: bytes = content.read(limit + 1)
    return data


def _urlencoded(request: server.Request) -> dict[str, str]:
    raw = _body(request, MAX_FORM_BYTES)
    if len(raw) > MAX_FORM_BYTES:
        raise _PageError(413, "Formulier te groot", "Het formulier is te groot.")
    try:
        parsed = parse_qs(raw.decode("ascii"), max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        parsed = {}
    return {k: v[0] for k, v in parsed.items() if v}


def _multipart(request: server.Request) -> dict[str, tuple[bytes, str | None]]:
    """The parts of a multipart/form-data body by name (the first of each name); the
    request's own size limit bounds the body."""
    ctype = (request.getHeader(b"content-type") or b"").decode("latin-1")
    kind, options = multipart.parse_options_header(ctype)
    unreadable = _PageError(
        400, "Formulier onleesbaar", "Het formulier kon niet worden gelezen. Probeer het opnieuw."
    )
    if kind != "multipart/form-data":
        raise unreadable
    content = request.content
    if content is None:
        raise unreadable
    content.seek(0)
    body = content.read()
    parts: dict[str, tuple[bytes, str | None]] = {}
    try:
        with multipart.PushMultipartParser(
            options.get("boundary", ""), len(body), max_header_count=8, max_segment_count=MAX_PARTS
        ) as parser:
            segment: multipart.MultipartSegment | None = None
            chunks: list[bytes] = []
            for event in parser.parse(body):
                if isinstance(event, multipart.MultipartSegment):
                    segment, chunks = event, []
                elif event is not None:
                    chunks.append(bytes(event))
                elif segment is not None and segment.name and segment.name not in parts:
                    parts[segment.name] = (b"".join(chunks), segment.filename)
    except Exception:  # the parser raises several types on garbage
        raise unreadable from None
    return parts


def _plain_filename(name: str | None) -> str | None:
    """The file's own name (browsers may send a path), printable and short."""
    if not name:
        return None
    base = re.split(r"[\\/]", name)[-1]
    kept = "".join(c for c in base if c.isprintable())[:100]
    return kept or None


def _safe_filename(message: Message) -> str:
    name = message.filename or ""
    safe = "".join(c for c in name if c.isascii() and (c.isalnum() or c in "-_."))[:100]
    return safe.lstrip(".") or f"{message.traceer_id}.asc"


def _sniff(registry: LayoutRegistry, payload: bytes) -> Layout | None:
    """The standard a file's 01 record names, if the gateway knows it."""
    if payload[:2] != b"01" or len(payload) < 9:
        return None
    head = payload[2:9].decode("latin-1")
    return registry.lookup(head[0:3], head[3:5], head[5:7])


def _totals(registry: LayoutRegistry, payload: bytes) -> dict[str, str]:
    """The amounts in a file's closing (99) record, as euro texts: what it declares and,
    in a retour, what was granted. Empty for a file that cannot be read that far."""
    layout = _sniff(registry, payload)
    if layout is None or "99" not in layout.records:
        return {}
    if payload.strip().count(b"\n") < 2:  # a voorloop and a sluit record only: no amounts
        return {}
    last = payload.rstrip(b"\r\n\x1a ").rsplit(b"\n", 1)[-1].rstrip(b"\r")
    if last[:2] != b"99":
        return {}
    record = Record(layout.record("99"), last)
    totals: dict[str, str] = {}
    for name, label in (("total_declared", "declared"), ("total_granted", "granted")):
        try:
            value = record.get(name)
        except EIError:  # a malformed amount: not shown
            value = None
        if isinstance(value, int):
            totals[label] = euro_text(value)
    return totals


MAX_RETOUR_CODES: Final = 500


def retour_codes(registry: LayoutRegistry, payload: bytes) -> list[Melding]:
    """The retourcodes in a retour file, each with its Dutch meaning and the record it is
    in (number and kind) — never another value of that record. Empty for a file that is no
    retour the gateway can read. (A retour is read whole, on the reactor: retours are
    small, one answer to one declaration file.)"""
    layout = _sniff(registry, payload)
    if layout is None or layout.kind != "retour":
        return []
    found: list[Melding] = []
    try:
        for event in read_records(registry, [payload]):
            if not isinstance(event, Record):
                continue
            for f in event.layout.fields:
                if f.code != "COD954":
                    continue
                code = event.raw[f.slice].decode("latin-1").strip()
                if not code.isdigit() or not code.strip("0"):
                    continue
                where = f"record {event.number} ({event.layout.name}record)"
                found.append(Melding(code, describe(code), where))
                if len(found) >= MAX_RETOUR_CODES:
                    return found
    except EIError:  # a damaged retour: the codes read so far
        pass
    return found


def euro_text(cents: int) -> str:
    """``€ 1.010,50``: Dutch, a comma before the cents and points between thousands."""
    sign = "-" if cents < 0 else ""
    text = f"{abs(cents) / 100:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".")
    return f"€ {sign}{text}"


def local_time(moment: datetime) -> str:
    return moment.astimezone(AMSTERDAM).strftime("%d-%m-%Y %H:%M")


def meldingen(message: Message) -> list[Melding]:
    """The retourcodes kept with a rejected upload: code, Dutch meaning, record and field —
    never the offending value."""
    kept = message.metadata.get("meldingen")
    found: list[Melding] = []
    if not isinstance(kept, list):
        return found
    for item in kept[:100]:
        if not isinstance(item, dict) or not isinstance(item.get("code"), str):
            continue
        where = []
        if isinstance(item.get("record"), int) and item["record"] > 0:
            where.append(f"record {item['record']}")
        if isinstance(item.get("veld"), str):
            name = item.get("veldnaam")
            label = f" ({name})" if isinstance(name, str) and name else ""
            where.append(f"veld {item['veld']}{label}")
        found.append(Melding(item["code"], describe(item["code"]), ", ".join(where)))
    return found


@dataclass(frozen=True, slots=True)
class _Row:
    traceer_id: str
    filename: str
    standard: str
    kind: str
    received: str
    status: str
    status_code: str
    code: str
    meaning: str
    waiting: bool
    retour: bool


def _row(message: Message) -> _Row:
    first = meldingen(message)[:1]
    return _Row(
        traceer_id=message.traceer_id,
        filename=message.filename or "(zonder naam)",
        standard=message.standard or "onbekend",
        kind="",
        received=local_time(message.created_at),
        status=STATUS_LABELS.get(message.status, str(message.status)),
        status_code=message.status.value,
        code=first[0].code if first else "",
        meaning=first[0].meaning if first else "",
        waiting=message.direction is Direction.TO_PARTICIPANT and message.confirmed_at is None,
        retour=message.direction is Direction.TO_PARTICIPANT,
    )


@dataclass(frozen=True, slots=True)
class _HistoryRow:
    at: str
    status: str
    code: str
    meaning: str
    description: str


def _history_row(entry: StatusEntry) -> _HistoryRow:
    return _HistoryRow(
        at=local_time(entry.at),
        status=STATUS_LABELS.get(entry.status, str(entry.status)),
        code=entry.code or "",
        meaning=describe(entry.code) if entry.code else "",
        description=entry.description,
    )


def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("adapters.portal", "templates"),
        autoescape=True,  # every value is escaped, whatever the template's name
        undefined=jinja2.StrictUndefined,
    )
