"""A tiny real mutual-TLS peer for ``test_tls.py``, run as a separate process.

``serve --config FILE``: listens on 127.0.0.1 (any free port) with the TLS files of the
config's ``[epd_api.tls]``, prints the port, and answers every client that completes the
handshake with one JSON line (its verified certificate and the participant it maps to),
then closes the connection. Runs until terminated. With ``--http`` it is a ``twisted.web``
site instead, answering every request with that JSON, taken from the request.

``connect --port N --cert --key --ca [--crl]``: connects to 127.0.0.1:N with
:func:`adapters.tls.client_context_factory` and prints what the server answered, or
``refused: ...`` (exit status 1) when the handshake fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from twisted.internet import defer, endpoints, protocol, task
from twisted.internet.interfaces import (
    IHandshakeListener,
    IProtocolFactory,
    IReactorCore,
    IReactorTCP,
)
from twisted.python.failure import Failure
from twisted.web import resource, server
from zope.interface import implementer

from adapters.tls import Identities, client_context_factory, client_identity, server_context_factory
from gateway.config import load_config

LOOPBACK = "127.0.0.1"


def describe(transport_or_request: Any, transport: Any, identities: Identities) -> bytes:
    peer = client_identity(transport_or_request)
    participant = identities.participant_for(peer)
    handle = transport.getHandle()
    answer = {
        "cn": peer.subject_cn if peer else None,
        "fingerprint": peer.fingerprint_sha256 if peer else None,
        "participant": participant.agb if participant else None,
        "tls_version": handle.get_protocol_version_name(),
        "cipher": handle.get_cipher_name(),
    }
    return json.dumps(answer).encode() + b"\n"


@implementer(IHandshakeListener)
class Answer(protocol.Protocol):
    def __init__(self, identities: Identities) -> None:
        self.identities = identities

    def handshakeCompleted(self) -> None:
        assert self.transport is not None
        self.transport.write(describe(self.transport, self.transport, self.identities))
        self.transport.loseConnection()


class AnswerResource(resource.Resource):
    isLeaf = True

    def __init__(self, identities: Identities) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.identities = identities

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        return describe(request, request.transport, self.identities)


class Collect(protocol.Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.done: defer.Deferred[bytes] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        if self.received:
            self.done.callback(self.received)
        else:
            self.done.errback(reason)


async def serve(reactor: Any, config_path: Path, http: bool) -> None:
    config = load_config(config_path)
    assert config.epd_api.host == LOOPBACK, "the test server listens on loopback only"
    tls = config.epd_api.tls
    identities = Identities.from_config(config)
    endpoint = endpoints.SSL4ServerEndpoint(
        reactor,
        0,
        server_context_factory(tls.cert, tls.key, tls.trust, tls.crl),
        interface=LOOPBACK,
    )
    factory: IProtocolFactory
    if http:
        factory = server.Site(AnswerResource(identities))
    else:
        factory = protocol.Factory.forProtocol(lambda: Answer(identities))
    port = await endpoint.listen(factory)
    print(port.getHost().port, flush=True)
    await defer.Deferred()  # until the test terminates the process


async def connect(reactor: Any, args: argparse.Namespace) -> None:
    creator = client_context_factory(args.cert, args.key, args.ca, crl_path=args.crl)
    endpoint = endpoints.wrapClientTLS(
        creator, endpoints.TCP4ClientEndpoint(reactor, LOOPBACK, args.port, timeout=5)
    )
    collector = await endpoints.connectProtocol(endpoint, Collect())
    try:
        answer = await collector.done
    except Exception as exc:
        print(f"refused: {exc!r}", flush=True)
        raise SystemExit(1) from None
    print(answer.decode().strip(), flush=True)


def main(reactor: IReactorCore | IReactorTCP, argv: list[str]) -> defer.Deferred[None]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--http", action="store_true")
    p = sub.add_parser("connect")
    p.add_argument("--port", type=int, required=True)
    for name in ("--cert", "--key", "--ca"):
        p.add_argument(name, type=Path, required=True)
    p.add_argument("--crl", type=Path)
    args = parser.parse_args(argv)
    if args.mode == "serve":
        return defer.ensureDeferred(serve(reactor, args.config, args.http))
    return defer.ensureDeferred(connect(reactor, args))


if __name__ == "__main__":
    task.react(main, (sys.argv[1:],))
