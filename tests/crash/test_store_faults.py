"""The real gateway while its store fails under it: a full disk and I/O errors (injected by
the shim of :mod:`tests.crash.faultfs`), a SQLite file locked by another process, and a
PostgreSQL server that goes away (its connections cut through a loopback proxy, or its
backends terminated).

In every case: new uploads are refused with ``503`` application/problem+json (nothing
half-stored), what was acknowledged before stays readable, the gateway neither crashes
nor hangs, logs no client data, and recovers by itself once the fault clears — the next
uploads get ``204`` again. The store is checked afterwards with the crash suite's
invariants (:func:`tests.crash.harness.check_store`).
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from gateway.loading import load_layouts
from gateway.vsp import PULL_V1
from tests.crash.faultfs import FaultFs, build_or_skip
from tests.crash.harness import Acknowledgement, Upload, check_store, read_store
from tests.factories import BSNS, kz301
from tests.gateway.running import KRAAMZORG, GatewayProcess, upload, write_config

pytestmark = pytest.mark.slow

REGISTRY = load_layouts()
SQLITE_URL = "sqlite:///data/gateway.db"
# Bundling and pruning every half second, so that they run into an outage too.
BUSY_BACKGROUND = """
[bundling]
interval_seconds = 0.5

[retention]
interval_seconds = 0.5
"""


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_or_skip(tmp_path_factory.mktemp("faultfs"))


@dataclass
class Epd:
    """The kraamzorg organisation's EPD: numbered files, every answer kept."""

    process: GatewayProcess
    uploads: list[Upload]
    prefix: str

    @property
    def invoices(self) -> list[str]:
        return [f"{self.prefix}-{n:04d}" for n in range(1, len(self.uploads) + 1)]

    def new(self) -> Upload:
        invoice = f"{self.prefix}-{len(self.uploads) + 1:04d}"  # at most 12 positions
        payload = kz301(REGISTRY, agb=KRAAMZORG, invoice=invoice, lines=2)
        item = Upload(KRAAMZORG, payload, 2)
        self.uploads.append(item)
        return item

    def send(self, item: Upload) -> httpx.Response:
        with self.process.client(KRAAMZORG) as client:
            answer = upload(client, KRAAMZORG, item.payload, traceer_id=item.traceer_id)
        item.attempts += 1
        if answer.status_code == 204:
            item.answers.append(Acknowledgement(answer.status_code, item.traceer_id))
        return answer.response

    def accepted(self, count: int) -> None:
        for _ in range(count):
            answer = self.send(self.new())
            assert answer.status_code == 204, answer.text

    def still_readable(self) -> None:
        """Everything acknowledged downloads byte for byte."""
        with self.process.client(KRAAMZORG) as client:
            for item in self.uploads:
                if item.answers:
                    traceer_id = item.answers[0].traceer_id
                    download = client.get(f"{PULL_V1}/berichten/{traceer_id}/payload")
                    assert download.status_code == 200, download.text
                    assert download.content == item.payload


def assert_unavailable(answer: httpx.Response) -> None:
    """The store's unavailability as the API promises it."""
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == "30"
    assert answer.json()["code"] == "tijdelijk-niet-beschikbaar"


def assert_clean_log(log: str, epd: Epd) -> None:
    """No tracebacks, the outage said in words, no client data."""
    assert "Traceback" not in log, log[-4000:]
    assert "unexpected error" not in log, log[-4000:]
    assert "store unavailable while answering POST" in log, log[-4000:]
    for secret in (*BSNS, *epd.invoices):
        assert secret not in log, f"{secret} in the log"


def start(
    tmp_path: Path,
    pki: tuple[Path, dict[str, str]],
    url: str,
    env: dict[str, str],
    extra: str = "",
) -> GatewayProcess:
    directory, fingerprints = pki
    config = write_config(tmp_path / "gateway.toml", directory, fingerprints, url, extra=extra)
    process = GatewayProcess(config, directory, env)
    process.start()
    return process


@pytest.fixture
def disk(tmp_path: Path, shim: Path) -> FaultFs:
    return FaultFs(shim, tmp_path / "data", tmp_path / "faultfs-state", tmp_path / "faultfs-ctl")


@pytest.fixture
def gateway(
    tmp_path: Path, pki: tuple[Path, dict[str, str]], disk: FaultFs
) -> Iterator[GatewayProcess]:
    process = start(tmp_path, pki, SQLITE_URL, disk.env())
    try:
        yield process
    finally:
        process.stop()


def finish(process: GatewayProcess, epd: Epd, url: str) -> None:
    """Stop the gateway cleanly, check its log and the store."""
    assert process.process is not None
    assert process.process.poll() is None, "it died"
    log = process.logs()
    assert process.stop() == 0
    assert_clean_log(log, epd)
    assert check_store(read_store(url, None), epd.uploads) == []


# --- the disk ----------------------------------------------------------------------------


@pytest.mark.parametrize(("flag", "errno_name"), [("enospc", "ENOSPC"), ("eio", "EIO")])
def test_a_failing_disk_refuses_uploads_with_503_then_recovers_by_itself(
    gateway: GatewayProcess, disk: FaultFs, flag: str, errno_name: str
) -> None:
    epd = Epd(gateway, [], prefix=flag.upper())
    epd.accepted(3)
    disk.set_flag(flag, True)
    refused = [epd.new(), epd.new()]
    for item in refused:
        assert_unavailable(epd.send(item))
        assert_unavailable(epd.send(item))  # and again: still no half-stored upload
    assert any(line.startswith(f"{errno_name} ") for line in disk.injected())
    epd.still_readable()  # reads need no writes

    disk.set_flag(flag, False)
    for item in refused:  # the EPD's retries, now accepted: once, as new
        answer = epd.send(item)
        assert answer.status_code == 204, answer.text
    epd.accepted(2)
    epd.still_readable()
    finish(gateway, epd, f"sqlite:///{disk.root / 'gateway.db'}")


def test_one_failed_write_costs_one_answer(gateway: GatewayProcess, disk: FaultFs) -> None:
    """The next write to the store fails with EIO, once: the upload whose transaction it
    hit gets 503 and nothing of it is stored; its retry and every later upload get 204."""
    epd = Epd(gateway, [], prefix="NTH")
    epd.accepted(2)
    disk.fail_nth_write(1)
    item = epd.new()
    assert_unavailable(epd.send(item))
    assert [line.split()[:2] for line in disk.injected()] == [["EIO", "pwrite"]]
    assert epd.send(item).status_code == 204
    epd.accepted(3)
    epd.still_readable()
    assert len(disk.injected()) == 1
    finish(gateway, epd, f"sqlite:///{disk.root / 'gateway.db'}")


def test_a_database_locked_by_another_process_answers_503_then_recovers(
    gateway: GatewayProcess, disk: FaultFs
) -> None:
    epd = Epd(gateway, [], prefix="LOCK")
    epd.accepted(2)
    other = sqlite3.connect(disk.root / "gateway.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # the write lock, held
        item = epd.new()
        assert_unavailable(epd.send(item))  # after the gateway's busy timeout
        epd.still_readable()  # WAL: readers are not blocked
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert epd.send(item).status_code == 204
    epd.accepted(1)
    finish(gateway, epd, f"sqlite:///{disk.root / 'gateway.db'}")


# --- PostgreSQL --------------------------------------------------------------------------


class CuttableProxy:
    """A loopback TCP forwarder to the PostgreSQL server that the test can cut (every
    connection closed, new ones closed at once, as a server that went away) and restore."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        self._thread = threading.Thread(target=self._accept, name="pg-proxy", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                cut = self._cut
            if cut:
                client.close()
                continue
            try:
                server = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._open.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            sockets = list(self._open)
        for sock in sockets:
            self._drop(sock)

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self._listener.close()
        self.cut()
        self._thread.join(5)


def _through(url: str, port: int) -> str:
    """``url`` pointed at 127.0.0.1:``port``."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{port}"))


@pytest.mark.postgres
def test_postgresql_going_away_answers_503_then_recovers(
    tmp_path: Path, pki: tuple[Path, dict[str, str]], pg_url: str
) -> None:
    parts = urlsplit(pg_url)
    proxy = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    try:
        url = _through(pg_url, proxy.port)
        gateway = start(tmp_path, pki, url, {}, extra=BUSY_BACKGROUND)
        try:
            epd = Epd(gateway, [], prefix="PGCUT")
            epd.accepted(2)
            proxy.cut()
            refused = epd.new()
            for _ in range(3):
                assert_unavailable(epd.send(refused))
            with gateway.client(KRAAMZORG) as client:  # reads too: nothing to read from
                listing = client.get(f"{PULL_V1}/berichten")
            assert_unavailable(listing)
            # The background jobs meet the outage too, and say so in one line each.
            gateway.wait_for_log("a bundling run failed, the store is unavailable")
            gateway.wait_for_log("pruning expired files failed, the store is unavailable")
            proxy.restore()
            # Back at once: the connections found lost are replaced, no answer says so.
            epd.still_readable()
            answer = epd.send(refused)
            assert answer.status_code == 204, answer.text
            epd.accepted(2)
            epd.still_readable()
        finally:
            gateway_log = gateway.logs()
            assert gateway.stop() == 0
    finally:
        proxy.close()
    assert_clean_log(gateway_log, epd)
    assert check_store(read_store(pg_url, None), epd.uploads) == []


@pytest.mark.postgres
def test_postgresql_terminating_the_gateways_connections_costs_at_most_a_503(
    tmp_path: Path, pki: tuple[Path, dict[str, str]], pg_url: str, postgres_url: str
) -> None:
    name = f"igo_gateway_{uuid.uuid4().hex[:12]}"
    gateway = start(tmp_path, pki, f"{pg_url}&application_name={name}", {})
    try:
        epd = Epd(gateway, [], prefix="PGTRM")
        epd.accepted(2)
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            terminated = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (name,),
            ).fetchone()
        assert terminated is not None
        assert terminated[0] >= 1
        epd.still_readable()  # each reader connects anew, no answer says so
        epd.accepted(3)  # nor does the writer
        epd.still_readable()
        log = gateway.logs()
    finally:
        assert gateway.stop() == 0
    assert "Traceback" not in log, log[-4000:]
    assert "unexpected error" not in log, log[-4000:]
    assert check_store(read_store(pg_url, None), epd.uploads) == []
