"""The insurer link: the gateway as a client of VECOZO's VSP-Koppeling, with the IGO's
client certificate.

Implements :class:`gateway.ports.insurer.InsurerLink` with ``twisted.web.client.Agent`` against
the three services at the insurer's (or VECOZO's) base URL — the paths and shapes the
gateway's own EPD API serves (:mod:`gateway.vsp`):

* :meth:`RestInsurerLink.send` — REST Push ``POST /berichten``, multipart
  ``berichtMetadata`` + ``payload``. The file's ``traceerId`` is derived from its stable
  outbound id (a UUID5), so a re-send after a timeout or a crash carries the same
  traceerId and the receiver takes it as the same message (``204`` again); ``referentieId``
  is the outbound id itself. ``422`` (the traceerId known with other bytes) is a conflict.
* :meth:`RestInsurerLink.fetch` — REST Pull ``GET /berichten``, then each payload; its
  SHA256 and size must match the listing's ``basisgegevens.payload``.
* :meth:`RestInsurerLink.confirm` — ``DELETE /berichten/{traceerId}`` (``202``); a 404
  means it was confirmed before (e.g. by an attempt whose answer was lost) and counts as
  done.
* :meth:`RestInsurerLink.answers_to` — REST Pull ``POST /berichten/zoeken`` with a
  ``ZoekpadOpAlsAntwoordOp``: the retours answering one delivered file, downloaded and
  checked as :meth:`~RestInsurerLink.fetch` does.
* :meth:`RestInsurerLink.status_of` — Berichtstatus v3 ``GET /berichtstatussen?traceerId=``:
  the entry of the file itself. ``AfgekeurdDoorDienst`` (the service rejected it) and
  ``BezorgingAfgebroken`` (the service gave up delivering it) mean that no retour will
  come (our reading of the status names; VECOZO does not document which statuses are
  final); of the meldingen only their codes are kept, never ``omschrijving`` or
  ``toelichting``, which may name client data.

Every request has a deadline (``timeout`` seconds for the answer, again for its body).
Failures become :class:`~gateway.ports.insurer.InsurerLinkError` here, once: a timeout, a refused
connection, 408/429/5xx are retryable; 409 and 422 are a conflict, other 4xx a refusal; a
failed certificate check is a TLS error.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from OpenSSL import SSL
from twisted.internet import defer, error
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.client import (
    Agent,
    HTTPConnectionPool,
    ResponseFailed,
)
from twisted.web.iweb import IAgent

from adapters.http_client import AnswerTooLargeError, ClientCertificatePolicy, exchange
from adapters.tls import client_context_factory
from gateway.ports.insurer import (
    Delivery,
    FetchedRetour,
    InsurerLinkError,
    LinkErrorReason,
    OutboundFile,
    ServiceStatus,
)
from gateway.vsp import PULL_V1, PUSH_V1, STATUS_V3, as_uuid, send_metadata

__all__ = ["RestInsurerLink"]

log = Logger()

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_PER_FETCH = 100
SENDER_ROLE = "Zorgaanbieder"
ADDRESSEE_ROLE = "Zorgverzekeraar"
# Statuses after which no retour will come (our reading of VECOZO's names).
NO_RETOUR_STATUSES = frozenset({"AfgekeurdDoorDienst", "BezorgingAfgebroken"})
MAX_CODES = 20
_CODE = re.compile(r"[0-9A-Za-z_.-]{1,20}")
_OUTBOUND = uuid.UUID("6f1c2a52-5d0b-4b7e-9a51-3c1f2b7d8e90")  # namespace of outbound ids


def outbound_traceer_id(message_id: str) -> str:
    """The traceerId of an outbound file: the same for every attempt to send it."""
    return str(uuid.uuid5(_OUTBOUND, message_id))


@dataclass(frozen=True, slots=True)
class _Listed:
    traceer_id: str
    references: dict[str, str]
    sha256: str | None
    size: int | None
    berichttype: str | None


def _listed(entry: object) -> _Listed:
    """What a pulled BerichtMetadata says about a retour (a protocol error if it lacks
    its traceerId)."""
    if not isinstance(entry, dict):
        raise InsurerLinkError(LinkErrorReason.PROTOCOL, "a listed retour is not an object")
    references = entry.get("referentiegegevens")
    if not isinstance(references, dict) or not isinstance(references.get("traceerId"), str):
        raise InsurerLinkError(LinkErrorReason.PROTOCOL, "a listed retour has no traceerId")
    texts = {k: v for k, v in references.items() if isinstance(v, str) and v}
    download = (entry.get("basisgegevens") or {}).get("payload") or {}
    checksum = download.get("checksum") if isinstance(download, dict) else None
    sha256 = None
    if (
        isinstance(checksum, dict)
        and str(checksum.get("algoritme", "")).upper().replace("-", "") == "SHA256"
        and isinstance(checksum.get("waarde"), str)
    ):
        sha256 = checksum["waarde"].lower()
    size = download.get("grootte") if isinstance(download, dict) else None
    flow = (entry.get("routeringgegevens") or {}).get("berichtstroom") or {}
    berichttype = flow.get("berichttype") if isinstance(flow, dict) else None
    return _Listed(
        traceer_id=texts["traceerId"],
        references=texts,
        sha256=sha256,
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        berichttype=berichttype if isinstance(berichttype, str) else None,
    )


class RestInsurerLink:
    """One insurer's ``/berichten`` endpoint at ``base_url`` (see the module docs).

    ``sender`` is the AGB code the IGO sends under, ``insurer`` the insurer's UZOVI code.
    Build it with :meth:`with_certificate` in production; tests pass any ``IAgent``.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        agent: IAgent,
        base_url: str,
        *,
        sender: str,
        insurer: str,
        timeout: float = DEFAULT_TIMEOUT,
        max_per_fetch: int = DEFAULT_MAX_PER_FETCH,
        versions: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self._reactor = reactor
        self._agent = agent
        self._base = base_url.rstrip("/")
        self.sender = sender
        self.insurer = insurer
        self._timeout = timeout
        self._max_per_fetch = max_per_fetch
        self._versions = dict(versions or {})

    @classmethod
    def with_certificate(
        cls,
        reactor: Any,
        base_url: str,
        *,
        cert: str,
        key: str,
        ca: str,
        sender: str,
        insurer: str,
        timeout: float = DEFAULT_TIMEOUT,
        crl: str | None = None,
        versions: Mapping[str, tuple[int, int]] | None = None,
    ) -> RestInsurerLink:
        """A link presenting the certificate ``cert``/``key`` and trusting only servers
        whose certificate a CA in ``ca`` issued for ``base_url``'s host name (and, with
        ``crl``, that the CA has not revoked). TLS 1.2+, ECDHE with AEAD ciphers only."""
        host = urlsplit(base_url).hostname or "localhost"
        creator = client_context_factory(cert, key, ca, hostname=host, crl_path=crl)
        pool = HTTPConnectionPool(reactor, persistent=False)
        agent = Agent(reactor, contextFactory=ClientCertificatePolicy(creator), pool=pool)
        return cls(
            reactor,
            agent,
            base_url,
            sender=sender,
            insurer=insurer,
            timeout=timeout,
            versions=versions,
        )

    # --- the port ----------------------------------------------------------------------------

    async def send(self, file: OutboundFile) -> Delivery:
        traceer_id = outbound_traceer_id(file.message_id)
        version, subversion = self._versions.get(file.standard, (0, 0))
        metadata = send_metadata(
            file.sender,
            file.standard,
            versie=version,
            subversie=subversion,
            rol=SENDER_ROLE,
            geadresseerden=[(ADDRESSEE_ROLE, file.insurer)],
            traceer_id=traceer_id,
            conversatie_id=as_uuid(file.conversation_id or file.message_id),
            referentie_id=file.message_id[:150],
        )
        filename = file.filename or f"{file.standard}-{file.message_id}.asc"
        body, content_type = _multipart(
            json.dumps(metadata.recorded()).encode("utf-8"), file.payload, filename
        )
        status, data = await self._request(
            b"POST", f"{PUSH_V1}/berichten", body=body, content_type=content_type
        )
        if status not in (200, 201, 202, 204):
            raise _status_error(status, data, "upload")
        log.info(
            "sent {message_id} to {insurer}: traceerId={remote_id}",
            message_id=file.message_id,
            insurer=file.insurer,
            remote_id=traceer_id,
        )
        return Delivery(remote_id=traceer_id, repeated=False)

    async def fetch(self) -> Sequence[FetchedRetour]:
        status, data = await self._request(b"GET", f"{PULL_V1}/berichten?limit={self._limit}")
        return await self._retours(status, data, "listing retours")

    async def answers_to(self, remote_id: str) -> Sequence[FetchedRetour]:
        zoekpad = {"zoekpadType": "ZoekpadOpAlsAntwoordOp", "alsAntwoordOp": remote_id}
        status, data = await self._request(
            b"POST",
            f"{PULL_V1}/berichten/zoeken?limit={self._limit}",
            body=json.dumps(zoekpad).encode("utf-8"),
            content_type=b"application/json",
        )
        return await self._retours(status, data, "searching retours")

    async def status_of(self, remote_id: str) -> ServiceStatus | None:
        status, data = await self._request(
            b"GET", f"{STATUS_V3}/berichtstatussen?traceerId={_segment(remote_id)}"
        )
        if status != 200:
            raise _status_error(status, data, "reading a status")
        try:
            entries = json.loads(data)
        except ValueError:
            raise InsurerLinkError(LinkErrorReason.PROTOCOL, "status answer is not JSON") from None
        if not isinstance(entries, list):
            raise InsurerLinkError(LinkErrorReason.PROTOCOL, "status answer is not an array")
        return _service_status(entries, remote_id)

    @property
    def _limit(self) -> int:
        return max(1, min(self._max_per_fetch, 250))

    async def _retours(self, status: int, data: bytes, what: str) -> list[FetchedRetour]:
        if status != 200:
            raise _status_error(status, data, what)
        try:
            listing = json.loads(data)
        except ValueError:
            raise InsurerLinkError(LinkErrorReason.PROTOCOL, "retour listing is not JSON") from None
        if not isinstance(listing, list):
            raise InsurerLinkError(LinkErrorReason.PROTOCOL, "retour listing is not an array")
        retours = []
        for entry in listing[: self._max_per_fetch]:
            retours.append(await self._download(_listed(entry)))
        return retours

    async def confirm(self, retour: FetchedRetour) -> None:
        status, data = await self._request(
            b"DELETE", f"{PULL_V1}/berichten/{_segment(retour.remote_id)}"
        )
        if status in (200, 202, 204, 404):
            return
        raise _status_error(status, data, "confirming a retour")

    # --- plumbing ----------------------------------------------------------------------------

    async def _download(self, entry: _Listed) -> FetchedRetour:
        status, payload = await self._request(
            b"GET", f"{PULL_V1}/berichten/{_segment(entry.traceer_id)}/payload"
        )
        if status != 200:
            raise _status_error(status, payload, "downloading a retour")
        if entry.sha256 is not None and hashlib.sha256(payload).hexdigest() != entry.sha256:
            raise InsurerLinkError(
                LinkErrorReason.CORRUPT, f"retour {entry.traceer_id} does not match its checksum"
            )
        if entry.size is not None and entry.size != len(payload):
            raise InsurerLinkError(
                LinkErrorReason.CORRUPT, f"retour {entry.traceer_id} does not have its size"
            )
        return FetchedRetour(
            remote_id=entry.traceer_id,
            payload=payload,
            in_reply_to=entry.references.get("alsAntwoordOp"),
            conversation_id=entry.references.get("conversatieId"),
            reference_id=entry.references.get("referentieId"),
            standard=entry.berichttype,
        )

    async def _request(
        self,
        method: bytes,
        path: str,
        *,
        body: bytes | None = None,
        content_type: bytes | None = None,
    ) -> tuple[int, bytes]:
        what = f"{method.decode()} {path}"
        try:
            return await exchange(
                self._agent,
                self._reactor,
                method,
                (self._base + path).encode("ascii"),
                body=body,
                content_type=content_type,
                timeout=self._timeout,
            )
        except AnswerTooLargeError:
            raise InsurerLinkError(LinkErrorReason.PROTOCOL, f"{what}: answer too large") from None
        except Exception as exc:
            raise _transport_error(exc, what) from None


def _segment(value: str) -> str:
    return quote(value, safe="")


def _multipart(metadata: bytes, payload: bytes, filename: str) -> tuple[bytes, bytes]:
    boundary = uuid.uuid4().hex
    safe_name = "".join(c for c in filename if c.isalnum() or c in "-_.")[:100] or "bestand.asc"
    b = boundary.encode("ascii")
    body = b"".join(
        [
            b"--" + b + b"\r\n",
            b'Content-Disposition: form-data; name="berichtMetadata"\r\n',
            b"Content-Type: application/json\r\n\r\n",
            metadata,
            b"\r\n--" + b + b"\r\n",
            b'Content-Disposition: form-data; name="payload"; filename="'
            + safe_name.encode("ascii")
            + b'"\r\n',
            b"Content-Type: application/octet-stream\r\n\r\n",
            payload,
            b"\r\n--" + b + b"--\r\n",
        ]
    )
    return body, b"multipart/form-data; boundary=" + b


def _service_status(entries: list[Any], remote_id: str) -> ServiceStatus | None:
    """The status of the message ``remote_id`` among a Berichtstatus answer's entries
    (which list its answers too): its status and, when no retour will come, the codes of
    its meldingen that look like codes — nothing else of them. None when it is not there
    or its status is not text."""
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        references = entry.get("referentiegegevens")
        if not isinstance(references, dict) or references.get("traceerId") != remote_id:
            continue
        status = entry.get("berichtstatus")
        if not isinstance(status, str) or not status:
            return None
        rejected = status in NO_RETOUR_STATUSES
        codes: list[str] = []
        meldingen = entry.get("meldingen")
        if rejected and isinstance(meldingen, list):
            for melding in meldingen:
                code = melding.get("code") if isinstance(melding, dict) else None
                if isinstance(code, str) and _CODE.fullmatch(code) and code not in codes:
                    codes.append(code)
        return ServiceStatus(status[:60], rejected, tuple(codes[:MAX_CODES]))
    return None


def _status_error(status: int, data: bytes, what: str) -> InsurerLinkError:
    detail = ""
    try:
        body = json.loads(data)
        if isinstance(body, dict):
            detail = str(body.get("detail") or body.get("code") or "")[:200]
    except ValueError:
        pass
    message = f"{what}: HTTP {status}" + (f" ({detail})" if detail else "")
    if status in (409, 422):
        reason = LinkErrorReason.CONFLICT
    elif status in (408, 429) or status >= 500:
        reason = LinkErrorReason.UNAVAILABLE
    elif 400 <= status < 500:
        reason = LinkErrorReason.REFUSED
    else:
        reason = LinkErrorReason.PROTOCOL
    return InsurerLinkError(reason, message, status=status)


def _transport_error(exc: BaseException, what: str) -> InsurerLinkError:
    """The one place where Twisted's and OpenSSL's exceptions become the link's."""
    if isinstance(exc, defer.TimeoutError | defer.CancelledError):
        return InsurerLinkError(LinkErrorReason.TIMEOUT, f"{what}: no answer in time")
    reasons: list[Any] = []
    if isinstance(exc, ResponseFailed) or hasattr(exc, "reasons"):
        reasons = list(getattr(exc, "reasons", []))
    for failure in reasons:
        value = getattr(failure, "value", None)
        if isinstance(value, SSL.Error):
            return InsurerLinkError(LinkErrorReason.TLS, f"{what}: TLS failed ({value})")
        if isinstance(value, defer.CancelledError | defer.TimeoutError):
            return InsurerLinkError(LinkErrorReason.TIMEOUT, f"{what}: no answer in time")
    if isinstance(exc, SSL.Error):
        return InsurerLinkError(LinkErrorReason.TLS, f"{what}: TLS failed ({exc})")
    if isinstance(exc, error.ConnectError | error.DNSLookupError | ConnectionError):
        return InsurerLinkError(LinkErrorReason.UNREACHABLE, f"{what}: cannot connect ({exc})")
    return InsurerLinkError(
        LinkErrorReason.UNREACHABLE, f"{what}: connection lost ({type(exc).__name__})"
    )
