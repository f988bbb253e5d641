"""The EPD API's request limits, with Twisted's in-memory transport and clock: an oversized
body is refused before it is read, a request that is not received in time is answered 408,
and a refused client that does not close is cut off."""

from __future__ import annotations

import json

from twisted.internet.task import Clock
from twisted.web import resource, server

from adapters.epd_api.http import CLOSE_GRACE_SECONDS, limited_request_factory
from tests.adapters.inmemory_http import Connection, connect

LIMIT = 100
DEADLINE = 5.0


class Counting(resource.Resource):
    """Answers with the size of the body it got; counts the requests that reached it."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.seen: list[int] = []

    def render_POST(self, request: server.Request) -> bytes:
        assert request.content is not None
        size = len(request.content.read())
        self.seen.append(size)
        return b"%d" % size


def open_connection(app: Counting, clock: Clock) -> Connection:
    site = server.Site(app, reactor=clock)
    site.requestFactory = limited_request_factory(LIMIT, DEADLINE, clock)
    return connect(site)


def status_and_body(transport: Connection) -> tuple[int, dict[str, object]]:
    status, _, body = transport.response()
    return status, json.loads(body)


def test_a_body_within_the_limit_reaches_the_resource() -> None:
    app, clock = Counting(), Clock()
    transport = open_connection(app, clock)
    transport.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"a" * 100)
    assert app.seen == [100]
    assert transport.written().startswith(b"HTTP/1.1 200 ")


def test_an_announced_oversized_body_is_refused_before_it_is_sent() -> None:
    app, clock = Counting(), Clock()
    transport = open_connection(app, clock)
    transport.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n")
    status, body = status_and_body(transport)
    assert status == 413
    assert body["code"] == "bericht-te-groot"
    assert transport.disconnecting
    transport.send(b"a" * 101)  # whatever still arrives is dropped
    assert app.seen == []


def test_a_chunked_body_is_cut_off_where_it_passes_the_limit() -> None:
    app, clock = Counting(), Clock()
    transport = open_connection(app, clock)
    transport.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    transport.send(b"40\r\n" + b"a" * 64 + b"\r\n")
    assert transport.written() == b""  # 64 bytes: still fine
    transport.send(b"40\r\n" + b"a" * 64 + b"\r\n")
    status, _ = status_and_body(transport)
    assert status == 413
    transport.send(b"0\r\n\r\n")
    assert app.seen == []


def test_a_request_not_received_within_the_deadline_is_answered_408() -> None:
    app, clock = Counting(), Clock()
    transport = open_connection(app, clock)
    transport.send(b"POST / HTTP/1.1\r\nHost: x\r\n")
    for _ in range(4):  # trickling keeps the connection busy, not the request alive
        clock.advance(DEADLINE / 5)
        transport.send(b"X")
    assert transport.written() == b""
    clock.advance(DEADLINE / 5)
    status, body = status_and_body(transport)
    assert status == 408
    assert body["code"] == "verzoek-te-traag"
    assert transport.disconnecting
    assert not transport.disconnected
    clock.advance(CLOSE_GRACE_SECONDS)
    assert transport.disconnected  # cut off: it did not close its side
    assert app.seen == []


def test_a_request_received_in_time_is_not_timed_out_afterwards() -> None:
    app, clock = Counting(), Clock()
    transport = open_connection(app, clock)
    transport.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    clock.advance(DEADLINE * 2)
    assert app.seen == [3]
    assert b" 408 " not in transport.written()
