"""Drive a twisted.web site in memory: no sockets, no reactor, time from a ``Clock``."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.web import server


class Connection(StringTransport):
    """The client's end: what the server wrote, and a way to send it bytes."""

    channel: Any

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def send(self, data: bytes) -> None:
        self.channel.dataReceived(data)

    def written(self) -> bytes:
        data: bytes = self.io.getvalue()
        return data

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """Status, headers (lower-case names) and body of what was written so far."""
        head, _, body = self.written().partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(lines[0].split(" ")[1]), headers, body


def connect(site: server.Site) -> Connection:
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
    assert channel is not None
    transport = Connection()
    transport.channel = channel
    channel.makeConnection(transport)
    return transport


def get(site: server.Site, path: str) -> tuple[int, dict[str, str], bytes]:
    """One GET over a fresh in-memory connection; answered at once or not at all."""
    connection = connect(site)
    connection.send(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    return connection.response()
