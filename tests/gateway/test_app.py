"""End to end: ``igo-gateway serve`` as a real process on a loopback port with real mutual
TLS, driven by a real HTTP client the way a participant's EPD drives it — on SQLite and on
PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.admin.blocking import opened_stores
from adapters.admin.demo import seed_parked
from adapters.storage.batches import SqlBatchStore
from gateway.admin.batches import BatchState
from gateway.cli import main as cli_main
from gateway.crypto import Keyring
from gateway.ei import validate_bytes
from gateway.loading import load_layouts
from gateway.ports.outbox import OutboundState
from gateway.vsp import send_metadata
from tests.factories import BSNS, kz301
from tests.gateway.running import (
    IGO,
    KRAAMZORG,
    MIDWIFE,
    GatewayProcess,
    answers,
    cli_command,
    confirm_path,
    make_pki,
    message_id,
    payload_path,
    read_response,
    serve_command,
    statuses,
    upload,
    waiting,
    write_config,
)

REGISTRY = load_layouts()
pytestmark = pytest.mark.slow


def unsupported_standard(payload: bytes) -> bytes:
    """The same file with a standard code (COD002) no layout knows."""
    return payload[:2] + b"999" + payload[5:]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    directory = tmp_path_factory.mktemp("pki") / "pki"
    return directory, make_pki(directory)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return "sqlite:///data/gateway.db"
    url: str = request.getfixturevalue("pg_url")
    return url


def _gateway(
    tmp_path: Path, pki: tuple[Path, dict[str, str]], store_url: str, **epd_api: Any
) -> Iterator[GatewayProcess]:
    directory, fingerprints = pki
    config = write_config(tmp_path / "gateway.toml", directory, fingerprints, store_url, **epd_api)
    process = GatewayProcess(config, directory)
    process.start()
    try:
        # serve bundles once at start; wait for that run, so that it cannot decide a
        # test's upload (and answer it) while the test is looking at what waits.
        process.wait_for_log("bundled: ")
        yield process
    finally:
        process.stop()


@pytest.fixture
def gateway(
    tmp_path: Path, pki: tuple[Path, dict[str, str]], store_url: str
) -> Iterator[GatewayProcess]:
    yield from _gateway(tmp_path, pki, store_url)


@pytest.fixture
def strict_gateway(tmp_path: Path, pki: tuple[Path, dict[str, str]]) -> Iterator[GatewayProcess]:
    """Small limits, to test them without sending megabytes or waiting minutes."""
    yield from _gateway(
        tmp_path,
        pki,
        "sqlite:///data/gateway.db",
        max_upload_bytes=20_000,
        request_deadline_seconds=1.5,
    )


# --- the EPD's round trip ---------------------------------------------------------------------


def test_a_valid_file_is_accepted_and_its_status_can_be_followed(gateway: GatewayProcess) -> None:
    payload = kz301(REGISTRY, agb=KRAAMZORG)
    with gateway.client(KRAAMZORG) as epd:
        answer = upload(epd, KRAAMZORG, payload, berichttype="KZ301")
        assert answer.status_code == 204, answer.response.text
        assert answer.response.content == b""

        (status,) = statuses(epd, traceerId=answer.traceer_id)
        assert status["berichtstatus"] == "Ontvangen"
        assert status["referentiegegevens"] == answer.metadata["referentiegegevens"]
        assert status["berichtstroom"] == answer.metadata["routeringgegevens"]["berichtstroom"]
        assert statuses(epd, conversatieId=answer.conversatie_id) == [status]

        # The same traceerId and bytes again: a retry, nothing new.
        again = upload(epd, KRAAMZORG, payload, traceer_id=answer.traceer_id)
        assert again.status_code == 204
        assert statuses(epd, traceerId=answer.traceer_id) == [status]
        # The same traceerId with other bytes: refused, naming the field.
        other = upload(
            epd,
            KRAAMZORG,
            kz301(REGISTRY, agb=KRAAMZORG, invoice="F-2"),
            traceer_id=answer.traceer_id,
        )
        assert other.status_code == 422
        assert list(other.problem()["errors"]) == ["referentiegegevens.traceerId"]
        # Nothing waits for the sender: a valid file has no technical rejection.
        assert waiting(epd) == []


def test_a_rejected_file_gets_a_technical_retour_to_download_and_confirm(
    gateway: GatewayProcess,
) -> None:
    payload = unsupported_standard(kz301(REGISTRY, agb=KRAAMZORG))
    with gateway.client(KRAAMZORG) as epd:
        answer = upload(epd, KRAAMZORG, payload, "onbekend.asc")
        assert answer.status_code == 204, answer.response.text

        upload_status, _ = statuses(epd, traceerId=answer.traceer_id)
        assert upload_status["berichtstatus"] == "AfgekeurdDoorDienst"
        assert [m["code"] for m in upload_status["meldingen"]] == ["0010"]

        (entry,) = waiting(epd)
        assert answers(entry) == answer.traceer_id
        assert entry["referentiegegevens"]["conversatieId"] == answer.conversatie_id
        download = entry["basisgegevens"]["payload"]
        assert download["url"] == f"{gateway.base_url}{payload_path(message_id(entry))}"

        fetched = epd.get(download["url"])
        assert fetched.status_code == 200
        assert fetched.headers["content-type"] == "application/octet-stream"
        retour = fetched.content
        assert download["checksum"] == {
            "algoritme": "SHA256",
            "waarde": hashlib.sha256(retour).hexdigest(),
        }
        assert len(retour) == download["grootte"]
        checked = validate_bytes(REGISTRY, retour)
        assert checked.valid, checked.findings
        assert checked.records == 2
        assert dict(checked.counts) == {"01": 1, "99": 1}
        assert b"0001" in retour
        assert b"0010" in retour

        confirmed = epd.delete(confirm_path(message_id(entry)))
        assert (confirmed.status_code, confirmed.content) == (202, b"")
        assert waiting(epd) == []
        (after,) = statuses(epd, traceerId=message_id(entry))
        assert after["berichtstatus"] == "Bezorgd"


def test_participants_see_only_their_own_messages(gateway: GatewayProcess) -> None:
    payload = unsupported_standard(kz301(REGISTRY, agb=KRAAMZORG))
    with gateway.client(KRAAMZORG) as kraamzorg, gateway.client(MIDWIFE) as midwife:
        sent = upload(kraamzorg, KRAAMZORG, payload)
        (retour,) = waiting(kraamzorg)

        assert waiting(midwife) == []
        for path in (payload_path(message_id(retour)), payload_path(sent.traceer_id)):
            answer = midwife.get(path)
            assert answer.status_code == 404, path
            assert answer.headers["content-type"] == "application/problem+json"
        assert midwife.delete(confirm_path(message_id(retour))).status_code == 404
        assert statuses(midwife, traceerId=sent.traceer_id) == []
        assert statuses(midwife, conversatieId=sent.conversatie_id) == []
        # ... and an id that exists answers exactly like one that does not.
        unknown = midwife.get(payload_path("00000000-0000-0000-0000-000000000000"))
        assert unknown.status_code == 404
        assert unknown.json()["code"] == midwife.get(path).json()["code"]
        # The owner still has it.
        assert kraamzorg.get(payload_path(message_id(retour))).status_code == 200


def test_a_restart_between_upload_and_download_loses_nothing(gateway: GatewayProcess) -> None:
    payload = unsupported_standard(kz301(REGISTRY, agb=KRAAMZORG))
    with gateway.client(KRAAMZORG) as epd:
        sent = upload(epd, KRAAMZORG, payload)
        (before,) = waiting(epd)
        retour = epd.get(payload_path(message_id(before))).content

    assert gateway.stop() == 0
    gateway.start()

    with gateway.client(KRAAMZORG) as epd:
        (after,) = waiting(epd)
        for entry in (before, after):  # the port is new after the restart
            entry["basisgegevens"]["payload"].pop("url")
        assert after == before
        assert epd.get(payload_path(message_id(after))).content == retour
        upload_status, _ = statuses(epd, traceerId=sent.traceer_id)
        assert [m["code"] for m in upload_status["meldingen"]] == ["0010"]
        # The upload is still known: a retry after the restart stores nothing new.
        assert upload(epd, KRAAMZORG, payload, traceer_id=sent.traceer_id).status_code == 204
        assert len(waiting(epd)) == 1


def test_the_log_holds_no_client_data(gateway: GatewayProcess) -> None:
    with gateway.client(KRAAMZORG) as epd:
        upload(epd, KRAAMZORG, kz301(REGISTRY, agb=KRAAMZORG, bsn=BSNS[1]))
        upload(epd, KRAAMZORG, unsupported_standard(kz301(REGISTRY, agb=KRAAMZORG, bsn=BSNS[2])))
    gateway.stop()
    logs = gateway.logs()
    assert "POST /berichtenservice/berichten/rest-push/v1/berichten 204" in logs
    for secret in (BSNS[1], BSNS[2], "Testpersoon", "F2026-0001"):
        assert secret not in logs


def test_uploads_show_in_the_metrics_without_client_data(gateway: GatewayProcess) -> None:
    with gateway.client(KRAAMZORG) as epd:
        upload(epd, KRAAMZORG, kz301(REGISTRY, agb=KRAAMZORG, bsn=BSNS[1]))
        upload(epd, KRAAMZORG, unsupported_standard(kz301(REGISTRY, agb=KRAAMZORG)))
        waiting(epd)
    assert gateway.operations("/readyz").status_code == 200
    assert gateway.operations("/healthz").json() == {"status": "ok"}
    text = gateway.operations("/metrics").text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    accepted = (("outcome", "accepted"), ("participant", KRAAMZORG), ("standard", "KZ301"))
    rejected = (("outcome", "rejected"), ("participant", KRAAMZORG), ("standard", "unknown"))
    assert samples[("igo_gateway_uploads_total", accepted)] == 1
    assert samples[("igo_gateway_uploads_total", rejected)] == 1
    assert samples[("igo_gateway_upload_rejections_total", (("retourcode", "0010"),))] == 1
    route = "/berichtenservice/berichten/rest-pull/v1/berichten"
    listed = (("method", "GET"), ("route", route), ("status", "200"))
    assert samples[("igo_gateway_http_requests_total", listed)] == 1
    assert BSNS[1] not in text


def test_the_store_gauge_is_current_without_a_readiness_check(gateway: GatewayProcess) -> None:
    """Under systemd or compose nothing calls /readyz: the gateway checks its store itself."""
    text = gateway.operations("/metrics").text
    (family,) = [
        f for f in text_string_to_metric_families(text) if f.name == "igo_gateway_store_up"
    ]
    assert [s.value for s in family.samples] == [1.0]


# --- who may connect ----------------------------------------------------------------------


def test_refused_without_a_client_certificate(gateway: GatewayProcess) -> None:
    with gateway.client(None) as anonymous, pytest.raises((httpx.ConnectError, httpx.ReadError)):
        anonymous.get(confirm_path(""))


def test_refused_without_tls(gateway: GatewayProcess) -> None:
    with (
        httpx.Client(base_url=f"http://127.0.0.1:{gateway.port}", timeout=10) as plain,
        pytest.raises(httpx.HTTPError),
    ):
        plain.get(confirm_path(""))


def test_a_trusted_certificate_of_no_participant_is_refused(gateway: GatewayProcess) -> None:
    with gateway.client(IGO) as stranger:
        answer = stranger.get(confirm_path("").rstrip("/"))
    assert answer.status_code == 403
    assert answer.json()["code"] == "certificaat-onbekend"


def test_a_sender_who_is_not_the_certificate_owner_is_refused(gateway: GatewayProcess) -> None:
    with gateway.client(MIDWIFE) as midwife:
        answer = upload(midwife, KRAAMZORG, kz301(REGISTRY, agb=KRAAMZORG))
        assert answer.status_code == 422
        assert answer.response.headers["content-type"] == "application/problem+json"
        assert list(answer.problem()["errors"]) == ["routeringgegevens.afzender.code"]
        file_of_other = upload(midwife, MIDWIFE, kz301(REGISTRY, agb=KRAAMZORG))
        assert file_of_other.status_code == 422
        assert list(file_of_other.problem()["errors"]) == ["payload"]
        assert waiting(midwife) == []
        assert statuses(midwife, traceerId=answer.traceer_id) == []
        assert statuses(midwife, traceerId=file_of_other.traceer_id) == []
    with gateway.client(KRAAMZORG) as kraamzorg:
        # Nothing was stored: the traceerIds are still free.
        assert statuses(kraamzorg, traceerId=answer.traceer_id) == []
        again = upload(
            kraamzorg, KRAAMZORG, kz301(REGISTRY, agb=KRAAMZORG), traceer_id=answer.traceer_id
        )
        assert again.status_code == 204


def test_malformed_requests_get_validation_problem_details(gateway: GatewayProcess) -> None:
    push = "/berichtenservice/berichten/rest-push/v1/berichten"
    with gateway.client(KRAAMZORG) as epd:
        not_multipart = epd.post(push, content=b"{}", headers={"content-type": "application/json"})
        bad_metadata = epd.post(
            push,
            files={
                "berichtMetadata": (None, '{"routeringgegevens": {}}', "application/json"),
                "payload": ("a.asc", b"x", "application/octet-stream"),
            },
        )
    for answer in (not_multipart, bad_metadata):
        assert answer.status_code == 400
        assert answer.headers["content-type"] == "application/problem+json"
        body = answer.json()
        assert body["status"] == 400
        assert body["code"]
        assert body["detail"]
        assert body["errors"]
    assert "routeringgegevens.afzender" in bad_metadata.json()["errors"]
    assert "referentiegegevens" in bad_metadata.json()["errors"]


# --- clients that misbehave ------------------------------------------------------------------


def _upload_head(gateway: GatewayProcess, length: int, boundary: str = "b0undary") -> bytes:
    return (
        f"POST /berichtenservice/berichten/rest-push/v1/berichten HTTP/1.1\r\n"
        f"Host: localhost:{gateway.port}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _multipart_body(sender: str, payload: bytes, boundary: str = "b0undary") -> bytes:
    metadata = json.dumps(send_metadata(sender, "EI").recorded()).encode()
    return (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="berichtMetadata"\r\n'
        "Content-Type: application/json\r\n\r\n".encode()
        + metadata
        + f"\r\n--{boundary}\r\n"
        'Content-Disposition: form-data; name="payload"; filename="a.asc"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )


def test_an_oversized_upload_is_refused_before_it_is_read(strict_gateway: GatewayProcess) -> None:
    sock = strict_gateway.raw(KRAAMZORG)
    with sock:
        # Announce 10 MB and send none of it: the answer comes anyway.
        sock.sendall(_upload_head(strict_gateway, 10_000_000))
        answer, closed = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert closed
    assert b"bericht-te-groot" in answer
    assert b'"errors": {"payload"' in answer


def test_an_oversized_chunked_upload_is_cut_off(strict_gateway: GatewayProcess) -> None:
    def body() -> Iterator[bytes]:
        for _ in range(1000):
            yield b"x" * 1000

    with strict_gateway.client(KRAAMZORG) as epd:
        try:
            answer = epd.post(
                "/berichtenservice/berichten/rest-push/v1/berichten",
                content=body(),
                headers={"content-type": "multipart/form-data; boundary=b0undary"},
            )
        except (httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError):
            return  # cut off while still sending: refused without reading it all
        assert answer.status_code == 413


def test_a_slow_loris_client_is_timed_out(strict_gateway: GatewayProcess) -> None:
    sock = strict_gateway.raw(KRAAMZORG)
    with sock:
        head = _upload_head(strict_gateway, 1000)
        cut = head.index(b"\r\n") + 2  # the request line: from here the deadline runs
        sock.sendall(head[:cut])
        sock.settimeout(15)
        # Trickle a byte now and then: the idle timeout never fires, the deadline does.
        for byte in head[cut : cut + 10]:
            time.sleep(0.3)
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                break
        answer, closed = read_response(sock)
    assert b" 408 " in answer.split(b"\r\n", 1)[0]
    assert closed


def test_a_client_that_disconnects_mid_upload_leaves_nothing(
    strict_gateway: GatewayProcess,
) -> None:
    payload = kz301(REGISTRY, agb=KRAAMZORG, invoice="F2026-HALF")
    body = _multipart_body(KRAAMZORG, payload)
    sock = strict_gateway.raw(KRAAMZORG)
    with sock:
        sock.sendall(_upload_head(strict_gateway, len(body)) + body[: len(body) // 2])
    time.sleep(0.5)
    with strict_gateway.client(KRAAMZORG) as epd:
        answer = upload(epd, KRAAMZORG, payload)
        assert answer.status_code == 204  # new: nothing of the broken upload was kept
        assert waiting(epd) == []


# --- starting ----------------------------------------------------------------------------


def test_serve_reports_every_config_problem_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[igo]\nname = ""\nagb = "12"\n', encoding="utf-8")
    done = subprocess.run(
        serve_command(config), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "igo.agb" in done.stderr
    assert "igo.name" in done.stderr
    assert "epd_api: required but missing" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_exits_1_with_a_reason_when_the_port_is_taken(
    gateway: GatewayProcess, tmp_path: Path
) -> None:
    text = gateway.config.read_text(encoding="utf-8").replace("port = 0", f"port = {gateway.port}")
    second = tmp_path / "second.toml"
    second.write_text(text.replace('url = "sqlite:///data/gateway.db"', 'url = "sqlite:///b.db"'))
    done = subprocess.run(
        serve_command(second), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert "cannot start" in done.stderr
    assert "Traceback" not in done.stderr


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command(*args), capture_output=True, text=True, timeout=60, check=False, cwd=cwd
    )


def test_a_second_gateway_on_the_same_sqlite_store_is_refused(
    tmp_path: Path, pki: tuple[Path, dict[str, str]]
) -> None:
    directory, fingerprints = pki
    config = write_config(
        tmp_path / "gateway.toml", directory, fingerprints, "sqlite:///data/gateway.db"
    )
    gateway = GatewayProcess(config, directory)
    gateway.start()
    try:
        second = run_cli("serve", "--config", str(config), cwd=tmp_path)
        assert second.returncode == 1
        assert "in use by a running gateway" in second.stderr
        with gateway.client(KRAAMZORG) as epd:
            sent = upload(epd, KRAAMZORG, kz301(REGISTRY, agb=KRAAMZORG))
        # A backup is taken while the gateway runs ...
        backup = run_cli("backup", "--config", str(config), "--to", "b.db", cwd=tmp_path)
        assert backup.returncode == 0, backup.stderr
    finally:
        assert gateway.stop() == 0
    # ... and restored over the store once it has stopped.
    refused = run_cli("restore", "--config", str(config), "--from", "b.db", cwd=tmp_path)
    assert refused.returncode == 1
    assert "--force" in refused.stderr
    forced = run_cli("restore", "--config", str(config), "--from", "b.db", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    gateway.start()
    try:
        with gateway.client(KRAAMZORG) as epd:
            found = statuses(epd, traceerId=sent.traceer_id)
            # The upload is in the restored store. (The bundling run at start may already
            # have answered it: its retour then stands beside it, and its status moved on.)
            (own,) = [s for s in found if s["referentiegegevens"]["traceerId"] == sent.traceer_id]
            assert own["berichtstatus"] in ("Ontvangen", "WordtVerwerkt", "VerwerkingVoltooid"), own
    finally:
        gateway.stop()


def test_with_a_key_file_no_bsn_is_written_to_disk_and_rotation_loses_nothing(
    tmp_path: Path, pki: tuple[Path, dict[str, str]]
) -> None:
    directory, fingerprints = pki
    keys = tmp_path / "secrets" / "keys.toml"
    keys.parent.mkdir()
    assert run_cli("keys", "init", str(keys), cwd=tmp_path).returncode == 0
    config = write_config(
        tmp_path / "gateway.toml",
        directory,
        fingerprints,
        "sqlite:///data/gateway.db",
        key_file=keys,
    )
    gateway = GatewayProcess(config, directory)
    gateway.start()
    try:
        with gateway.client(KRAAMZORG) as epd:
            assert (
                upload(epd, KRAAMZORG, kz301(REGISTRY, agb=KRAAMZORG, bsn=BSNS[1])).status_code
                == 204
            )
            bad = unsupported_standard(kz301(REGISTRY, agb=KRAAMZORG, bsn=BSNS[3]))
            sent = upload(epd, KRAAMZORG, bad)
            (retour,) = waiting(epd)
            first_download = epd.get(payload_path(message_id(retour))).content
            original = epd.get(payload_path(sent.traceer_id)).content
            assert original == bad
    finally:
        assert gateway.stop() == 0

    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.parent != keys.parent]
    assert any(p.name == "gateway.db" for p in written)
    for path in written:
        data = path.read_bytes()
        for bsn in (BSNS[1], BSNS[3]):
            assert bsn.encode() not in data, f"{bsn} in {path.name}"
        assert b"Testpersoon" not in data, path.name

    old_key = Keyring.load(keys).current
    rotated = run_cli("keys", "rotate", "--config", str(config), cwd=tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    gateway.start()
    try:
        # 3 files in the journal and the good upload's declaration line.
        gateway.wait_for_log("re-encryption done: 4 sealed rows resealed")
    finally:
        assert gateway.stop() == 0
    status = run_cli("keys", "status", "--config", str(config), cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    (old_row,) = [row for row in status.stdout.splitlines() if row.startswith(old_key)]
    assert "seals nothing" in old_row
    assert "declaration_lines (1 row)" in status.stdout  # now under the new key
    retired = run_cli("keys", "retire", "--config", str(config), old_key, cwd=tmp_path)
    assert retired.returncode == 0, retired.stderr

    # Without the old key everything still reads: payloads and the sealed lines.
    gateway.start()
    try:
        with gateway.client(KRAAMZORG) as epd:
            again = epd.get(payload_path(message_id(retour))).content
            assert again == first_download
            assert epd.get(payload_path(sent.traceer_id)).content == bad
    finally:
        gateway.stop()
    search = subprocess.run(
        cli_command("cases", "search", "--config", str(config), "--bsn-prompt", "--unmask"),
        input=BSNS[1] + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert search.returncode == 0, search.stderr
    assert BSNS[1] in search.stdout

    # Another key file (a valid one) is refused at start, with the reason.
    keys.rename(keys.with_name("right.toml"))
    assert run_cli("keys", "init", str(keys), cwd=tmp_path).returncode == 0
    refused = run_cli("serve", "--config", str(config), cwd=tmp_path)
    assert refused.returncode == 1
    assert "the key file lacks key(s) the store still needs" in refused.stderr
    assert "declaration_lines (1 row)" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_the_admin_site_is_served_apart_from_the_epd_api(gateway: GatewayProcess) -> None:
    admin = f"http://127.0.0.1:{gateway.ports['admin_port']}"
    assert httpx.get(f"{admin}/login", timeout=10).status_code == 200
    assert httpx.get(f"{admin}/api/cases", timeout=10).status_code == 401  # login first
    with gateway.client(KRAAMZORG) as epd:  # an EPD certificate reaches none of it
        for path in ("/login", "/api/cases", "/api/audit"):
            assert epd.get(path).status_code == 404, path


def test_serve_runs_a_bulk_batch_made_while_it_was_stopped(
    gateway: GatewayProcess, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway.stop()
    monkeypatch.chdir(gateway.config.parent)  # the SQLite URL is relative to it
    with opened_stores(store_url, None) as stores:
        down = stores.run.wait(
            seed_parked(
                stores.store, REGISTRY, datetime.now(UTC), tag="down", insurer="4444", count=3
            )
        )
    config = str(gateway.config)
    assert (
        cli_main(
            ["cases", "bulk", "--config", config, "--action", "retry", "--insurer", "4444", "--yes"]
        )
        == 0
    )
    gateway.start()  # a fresh process finds the batch in the store and does it
    gateway.wait_for_log("bulk batch 1 finished")
    with opened_stores(store_url, None) as stores:
        outbound = [stores.run.wait(stores.store.outbox.get(ref)) for ref in down]
        batch = stores.run.wait(SqlBatchStore(stores.store.database).batch(1))
    assert [o.state if o else None for o in outbound] == [OutboundState.QUEUED] * 3
    assert batch is not None
    assert (batch.state, batch.progress.done) == (BatchState.FINISHED, 3)


# --- check workers ([epd_api] check_processes) -----------------------------------------------


def _workers_of(gateway: GatewayProcess) -> list[int]:
    """The gateway's running check workers (its child processes), from /proc."""
    assert gateway.process is not None
    pid = gateway.process.pid
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return [
        c
        for c in children
        if b"adapters.check_workers.worker" in Path(f"/proc/{c}/cmdline").read_bytes()
    ]


def _wait_for(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_check_workers_check_the_uploads_and_one_that_dies_loses_nothing(
    tmp_path: Path, pki: tuple[Path, dict[str, str]]
) -> None:
    for gateway in _gateway(tmp_path, pki, "sqlite:///data/gateway.db", check_processes=2):
        _wait_for(lambda: len(_workers_of(gateway)) == 2)  # noqa: B023 - used at once
        with gateway.client(KRAAMZORG) as epd:
            accepted = upload(epd, KRAAMZORG, kz301(REGISTRY, agb=KRAAMZORG, lines=3))
            rejected = upload(epd, KRAAMZORG, unsupported_standard(kz301(REGISTRY, agb=KRAAMZORG)))
            assert (accepted.status_code, rejected.status_code) == (204, 204)
            (status,) = statuses(epd, traceerId=accepted.traceer_id)
            assert status["berichtstatus"] == "Ontvangen"
            upload_status, _ = statuses(epd, traceerId=rejected.traceer_id)
            assert [m["code"] for m in upload_status["meldingen"]] == ["0010"]

            first, second = _workers_of(gateway)
            os.kill(first, signal.SIGKILL)
            os.kill(second, signal.SIGKILL)
            # Whatever the workers were doing, every upload is answered: checked in the
            # gateway's own process until the workers are back.
            invoices = [f"F-KILL-{n}" for n in range(6)]
            for invoice in invoices:
                sent = upload(epd, KRAAMZORG, kz301(REGISTRY, agb=KRAAMZORG, invoice=invoice))
                assert sent.status_code == 204, sent.response.text
                (after,) = statuses(epd, traceerId=sent.traceer_id)
                assert after["berichtstatus"] == "Ontvangen"
            gateway.wait_for_log("ended unasked")
            _wait_for(lambda: len(_workers_of(gateway)) == 2)  # noqa: B023 - used at once
            assert not {first, second} & set(_workers_of(gateway))
            again = upload(epd, KRAAMZORG, kz301(REGISTRY, agb=KRAAMZORG, invoice="F-AGAIN"))
            assert again.status_code == 204
        workers = _workers_of(gateway)
        assert gateway.stop() == 0
        for worker in workers:  # stopped with the gateway, not left behind
            assert not Path(f"/proc/{worker}").exists() or b"Z" in _state(worker)


def _state(pid: int) -> bytes:
    return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
