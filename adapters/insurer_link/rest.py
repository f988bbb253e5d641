"""The insurer link over VECOZO-style REST, with the IGO's client certificate.

Implements :class:`gateway.insurer.InsurerLink` with ``twisted.web.client.Agent``:

* :meth:`RestInsurerLink.send` — ``POST /berichten``, multipart ``berichtMetadata`` +
  ``payload``. The file's stable id goes in the metadata's ``referentieId`` (and the
  factuurnummer is in the file itself), so when a re-send follows a timeout the insurer
  recognises it and answers with its first ``traceerId`` instead of booking a second
  claim: 202 is a new file, 200 a repeat — both are a :class:`~gateway.insurer.Delivery`.
* :meth:`RestInsurerLink.fetch` — ``GET /berichten``, then each payload; the payload's
  SHA-256 must match the checksum in the listing.
* :meth:`RestInsurerLink.confirm` — ``DELETE /berichten/{traceerId}``; a 404 means it was
  confirmed before (e.g. by an attempt whose answer was lost) and counts as done.

Every request has a deadline (``timeout`` seconds for the answer, again for its body).
Failures become :class:`~gateway.insurer.InsurerLinkError` here, once: a timeout, a refused
connection, 408/429/5xx are retryable; 409 is a conflict (the id was used for other bytes),
other 4xx a refusal; a failed certificate check is a TLS error.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from OpenSSL import SSL
from twisted.internet import defer, error
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    HTTPConnectionPool,
    ResponseFailed,
    readBody,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IPolicyForHTTPS, IResponse
from zope.interface import implementer

from adapters.tls import client_context_factory
from gateway.insurer import (
    Delivery,
    FetchedRetour,
    InsurerLinkError,
    LinkErrorReason,
    OutboundFile,
)

__all__ = ["RestInsurerLink"]

log = Logger()

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_PER_FETCH = 100
MAX_RESPONSE_BYTES = 100 * 1024 * 1024
SENDER_ROLE = "zorgaanbieder"
ADDRESSEE_ROLE = "zorgverzekeraar"


@implementer(IPolicyForHTTPS)
class _ClientCertificatePolicy:
    """Every connection of this link presents the IGO's certificate and checks the
    insurer's against the configured CA."""

    def __init__(self, creator: IOpenSSLClientConnectionCreator) -> None:
        self._creator = creator

    def creatorForNetloc(self, hostname: bytes, port: int) -> IOpenSSLClientConnectionCreator:
        return self._creator


@implementer(IBodyProducer)
class _BytesProducer:
    """A body known in full: written at once, without a cooperator (so it also works on an
    in-memory reactor in tests)."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: Any) -> defer.Deferred[None]:
        consumer.write(self._body)
        return defer.succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


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
    ) -> RestInsurerLink:
        """A link presenting the certificate ``cert``/``key`` and trusting only servers
        whose certificate a CA in ``ca`` issued for ``base_url``'s host name (and, with
        ``crl``, that the CA has not revoked). TLS 1.2+, ECDHE with AEAD ciphers only."""
        host = urlsplit(base_url).hostname or "localhost"
        creator = client_context_factory(cert, key, ca, hostname=host, crl_path=crl)
        pool = HTTPConnectionPool(reactor, persistent=False)
        agent = Agent(reactor, contextFactory=_ClientCertificatePolicy(creator), pool=pool)
        return cls(reactor, agent, base_url, sender=sender, insurer=insurer, timeout=timeout)

    # --- the port ----------------------------------------------------------------------------

    async def send(self, file: OutboundFile) -> Delivery:
        metadata: dict[str, Any] = {
            "afzender": {"rol": SENDER_ROLE, "code": file.sender},
            "geadresseerden": [{"rol": ADDRESSEE_ROLE, "code": file.insurer}],
            "berichtStroom": {"type": file.standard},
            "referentieId": file.message_id,
        }
        if file.conversation_id is not None:
            metadata["conversatieId"] = file.conversation_id
        filename = file.filename or f"{file.standard}-{file.message_id}.asc"
        body, content_type = _multipart(
            json.dumps(metadata).encode("utf-8"), file.payload, filename
        )
        status, data = await self._request(
            b"POST", "/berichten", body=body, content_type=content_type
        )
        if status not in (200, 201, 202):
            raise _status_error(status, data, "upload")
        answer = _json_object(data, "upload answer")
        remote_id = answer.get("traceerId")
        if not isinstance(remote_id, str) or not remote_id:
            raise InsurerLinkError(LinkErrorReason.PROTOCOL, "upload answer without traceerId")
        repeated = answer.get("nieuw") is False or status == 200
        log.info(
            "sent {message_id} to {insurer}: traceerId={remote_id}{repeat}",
            message_id=file.message_id,
            insurer=file.insurer,
            remote_id=remote_id,
            repeat=" (already there)" if repeated else "",
        )
        return Delivery(remote_id=remote_id, repeated=repeated)

    async def fetch(self) -> Sequence[FetchedRetour]:
        status, data = await self._request(b"GET", "/berichten")
        if status != 200:
            raise _status_error(status, data, "listing retours")
        listing = _json_object(data, "retour listing").get("berichten")
        if not isinstance(listing, list):
            raise InsurerLinkError(LinkErrorReason.PROTOCOL, "retour listing without berichten")
        retours = []
        for entry in listing[: self._max_per_fetch]:
            if not isinstance(entry, dict) or not isinstance(entry.get("traceerId"), str):
                raise InsurerLinkError(LinkErrorReason.PROTOCOL, "a listed retour has no traceerId")
            retours.append(await self._download(entry))
        return retours

    async def confirm(self, retour: FetchedRetour) -> None:
        status, data = await self._request(b"DELETE", f"/berichten/{_segment(retour.remote_id)}")
        if status in (200, 204, 404):
            return
        raise _status_error(status, data, "confirming a retour")

    # --- plumbing ----------------------------------------------------------------------------

    async def _download(self, entry: dict[str, Any]) -> FetchedRetour:
        traceer_id: str = entry["traceerId"]
        status, payload = await self._request(b"GET", f"/berichten/{_segment(traceer_id)}/payload")
        if status != 200:
            raise _status_error(status, payload, "downloading a retour")
        checksum = entry.get("checksum")
        expected = checksum.get("waarde") if isinstance(checksum, dict) else None
        if isinstance(expected, str) and hashlib.sha256(payload).hexdigest() != expected.lower():
            raise InsurerLinkError(
                LinkErrorReason.CORRUPT, f"retour {traceer_id} does not match its checksum"
            )

        def text(name: str) -> str | None:
            value = entry.get(name)
            return value if isinstance(value, str) and value else None

        return FetchedRetour(
            remote_id=traceer_id,
            payload=payload,
            in_reply_to=text("alsAntwoordOp"),
            conversation_id=text("conversatieId"),
            reference_id=text("referentieId"),
            standard=text("berichtType"),
            filename=text("bestandsnaam"),
        )

    async def _request(
        self,
        method: bytes,
        path: str,
        *,
        body: bytes | None = None,
        content_type: bytes | None = None,
    ) -> tuple[int, bytes]:
        headers = Headers({b"accept": [b"application/json, application/octet-stream"]})
        if content_type is not None:
            headers.addRawHeader(b"content-type", content_type)
        url = (self._base + path).encode("ascii")
        producer = _BytesProducer(body) if body is not None else None
        what = f"{method.decode()} {path}"
        try:
            d = self._agent.request(method, url, headers, producer)
            d.addTimeout(self._timeout, self._reactor)
            response: IResponse = await d
            length = response.length
            if isinstance(length, int) and length > MAX_RESPONSE_BYTES:
                response.deliverBody(_Discard())
                raise InsurerLinkError(LinkErrorReason.PROTOCOL, f"{what}: answer too large")
            reading: defer.Deferred[bytes] = readBody(response)
            reading.addTimeout(self._timeout, self._reactor)
            data = await reading
        except InsurerLinkError:
            raise
        except Exception as exc:
            raise _transport_error(exc, what) from None
        return response.code, data


class _Discard:
    def makeConnection(self, transport: Any) -> None:
        transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        pass


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


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise InsurerLinkError(LinkErrorReason.PROTOCOL, f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise InsurerLinkError(LinkErrorReason.PROTOCOL, f"{what} is not a JSON object")
    return value


def _status_error(status: int, data: bytes, what: str) -> InsurerLinkError:
    detail = ""
    try:
        body = json.loads(data)
        if isinstance(body, dict):
            detail = str(body.get("detail") or body.get("code") or "")[:200]
    except ValueError:
        pass
    message = f"{what}: HTTP {status}" + (f" ({detail})" if detail else "")
    if status == 409:
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
