"""The simulated insurer's HTTP side: the VECOZO ``/berichten`` shape, as the gateway's own
EPD API serves it, seen from the insurer's end.

=======  ==================================  ==============================================
POST     /berichten                          upload (multipart: berichtMetadata + payload)
GET      /berichten                          retours waiting for the caller
GET      /berichten/{traceerId}              one message's metadata
GET      /berichten/{traceerId}/payload      download a retour
DELETE   /berichten/{traceerId}              confirm receipt (removes it from the queue)
GET      /berichtstatussen?traceerId=…       status history of a file the caller sent
GET      /sim/claims                         what the insurer booked (JSON, for tests)
PUT      /sim/faults                         replace the faults (JSON like ``[faults]``)
=======  ==================================  ==============================================

The caller is whoever the verified client certificate names (its subject CN, else its
fingerprint); each caller has its own queue. The resource is thin: it parses, calls
:class:`~adapters.insurer_sim.insurer.SimulatedInsurer`, and writes the answer — late, when
the faults say so.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web import http, resource, server

from adapters.epd_api.http import UploadFormError, parse_upload
from adapters.insurer_sim.config import SimFaults
from adapters.insurer_sim.insurer import ConflictError, SimulatedInsurer, UploadFault
from adapters.tls import client_identity

__all__ = ["BerichtMetadata", "InsurerSimResource", "SimRequest", "certificate_caller"]

log = Logger()

MAX_METADATA_BYTES = 64 * 1024
Authenticate = Callable[[server.Request], str | None]


class _Party(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rol: str = Field(min_length=1, max_length=40)
    code: str = Field(min_length=1, max_length=20)


class _Flow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(min_length=1, max_length=20)
    versie: str | None = Field(default=None, max_length=10)


class BerichtMetadata(BaseModel):
    """The ``berichtMetadata`` part of an upload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    afzender: _Party
    geadresseerden: list[_Party] = Field(default_factory=list, max_length=10)
    berichtStroom: _Flow | None = None
    referentieId: str | None = Field(default=None, min_length=1, max_length=100)
    conversatieId: str | None = Field(default=None, min_length=1, max_length=100)


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


class _HttpError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


# status, body, headers, extra delay (negative: cut the connection, answer nothing)
_Answer = tuple[int, bytes, dict[bytes, bytes], float]
_CUT = -1.0


def _json(status: int, body: Any, *headers: tuple[bytes, bytes]) -> _Answer:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return status, data, {b"content-type": b"application/json", **dict(headers)}, 0.0


def _problem(status: int, code: str, detail: str) -> _Answer:
    body = {
        "type": f"urn:igo-gateway:insurer-sim:{code}",
        "title": http.RESPONSES.get(status, b"Error").decode("ascii"),
        "status": status,
        "code": code,
        "detail": detail,
    }
    data = json.dumps(body).encode("utf-8")
    return status, data, {b"content-type": b"application/problem+json"}, 0.0


class InsurerSimResource(resource.Resource):
    isLeaf = True

    def __init__(
        self,
        insurer: SimulatedInsurer,
        reactor: IReactorTime,
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
            except _HttpError as exc:
                answer = _problem(exc.status, exc.code, exc.detail)
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
        segments = [s.decode("utf-8", "replace") for s in request.postpath or [] if s]
        method = request.method
        if segments == ["berichten"]:
            if method == b"POST":
                return self._upload(request, caller)
            if method == b"GET":
                waiting = self._insurer.waiting(caller)
                return _json(200, {"berichten": [r.as_json() for r in waiting]})
            raise _not_allowed()
        if len(segments) in (2, 3) and segments[0] == "berichten":
            return self._message(request, caller, segments[1], segments[2:])
        if segments == ["berichtstatussen"] and method == b"GET":
            args: dict[bytes, list[bytes]] = request.args or {}
            ids = [v.decode("utf-8", "replace") for v in args.get(b"traceerId", [])][:50]
            if not ids:
                raise _HttpError(400, "parameter-ontbreekt", "Give traceerId.")
            history = [s for i in ids for s in self._insurer.statuses(caller, i)]
            if not history:
                raise _not_found()
            return _json(200, {"statussen": history})
        if segments == ["sim", "claims"] and method == b"GET":
            return _json(200, self._insurer.claims_json())
        if segments == ["sim", "faults"] and method == b"PUT":
            raw = request.content.read(MAX_METADATA_BYTES) if request.content else b""
            try:
                faults = SimFaults.model_validate_json(raw or b"{}")
            except ValidationError as exc:
                raise _HttpError(400, "storingen-ongeldig", _errors(exc)) from None
            self._insurer.set_faults(faults)
            log.info("faults replaced: {faults}", faults=faults.model_dump_json())
            return _json(200, faults.model_dump())
        raise _not_found()

    def _message(
        self, request: server.Request, caller: str, traceer_id: str, rest: Sequence[str]
    ) -> _Answer:
        method = request.method
        if rest:
            if rest != ["payload"]:
                raise _not_found()
            if method != b"GET":
                raise _not_allowed()
            retour = self._insurer.retour(caller, traceer_id)
            if retour is None:
                raise _not_found()
            headers = {
                b"content-type": b"application/octet-stream",
                b"x-checksum-sha256": retour.sha256.encode("ascii"),
                b"content-disposition": f'attachment; filename="{retour.filename}"'.encode(),
            }
            return 200, retour.payload, headers, 0.0
        if method == b"DELETE":
            if not self._insurer.confirm(caller, traceer_id):
                raise _not_found()
            return 204, b"", {}, 0.0
        if method != b"GET":
            raise _not_allowed()
        retour = self._insurer.retour(caller, traceer_id)
        if retour is not None:
            return _json(200, retour.as_json())
        sent = self._insurer.sent(caller, traceer_id)
        if sent is None:
            raise _not_found()
        return _json(200, sent.as_json())

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
            raise _HttpError(400, "metadata-ongeldig", _errors(exc)) from None
        try:
            received, created = self._insurer.receive(
                caller,
                payload,
                reference_id=metadata.referentieId,
                conversatie_id=metadata.conversatieId,
                filename=filename,
            )
        except ConflictError as exc:
            raise _HttpError(409, "referentie-hergebruikt", str(exc)) from None
        j = received.judgement
        log.info(
            "upload {outcome} traceerId={traceer_id} referentieId={reference} sha256={sha256}"
            " claim={claim} codes={codes}",
            outcome="booked" if created else "repeated",
            traceer_id=received.traceer_id,
            reference=metadata.referentieId or "-",
            sha256=received.sha256,
            claim=j.accepted,
            codes=",".join(j.codes) or "-",
        )
        status, body, headers, _ = _json(
            202 if created else 200,
            {
                "traceerId": received.traceer_id,
                "conversatieId": received.conversatie_id,
                "status": "ontvangen",
                "nieuw": created,
            },
            (b"location", f"/berichten/{received.traceer_id}".encode("ascii")),
        )
        if fault is UploadFault.CUT:
            log.info(
                "connection of the upload traceerId={traceer_id} cut on purpose",
                traceer_id=received.traceer_id,
            )
            return status, body, headers, _CUT
        hold = self._insurer.faults.stall_seconds if fault is UploadFault.STALL else 0.0
        if hold:
            log.info(
                "answer to traceerId={traceer_id} held back on purpose",
                traceer_id=received.traceer_id,
            )
        return status, body, headers, hold


def _write_late(request: server.Request, body: bytes) -> None:
    if request._disconnected or request.finished:
        return
    request.write(body)
    request.finish()


def _not_found() -> _HttpError:
    return _HttpError(404, "niet-gevonden", "No such message or resource.")


def _not_allowed() -> _HttpError:
    return _HttpError(405, "methode-niet-toegestaan", "This method is not allowed here.")


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
        for e in exc.errors(include_input=False, include_url=False)
    )


def _parse_multipart(request: server.Request) -> tuple[bytes, bytes, str | None]:
    try:
        return parse_upload(request, MAX_METADATA_BYTES)
    except UploadFormError as exc:
        raise _HttpError(exc.status, exc.code, exc.detail) from None
