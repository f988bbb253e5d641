"""Test support for the insurer simulator: claim files, configs, and a real simulator
process on a loopback port with real mutual TLS (a development PKI per test module)."""

from __future__ import annotations

import json
import re
import ssl
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx

from gateway.ei import FileWriter, LayoutRegistry
from gateway.pki import CA_CERT, SERVER_CERT, SERVER_KEY, Party, init_pki
from gateway.vsp import PUSH_V1, send_metadata
from tests.factories import BSNS, header, insured, prestatie
from tests.gateway.running import Sent
from tests.processes import ServerProcess

IGO = "53001234"
OTHER_IGO = "53009999"
UZOVI = "3311"
TARIFF = 12000
_LISTENING = re.compile(r"insurer simulator listening on https://127\.0\.0\.1:(\d+)")


def integral_claim(
    registry: LayoutRegistry,
    *,
    invoice: str = "IGO2026-0001",
    bsns: tuple[str, ...] = (BSNS[0],),
    tariff: int = TARIFF,
    lines_per_client: int = 1,
    uzovi: str = UZOVI,
    comment: str | None = None,
) -> bytes:
    """A KZ301 claim file of the IGO: per client an 02 record and its prestatie lines
    (synthetic data), dated 10, 11, 12 … January 2026."""
    w = FileWriter(registry.by_standard("KZ301"))
    header(w, agb=IGO, invoice=invoice, uzovi=uzovi)
    for c, bsn in enumerate(bsns):
        insured(w, bsn, uzovi)
        for i in range(lines_per_client):
            prestatie(
                w,
                bsn=bsn,
                day=date(2026, 1, 10 + i),
                reference=f"{invoice}-{c + 1}-{i + 1}",
                performer=IGO,
                tariff=tariff,
                uzovi=uzovi,
            )
        if comment is not None:
            w.comment(comment)
    return w.finish()


def make_pki(directory: Path) -> Path:
    """A development PKI: the simulator's server certificate and two IGOs' client ones."""
    init_pki(
        directory,
        [Party(IGO, "IGO Test", "igo"), Party(OTHER_IGO, "Andere IGO", "igo")],
        now=datetime.now(UTC),
    )
    return directory


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def write_sim_config(
    path: Path,
    pki: Path,
    *,
    rules: Mapping[str, Any] | None = None,
    faults: Mapping[str, Any] | None = None,
) -> Path:
    lines = [
        'host = "127.0.0.1"',
        "port = 0",
        f'uzovi = "{UZOVI}"',
        "",
        "[tls]",
        f"cert = {json.dumps(str(pki / SERVER_CERT))}",
        f"key = {json.dumps(str(pki / SERVER_KEY))}",
        f"trust = {json.dumps(str(pki / CA_CERT))}",
    ]
    for name, section in (("rules", rules), ("faults", faults)):
        if section:
            lines += ["", f"[{name}]"] + [f"{k} = {_toml(v)}" for k, v in section.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def sim_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "gateway.cli", "insurer-sim", "--config", str(config)]


class SimProcess(ServerProcess):
    """One ``igo-gateway insurer-sim`` process."""

    def __init__(self, config: Path, pki: Path) -> None:
        super().__init__(sim_command(config), config.parent, {"port": _LISTENING})
        self.config = config
        self.pki = pki

    @property
    def port(self) -> int:
        return self.ports["port"]

    @property
    def base_url(self) -> str:
        return f"https://localhost:{self.port}"

    def ssl_context(self, agb: str | None = IGO) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki / CA_CERT))
        if agb is not None:
            context.load_cert_chain(
                str(self.pki / f"igo-{agb}.pem"), str(self.pki / f"igo-{agb}.key")
            )
        return context

    def client(self, agb: str | None = IGO, timeout: float = 10) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, verify=self.ssl_context(agb), timeout=timeout)

    def claims(self) -> dict[str, Any]:
        with self.client() as client:
            answer: dict[str, Any] = client.get("/sim/claims").raise_for_status().json()
            return answer


def running_sim(config: Path, pki: Path) -> Iterator[SimProcess]:
    sim = SimProcess(config, pki)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


def upload(
    client: httpx.Client,
    payload: bytes,
    *,
    reference: str | None = None,
    sender: str = IGO,
    traceer_id: str | None = None,
) -> Sent:
    """A claim file sent with VECOZO's metadata (a new traceerId unless one is given)."""
    metadata = send_metadata(
        sender,
        "KZ301",
        versie=3,
        subversie=2,
        geadresseerden=[("Zorgverzekeraar", UZOVI)],
        traceer_id=traceer_id,
        referentie_id=reference,
    ).recorded()
    response = client.post(
        f"{PUSH_V1}/berichten",
        files={
            "berichtMetadata": (None, json.dumps(metadata), "application/json"),
            "payload": ("claim.asc", payload, "application/octet-stream"),
        },
    )
    return Sent(response, metadata)
