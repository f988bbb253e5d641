"""End to end: the REST insurer link on a real reactor, over real mutual TLS, against the
insurer simulator as a real process — an outage, then a timeout after the insurer stored
the file, then success: one claim, one retour, confirmed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.ei import Record, read_records, validate_bytes
from gateway.loading import load_layouts
from gateway.pki import CA_CERT
from gateway.vsp import as_uuid
from tests.adapters.insurer_sim.support import (
    IGO,
    TARIFF,
    UZOVI,
    SimProcess,
    integral_claim,
    make_pki,
    running_sim,
    write_sim_config,
)

pytestmark = pytest.mark.slow
REGISTRY = load_layouts()
DRIVER_SECONDS = 60


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("link-pki") / "pki")


@pytest.fixture
def sim(tmp_path: Path, pki: Path) -> Iterator[SimProcess]:
    faults = {"fail_first": 1, "stall_first": 1, "stall_seconds": 30}
    config = write_sim_config(tmp_path / "sim.toml", pki, faults=faults)
    yield from running_sim(config, pki)


def drive(tmp_path: Path, sim: SimProcess, pki: Path, **overrides: Any) -> dict[str, Any]:
    payload = tmp_path / "claim.asc"
    payload.write_bytes(integral_claim(REGISTRY, invoice="IGO2026-LINK"))
    out_dir = tmp_path / "retours"
    out_dir.mkdir(exist_ok=True)
    spec = {
        "base_url": sim.base_url,
        "cert": str(pki / f"igo-{IGO}.pem"),
        "key": str(pki / f"igo-{IGO}.key"),
        "ca": str(pki / CA_CERT),
        "sender": IGO,
        "insurer": UZOVI,
        "timeout": 2.0,
        "max_attempts": 5,
        "message_id": "out-link-1",
        "payload": str(payload),
        "out_dir": str(out_dir),
        **overrides,
    }
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps(spec), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "tests.adapters.insurer_link.drive_rest", str(scenario)],
        capture_output=True,
        timeout=DRIVER_SECONDS,
        check=False,
        cwd=Path(__file__).parents[3],
    )
    assert done.returncode == 0, done.stderr.decode()
    report: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return report


def test_outage_and_timeout_then_one_claim_and_its_retour(
    tmp_path: Path, sim: SimProcess, pki: Path
) -> None:
    report = drive(tmp_path, sim, pki)
    assert report["reasons"] == ["unavailable", "timeout"]
    claims = sim.claims()  # the stalled attempt had delivered it: the retry is the same file
    assert (claims["uploads"], claims["bestanden"], claims["claims"]) == (3, 1, 1)
    (booked,) = claims["files"]
    assert booked["referentieId"] == "out-link-1"
    assert report["delivery"]["remote_id"] == booked["traceerId"]
    (retour,) = report["retours"]
    assert retour["in_reply_to"] == booked["traceerId"]
    assert retour["conversation_id"] == as_uuid("out-link-1")
    assert report["after_confirm"] == 0
    payload = (tmp_path / "retours" / f"{retour['remote_id']}.asc").read_bytes()
    result = validate_bytes(REGISTRY, payload)
    assert result.valid
    lines = [
        r for r in read_records(REGISTRY, [payload]) if isinstance(r, Record) and r.type == "04"
    ]
    assert [r.number_value("granted_amount") for r in lines] == [TARIFF]


def test_an_insurer_certificate_from_another_ca_is_refused_at_once(
    tmp_path: Path, sim: SimProcess, pki: Path
) -> None:
    other = make_pki(tmp_path / "other-pki")
    report = drive(tmp_path, sim, pki, ca=str(other / CA_CERT))
    assert report["reasons"] == ["tls"]
    assert "not retryable" in report["parked"]
    assert sim.claims()["uploads"] == 0
