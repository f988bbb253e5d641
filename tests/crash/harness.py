"""Crash-safety harness: a real gateway process, EPD clients uploading from threads, and a
killer that sends SIGKILL at random moments and starts the gateway again.

* :class:`Gateway` wraps :class:`~tests.gateway.running.GatewayProcess` so that clients
  always find the current address (every start listens on a new loopback port) and can
  wait while it is down.
* :class:`EpdClient` is one participant's EPD on a thread: it uploads distinct files (its
  own invoice numbers) one after the other and, when it gets no answer — the connection
  was cut, or ``503`` — sends the **same bytes under the same traceerId** again until it
  gets one, as an EPD that
  follows VECOZO's retry advice would. Every answer is kept.
* :func:`kill_at_random` is the killer: a seeded :class:`random.Random` chooses how long
  the gateway lives after each start.
* :func:`check_from_outside` and :func:`check_store` are the invariants: what the EPDs
  can see through the API, and what is in the store once the last process has stopped.

Nothing here sleeps for a fixed time to "let things settle": the checks run after the
gateway has been stopped (or, for the API view, started again), so they see only what was
made durable.
"""

from __future__ import annotations

import hashlib
import random
import signal
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from adapters.storage import SqlMessageStore, Transaction, open_store
from gateway.crypto import Keyring
from gateway.loading import load_layouts
from gateway.vsp import PULL_V1, STATUS_V3
from tests.factories import BSNS, kz301, vk301, zh308
from tests.gateway.running import HOSPITAL, MIDWIFE, GatewayProcess, upload
from tests.threadpump import ThreadPump

__all__ = [
    "VALID_UPLOAD_STATES",
    "Acknowledgement",
    "EpdClient",
    "Gateway",
    "KillLog",
    "StoreView",
    "Upload",
    "acknowledged",
    "check_from_outside",
    "check_idempotency",
    "check_store",
    "hospital_participant",
    "kill_at_random",
    "read_store",
    "store_path",
]

REGISTRY = load_layouts()
ANSWER_SECONDS = 15.0  # a client's patience for one answer while the gateway is up
GIVE_UP_SECONDS = 60.0  # a client stops retrying one file after this long (then fails)


def hospital_participant(fingerprint: str) -> str:
    """Config of the third participant (``write_config`` has the first two)."""
    return f"""
[[participants]]
agb = "{HOSPITAL}"
name = "Ziekenhuis Test"
discipline = "hospital"
variant = "A"
certificates = ["{fingerprint}"]
"""


class Gateway:
    """The gateway process as the clients see it: up (with an address) or down."""

    def __init__(self, process: GatewayProcess) -> None:
        self.process = process
        self._lock = threading.Lock()
        self._up = threading.Event()
        self._base_url = ""
        self.starts = 0

    def start(self) -> None:
        self.process.start()
        with self._lock:
            self._base_url = self.process.base_url
            self.starts += 1
        self._up.set()

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, what was in the process's memory is gone."""
        self._up.clear()
        running = self.process.process
        assert running is not None, "not running"
        running.send_signal(signal.SIGKILL)
        running.wait()
        self.process.stop()  # collects the exit status and the log reader

    def stop(self) -> int:
        self._up.clear()
        return self.process.stop()

    def base_url(self, timeout: float) -> str | None:
        """The address of the running gateway, waiting up to ``timeout`` for one."""
        if not self._up.wait(timeout):
            return None
        with self._lock:
            return self._base_url

    @property
    def up(self) -> bool:
        return self._up.is_set()


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """An answer an EPD got for an upload: its HTTP status and the traceerId it sent
    (empty for a refusal)."""

    status: int
    traceer_id: str


@dataclass
class Upload:
    """One file an EPD uploaded, with every answer it got for it."""

    participant: str
    payload: bytes
    lines: int
    attempts: int = 0
    answers: list[Acknowledgement] = field(default_factory=list)
    traceer_id: str = field(default_factory=lambda: str(uuid.uuid4()))  # the EPD's choice

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()


@dataclass
class EpdClient:
    """One EPD on its own thread (see the module documentation)."""

    name: str
    participant: str
    gateway: Gateway
    rng: random.Random
    enough: threading.Event  # set when the killer is done: then ``tail`` more files
    maximum: int
    tail: int = 5
    pause: float = 0.03  # at most this long between two files (an EPD is not a loop)
    resend_share: float = 0.1  # how often an acknowledged file is sent again on purpose
    uploads: list[Upload] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    in_flight: threading.Event = field(default_factory=threading.Event)  # a request is out
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"epd-{self.name}", daemon=True)
        self._thread.start()

    def join(self, timeout: float) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.problems.append(f"{self.name}: still running after {timeout} s")

    def _file(self, number: int) -> Upload:
        lines = self.rng.randint(1, 4)
        bsn = BSNS[number % 2]  # both pass the eleven-proof
        invoice = f"{self.name}-{number:05d}"
        if self.participant == MIDWIFE:
            payload = vk301(REGISTRY, agb=MIDWIFE, invoice=invoice, lines=lines, bsn=bsn)
        elif self.participant == HOSPITAL:
            payload = zh308(REGISTRY, agb=HOSPITAL, invoice=invoice, lines=lines, bsn=bsn)
        else:
            payload = kz301(REGISTRY, agb=self.participant, invoice=invoice, lines=lines, bsn=bsn)
        return Upload(self.participant, payload, lines)

    def _run(self) -> None:
        client: httpx.Client | None = None
        client_url = ""
        context = self.gateway.process.ssl_context(self.participant)
        try:
            number = 0
            last = self.maximum
            while number < last:
                number += 1
                if self.enough.is_set():
                    last = min(last, number + self.tail)
                time.sleep(self.rng.uniform(0, self.pause))
                item = self._file(number)
                self.uploads.append(item)
                sends = 2 if self.rng.random() < self.resend_share else 1
                for _ in range(sends):
                    client, client_url = self._deliver(item, client, client_url, context)
                    if not item.answers:
                        return  # gave up; reported in problems
        except Exception as exc:  # a bug in the harness must fail the test, not hang it
            self.problems.append(f"{self.name}: {type(exc).__name__}: {exc}")
        finally:
            if client is not None:
                client.close()

    def _deliver(
        self, item: Upload, client: httpx.Client | None, client_url: str, context: ssl.SSLContext
    ) -> tuple[httpx.Client | None, str]:
        """Send ``item`` until an answer comes back; the (possibly new) client."""
        deadline = time.monotonic() + GIVE_UP_SECONDS
        answers = len(item.answers)
        while len(item.answers) == answers:
            if time.monotonic() > deadline:
                self.problems.append(f"{self.name}: no answer for {item.sha256[:12]}")
                return client, client_url
            url = self.gateway.base_url(timeout=GIVE_UP_SECONDS)
            if url is None:
                continue
            if client is None or url != client_url:
                if client is not None:
                    client.close()
                client = httpx.Client(base_url=url, verify=context, timeout=ANSWER_SECONDS)
                client_url = url
            item.attempts += 1
            self.in_flight.set()
            try:
                answer = upload(client, self.participant, item.payload, traceer_id=item.traceer_id)
            except httpx.TransportError:
                self.in_flight.clear()
                time.sleep(0.02)  # the gateway died under us: wait for the next one
                continue
            self.in_flight.clear()
            if answer.status_code == 503:
                time.sleep(0.05)
                continue
            if answer.status_code != 204:
                self.problems.append(
                    f"{self.name}: {answer.status_code} for {item.sha256[:12]}: "
                    f"{answer.response.text}"
                )
                item.answers.append(Acknowledgement(answer.status_code, ""))
                continue
            item.answers.append(Acknowledgement(answer.status_code, item.traceer_id))
        return client, client_url


@dataclass
class KillLog:
    """When the killer struck: seconds the gateway had been up, and uploads answered by
    then (all clients together)."""

    moments: list[tuple[float, int]] = field(default_factory=list)


def kill_at_random(
    gateway: Gateway,
    rng: random.Random,
    kills: int,
    lifetime: tuple[float, float],
    answered: Callable[[], int],
    busy: Callable[[], bool] | None = None,
) -> KillLog:
    """Kill the running gateway ``kills`` times, each after a random time up (then as soon
    as ``busy`` says a request is under way), restarting it each time; returns with the
    gateway running and answering again (at least one answer after the last kill, so that
    the kills fall among the uploads, not after them all)."""
    log = KillLog()
    for _ in range(kills):
        started = time.monotonic()
        time.sleep(rng.uniform(*lifetime))
        # Uploads are quick: wait (a little) for one to be under way, so that the kill
        # cuts it short rather than falling between two.
        patience = time.monotonic() + 2.0
        while busy is not None and not busy() and time.monotonic() < patience:
            time.sleep(0.001)
        log.moments.append((time.monotonic() - started, answered()))
        gateway.kill()
        gateway.start()
    deadline = time.monotonic() + ANSWER_SECONDS
    while log.moments and answered() <= log.moments[-1][1] and time.monotonic() < deadline:
        time.sleep(0.05)
    return log


# --- the invariants ----------------------------------------------------------------------


def acknowledged(uploads: Sequence[Upload]) -> list[Upload]:
    return [u for u in uploads if any(a.traceer_id for a in u.answers)]


def check_idempotency(uploads: Sequence[Upload]) -> list[str]:
    """Every answer for one file (sent again under its traceerId after a lost answer) is
    204 for that traceerId; :func:`check_store` shows it is stored once."""
    problems = []
    for item in uploads:
        ids = {a.traceer_id for a in item.answers}
        if item.answers and ids != {item.traceer_id}:
            problems.append(f"{item.sha256[:12]}: answers name {sorted(ids)}")
        if any(a.status != 204 for a in item.answers):
            problems.append(f"{item.sha256[:12]}: answered {[a.status for a in item.answers]}")
    return problems


VALID_UPLOAD_STATES = ("Ontvangen", "WordtVerwerkt", "VerwerkingVoltooid")


def check_from_outside(gateway: GatewayProcess, uploads: Sequence[Upload]) -> list[str]:
    """As the EPDs see it: every acknowledged traceerId has its status, and its file
    downloads with the same bytes."""
    problems: list[str] = []
    by_participant: dict[str, list[Upload]] = {}
    for item in acknowledged(uploads):
        by_participant.setdefault(item.participant, []).append(item)
    for participant, items in by_participant.items():
        with gateway.client(participant) as epd:
            for item in items:
                traceer_id = item.answers[0].traceer_id
                found = epd.get(f"{STATUS_V3}/berichtstatussen", params={"traceerId": traceer_id})
                if found.status_code != 200 or not found.json():
                    problems.append(f"{traceer_id}: status {found.status_code}")
                    continue
                # All files are valid: received (bundling may have moved them on since).
                own = [
                    s for s in found.json() if s["referentiegegevens"]["traceerId"] == traceer_id
                ]
                states = [s["berichtstatus"] for s in own]
                if len(own) != 1 or states[0] not in VALID_UPLOAD_STATES:
                    problems.append(f"{traceer_id}: status {states}")
                download = epd.get(f"{PULL_V1}/berichten/{traceer_id}/payload")
                if download.status_code != 200 or download.content != item.payload:
                    problems.append(f"{traceer_id}: download {download.status_code} differs")
    return problems


@dataclass
class StoreView:
    """What the store holds, read after the last gateway process stopped."""

    uploads: list[tuple[str, str, str, int]]  # traceer_id, sha256, party, size
    statuses: dict[str, int]  # traceer_id -> status rows
    lines: dict[str, int]  # traceer_id -> declaration lines
    journal: list[tuple[str, int]]  # sha256, size
    payloads: dict[str, bytes | None]  # sha256 -> the bytes as the store gives them back
    unreferenced_journal: list[str]
    dangling: list[str]  # rows that name a message that is not there
    integrity: str  # SQLite's integrity_check, "ok" on PostgreSQL


def _rows(txn: Transaction, sql: str) -> list[tuple[object, ...]]:
    txn.execute(sql)
    return list(txn.fetchall())


def _view_txn(txn: Transaction, engine: str) -> StoreView:
    uploads = [
        (str(t), str(s), str(p), int(str(n)))
        for t, s, p, n in _rows(
            txn,
            "SELECT traceer_id, sha256, party, size FROM messages"
            " WHERE direction = 'from_participant' ORDER BY seq",
        )
    ]
    statuses = {
        str(t): int(str(n))
        for t, n in _rows(
            txn, "SELECT traceer_id, count(*) FROM message_statuses GROUP BY traceer_id"
        )
    }
    lines = {
        str(t): int(str(n))
        for t, n in _rows(
            txn, "SELECT traceer_id, count(*) FROM declaration_lines GROUP BY traceer_id"
        )
    }
    journal = [(str(s), int(str(n))) for s, n in _rows(txn, "SELECT sha256, size FROM journal")]
    unreferenced = [
        str(s)
        for (s,) in _rows(
            txn,
            "SELECT sha256 FROM journal j"
            " WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.sha256 = j.sha256)",
        )
    ]
    dangling = [
        f"status of {t}"
        for (t,) in _rows(
            txn,
            "SELECT DISTINCT traceer_id FROM message_statuses s WHERE NOT EXISTS"
            " (SELECT 1 FROM messages m WHERE m.traceer_id = s.traceer_id)",
        )
    ] + [
        f"lines of {t}"
        for (t,) in _rows(
            txn,
            "SELECT DISTINCT traceer_id FROM declaration_lines d WHERE NOT EXISTS"
            " (SELECT 1 FROM messages m WHERE m.traceer_id = d.traceer_id)",
        )
    ]
    integrity = "ok"
    if engine == "sqlite":
        integrity = ", ".join(str(r[0]) for r in _rows(txn, "PRAGMA integrity_check"))
    return StoreView(uploads, statuses, lines, journal, {}, unreferenced, dangling, integrity)


def read_store(url: str, keyring: Keyring | None) -> StoreView:
    """Open the store (no gateway may be running on it), read it whole, close it."""
    pump = ThreadPump()
    store: SqlMessageStore = pump.wait(open_store(url, pump, keyring))
    try:
        engine = store.database.engine
        view = pump.wait(store.database.run_read("crash-view", _view_txn, engine))
        for sha256, _ in view.journal:
            view.payloads[sha256] = pump.wait(store.payload(sha256))
    finally:
        pump.wait(store.close())
    return view


def check_store(view: StoreView, uploads: Sequence[Upload]) -> list[str]:
    """Every acknowledged upload is there once, whole; nothing else is; the journal's hashes
    verify against the bytes it gives back."""
    problems: list[str] = []
    if view.integrity != "ok":
        problems.append(f"integrity_check: {view.integrity}")
    stored = {t: (s, p, n) for t, s, p, n in view.uploads}
    if len(stored) != len(view.uploads):
        problems.append("a traceerId is stored twice")
    by_sha = [s for _, s, _, _ in view.uploads]
    if len(set(by_sha)) != len(by_sha):
        problems.append("one file is stored as more than one message")
    expected = {u.answers[0].traceer_id: u for u in acknowledged(uploads)}
    for traceer_id, item in expected.items():
        if traceer_id not in stored:
            problems.append(f"acknowledged {traceer_id} is not in the store")
            continue
        sha256, party, size = stored[traceer_id]
        if (sha256, party, size) != (item.sha256, item.participant, len(item.payload)):
            problems.append(f"{traceer_id}: stored as {sha256[:12]} of {party}, {size} bytes")
        if view.statuses.get(traceer_id, 0) < 1:
            problems.append(f"{traceer_id}: no status (half stored)")
        if view.lines.get(traceer_id, 0) != item.lines:
            problems.append(f"{traceer_id}: {view.lines.get(traceer_id, 0)} of {item.lines} lines")
    unexpected = set(stored) - set(expected)
    if unexpected:
        problems.append(f"stored but never acknowledged to anyone: {sorted(unexpected)}")
    for sha256, size in view.journal:
        payload = view.payloads.get(sha256)
        if payload is None:
            problems.append(f"journal {sha256[:12]}: no payload")
        elif hashlib.sha256(payload).hexdigest() != sha256 or len(payload) != size:
            problems.append(f"journal {sha256[:12]}: the bytes do not match their hash")
    if view.unreferenced_journal:
        problems.append(f"journal rows no message names: {len(view.unreferenced_journal)}")
    problems.extend(f"dangling {d}" for d in view.dangling)
    return problems


def store_path(config: Path, url: str) -> str:
    """The store URL as seen from outside the gateway's working directory."""
    relative = "sqlite:///"
    if url.startswith(relative) and not url.startswith("sqlite:////"):
        return f"sqlite:///{config.parent / url.removeprefix(relative)}"
    return url
