"""Notices end to end: the real gateway tells the administrator of new cases by e-mail
(twisted.mail's ESMTP client against an SMTP server this test runs on a loopback port)
and by webhook (a JSON POST to an HTTP server on a loopback port). A failed delivery is
tried again with the next digest, a case is never noticed twice — not after a restart
either — and no client data goes out."""

from __future__ import annotations

import json
import socketserver
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gateway.ei import Record, read_records
from gateway.loading import load_layouts
from tests.gateway.running import KRAAMZORG, GatewayProcess, make_pki, upload, write_config

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
REJECTED = REPO / "fixtures" / "messages" / "invalid-0150-trailer-total.asc"
WAIT_SECONDS = 30.0


class SmtpSink(socketserver.ThreadingTCPServer):
    """A small SMTP server: keeps every message it accepts; while ``refuse`` is above 0 it
    answers MAIL FROM with 451 (try again later) and counts it down."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SmtpHandler)
        self.messages: list[Message] = []
        self.refuse = 0
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _SmtpHandler(socketserver.StreamRequestHandler):
    server: SmtpSink

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode("ascii") + b"\r\n")

    def handle(self) -> None:
        self._say("220 localhost ESMTP test sink")
        while line := self.rfile.readline():
            verb = line.decode("ascii", "replace").strip().split(" ", 1)[0].upper()
            if verb == "EHLO":
                self._say("250-localhost")
                self._say("250 8BITMIME")
            elif verb == "HELO":
                self._say("250 localhost")
            elif verb == "MAIL":
                with self.server.lock:
                    refused = self.server.refuse > 0
                    self.server.refuse -= refused
                self._say("451 4.3.0 try again later" if refused else "250 OK")
            elif verb in ("RCPT", "RSET", "NOOP"):
                self._say("250 OK")
            elif verb == "DATA":
                self._say("354 go ahead")
                data = []
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                with self.server.lock:
                    self.server.messages.append(message_from_bytes(b"".join(data)))
                self._say("250 OK queued")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            else:
                self._say("502 not implemented")


class HookSink(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _HookHandler)
        self.bodies: list[dict[str, Any]] = []
        self.refuse = 0

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _HookHandler(BaseHTTPRequestHandler):
    server: HookSink
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.server.refuse > 0:
            self.server.refuse -= 1
            status = 503
        else:
            self.server.bodies.append(json.loads(body))
            status = 204
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


def _serving(server: socketserver.BaseServer) -> Iterator[Any]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    yield from _serving(SmtpSink())


@pytest.fixture
def hook() -> Iterator[HookSink]:
    yield from _serving(HookSink())


def _until(what: str, check: Any, gateway: GatewayProcess) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen:\n{gateway.logs()}")
        time.sleep(0.1)


def _bsns(payload: bytes) -> set[str]:
    registry = load_layouts()
    return {
        rec.text("bsn")
        for rec in read_records(registry, [payload])
        if isinstance(rec, Record) and rec.layout.has("bsn") and rec.text("bsn").strip()
    }


def test_new_cases_are_noticed_once_by_mail_and_webhook(
    tmp_path: Path, smtp: SmtpSink, hook: HookSink
) -> None:
    pki = tmp_path / "pki"
    fingerprints = make_pki(pki)
    notices = f"""
[notices]
interval_seconds = 1
admin_url = "https://beheer.igo.example"

[[notices.channels]]
name = "mail"
kinds = ["intake_rejected", "parked"]
[notices.channels.email]
host = "127.0.0.1"
port = {smtp.port}
sender = "gateway@igo.example"
recipients = ["beheer@igo.example"]
timeout_seconds = 10

[[notices.channels]]
name = "hook"
[notices.channels.webhook]
url = "http://127.0.0.1:{hook.port}/igo"
timeout_seconds = 10
"""
    config = write_config(
        tmp_path / "gateway.toml",
        pki,
        fingerprints,
        f"sqlite:///{tmp_path / 'gateway.db'}",
        extra=notices,
    )
    smtp.refuse = 1  # the first digest by mail fails, and goes again with the next
    hook.refuse = 1
    payload = REJECTED.read_bytes()
    bsns = _bsns(payload)
    assert bsns
    gateway = GatewayProcess(config, pki)
    gateway.start()
    try:
        with gateway.client(KRAAMZORG) as client:
            answer = upload(client, KRAAMZORG, payload)
        assert answer.status_code == 204, answer.response.text
        first = f"intake_rejected:{answer.traceer_id}"
        _until("a mail", lambda: smtp.messages, gateway)
        _until("a webhook call", lambda: hook.bodies, gateway)
        gateway.wait_for_log("was not delivered")
    finally:
        gateway.stop()
    logs = gateway.logs()
    for bsn in bsns:
        assert bsn not in logs
    (mail,) = smtp.messages
    assert mail["To"] == "beheer@igo.example"
    assert "1 nieuwe zaak" in mail["Subject"]
    text = mail.get_payload(decode=True)
    assert isinstance(text, bytes)
    assert first in text.decode()
    assert f"https://beheer.igo.example/cases/{first.replace(':', '%3A')}" in text.decode()
    (body,) = hook.bodies
    assert [c["id"] for c in body["cases"]] == [first]
    assert body["counts"] == {"intake_rejected": 1}
    for bsn in bsns:
        assert bsn not in text.decode()
        assert bsn not in json.dumps(body)

    # after a restart on the same store: a new case is noticed, the first never again
    gateway.start()
    try:
        second_payload = payload.replace(b"KZ2026-0777", b"KZ2026-0778")
        with gateway.client(KRAAMZORG) as client:
            answer = upload(client, KRAAMZORG, second_payload)
        assert answer.status_code == 204, answer.response.text
        second = f"intake_rejected:{answer.traceer_id}"
        _until("a second mail", lambda: len(smtp.messages) == 2, gateway)
        _until("a second webhook call", lambda: len(hook.bodies) == 2, gateway)
    finally:
        gateway.stop()
    again = smtp.messages[1].get_payload(decode=True)
    assert isinstance(again, bytes)
    assert second in again.decode()
    assert first not in again.decode()
    assert [c["id"] for c in hook.bodies[1]["cases"]] == [second]
