"""End to end with an insurer: the gateway and the insurer simulator as real processes over
mutual TLS. A file queued for the insurer reaches it once — also when the insurer is down
at first — and its retour comes back, tied to the file it answers."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest

from adapters.storage import SqlMessageStore, open_store
from gateway.ei import (
    Outcome,
    Record,
    build_retour,
    line_amount,
    prestatie_groups,
    read_records,
    validate_bytes,
)
from gateway.loading import load_layouts
from gateway.pki import CA_CERT
from gateway.ports.messages import Direction, MessageStatus, NewMessage, NewStatus
from gateway.ports.outbox import OutboundState
from gateway.vsp import PUSH_V1, send_metadata
from tests.adapters.insurer_sim.support import SimProcess, integral_claim, write_sim_config
from tests.gateway.rules.test_decide import TARIFFS
from tests.gateway.running import (
    HOSPITAL,
    IGO,
    GatewayProcess,
    answers,
    cli_command,
    make_pki,
    message_id,
    statuses,
    upload,
    waiting,
    write_config,
)
from tests.gateway.test_bundler import FILES, MESSAGES
from tests.threadpump import ThreadPump

REGISTRY = load_layouts()
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    directory = tmp_path_factory.mktemp("pki") / "pki"
    return directory, make_pki(directory)


def insurer_section(pki: Path, port: int, *, follow_up_seconds: float | None = None) -> str:
    follow_up = f"follow_up_seconds = {follow_up_seconds}" if follow_up_seconds else ""
    return f"""
[[insurers]]
uzovi = "3311"
name = "Zorgverzekeraar (simulator)"
[insurers.link]
base_url = "https://localhost:{port}"
poll_seconds = 0.2
timeout_seconds = 5
{follow_up}
[insurers.link.tls]
cert = "{pki / f"igo-{IGO}.pem"}"
key = "{pki / f"igo-{IGO}.key"}"
trust = "{pki / CA_CERT}"
[insurers.link.retry]
first_delay_seconds = 0.2
max_delay_seconds = 1
"""


@pytest.fixture
def sim(tmp_path: Path, pki: tuple[Path, dict[str, str]]) -> Iterator[SimProcess]:
    directory, _ = pki
    config = write_sim_config(
        tmp_path / "sim.toml", directory, faults={"fail_first": 2, "fail_status": 503}
    )
    process = SimProcess(config, directory)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def gateway(
    tmp_path: Path, pki: tuple[Path, dict[str, str]], sim: SimProcess
) -> Iterator[GatewayProcess]:
    directory, fingerprints = pki
    config = write_config(
        tmp_path / "gateway.toml",
        directory,
        fingerprints,
        "sqlite:///data/gateway.db",
        extra=insurer_section(directory, sim.port),
    )
    process = GatewayProcess(config, directory)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def queue_claim(store: SqlMessageStore, pump: ThreadPump) -> str:
    payload = integral_claim(REGISTRY, invoice="IGO26-0001")
    message = NewMessage(
        traceer_id="claim-0001",
        conversatie_id="conv-claim-0001",
        direction=Direction.TO_INSURER,
        party="3311",
        payload=payload,
        sha256=hashlib.sha256(payload).hexdigest(),
        created_at=datetime.now(UTC),
        status=NewStatus(MessageStatus.PROCESSING, None, "Klaar om te versturen."),
        idempotency_key="claim:IGO26-0001",
        standard="KZ301",
        invoice_number="IGO26-0001",
    )
    pump.wait(store.outbox.enqueue(message, "3311", IGO))
    return message.traceer_id


def test_a_queued_claim_reaches_the_insurer_once_and_its_retour_comes_back(
    tmp_path: Path, gateway: GatewayProcess, sim: SimProcess
) -> None:
    pump = ThreadPump()
    store = pump.wait(open_store(f"sqlite:///{tmp_path / 'data' / 'gateway.db'}", pump))
    try:
        sent = queue_claim(store, pump)
        deadline = time.monotonic() + 30
        while True:
            item = pump.wait(store.outbox.get(sent))
            assert item is not None
            if item.state is OutboundState.ANSWERED:
                break
            assert item.state is not OutboundState.PARKED, item.last_error
            assert time.monotonic() < deadline, (item, gateway.logs())
            time.sleep(0.2)
        assert item.attempts == 3  # 503, 503, then delivered
        ready = httpx.get(f"http://127.0.0.1:{gateway.ops_port}/readyz", timeout=10).json()
        assert ready["insurers"] == {"3311": "ok"}
        (retour,) = pump.wait(store.conversation("conv-claim-0001"))[1:]
        assert retour.direction is Direction.FROM_INSURER
        assert retour.reply_to == sent
        payload = pump.wait(store.payload(retour.sha256))
        assert payload is not None
        assert validate_bytes(REGISTRY, payload).valid
    finally:
        pump.wait(store.close())
    claims = sim.claims()
    assert claims["claims"] == 1, claims
    assert "delivered claim-0001 to insurer 3311 (attempt 3)" in gateway.logs()


def full_cycle_section(
    pki: Path,
    fingerprints: dict[str, str],
    sim_port: int,
    *,
    hospital_variant: str = "B",
    rule_set: str = "regular-2023",
) -> str:
    tariffs = ", ".join(f'"{code}" = {amount}' for code, amount in TARIFFS.items())
    return f"""
[[participants]]
agb = "{HOSPITAL}"
name = "Ziekenhuis Test"
discipline = "hospital"
variant = "{hospital_variant}"
certificates = ["{fingerprints[HOSPITAL]}"]

[bundling]
grace_days = 0
interval_seconds = 3600
{insurer_section(pki, sim_port)}
[[insurers.contracts]]
year = 2026
rule_set = "{rule_set}"
tariffs = {{ {tariffs} }}
"""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The gateway's store, and the same as seen from the test (an absolute SQLite path)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'gateway.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


def test_three_participants_declarations_become_one_integral_claim_at_the_insurer(
    tmp_path: Path, pki: tuple[Path, dict[str, str]], store_url: str
) -> None:
    directory, fingerprints = pki
    sim = SimProcess(write_sim_config(tmp_path / "sim.toml", directory), directory)
    sim.start()
    try:
        config = write_config(
            tmp_path / "gateway.toml",
            directory,
            fingerprints,
            store_url,
            extra=full_cycle_section(directory, fingerprints, sim.port),
        )
        gateway = GatewayProcess(config, directory)
        gateway.start()
        try:
            # The bundling run at start has found nothing: the dry run below sees every line
            # still open (an upload landing during that run would be claimed by it).
            gateway.wait_for_log("bundled: 0 claim file(s)")
            for agb, (_, name) in FILES.items():
                with gateway.client(agb) as epd:
                    payload = (MESSAGES / name).read_bytes()
                    answer = upload(epd, agb, payload, name, berichttype=name[:5].upper())
                    assert answer.status_code == 204, answer.response.text
                    (status,) = statuses(epd, traceerId=answer.traceer_id)
                    assert status["berichtstatus"] == "Ontvangen"
            dry = subprocess.run(
                cli_command("bundle", "--config", str(config), "--dry-run", "--json"),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert dry.returncode == 0, dry.stderr
            (planned,) = json.loads(dry.stdout)["claims"]
            assert planned["lines"] == 6
        finally:
            assert gateway.stop() == 0
        gateway.start()  # the bundler runs at start: everything is complete by now
        try:
            pump = ThreadPump()
            store = pump.wait(open_store(store_url, pump))
            try:
                deadline = time.monotonic() + 30
                while pump.wait(store.outbox.counts()) != {("3311", OutboundState.ANSWERED): 1}:
                    assert time.monotonic() < deadline, gateway.logs()
                    time.sleep(0.2)
                assert pump.wait(store.open_lines()) == []
            finally:
                pump.wait(store.close())
            for agb, (_, name) in FILES.items():
                assert_answered_line_by_line(gateway, agb, (MESSAGES / name).read_bytes())
            assert_settled(config)
            metrics = httpx.get(f"http://127.0.0.1:{gateway.ops_port}/metrics", timeout=10).text
            assert 'igo_gateway_lines_decided_total{place="absorbed"} 27.0' in metrics
            assert 'igo_gateway_integral_claims_total{insurer="3311"} 6.0' in metrics
            assert "igo_gateway_end_to_end_seconds_count 3.0" in metrics
            assert "igo_gateway_bundling_latency_seconds_count 27.0" in metrics
            assert 'igo_gateway_store_transaction_seconds_count{kind="write"}' in metrics
        finally:
            gateway.stop()
        claims = sim.claims()
        assert claims["claims"] == 1, claims
        assert "bundled: 1 claim file(s)" in gateway.logs()
    finally:
        sim.stop()


RETOUR_OF = {"VK301": "VK302", "KZ301": "KZ302", "ZH308": "ZH309"}


def assert_answered_line_by_line(gateway: GatewayProcess, agb: str, declaration: bytes) -> None:
    """The participant's EPD finds a retour in its own standard answering its upload: every
    prestatie with its NUM040 and reference, granted what it declared."""
    with gateway.client(agb) as epd:
        deadline = time.monotonic() + 30
        while not (found := waiting(epd)):
            assert time.monotonic() < deadline, gateway.logs()
            time.sleep(0.2)
        (retour,) = found
        payload = epd.get(retour["basisgegevens"]["payload"]["url"]).content
        upload_id = answers(retour)
        assert upload_id is not None
        history = statuses(epd, traceerId=upload_id)
        assert [(message_id(s), s["berichtstatus"]) for s in history] == [
            (upload_id, "VerwerkingVoltooid"),
            (message_id(retour), "WordtAangeboden"),
        ]
    checked = validate_bytes(REGISTRY, payload)
    assert checked.valid, checked.findings
    original = [r for r in read_records(REGISTRY, [declaration]) if isinstance(r, Record)]
    answered = [r for r in read_records(REGISTRY, [payload]) if isinstance(r, Record)]
    declared = validate_bytes(REGISTRY, declaration).layout
    assert checked.layout is not None
    assert declared is not None
    assert checked.layout.standard == RETOUR_OF[declared.standard]
    ours = {line.number_value("record_id"): (line, u) for line, u in prestatie_groups(original)}
    theirs = {line.number_value("record_id"): (line, u) for line, u in prestatie_groups(answered)}
    assert theirs.keys() == ours.keys()
    for number, (record, under) in theirs.items():
        mine, mine_under = ours[number]
        assert record.text("reference") == mine.text("reference")
        # the money: on the 04, or for a hospital on its 06 tariefrecords (never 0.00)
        declared_amount = line_amount(mine, mine_under, "declared_amount")
        assert declared_amount is not None
        assert declared_amount > 0
        assert line_amount(record, under, "granted_amount") == declared_amount
    trailer = answered[-1]
    assert trailer["total_granted"] == trailer["total_declared"]


def assert_settled(config: Path) -> None:
    """The settlement report: every line answered, each participant owed what it declared."""
    done = subprocess.run(
        cli_command(
            "settlement", "--config", str(config), "--from", "2026-01-01", "--to", "2026-12-31",
            "--format", "json",
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    totals = {p["participant"]: p for p in report["participants"]}
    assert set(totals) == set(FILES)
    for agb in ("02001234", "33001234"):
        assert totals[agb]["open"] == 0
        assert totals[agb]["owed"] == totals[agb]["declared"] > 0
    assert {line["outcome"] for line in report["lines"]} == {"granted"}


def test_an_insurer_that_pushes_its_retours_to_the_gateway(
    tmp_path: Path, pki: tuple[Path, dict[str, str]]
) -> None:
    directory, fingerprints = pki
    exchange = tmp_path / "exchange"
    config = write_config(
        tmp_path / "gateway.toml",
        directory,
        fingerprints,
        "sqlite:///data/gateway.db",
        extra=f"""
[[insurers]]
uzovi = "3311"
name = "Zorgverzekeraar (pusht)"
[insurers.link]
kind = "directory"
outbox = "{exchange / "out"}"
inbox = "{exchange / "in"}"
poll_seconds = 0.2
push_certificates = ["{fingerprints[IGO]}"]
""",
    )
    (exchange / "out").mkdir(parents=True)
    (exchange / "in").mkdir()
    gateway = GatewayProcess(config, directory)
    gateway.start()
    try:
        pump = ThreadPump()
        store = pump.wait(open_store(f"sqlite:///{tmp_path / 'data' / 'gateway.db'}", pump))
        try:
            sent = queue_claim(store, pump)
            deadline = time.monotonic() + 30
            while not list((exchange / "out").glob("*.asc")):
                assert time.monotonic() < deadline, gateway.logs()
                time.sleep(0.2)
            claim = next((exchange / "out").glob("*.asc")).read_bytes()
            records = [r for r in read_records(REGISTRY, [claim]) if isinstance(r, Record)]
            retour = build_retour(
                REGISTRY.by_standard("KZ302"),
                records,
                {2: Outcome(granted=12000)},
                insurer_reference="VZ-PUSH-1",
                retour_date=date(2026, 11, 2),
            )
            # The insurer's certificate (here: the one configured for it) pushes the retour.
            with gateway.client(IGO) as insurer:
                # An insurer sends retours only: the claim itself sent back (a declaration
                # standard, the same factuurnummer) is rejected with 0010 and answers nothing.
                declared = send_metadata(
                    "3311", "KZ301", rol="Zorgverzekeraar", geadresseerden=[("IGO", IGO)]
                ).recorded()
                declaration = insurer.post(
                    f"{PUSH_V1}/berichten",
                    files={
                        "berichtMetadata": (None, json.dumps(declared), "application/json"),
                        "payload": ("claim.asc", claim, "application/octet-stream"),
                    },
                )
                assert declaration.status_code == 204, declaration.text
                kept = pump.wait(
                    store.list_messages("3311", Direction.FROM_INSURER, include_confirmed=True)
                )
                (wrong_kind,) = [m for m in kept if m.standard == "KZ301"]
                assert wrong_kind.status is MessageStatus.REJECTED
                assert wrong_kind.reply_to is None
                history = pump.wait(store.statuses([wrong_kind.traceer_id]))
                assert [h.code for h in history] == ["0010"]
                item = pump.wait(store.outbox.get(sent))
                assert item is not None
                assert item.state is not OutboundState.ANSWERED
                metadata = send_metadata(
                    "3311",
                    "KZ302",
                    rol="Zorgverzekeraar",
                    geadresseerden=[("IGO", IGO)],
                    referentie_id="VZ-PUSH-1",
                ).recorded()
                for attempt in ("first", "retry after a lost answer"):
                    answer = insurer.post(
                        f"{PUSH_V1}/berichten",
                        files={
                            "berichtMetadata": (None, json.dumps(metadata), "application/json"),
                            "payload": ("retour.asc", retour, "application/octet-stream"),
                        },
                    )
                    assert answer.status_code == 204, (attempt, answer.text)
                other = send_metadata("9999", "KZ302", rol="Zorgverzekeraar").recorded()
                wrong = insurer.post(
                    f"{PUSH_V1}/berichten",
                    files={
                        "berichtMetadata": (None, json.dumps(other), "application/json"),
                        "payload": ("retour.asc", retour, "application/octet-stream"),
                    },
                )
                assert wrong.status_code == 422
                assert list(wrong.json()["errors"]) == ["routeringgegevens.afzender.code"]
            item = pump.wait(store.outbox.get(sent))
            assert item is not None
            assert item.state is OutboundState.ANSWERED
        finally:
            pump.wait(store.close())
    finally:
        gateway.stop()


def test_a_claim_the_exchange_service_rejects_is_parked_with_its_codes(
    tmp_path: Path, pki: tuple[Path, dict[str, str]], store_url: str
) -> None:
    """VECOZO's side takes the claim (204), then rejects it at service level: no retour will
    ever come. The gateway learns it from berichtstatussen and parks the file for the
    administrator with the meldingen's codes, without client data and without waiting."""
    directory, fingerprints = pki
    sim_config = write_sim_config(
        tmp_path / "sim.toml", directory, faults={"service_reject_first": 1}
    )
    sim = SimProcess(sim_config, directory)
    sim.start()
    try:
        config = write_config(
            tmp_path / "gateway.toml",
            directory,
            fingerprints,
            store_url,
            extra=insurer_section(directory, sim.port, follow_up_seconds=0.2),
        )
        gateway = GatewayProcess(config, directory)
        gateway.start()
        try:
            pump = ThreadPump()
            store = pump.wait(open_store(store_url, pump))
            try:
                sent = queue_claim(store, pump)
                deadline = time.monotonic() + 30
                while True:
                    item = pump.wait(store.outbox.get(sent))
                    assert item is not None
                    if item.state is OutboundState.PARKED:
                        break
                    assert item.state is not OutboundState.ANSWERED
                    assert time.monotonic() < deadline, (item, gateway.logs())
                    time.sleep(0.2)
                assert item.attempts == 1
                assert item.last_error == (
                    "rejected by the exchange service (AfgekeurdDoorDienst), meldingen: SIM001"
                )
                assert pump.wait(store.list_messages("3311", Direction.FROM_INSURER)) == []
            finally:
                pump.wait(store.close())
            gateway.wait_for_log(f"parked {sent} for insurer 3311: rejected by the exchange")
            metrics = httpx.get(f"http://127.0.0.1:{gateway.ops_port}/metrics", timeout=10).text
            assert (
                'igo_gateway_outbound_attempts_total{insurer="3311",outcome="rejected"} 1.0'
                in metrics
            )
        finally:
            gateway.stop()
        claims = sim.claims()
        assert (claims["claims"], claims["afgekeurd"]) == (0, 1), claims
        # of the meldingen only their codes: never their texts
        assert "afgekeurd door de dienst" not in gateway.logs()
    finally:
        sim.stop()
