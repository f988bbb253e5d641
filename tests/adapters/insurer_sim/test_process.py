"""End to end: ``igo-gateway insurer-sim`` as a real process on a loopback port with real
mutual TLS, driven by a real HTTP client the way an IGO's gateway drives an insurer."""

from __future__ import annotations

import ssl
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.ei import Record, read_records, validate_bytes
from gateway.loading import load_layouts
from gateway.vsp import PULL_V1, STATUS_V3
from tests.adapters.insurer_sim.support import (
    IGO,
    OTHER_IGO,
    TARIFF,
    SimProcess,
    integral_claim,
    make_pki,
    running_sim,
    sim_command,
    upload,
    write_sim_config,
)
from tests.factories import BSNS

pytestmark = pytest.mark.slow
REGISTRY = load_layouts()
RULES = {
    "not_insured": [BSNS[1]],
    "overlap": [{"bsn": BSNS[3]}],
    "tariffs": {"196202": TARIFF},
    "reject_invoices": ["IGO2026-0099"],
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pki(tmp_path_factory.mktemp("sim-pki") / "pki")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory, pki: Path) -> Iterator[SimProcess]:
    config = write_sim_config(tmp_path_factory.mktemp("sim") / "sim.toml", pki, rules=RULES)
    yield from running_sim(config, pki)


def retour_of(client: httpx.Client, traceer_id: str) -> tuple[str, bytes]:
    """The retour answering ``traceer_id``: its traceerId and bytes, valid by the codec."""
    listing = client.get(f"{PULL_V1}/berichten").raise_for_status().json()
    (entry,) = [m for m in listing if m["referentiegegevens"].get("alsAntwoordOp") == traceer_id]
    assert entry["routeringgegevens"]["berichtstroom"]["berichttype"] == "KZ302"
    payload = client.get(entry["basisgegevens"]["payload"]["url"]).raise_for_status().content
    result = validate_bytes(REGISTRY, payload)
    assert result.valid, [f.message for f in result.findings]
    return entry["referentiegegevens"]["traceerId"], payload


def outcomes(payload: bytes) -> list[tuple[str, int, list[str]]]:
    out = []
    for rec in read_records(REGISTRY, [payload]):
        assert isinstance(rec, Record)
        names = [f"retourcode_{i}" for i in (1, 2, 3) if rec.layout.has(f"retourcode_{i}")]
        codes = [c for c in (rec.text(n) for n in names) if c.strip("0")]
        granted = rec.number_value("granted_amount") if rec.type == "04" else 0
        out.append((rec.type, granted, codes))
    return out


def test_a_valid_claim_is_granted_and_its_retour_fetched_and_confirmed(sim: SimProcess) -> None:
    assert "insurer simulator listening on https://127.0.0.1:" in sim.logs()
    with sim.client() as client:
        claim = integral_claim(REGISTRY, invoice="IGO2026-0001", bsns=(BSNS[0],))
        answer = upload(client, claim, reference="out-1")
        assert (answer.status_code, answer.response.content) == (204, b"")
        traceer_id = answer.traceer_id
        retour_id, payload = retour_of(client, traceer_id)
        assert outcomes(payload) == [
            ("01", 0, []),
            ("02", 0, []),
            ("04", TARIFF, []),
            ("99", 0, []),
        ]
        statuses = client.get(f"{STATUS_V3}/berichtstatussen", params={"traceerId": traceer_id})
        assert [s["berichtstatus"] for s in statuses.json()] == [
            "VerwerkingVoltooid",
            "WordtAangeboden",
        ]
        assert client.delete(f"{PULL_V1}/berichten/{retour_id}").status_code == 202
        assert client.delete(f"{PULL_V1}/berichten/{retour_id}").status_code == 202
        listing = client.get(f"{PULL_V1}/berichten").json()
        assert retour_id not in [m["referentiegegevens"]["traceerId"] for m in listing]


@pytest.mark.parametrize(
    ("invoice", "kwargs", "expected_04", "header"),
    [
        ("IGO2026-0320", {"bsns": (BSNS[1],)}, [(0, ["0320"])], []),
        ("IGO2026-0587", {"bsns": (BSNS[3],)}, [(0, ["0587"])], []),
        ("IGO2026-0611", {"tariff": TARIFF + 1}, [(0, ["0611"])], []),
        ("IGO2026-0099", {}, [], ["0001"]),
        ("IGO2026-0018", {"uzovi": "9999"}, [], ["0001", "0018"]),
    ],
    ids=["not-insured", "overlap", "tariff", "on-demand", "other-insurer"],
)
def test_rejections(
    sim: SimProcess,
    invoice: str,
    kwargs: dict[str, object],
    expected_04: list[object],
    header: list[str],
) -> None:
    with sim.client() as client:
        claim = integral_claim(REGISTRY, invoice=invoice, **kwargs)  # type: ignore[arg-type]
        sent = upload(client, claim)
        assert sent.status_code == 204
        _, payload = retour_of(client, sent.traceer_id)
    found = outcomes(payload)
    assert found[0][2] == header
    assert [(g, c) for t, g, c in found if t == "04"] == expected_04


def test_an_invalid_file_gets_a_technical_rejection(sim: SimProcess) -> None:
    with sim.client() as client:
        claim = integral_claim(REGISTRY, invoice="IGO2026-BAD")
        traceer_id = upload(client, claim[:-40] + b"\r\n").traceer_id
        _, payload = retour_of(client, traceer_id)
        statuses = client.get(f"{STATUS_V3}/berichtstatussen", params={"traceerId": traceer_id})
    assert [t for t, _, _ in outcomes(payload)] == ["01", "99"]
    assert outcomes(payload)[0][2][0] == "0001"
    (upload_status, _) = statuses.json()
    assert upload_status["berichtstatus"] == "AfgekeurdDoorDienst"
    assert upload_status["meldingen"][0]["code"] == "0001"


def test_down_for_the_first_uploads_then_booked_once(sim: SimProcess) -> None:
    claim = integral_claim(REGISTRY, invoice="IGO2026-DOWN")
    with sim.client() as client:
        client.put("/sim/faults", json={"fail_first": 2}).raise_for_status()
        traceer_id = str(uuid.uuid4())
        statuses = [
            upload(client, claim, reference="out-down", traceer_id=traceer_id).status_code
            for _ in range(4)
        ]
        assert statuses == [503, 503, 204, 204]
        files = client.get("/sim/claims").json()["files"]
    (booked,) = [f for f in files if f["factuurnummer"] == "IGO2026-DOWN"]
    assert booked["herhaald"] == 1


def test_a_timeout_after_storing_then_a_retry_books_no_second_claim(sim: SimProcess) -> None:
    claim = integral_claim(REGISTRY, invoice="IGO2026-SLOW")
    with sim.client() as client:
        client.put("/sim/faults", json={"stall_first": 1, "stall_seconds": 30}).raise_for_status()
    traceer_id = str(uuid.uuid4())
    with sim.client(timeout=1.5) as impatient, pytest.raises(httpx.TimeoutException):
        upload(impatient, claim, reference="out-slow", traceer_id=traceer_id)
    with sim.client() as client:
        again = upload(client, claim, reference="out-slow", traceer_id=traceer_id)
        assert again.status_code == 204
        files = client.get("/sim/claims").json()["files"]
        other = upload(client, claim + b"x", traceer_id=traceer_id)
        assert other.status_code == 422
        assert list(other.problem()["errors"]) == ["referentiegegevens.traceerId"]
    (booked,) = [f for f in files if f["factuurnummer"] == "IGO2026-SLOW"]
    assert (booked["traceerId"], booked["herhaald"]) == (traceer_id, 1)


def test_a_cut_connection_after_storing_then_a_retry_books_no_second_claim(
    sim: SimProcess,
) -> None:
    claim = integral_claim(REGISTRY, invoice="IGO2026-CUT")
    with sim.client() as client:
        client.put("/sim/faults", json={"cut_first": 1}).raise_for_status()
    traceer_id = str(uuid.uuid4())
    with sim.client() as client, pytest.raises(httpx.TransportError):
        upload(client, claim, reference="out-cut", traceer_id=traceer_id)
    with sim.client() as client:
        again = upload(client, claim, reference="out-cut", traceer_id=traceer_id)
        assert again.status_code == 204
        claims = client.get("/sim/claims").json()
    assert [f["factuurnummer"] for f in claims["files"]].count("IGO2026-CUT") == 1


def test_each_caller_has_its_own_queue(sim: SimProcess) -> None:
    with sim.client(OTHER_IGO) as other:
        assert other.get(f"{PULL_V1}/berichten").json() == []
    with sim.client(IGO) as mine:
        assert mine.get(f"{PULL_V1}/berichten").json()


def test_a_client_without_certificate_cannot_connect(sim: SimProcess) -> None:
    with (
        sim.client(agb=None) as anonymous,
        pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
    ):
        anonymous.get(f"{PULL_V1}/berichten")


def test_a_bad_config_exits_with_status_2(tmp_path: Path) -> None:
    config = tmp_path / "sim.toml"
    config.write_text('uzovi = "1"\n', encoding="utf-8")
    done = subprocess.run(sim_command(config), capture_output=True, timeout=30, check=False)
    assert done.returncode == 2
    assert b"uzovi" in done.stderr
    assert b"tls" in done.stderr


def test_an_unusable_certificate_exits_with_status_1(tmp_path: Path, pki: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate", encoding="utf-8")
    config = write_sim_config(tmp_path / "sim.toml", pki)
    config.write_text(
        config.read_text(encoding="utf-8").replace(str(pki / "server.pem"), str(bad)),
        encoding="utf-8",
    )
    done = subprocess.run(sim_command(config), capture_output=True, timeout=30, check=False)
    assert done.returncode == 1
    assert b"no PEM certificate" in done.stderr


_ = ssl  # the client contexts come from SimProcess.ssl_context
