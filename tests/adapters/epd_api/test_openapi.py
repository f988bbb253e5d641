"""The OpenAPI document of the EPD API (``schemas/epd-api.openapi.json``): it matches the
models the API validates with, field for field, it is what the gateway serves, and the
running gateway answers as it says — checked with schemathesis, bad inputs included (no
5xx, every status code, content type and body as documented)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from gateway.pki import CA_CERT
from gateway.vsp import (
    BerichtMetadata,
    Berichtstroom,
    Referentiegegevens,
    Relatie,
    Routeringgegevens,
    SleutelWaardePaar,
    ZoekpadOpAlsAntwoordOp,
    ZoekpadOpBerichtstroom,
    ZoekpadOpConversatieId,
)
from tests.adapters.insurer_sim.support import IGO, SimProcess, running_sim, write_sim_config
from tests.adapters.insurer_sim.support import make_pki as make_sim_pki
from tests.gateway.running import KRAAMZORG, GatewayProcess, make_pki, write_config

DOCUMENT = Path(__file__).resolve().parents[3] / "schemas" / "epd-api.openapi.json"


def schemas() -> dict[str, Any]:
    found: dict[str, Any] = json.loads(DOCUMENT.read_text("utf-8"))["components"]["schemas"]
    return found


@pytest.mark.parametrize(
    ("model", "name"),
    [
        (Relatie, "Relatie"),
        (Berichtstroom, "Berichtstroom"),
        (Routeringgegevens, "Routeringgegevens"),
        (Referentiegegevens, "Referentiegegevens"),
        (SleutelWaardePaar, "SleutelWaardePaar"),
        (BerichtMetadata, "BerichtMetadata"),
        (ZoekpadOpBerichtstroom, "ZoekpadOpBerichtstroom"),
        (ZoekpadOpConversatieId, "ZoekpadOpConversatieId"),
        (ZoekpadOpAlsAntwoordOp, "ZoekpadOpAlsAntwoordOp"),
    ],
)
def test_the_document_has_the_fields_the_api_checks(model: type[BaseModel], name: str) -> None:
    documented = schemas()[name]
    checked = model.model_json_schema()
    assert documented["additionalProperties"] is False
    assert checked["additionalProperties"] is False
    assert set(documented["properties"]) == set(checked["properties"])
    assert set(documented["required"]) == set(checked.get("required", []))


def test_the_limits_are_vecozos() -> None:
    found = schemas()
    assert found["Berichtstroom"]["properties"]["berichttype"]["maxLength"] == 60
    assert found["Berichtstroom"]["properties"]["berichtversie"]["maximum"] == 999
    assert found["Referentiegegevens"]["properties"]["referentieId"]["maxLength"] == 150
    assert found["Routeringgegevens"]["properties"]["geadresseerden"]["maxItems"] == 100
    assert found["HTTPSDownload"]["properties"]["grootte"]["minimum"] == 1
    assert "WordtAangeboden" in found["BerichtstatusV3"]["enum"]
    assert "Aangeboden" in found["BerichtstatusV2"]["enum"]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    directory = tmp_path_factory.mktemp("openapi")
    pki = directory / "pki"
    config = write_config(
        directory / "gateway.toml", pki, make_pki(pki), "sqlite:///data/gateway.db"
    )
    process = GatewayProcess(config, pki)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.slow
def test_the_gateway_serves_the_document(gateway: GatewayProcess) -> None:
    with gateway.client(KRAAMZORG) as epd:
        served = epd.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == json.loads(DOCUMENT.read_text("utf-8"))


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    directory = tmp_path_factory.mktemp("openapi-sim")
    pki = make_sim_pki(directory / "pki")
    yield from running_sim(write_sim_config(directory / "sim.toml", pki), pki)


def schemathesis(
    base_url: str, cert: Path, key: Path, ca: Path, workdir: Path
) -> subprocess.CompletedProcess[str]:
    """``schemathesis run`` of the document against ``base_url`` (its cache in ``workdir``)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            str(DOCUMENT),
            "--url",
            base_url,
            "--request-cert",
            str(cert),
            "--request-cert-key",
            str(key),
            "--tls-verify",
            str(ca),
            "--mode",
            "all",
            "--checks",
            "all",
            # The documented answers to a well-formed upload include 422 (another sender),
            # so valid data is not always accepted; no security scheme is documented (the
            # certificate is the authentication); 405 answers are no part of the document.
            "--exclude-checks",
            "positive_data_acceptance,ignored_auth,unsupported_method,allow_header_conformance",
            "--max-examples",
            "30",
            "--seed",
            "1",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=workdir,
    )


@pytest.mark.slow
def test_the_running_gateway_answers_as_documented(gateway: GatewayProcess, tmp_path: Path) -> None:
    pki = gateway.pki
    done = schemathesis(
        gateway.base_url,
        pki / f"participant-{KRAAMZORG}.pem",
        pki / f"participant-{KRAAMZORG}.key",
        pki / CA_CERT,
        tmp_path,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Traceback" not in gateway.logs()


@pytest.mark.slow
def test_the_insurer_simulator_answers_as_documented(sim: SimProcess, tmp_path: Path) -> None:
    """The simulator plays VECOZO's side: the same document holds for it (but /openapi.json,
    which is the gateway's own)."""
    pki = sim.pki
    done = schemathesis(
        sim.base_url, pki / f"igo-{IGO}.pem", pki / f"igo-{IGO}.key", pki / CA_CERT, tmp_path
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Traceback" not in sim.logs()
