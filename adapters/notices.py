"""The ways a notice digest travels: e-mail over SMTP (twisted.mail's ESMTP client) and a
webhook (an HTTP POST of JSON, with twisted.web's Agent; HTTPS certificates checked against
the system's trust store). Each raises when the digest was not accepted,
so that the :class:`~gateway.notices.Notifier` tries its cases again next time — except
when no answer came in time or the connection broke once the request was under way: then
the digest may have arrived, and :class:`~gateway.ports.notices.DeliveryUncertainError` keeps
its cases from going out twice."""

from __future__ import annotations

import json
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, TimeoutError, succeed
from twisted.mail.smtp import sendmail
from twisted.python.failure import Failure
from twisted.web.client import Agent, ResponseFailed, ResponseNeverReceived, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from gateway.config import EmailNotices, NoticeChannel, WebhookNotices
from gateway.ports.notices import (
    DeliveryUncertainError,
    Digest,
    Transport,
    digest_json,
    digest_text,
)

__all__ = [
    "UNCERTAIN",
    "EmailTransport",
    "WebhookError",
    "WebhookTransport",
    "transport_for",
    "uncertain",
]

# Errors after which a digest may have arrived all the same.
UNCERTAIN = (TimeoutError, CancelledError, ResponseNeverReceived, ResponseFailed)


def uncertain(failure: Failure) -> Failure:
    """An error that leaves the digest's fate unknown, as :class:`DeliveryUncertainError`;
    any other error as it is."""
    if failure.check(*UNCERTAIN):
        raise DeliveryUncertainError(type(failure.value).__name__)
    return failure


@implementer(IBodyProducer)
class _Body:
    """A request body held in memory, written at once."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer: Any) -> Deferred[None]:
        consumer.write(self._data)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class WebhookError(Exception):
    """The webhook answered other than 2xx."""


class EmailTransport:
    def __init__(self, settings: EmailNotices, reactor: Any) -> None:
        self._settings = settings
        self._reactor = reactor
        self._password: bytes | None = None
        if settings.password_file is not None:
            self._password = settings.password_file.read_text(encoding="utf-8").strip().encode()

    def message(self, digest: Digest) -> bytes:
        settings = self._settings
        mail = EmailMessage()
        mail["From"] = settings.sender
        mail["To"] = ", ".join(settings.recipients)
        mail["Subject"] = digest.subject
        mail["Date"] = formatdate(digest.made_at.timestamp(), usegmt=True)
        mail["Message-ID"] = make_msgid(idstring=digest.id, domain=settings.sender.split("@")[1])
        mail.set_content(digest_text(digest))
        return mail.as_bytes()

    def deliver(self, digest: Digest) -> Deferred[Any]:
        settings = self._settings
        sending: Deferred[Any] = sendmail(
            settings.host,
            settings.sender,
            list(settings.recipients),
            self.message(digest),
            port=settings.port,
            reactor=self._reactor,
            username=settings.username.encode() if settings.username else None,
            password=self._password,
            requireAuthentication=settings.username is not None,
            requireTransportSecurity=settings.require_tls or settings.username is not None,
        )
        return sending.addTimeout(settings.timeout_seconds, self._reactor).addErrback(uncertain)


class WebhookTransport:
    def __init__(self, settings: WebhookNotices, reactor: Any) -> None:
        self._settings = settings
        self._reactor = reactor
        self._agent = Agent(reactor, connectTimeout=settings.timeout_seconds)

    async def deliver(self, digest: Digest) -> None:
        body = json.dumps(digest_json(digest)).encode()
        timeout = self._settings.timeout_seconds
        posting: Deferred[Any] = self._agent.request(
            b"POST",
            self._settings.url.encode("ascii"),
            Headers({b"Content-Type": [b"application/json"]}),
            _Body(body),
        )
        response = await posting.addTimeout(timeout, self._reactor).addErrback(uncertain)
        reading: Deferred[bytes] = readBody(response)
        await reading.addTimeout(timeout, self._reactor).addErrback(uncertain)
        if not 200 <= response.code < 300:
            raise WebhookError(f"the webhook answered {response.code}")


def transport_for(channel: NoticeChannel, reactor: Any) -> Transport:
    if channel.email is not None:
        return EmailTransport(channel.email, reactor)
    assert channel.webhook is not None
    return WebhookTransport(channel.webhook, reactor)
