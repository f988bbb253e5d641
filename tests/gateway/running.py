"""A real gateway process for end-to-end tests: ``igo-gateway serve`` on a loopback port with
real mutual TLS (a development PKI made once per test session), driven by a real HTTP
client as an EPD would drive it."""

from __future__ import annotations

import json
import re
import socket
import ssl
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from gateway.pki import CA_CERT, SERVER_CERT, SERVER_KEY, Party, init_pki
from gateway.vsp import PULL_V1, PUSH_V1, STATUS_V3, send_metadata
from tests.processes import START_SECONDS, ServerProcess

KRAAMZORG = "33001234"
MIDWIFE = "02001234"
HOSPITAL = "06001234"
IGO = "53001234"
_LISTENING = re.compile(r"EPD API listening on https://127\.0\.0\.1:(\d+)")
_ADMIN = re.compile(r"admin site on http://127\.0\.0\.1:(\d+)/")
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

[admin]
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


class GatewayProcess(ServerProcess):
    """One ``igo-gateway serve`` process; :meth:`start` again after :meth:`stop` restarts it
    on the same config (and store); ``env`` is added to its environment."""

    def __init__(self, config: Path, pki: Path, env: Mapping[str, str] | None = None) -> None:
        super().__init__(
            serve_command(config),
            config.parent,
            {"port": _LISTENING, "ops_port": _OPERATIONS, "admin_port": _ADMIN},
            env,
        )
        self.config = config
        self.pki = pki

    @property
    def port(self) -> int:
        return self.ports["port"]

    @property
    def ops_port(self) -> int:
        return self.ports["ops_port"]

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

    def wait_for_log(self, text: str, timeout: float = START_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.logs():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged:\n{self.logs()}")
            time.sleep(0.1)


@dataclass(frozen=True)
class Sent:
    """An upload as sent (its metadata, with the traceerId the sender chose) and the answer."""

    response: httpx.Response
    metadata: dict[str, Any]

    @property
    def status_code(self) -> int:
        return self.response.status_code

    @property
    def traceer_id(self) -> str:
        value: str = self.metadata["referentiegegevens"]["traceerId"]
        return value

    @property
    def conversatie_id(self) -> str:
        value: str = self.metadata["referentiegegevens"]["conversatieId"]
        return value

    def problem(self) -> dict[str, Any]:
        body: dict[str, Any] = self.response.json()
        return body


def upload(
    client: httpx.Client,
    sender: str,
    payload: bytes,
    filename: str = "declaratie.asc",
    *,
    traceer_id: str | None = None,
    berichttype: str = "EI",
) -> Sent:
    """``POST /berichten`` of REST Push v1 with VECOZO's berichtMetadata (a new traceerId
    unless one is given: the same again is a retry)."""
    metadata = send_metadata(sender, berichttype, traceer_id=traceer_id).recorded()
    response = client.post(
        f"{PUSH_V1}/berichten",
        files={
            "berichtMetadata": (None, json.dumps(metadata), "application/json"),
            "payload": (filename, payload, "application/octet-stream"),
        },
    )
    return Sent(response, metadata)


def waiting(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """``GET /berichten`` of REST Pull v1: the BerichtMetadata of what waits."""
    response = client.get(f"{PULL_V1}/berichten", params=params)
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()
    return found


def message_id(entry: Mapping[str, Any]) -> str:
    """The traceerId of a listed message (or a status entry)."""
    value: str = entry["referentiegegevens"]["traceerId"]
    return value


def answers(entry: Mapping[str, Any]) -> str | None:
    """The traceerId a listed message answers."""
    value: str | None = entry["referentiegegevens"].get("alsAntwoordOp")
    return value


def payload_path(traceer_id: str) -> str:
    return f"{PULL_V1}/berichten/{traceer_id}/payload"


def confirm_path(traceer_id: str) -> str:
    return f"{PULL_V1}/berichten/{traceer_id}"


def statuses(client: httpx.Client, **params: str) -> list[dict[str, Any]]:
    """``GET /berichtstatussen`` of Berichtstatus v3."""
    response = client.get(f"{STATUS_V3}/berichtstatussen", params=params)
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()
    return found


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
