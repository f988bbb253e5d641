"""A real gateway process for end-to-end tests: ``igo-gateway serve`` on a loopback port with
real mutual TLS (a development PKI made once per test session), driven by a real HTTP
client as an EPD would drive it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from gateway.pki import CA_CERT, SERVER_CERT, SERVER_KEY, Party, init_pki

KRAAMZORG = "33001234"
MIDWIFE = "02001234"
HOSPITAL = "06001234"
IGO = "53001234"
START_SECONDS = 30.0
_LISTENING = re.compile(r"EPD API listening on https://127\.0\.0\.1:(\d+)")
_OPERATIONS = re.compile(r"operations endpoint on http://127\.0\.0\.1:(\d+)/metrics")


def make_pki(directory: Path) -> dict[str, str]:
    """A development PKI with the two participants and the IGO; fingerprints by AGB."""
    index = init_pki(
        directory,
        [
            Party(KRAAMZORG, "Kraamzorg Test"),
            Party(MIDWIFE, "Verloskundigen Test"),
            Party(HOSPITAL, "Ziekenhuis Test"),
            Party(IGO, "IGO Test", "igo"),
        ],
        now=datetime.now(UTC),
    )
    return {c.agb: c.fingerprint_sha256 for c in index.clients}


def write_config(
    path: Path,
    pki: Path,
    fingerprints: Mapping[str, str],
    store_url: str,
    *,
    key_file: Path | None = None,
    extra: str = "",
    **epd_api: Any,
) -> Path:
    settings = "".join(f"{key} = {json.dumps(value)}\n" for key, value in epd_api.items())
    encryption = f"\n[encryption]\nkey_file = {json.dumps(str(key_file))}\n" if key_file else ""
    path.write_text(
        f"""data_dir = "data"

[igo]
name = "IGO Test"
agb = "{IGO}"

[store]
url = {json.dumps(store_url)}

[epd_api]
host = "127.0.0.1"
port = 0
{settings}
[metrics]
port = 0

[epd_api.tls]
cert = "{pki / SERVER_CERT}"
key = "{pki / SERVER_KEY}"
trust = "{pki / CA_CERT}"

[[participants]]
agb = "{KRAAMZORG}"
name = "Kraamzorg Test"
discipline = "kraamzorg"
variant = "A"
certificates = ["{fingerprints[KRAAMZORG]}"]

[[participants]]
agb = "{MIDWIFE}"
name = "Verloskundigen Test"
discipline = "midwifery"
variant = "A"
certificates = ["{fingerprints[MIDWIFE]}"]
{encryption}{extra}""",
        encoding="utf-8",
    )
    return path


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "gateway.cli", *args]


def serve_command(config: Path) -> list[str]:
    return cli_command("serve", "--config", str(config))


@dataclass
class GatewayProcess:
    """One ``igo-gateway serve`` process; :meth:`start` again after :meth:`stop` restarts it
    on the same config (and store)."""

    config: Path
    pki: Path
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    ops_port: int = 0
    log: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def start(self) -> None:
        assert self.process is None, "already running"
        self.process = subprocess.Popen(
            serve_command(self.config),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.config.parent,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        found = threading.Event()
        process = self.process

        def read() -> None:
            assert process.stderr is not None
            for raw in process.stderr:
                line = raw.decode("utf-8", "replace")
                self.log.append(line)
                operations = _OPERATIONS.search(line)
                if operations:
                    self.ops_port = int(operations.group(1))
                    found.set()  # logged after the EPD API's line
                match = _LISTENING.search(line)
                if match:
                    self.port = int(match.group(1))

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_SECONDS
        while not found.wait(0.1):
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the gateway did not start:\n" + "".join(self.log))

    def stop(self) -> int:
        """SIGTERM, and the exit status once it has shut down cleanly."""
        process, self.process = self.process, None
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(timeout=START_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            status = process.wait()
        if self._reader is not None:
            self._reader.join(5)
        return status

    @property
    def base_url(self) -> str:
        return f"https://localhost:{self.port}"

    def ssl_context(self, agb: str | None) -> ssl.SSLContext:
        """A client context trusting the dev CA, presenting ``agb``'s certificate if given."""
        context = ssl.create_default_context(cafile=str(self.pki / CA_CERT))
        if agb is not None:
            stem = "igo" if agb == IGO else "participant"
            context.load_cert_chain(
                str(self.pki / f"{stem}-{agb}.pem"), str(self.pki / f"{stem}-{agb}.key")
            )
        return context

    def client(self, agb: str | None) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, verify=self.ssl_context(agb), timeout=20)

    def raw(self, agb: str) -> ssl.SSLSocket:
        """A TLS socket as ``agb``, for requests no well-behaved client would send."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=20)
        return self.ssl_context(agb).wrap_socket(sock, server_hostname="localhost")

    def operations(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.ops_port}{path}", timeout=20)

    def logs(self) -> str:
        return "".join(self.log)

    def wait_for_log(self, text: str, timeout: float = START_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.logs():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged:\n{self.logs()}")
            time.sleep(0.1)


def upload(
    client: httpx.Client, sender: str, payload: bytes, filename: str = "declaratie.asc"
) -> httpx.Response:
    metadata = {"afzender": {"rol": "zorgaanbieder", "code": sender}}
    return client.post(
        "/berichten",
        files={
            "berichtMetadata": (None, json.dumps(metadata), "application/json"),
            "payload": (filename, payload, "application/octet-stream"),
        },
    )


def read_response(sock: ssl.SSLSocket) -> tuple[bytes, bool]:
    """What the server sends until it closes the connection, and whether it closed it
    (False: the socket's timeout passed first)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        return b"".join(chunks), False
    except (ConnectionResetError, ssl.SSLError):
        pass
    return b"".join(chunks), True


def running(config: Path, pki: Path) -> Iterator[GatewayProcess]:
    gateway = GatewayProcess(config, pki)
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()
