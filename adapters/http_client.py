"""The HTTP plumbing the gateway's VSP clients share (the reference EPD client,
:mod:`adapters.vsp_client`, and the REST insurer link, :mod:`adapters.insurer_link.rest`):
one client certificate for every connection, a body known in full, and one request with a
deadline and a size limit on the answer. Each client maps the failures to its own errors.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IReactorTime
from twisted.python.failure import Failure
from twisted.web.client import readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IPolicyForHTTPS, IResponse
from zope.interface import implementer

__all__ = [
    "MAX_RESPONSE_BYTES",
    "AnswerTooLargeError",
    "BytesProducer",
    "ClientCertificatePolicy",
    "exchange",
]

MAX_RESPONSE_BYTES = 100 * 1024 * 1024


class AnswerTooLargeError(Exception):
    """The answer announced more than the limit; its body was not read."""

    def __init__(self, status: int) -> None:
        super().__init__(f"answer too large ({status})")
        self.status = status


@implementer(IPolicyForHTTPS)
class ClientCertificatePolicy:
    """Every connection presents the configured client certificate and checks the server's
    against the configured CA."""

    def __init__(self, creator: IOpenSSLClientConnectionCreator) -> None:
        self._creator = creator

    def creatorForNetloc(self, hostname: bytes, port: int) -> IOpenSSLClientConnectionCreator:
        return self._creator


@implementer(IBodyProducer)
class BytesProducer:
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


class _Discard:
    def makeConnection(self, transport: Any) -> None:
        transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        pass


async def exchange(
    agent: IAgent,
    reactor: IReactorTime,
    method: bytes,
    url: bytes,
    *,
    body: bytes | None,
    content_type: bytes | None,
    timeout: float,
    limit: int = MAX_RESPONSE_BYTES,
) -> tuple[int, bytes]:
    """One request and its whole answer: (status, body). Raises
    :class:`AnswerTooLargeError`, or whatever the transport raised (a timeout included)."""
    headers = Headers({b"accept": [b"application/json, application/octet-stream"]})
    if content_type is not None:
        headers.addRawHeader(b"content-type", content_type)
    producer = BytesProducer(body) if body is not None else None
    d = agent.request(method, url, headers, producer)
    d.addTimeout(timeout, reactor)
    response: IResponse = await d
    length = response.length
    if isinstance(length, int) and length > limit:
        response.deliverBody(_Discard())
        raise AnswerTooLargeError(response.code)
    reading: defer.Deferred[bytes] = readBody(response)
    reading.addTimeout(timeout, reactor)
    return response.code, await reading
