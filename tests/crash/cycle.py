"""The whole declaration cycle under crashes: three participants' EPDs upload, the gateway
bundles their lines into one integral claim, sends it to the insurer simulator, fetches
its retour and unpacks it into one retour file per participant — with the real
``igo-gateway serve`` and ``igo-gateway insurer-sim`` processes over mutual TLS.

* :func:`cycle_config` writes a gateway config for it (bundling at start-up, fast
  polling and retries, a short send lease so that a file whose attempt died is sent again
  within seconds);
* :class:`Cycle` drives it: uploads that survive a gateway dying under them (the EPD sends
  the same bytes again to the next process), restarts with and without the test-only
  crash hook (:mod:`gateway.crashpoints`), and waiting until the cycle is complete;
* :func:`check_cycle` is the end-of-cycle invariants, read from the EPD API, the store
  (no gateway running) and what the simulator received.
"""

from __future__ import annotations

import re
import signal
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from adapters.storage import SqlMessageStore, Transaction, open_store
from gateway.crashpoints import ENVIRONMENT_VARIABLE
from gateway.crypto import Keyring
from gateway.ei import Record, read_records, validate_bytes
from gateway.lines import declared_lines
from gateway.loading import load_layouts
from tests.adapters.insurer_sim.support import SimProcess
from tests.crash.harness import Acknowledgement, Upload, check_store, read_store
from tests.gateway.running import (
    GatewayProcess,
    answers,
    message_id,
    statuses,
    upload,
    waiting,
    write_config,
)
from tests.gateway.test_app_insurer import full_cycle_section
from tests.gateway.test_bundler import FILES, MESSAGES
from tests.threadpump import ThreadPump

__all__ = [
    "RETOUR_OF",
    "Cycle",
    "InsurerView",
    "check_cycle",
    "check_insurer",
    "cycle_config",
    "free_port",
    "sim_received_from_log",
]

REGISTRY = load_layouts()
RETOUR_OF = {"VK301": "VK302", "KZ301": "KZ302", "ZH308": "ZH309"}
CYCLE_SECONDS = 45.0  # the longest a cycle may take after the last restart
LEASE_SECONDS = 4  # above the link's timeout (3 s): one attempt never overlaps the next
_SIM_LOG = re.compile(
    r"upload (?P<outcome>booked|repeated) traceerId=(?P<traceer>\S+)"
    r" referentieId=(?P<reference>\S+) sha256=(?P<sha>[0-9a-f]{64})"
)


def free_port() -> int:
    """A loopback port nobody listens on now (for a simulator that must come back on the
    same address after it was killed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cycle_config(
    path: Path,
    pki: Path,
    fingerprints: Mapping[str, str],
    store_url: str,
    sim_port: int,
    *,
    key_file: Path | None = None,
    interval_seconds: float = 3600,
) -> Path:
    extra = full_cycle_section(pki, dict(fingerprints), sim_port)
    extra = extra.replace(
        "timeout_seconds = 5", f"timeout_seconds = 3\nlease_seconds = {LEASE_SECONDS}"
    ).replace("interval_seconds = 3600", f"interval_seconds = {interval_seconds}")
    return write_config(path, pki, fingerprints, store_url, key_file=key_file, extra=extra)


def cycle_uploads() -> list[Upload]:
    """The three participants' files (fixtures), each with its number of prestatie lines."""
    uploads = []
    for agb, (_, name) in sorted(FILES.items()):
        payload = (MESSAGES / name).read_bytes()
        records = [r for r in read_records(REGISTRY, [payload]) if isinstance(r, Record)]
        layout = validate_bytes(REGISTRY, payload).layout
        assert layout is not None
        lines = declared_lines(records, traceer_id="-", participant=agb, standard=layout.standard)
        uploads.append(Upload(agb, payload, len(lines)))
    return uploads


@dataclass
class Cycle:
    """One gateway (restartable) and one simulator, and the EPDs' uploads."""

    gateway: GatewayProcess
    sim: SimProcess
    uploads: list[Upload] = field(default_factory=cycle_uploads)
    deaths: int = 0
    starts: int = 0

    # --- the gateway's life ----------------------------------------------------------------

    def start(self, crash_at: str | None = None) -> None:
        self.gateway.env.pop(ENVIRONMENT_VARIABLE, None)
        if crash_at:
            self.gateway.env[ENVIRONMENT_VARIABLE] = crash_at
        self.gateway.start()
        self.starts += 1

    def log_tail(self, lines: int = 60) -> str:
        """The gateway's last log lines, without the HTTP client's connection chatter."""
        kept = [line for line in self.gateway.log if "_HTTP11ClientFactory" not in line]
        return "".join(kept[-lines:])

    def died(self) -> bool:
        running = self.gateway.process
        return running is not None and running.poll() is not None

    def restart(self, crash_at: str | None = None) -> None:
        """Stop the gateway (collecting a dead one) and start it again."""
        if self.died():
            self._collect_death()
        else:
            assert self.gateway.stop() == 0, self.gateway.logs()[-3000:]
        self.start(crash_at)

    def wait_for_death(self, timeout: float = CYCLE_SECONDS) -> None:
        running = self.gateway.process
        assert running is not None
        deadline = time.monotonic() + timeout
        while running.poll() is None:
            assert time.monotonic() < deadline, "never died:\n" + self.gateway.logs()[-4000:]
            time.sleep(0.05)
        self._collect_death()

    def _collect_death(self) -> None:
        running = self.gateway.process
        assert running is not None
        assert running.poll() == -signal.SIGKILL, (running.poll(), self.gateway.logs()[-3000:])
        self.gateway.stop()
        self.deaths += 1

    # --- the EPDs ----------------------------------------------------------------------------

    def upload_all(self, *, again: bool = False) -> None:
        """Every participant uploads its file (with ``again``, the first one then sends
        its file a second time, as an EPD that missed the answer would); when the gateway
        dies under an upload, the next one (started without the hook) gets the same bytes
        again."""
        for item in self.uploads:
            self._deliver(item)
        if again:
            self._deliver(self.uploads[0], again=True)

    def _deliver(self, item: Upload, *, again: bool = False) -> None:
        answers = len(item.answers) if again else 0
        while len(item.answers) == answers:
            if self.died():
                self.restart()
            item.attempts += 1
            try:
                with self.gateway.client(item.participant) as epd:
                    answer = upload(epd, item.participant, item.payload, traceer_id=item.traceer_id)
            except httpx.TransportError:
                continue
            assert answer.status_code == 204, answer.response.text
            item.answers.append(Acknowledgement(answer.status_code, item.traceer_id))

    def wait_until_complete(
        self, url: str, keyring: Keyring | None, timeout: float = CYCLE_SECONDS
    ) -> None:
        """Until the store (read beside the running gateway) says the cycle is done:
        every outbound file answered, every line with its outcome and retour."""
        deadline = time.monotonic() + timeout
        while not complete(rows := read_cycle(url, keyring)):
            assert time.monotonic() < deadline, f"incomplete: {rows}\n{self.log_tail()}"
            assert not self.died(), "died:\n" + self.gateway.logs()[-4000:]
            time.sleep(0.3)


# --- what the insurer received -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InsurerView:
    """Every upload that reached the simulator (over all its lives): referentieId,
    sha256, outcome ("booked", "repeated", "conflict") and the factuurnummer of the file
    it was taken as (None when only its log line is known)."""

    received: tuple[tuple[str | None, str, str, str | None], ...]
    claims_booked: int


def sim_received_from_log(log: str) -> list[tuple[str | None, str, str, str | None]]:
    """What a simulator that was killed had received, from its log lines."""
    return [
        (m["reference"] if m["reference"] != "-" else None, m["sha"], m["outcome"], None)
        for m in _SIM_LOG.finditer(log)
    ]


def insurer_view(claims: Mapping[str, Any], earlier: Iterable[Any] = ()) -> InsurerView:
    received = list(earlier) + [
        (r["referentieId"], r["sha256"], r["uitkomst"], r["factuurnummer"])
        for r in claims["ontvangen"]
    ]
    return InsurerView(tuple(received), int(claims["claims"]))


def check_insurer(view: InsurerView, outbound: Mapping[str, str]) -> list[str]:
    """No claim reached the insurer twice: every upload it received carries the id of one
    of the gateway's outbound files (``outbound``: traceerId → sha256) with that file's
    bytes; one file never came under two ids, nor one factuurnummer under two; and no
    conflict (an id reused for other bytes)."""
    problems = []
    by_reference: dict[str | None, set[str]] = {}
    by_sha: dict[str, set[str | None]] = {}
    by_invoice: dict[str, set[str | None]] = {}
    for reference, sha, outcome, invoice in view.received:
        by_reference.setdefault(reference, set()).add(sha)
        by_sha.setdefault(sha, set()).add(reference)
        if invoice is not None:
            by_invoice.setdefault(invoice, set()).add(reference)
        if outcome == "conflict":
            problems.append(f"referentieId {reference} reused for other bytes")
    for reference, shas in by_reference.items():
        if reference is None or reference not in outbound:
            problems.append(f"the insurer got referentieId {reference}, no outbound file of ours")
        elif shas != {outbound[reference]}:
            problems.append(f"referentieId {reference} came with other bytes")
    problems += [
        f"one file came under ids {sorted(map(str, r))}" for r in by_sha.values() if len(r) > 1
    ]
    problems += [
        f"factuurnummer {i} came under ids {sorted(map(str, r))}"
        for i, r in by_invoice.items()
        if len(r) > 1
    ]
    return problems


# --- the end of the cycle ----------------------------------------------------------------


def _rows(txn: Transaction, sql: str) -> list[tuple[Any, ...]]:
    txn.execute(sql)
    return list(txn.fetchall())


@dataclass(frozen=True, slots=True)
class CycleRows:
    outbound: list[tuple[str, str, str, str | None]]  # traceer_id, state, sha256, invoice
    lines: list[tuple[str, int, str, str | None, str | None]]  # id, nr, state, outcome, in
    retours: list[tuple[str, str, str | None, str]]  # traceer_id, party, reply_to, sha256


def _cycle_txn(txn: Transaction) -> CycleRows:
    outbound = [
        (str(t), str(s), str(h), None if i is None else str(i))
        for t, s, h, i in _rows(
            txn,
            "SELECT o.traceer_id, o.state, m.sha256, m.invoice_number FROM outbound o"
            " JOIN messages m ON m.traceer_id = o.traceer_id",
        )
    ]
    lines = [
        (str(t), int(n), str(s), None if o is None else str(o), None if a is None else str(a))
        for t, n, s, o, a in _rows(
            txn,
            "SELECT traceer_id, record_number, state, outcome, answered_in FROM declaration_lines",
        )
    ]
    retours = [
        (str(t), str(p), None if r is None else str(r), str(h))
        for t, p, r, h in _rows(
            txn,
            "SELECT traceer_id, party, reply_to, sha256 FROM messages"
            " WHERE direction = 'to_participant'",
        )
    ]
    return CycleRows(outbound, lines, retours)


def complete(rows: CycleRows) -> bool:
    return (
        bool(rows.outbound)
        and all(state == "answered" for _, state, _, _ in rows.outbound)
        and bool(rows.lines)
        and all(outcome is not None and at is not None for *_, outcome, at in rows.lines)
    )


def read_cycle(url: str, keyring: Keyring | None) -> CycleRows:
    pump = ThreadPump()
    store: SqlMessageStore = pump.wait(open_store(url, pump, keyring))
    try:
        return pump.wait(store.database.run_read("cycle-view", _cycle_txn))
    finally:
        pump.wait(store.close())


def check_retours(gateway: GatewayProcess, uploads: Sequence[Upload]) -> list[str]:
    """Through the API: each participant's retours (one per claim its lines went into:
    one, unless a restart bundled part of the files before the rest arrived) are in its
    own retour standard, codec-valid, answer its upload, and together answer every
    original line exactly once (same NUM040 and reference); the upload's status is
    VerwerkingVoltooid, its retours' WordtAangeboden."""
    problems = []
    for item in uploads:
        traceer_id = item.answers[0].traceer_id
        declared = validate_bytes(REGISTRY, item.payload).layout
        assert declared is not None
        ours = [r for r in read_records(REGISTRY, [item.payload]) if isinstance(r, Record)]
        asked = {r.number_value("record_id"): r.text("reference") for r in ours if r.type == "04"}
        answered: list[tuple[int | None, str]] = []
        with gateway.client(item.participant) as epd:
            found = waiting(epd)
            if not found or any(answers(w) != traceer_id for w in found):
                problems.append(f"{item.participant}: retours waiting {found}")
                continue
            payloads = [epd.get(w["basisgegevens"]["payload"]["url"]).content for w in found]
            now = {message_id(s): s["berichtstatus"] for s in statuses(epd, traceerId=traceer_id)}
        if now.pop(traceer_id, None) != "VerwerkingVoltooid":
            problems.append(f"{item.participant}: upload status {now}")
        if set(now.values()) != {"WordtAangeboden"}:
            problems.append(f"{item.participant}: retour statuses {now}")
        for payload in payloads:
            checked = validate_bytes(REGISTRY, payload)
            if not checked.valid or checked.layout is None:
                problems.append(f"{item.participant}: retour invalid {checked.findings[:3]}")
                continue
            if checked.layout.standard != RETOUR_OF[declared.standard]:
                problems.append(f"{item.participant}: retour in {checked.layout.standard}")
            theirs = [r for r in read_records(REGISTRY, [payload]) if isinstance(r, Record)]
            answered += [
                (r.number_value("record_id"), r.text("reference")) for r in theirs if r.type == "04"
            ]
        if sorted(answered, key=str) != sorted(asked.items(), key=str):
            problems.append(f"{item.participant}: answers {answered} for lines {asked}")
    return problems


def check_cycle(
    gateway: GatewayProcess,
    sim: SimProcess,
    uploads: Sequence[Upload],
    url: str,
    keyring: Keyring | None,
    *,
    earlier_sim_log: str = "",
) -> list[str]:
    """Every end-of-cycle invariant (the gateway running, the simulator running): returns
    the problems found; stops the gateway to read its store."""
    problems = check_retours(gateway, uploads)
    claims = sim.claims()
    assert gateway.stop() == 0, gateway.logs()[-3000:]
    log = gateway.logs()
    lines = log.splitlines()
    problems += [
        "log: " + "\n".join(lines[max(0, n - 3) : n + 25])
        for n, line in enumerate(lines)
        if "Traceback" in line
    ]
    problems += [f"log: {line}" for line in log.splitlines() if "unexpected error" in line]
    # Every acknowledged upload is there once, whole; the journal's hashes verify.
    problems += check_store(read_store(url, keyring), uploads)
    rows = read_cycle(url, keyring)
    outbound = {t: sha for t, _, sha, _ in rows.outbound}
    problems += [f"outbound {t} ends {s}" for t, s, _, _ in rows.outbound if s != "answered"]
    invoices = [i for *_, i in rows.outbound if i is not None]
    if len(invoices) != len(set(invoices)) or not invoices:
        problems.append(f"claim files {invoices}")
    # No claim reached the insurer twice.
    view = insurer_view(claims, sim_received_from_log(earlier_sim_log))
    problems += check_insurer(view, outbound)
    if claims["claims"] != len(invoices):
        problems.append(f"the insurer booked {claims['claims']} claims of {len(invoices)}")
    # Every original line has exactly one final outcome, answered in a retour that exists.
    retour_ids = {t: reply for t, _, reply, _ in rows.retours}
    expected = sum(u.lines for u in uploads)
    if len(rows.lines) != expected:
        problems.append(f"{len(rows.lines)} lines stored, {expected} declared")
    for traceer_id, number, state, outcome, answered_in in rows.lines:
        if state == "open" or outcome is None:
            problems.append(f"line {traceer_id}/{number}: {state}, outcome {outcome}")
        elif answered_in is None or retour_ids.get(answered_in) != traceer_id:
            problems.append(f"line {traceer_id}/{number}: answered in {answered_in}, not stored")
    return problems
