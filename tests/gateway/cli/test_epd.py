"""``igo-gateway epd``: the reference EPD client against a real gateway over mutual TLS —
send, status, list (and search), fetch, confirm — with the status codes it prints."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.ei import validate_bytes
from gateway.loading import load_layouts
from gateway.pki import CA_CERT
from tests.adapters.insurer_sim.support import IGO as SIM_IGO
from tests.adapters.insurer_sim.support import (
    SimProcess,
    integral_claim,
    running_sim,
    write_sim_config,
)
from tests.adapters.insurer_sim.support import make_pki as make_sim_pki
from tests.factories import kz301, vk301, zh308
from tests.gateway.running import (
    HOSPITAL,
    KRAAMZORG,
    MIDWIFE,
    GatewayProcess,
    cli_command,
    make_pki,
    write_config,
)

pytestmark = pytest.mark.slow
REGISTRY = load_layouts()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    directory = tmp_path_factory.mktemp("epd-cli") / "pki"
    return directory, make_pki(directory)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def gateway(
    request: pytest.FixtureRequest, tmp_path: Path, pki: tuple[Path, dict[str, str]]
) -> Iterator[GatewayProcess]:
    directory, fingerprints = pki
    url = (
        "sqlite:///data/gateway.db"
        if request.param == "sqlite"
        else str(request.getfixturevalue("pg_url"))
    )
    hospital = (
        f'\n[[participants]]\nagb = "{HOSPITAL}"\nname = "Ziekenhuis Test"\n'
        f'discipline = "hospital"\nvariant = "B"\ncertificates = ["{fingerprints[HOSPITAL]}"]\n'
    )
    config = write_config(tmp_path / "gateway.toml", directory, fingerprints, url, extra=hospital)
    process = GatewayProcess(config, directory)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def epd(
    gateway: GatewayProcess, *args: str, agb: str = KRAAMZORG
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command(
            "epd", "--url", gateway.base_url, "--pki", str(gateway.pki), "--as", agb, *args
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_send_follow_fetch_and_confirm(gateway: GatewayProcess, tmp_path: Path) -> None:
    good = tmp_path / "good.asc"
    good.write_bytes(kz301(REGISTRY, agb=KRAAMZORG, invoice="CLI-1"))
    sent = epd(gateway, "send", str(good))
    assert sent.returncode == 0, sent.stderr
    assert "HTTP 204" in sent.stderr
    answer = json.loads(sent.stdout)
    assert answer["berichtstroom"]["berichttype"] == "KZ301"
    traceer_id = answer["traceerId"]

    status = epd(gateway, "status", "--traceer-id", traceer_id)
    assert status.returncode == 0, status.stderr
    assert [s["berichtstatus"] for s in json.loads(status.stdout)] == ["Ontvangen"]

    retry = epd(gateway, "send", str(good), "--traceer-id", traceer_id)
    assert (retry.returncode, "HTTP 204" in retry.stderr) == (0, True)
    other = tmp_path / "other.asc"
    other.write_bytes(kz301(REGISTRY, agb=KRAAMZORG, invoice="CLI-2"))
    reused = epd(gateway, "send", str(other), "--traceer-id", traceer_id)
    assert reused.returncode == 1
    assert "HTTP 422" in reused.stderr
    assert "referentiegegevens.traceerId" in reused.stderr

    broken = tmp_path / "broken.asc"
    broken.write_bytes(b"not an EI file")
    rejected = json.loads(epd(gateway, "send", str(broken)).stdout)["traceerId"]
    (waiting,) = json.loads(epd(gateway, "list", "--als-antwoord-op", rejected).stdout)
    retour_id = waiting["referentiegegevens"]["traceerId"]
    assert [
        m["referentiegegevens"]["traceerId"] for m in json.loads(epd(gateway, "list").stdout)
    ] == [retour_id]
    fetched = epd(gateway, "fetch", retour_id, "-o", str(tmp_path / "retour.asc"))
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "retour.asc").stat().st_size == waiting["basisgegevens"]["payload"][
        "grootte"
    ]
    confirmed = epd(gateway, "confirm", retour_id)
    assert (confirmed.returncode, "HTTP 202" in confirmed.stderr) == (0, True)
    assert json.loads(epd(gateway, "list").stdout) == []
    v2 = json.loads(epd(gateway, "status", "--traceer-id", retour_id, "--v2").stdout)
    assert [s["berichtstatus"] for s in v2] == ["Bezorgd"]

    unknown = epd(gateway, "confirm", "00000000-0000-0000-0000-000000000000")
    assert unknown.returncode == 1
    assert "HTTP 404" in unknown.stderr


@pytest.mark.parametrize(
    ("agb", "make", "standard"),
    [(KRAAMZORG, kz301, "KZ301"), (MIDWIFE, vk301, "VK301"), (HOSPITAL, zh308, "ZH308")],
)
def test_each_standard_is_sent_under_its_own_berichtstroom(
    gateway: GatewayProcess, tmp_path: Path, agb: str, make: Any, standard: str
) -> None:
    declaration = tmp_path / "declaratie.asc"
    declaration.write_bytes(make(REGISTRY, agb=agb))
    sent = epd(gateway, "send", str(declaration), agb=agb)
    assert sent.returncode == 0, sent.stderr
    answer = json.loads(sent.stdout)
    assert answer["berichtstroom"]["berichttype"] == standard
    (status,) = json.loads(
        epd(gateway, "status", "--traceer-id", answer["traceerId"], agb=agb).stdout
    )
    assert status["berichtstatus"] == "Ontvangen"
    assert status["berichtstroom"] == answer["berichtstroom"]
    # named as another standard: refused, nothing stored
    other = "ZH308" if standard != "ZH308" else "KZ301"
    refused = epd(gateway, "send", str(declaration), "--berichttype", other, agb=agb)
    assert refused.returncode == 1
    assert "HTTP 422" in refused.stderr
    assert "routeringgegevens.berichtstroom.berichttype" in refused.stderr


def test_without_connection_options_it_says_what_is_missing(tmp_path: Path) -> None:
    done = subprocess.run(
        cli_command("epd", "--url", "https://localhost:1", "list"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2
    assert "--cert" in done.stderr


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    directory = tmp_path_factory.mktemp("epd-cli-sim")
    pki = make_sim_pki(directory / "pki")
    yield from running_sim(write_sim_config(directory / "sim.toml", pki), pki)


def test_the_same_client_against_the_insurer_simulator(sim: SimProcess, tmp_path: Path) -> None:
    """The simulator plays VECOZO's side: the client sends, follows, fetches and confirms
    there exactly as at the gateway."""
    pki = sim.pki

    def client(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            cli_command(
                "epd",
                "--url",
                sim.base_url,
                "--cert",
                str(pki / f"igo-{SIM_IGO}.pem"),
                "--key",
                str(pki / f"igo-{SIM_IGO}.key"),
                "--ca",
                str(pki / CA_CERT),
                *args,
            ),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    claim = tmp_path / "claim.asc"
    claim.write_bytes(integral_claim(REGISTRY, invoice="IGO2026-CLI"))
    sent = client("send", str(claim), "--afzender", SIM_IGO)
    assert sent.returncode == 0, sent.stderr
    assert "HTTP 204" in sent.stderr
    traceer_id = json.loads(sent.stdout)["traceerId"]
    retry = client("send", str(claim), "--afzender", SIM_IGO, "--traceer-id", traceer_id)
    assert "HTTP 204" in retry.stderr
    statuses = json.loads(client("status", "--traceer-id", traceer_id).stdout)
    assert [s["berichtstatus"] for s in statuses] == ["VerwerkingVoltooid", "WordtAangeboden"]
    (waiting,) = json.loads(client("list", "--als-antwoord-op", traceer_id).stdout)
    retour_id = waiting["referentiegegevens"]["traceerId"]
    fetched = client("fetch", retour_id, "-o", str(tmp_path / "retour.asc"))
    assert fetched.returncode == 0, fetched.stderr
    assert validate_bytes(REGISTRY, (tmp_path / "retour.asc").read_bytes()).valid
    assert "HTTP 202" in client("confirm", retour_id).stderr
    assert json.loads(client("list").stdout) == []
    assert sim.claims()["claims"] == 1
