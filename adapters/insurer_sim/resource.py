"""The simulated insurer's HTTP side: VECOZO's VSP-Koppeling, as the insurer's end of it —
the same three services the gateway's EPD API serves, at the same paths, with the same
shapes (``schemas/epd-api.openapi.json``), so that pointing the gateway at a real VECOZO
environment is a base URL and a certificate.

=======  ===============================================================  ==================
POST     /berichtenservice/berichten/rest-push/v1/berichten               a claim file: 204
GET      /berichtenservice/berichten/rest-pull/v1/berichten               retours waiting
POST     /berichtenservice/berichten/rest-pull/v1/berichten/zoeken        the same, by Zoekpad
GET      /berichtenservice/berichten/rest-pull/v1/berichten/{id}/payload  download a retour
DELETE   /berichtenservice/berichten/rest-pull/v1/berichten/{id}          confirm receipt: 202
GET      /berichtenservice/berichtstatus/rest-pull/v3/berichtstatussen    status (and v2)
GET      /sim/claims                                                      what was booked
PUT      /sim/faults                                                      replace the faults
=======  ===============================================================  ==================

The caller is whoever the verified client certificate names (its subject CN, else its
fingerprint); each caller has its own queue. The sender's ``traceerId`` is the file's id:
the same one with the same bytes is a repeat (``204`` again, booked once), with other
bytes ``422``. The resource is thin: it parses, calls
:class:`~adapters.insurer_sim.insurer.SimulatedInsurer`, and writes the answer — late, when
the faults say so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from pydantic import ValidationError
from twisted.logger import Logger
from twisted.web import http, resource, server

from adapters.epd_api.http import UploadFormError, parse_upload
from adapters.http_errors import VSP_STATUS_BY_KIND, HttpError
from adapters.insurer_sim.config import SimFaults
from adapters.insurer_sim.insurer import ConflictError, SimulatedInsurer, UploadFault
from adapters.tls import client_identity
from gateway.errors import ErrorKind
from gateway.ports.runtime import Clock
from gateway.vsp import (
    BERICHTSTATUS_V2,
    MAX_PULL,
    MAX_STATUSES,
    PULL_V1,
    PUSH_V1,
    STATUS_V2,
    STATUS_V3,
    BerichtMetadata,
    Berichtstatus,
    is_uuid,
    matches,
    pull_entry,
    service_path,
    zoekpad_adapter,
)

__all__ = ["InsurerSimResource", "SimRequest", "certificate_caller"]

log = Logger()

MAX_METADATA_BYTES = 64 * 1024
MAX_SCAN = 10_000
INSURER_ROLE = "Zorgverzekeraar"
SENDER_ROLE = "Zorgaanbieder"
RETOUR_ACTIE = "Retourneren"
Authenticate = Callable[[server.Request], str | None]


class SimRequest(server.Request):
    """Leaves the body alone: the resource parses the multipart upload itself."""

    def __init__(self, channel: http.HTTPChannel, *args: Any, **kwargs: Any) -> None:
        super().__init__(channel, *args, parsePOSTFormSubmission=False, **kwargs)  # type: ignore[no-untyped-call]


def certificate_caller(request: server.Request) -> str | None:
    """The caller behind a request's verified client certificate: its CN, else its
    SHA-256 fingerprint; None without one."""
    peer = client_identity(request)
    if peer is None:
        return None
    return peer.subject_cn or peer.fingerprint_sha256


# The simulator's one mapping of error kinds to statuses: like VECOZO's API, it answers
# a file it will not take with 422, a reused id (CONFLICT) included.
STATUS_BY_KIND: Final[Mapping[ErrorKind, int]] = VSP_STATUS_BY_KIND


# status, body, headers, extra delay (negative: cut the connection, answer nothing)
_Answer = tuple[int, bytes, dict[bytes, bytes], float]
_CUT = -1.0


def _json(status: int, body: Any, *headers: tuple[bytes, bytes]) -> _Answer:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return status, data, {b"content-type": b"application/json", **dict(headers)}, 0.0


def _problem(
    status: int, code: str, detail: str, errors: Mapping[str, Sequence[str]] | None = None
) -> _Answer:
    body: dict[str, Any] = {
        "type": f"urn:igo-gateway:insurer-sim:{code}",
        "title": http.RESPONSES.get(status, b"Error").decode("ascii"),
        "status": status,
        "code": code,
        "detail": detail,
    }
    if errors:
        body["errors"] = {name: list(texts) for name, texts in errors.items()}
    data = json.dumps(body).encode("utf-8")
    return status, data, {b"content-type": b"application/problem+json"}, 0.0


class InsurerSimResource(resource.Resource):
    isLeaf = True

    def __init__(
        self,
        insurer: SimulatedInsurer,
        reactor: Clock,
        authenticate: Authenticate = certificate_caller,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._insurer = insurer
        self._reactor = reactor
        self._authenticate = authenticate

    def render(self, request: server.Request) -> bytes | int:
        caller = self._authenticate(request)
        if caller is None:
            answer = _problem(403, "certificaat-onbekend", "No verified client certificate.")
        else:
            try:
                answer = self._dispatch(request, caller)
            except HttpError as exc:
                answer = _problem(exc.status, exc.code, exc.detail, exc.errors)
        status, body, headers, extra = answer
        if extra < 0:  # cut the connection instead of answering
            transport = request.channel.transport
            if transport is not None:
                getattr(transport, "abortConnection", transport.loseConnection)()
            return server.NOT_DONE_YET
        request.setResponseCode(status)
        request.setHeader(b"cache-control", b"no-store")
        for name, value in headers.items():
            request.setHeader(name, value)
        delay = self._insurer.faults.response_delay_seconds + extra
        if delay <= 0:
            return body
        call = self._reactor.callLater(delay, _write_late, request, body)

        def gone(_: object) -> None:
            if call.active():
                call.cancel()

        request.notifyFinish().addErrback(gone)
        return server.NOT_DONE_YET

    def _dispatch(self, request: server.Request, caller: str) -> _Answer:
        path = service_path(
            "/" + "/".join(s.decode("utf-8", "replace") for s in request.postpath or [])
        )
        method = request.method
        if path == f"{PUSH_V1}/berichten":
            if method != b"POST":
                raise _not_allowed()
            return self._upload(request, caller)
        if path == f"{PULL_V1}/berichten":
            if method != b"GET":
                raise _not_allowed()
            limit = _limit(request)
            return _json(200, self._listing(request, caller)[:limit])
        if path == f"{PULL_V1}/berichten/zoeken":
            if method != b"POST":
                raise _not_allowed()
            limit = _limit(request)
            raw = request.content.read(MAX_METADATA_BYTES) if request.content else b""
            try:
                zoekpad = zoekpad_adapter().validate_json(raw)
            except ValidationError as exc:
                detail = "The body does not match the Zoekpad schema."
                errors = _field_errors(exc, "zoekpad")
                raise HttpError(400, "zoekpad-ongeldig", detail, errors) from None
            found = [e for e in self._listing(request, caller) if matches(zoekpad, e)]
            return _json(200, found[:limit])
        if path.startswith(f"{PULL_V1}/berichten/"):
            rest = path[len(f"{PULL_V1}/berichten/") :].split("/")
            return self._message(request, caller, rest[0], rest[1:])
        for base, v2 in ((STATUS_V3, False), (STATUS_V2, True)):
            if path == f"{base}/berichtstatussen":
                if method != b"GET":
                    raise _not_allowed()
                return _json(200, self._statuses(request, caller, v2=v2))
        if path == "/sim/claims" and method == b"GET":
            return _json(200, self._insurer.claims_json())
        if path == "/sim/faults" and method == b"PUT":
            raw = request.content.read(MAX_METADATA_BYTES) if request.content else b""
            try:
                faults = SimFaults.model_validate_json(raw or b"{}")
            except ValidationError as exc:
                raise HttpError(400, "storingen-ongeldig", _errors(exc)) from None
            self._insurer.set_faults(faults)
            log.info("faults replaced: {faults}", faults=faults.model_dump_json())
            return _json(200, faults.model_dump())
        raise _not_found()

    def _listing(self, request: server.Request, caller: str) -> list[dict[str, Any]]:
        base = _base_url(request)
        uzovi = self._insurer.config.uzovi
        entries = []
        for retour in self._insurer.waiting(caller)[:MAX_SCAN]:
            entries.append(
                pull_entry(
                    base_url=base,
                    traceer_id=retour.traceer_id,
                    conversatie_id=retour.conversatie_id,
                    afzender={"rol": INSURER_ROLE, "code": uzovi},
                    geadresseerde={"rol": SENDER_ROLE, "code": caller[:100]},
                    berichtstroom=self._flow(retour.standard),
                    received_at=retour.created_at,
                    size=len(retour.payload),
                    sha256=retour.sha256,
                    als_antwoord_op=retour.reply_to,
                )
            )
        return entries

    def _flow(self, standard: str, actie: str = RETOUR_ACTIE) -> dict[str, Any]:
        try:
            layout = self._insurer.registry.by_standard(standard)
            version = (int(layout.version), int(layout.subversion))
        except (KeyError, ValueError):
            version = (0, 0)
        return {
            "berichttype": standard[:60] or "onbekend",
            "berichtversie": version[0],
            "berichtsubversie": version[1],
            "actie": actie,
        }

    def _message(
        self, request: server.Request, caller: str, traceer_id: str, rest: Sequence[str]
    ) -> _Answer:
        method = request.method
        if rest:
            if rest != ["payload"]:
                raise _not_found()
            if method != b"GET":
                raise _not_allowed()
            retour = self._insurer.retour(caller, traceer_id.lower())
            if retour is None:
                raise _not_found()
            headers = {
                b"content-type": b"application/octet-stream",
                b"content-disposition": f'attachment; filename="{retour.filename}"'.encode(),
            }
            return 200, retour.payload, headers, 0.0
        if method != b"DELETE":
            raise _not_allowed()
        retour = self._insurer.retour(caller, traceer_id.lower())
        if retour is None:
            raise _not_found()
        self._insurer.confirm(caller, retour.traceer_id)  # again: still 202
        return 202, b"", {}, 0.0

    def _statuses(self, request: server.Request, caller: str, *, v2: bool) -> list[Any]:
        args: dict[bytes, list[bytes]] = request.args or {}
        given = {
            name: args[name.encode()][0].decode("utf-8", "replace")
            for name in ("traceerId", "conversatieId")
            if args.get(name.encode()) and args[name.encode()][0]  # empty: not given
        }
        if len(given) != 1:
            detail = "Give one of traceerId and conversatieId."
            errors = {"traceerId": [detail], "conversatieId": [detail]}
            raise HttpError(400, "parameter-ontbreekt", detail, errors)
        ((name, value),) = given.items()
        if not is_uuid(value):
            detail = f"{name} must be a UUID."
            raise HttpError(400, "parameter-ongeldig", detail, {name: [detail]})
        entries = self._insurer.status_entries(caller)
        wanted = value.lower()
        if name == "traceerId":
            found = [
                e
                for e in entries
                if wanted
                in (
                    e["referentiegegevens"]["traceerId"],
                    e["referentiegegevens"].get("alsAntwoordOp"),
                )
            ]
        else:
            found = [e for e in entries if e["referentiegegevens"]["conversatieId"] == wanted]
        if v2:
            for entry in found:
                entry["berichtstatus"] = BERICHTSTATUS_V2[Berichtstatus(entry["berichtstatus"])]
        for entry in found:
            entry["berichtstroom"] = self._flow(*entry.pop("_stroom"))
        return found[:MAX_STATUSES]

    def _upload(self, request: server.Request, caller: str) -> _Answer:
        fault = self._insurer.next_upload_fault()
        if fault is UploadFault.FAIL:
            status = self._insurer.faults.fail_status
            log.info("upload refused on purpose with {status}", status=status)
            return _problem(status, "gesimuleerde-storing", "Simulated outage; try again later.")
        raw_metadata, payload, filename = _parse_multipart(request)
        try:
            metadata = BerichtMetadata.model_validate_json(raw_metadata)
        except ValidationError as exc:
            raise HttpError(
                400,
                "metadata-ongeldig",
                "berichtMetadata does not match the BerichtMetadata schema.",
                _field_errors(exc, "berichtMetadata"),
            ) from None
        if not payload:
            detail = "The payload is empty."
            raise HttpError(400, "payload-leeg", detail, {"payload": [detail]})
        references = metadata.referentiegegevens
        try:
            received, created = self._insurer.receive(
                caller,
                payload,
                reference_id=references.referentieId,
                conversatie_id=references.conversatieId,
                filename=filename,
                traceer_id=references.traceerId,
                service_reject=fault is UploadFault.SERVICE_REJECT,
            )
        except ConflictError as exc:
            raise HttpError(
                STATUS_BY_KIND[exc.kind],
                exc.code,
                str(exc),
                {f"referentiegegevens.{exc.field}": [str(exc)]},
            ) from None
        j = received.judgement
        log.info(
            "upload {outcome} traceerId={traceer_id} referentieId={reference} sha256={sha256}"
            " claim={claim} codes={codes}",
            outcome=(
                "repeated"
                if not created
                else ("rejected by the service" if received.service_rejection else "booked")
            ),
            traceer_id=received.traceer_id,
            reference=references.referentieId or "-",
            sha256=received.sha256,
            claim=received.booked,
            codes=",".join(received.service_rejection or j.codes) or "-",
        )
        answer: _Answer = (204, b"", {}, 0.0)
        if fault is UploadFault.CUT:
            log.info(
                "connection of the upload traceerId={traceer_id} cut on purpose",
                traceer_id=received.traceer_id,
            )
            return 204, b"", {}, _CUT
        hold = self._insurer.faults.stall_seconds if fault is UploadFault.STALL else 0.0
        if hold:
            log.info(
                "answer to traceerId={traceer_id} held back on purpose",
                traceer_id=received.traceer_id,
            )
            return 204, b"", {}, hold
        return answer


def _answers(entry: dict[str, Any]) -> str | None:
    found: str | None = entry["referentiegegevens"].get("alsAntwoordOp")
    return found


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


def _base_url(request: server.Request) -> str:
    host = (request.getHeader(b"host") or b"").decode("latin-1")
    if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?", host):
        address = request.getHost()
        host = f"{getattr(address, 'host', 'localhost')}:{getattr(address, 'port', 443)}"
    return f"https://{host}"


def _write_late(request: server.Request, body: bytes) -> None:
    if request._disconnected or request.finished:
        return
    request.write(body)
    request.finish()


def _not_found() -> HttpError:
    return HttpError(404, "niet-gevonden", "No such message or resource.")


def _not_allowed() -> HttpError:
    return HttpError(405, "methode-niet-toegestaan", "This method is not allowed here.")


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
        for e in exc.errors(include_input=False, include_url=False)
    )


def _field_errors(exc: ValidationError, root: str) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for err in exc.errors(include_input=False, include_url=False):
        path = ".".join(str(p) for p in err["loc"] if not str(p).startswith("Zoekpad"))
        errors.setdefault(path or root, []).append(err["msg"])
    return errors


def _parse_multipart(request: server.Request) -> tuple[bytes, bytes, str | None]:
    try:
        return parse_upload(request, MAX_METADATA_BYTES)
    except UploadFormError as exc:
        raise HttpError(exc.status, exc.code, exc.detail, {exc.part: [exc.detail]}) from None
