"""Never claim twice, with real processes: ``igo-gateway bundle`` runs beside ``serve``
(SQLite and PostgreSQL), and two ``serve`` processes on one PostgreSQL database — each
followed by the whole cycle with the insurer simulator and every end-of-cycle invariant
of the crash suite (:func:`tests.crash.cycle.check_cycle`: the insurer booked each claim
once, factuurnummers unique, every original line exactly one outcome in a retour).

The race is forced, not hoped for: command-line run A is held at the test-only pause
point (:mod:`gateway.pausepoints`) after it decided and built its claim, holding the
bundling lease, while run B and ``serve``'s own scheduled runs (every second) go. With
``lease_dropped`` the lease is taken from A by hand while it waits (as an expiry or a
lock bug would), so B claims and A's recording must be refused by the store's second
guard. A is released only once B is under way (it is seen waiting, or it has finished):
no sleep decides the outcome.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from adapters.storage import Transaction, open_store
from gateway.pausepoints import ENVIRONMENT_VARIABLE
from tests.adapters.insurer_sim.support import SimProcess
from tests.crash.cycle import Cycle, check_cycle, cycle_config
from tests.gateway.running import GatewayProcess, cli_command
from tests.threadpump import ThreadPump

pytestmark = pytest.mark.slow

WAIT_SECONDS = 60.0


def _until(condition: object, what: str, timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def _drop_lease_txn(txn: Transaction) -> None:
    txn.execute("DELETE FROM job_leases")


def _drop_lease(url: str) -> None:
    pump = ThreadPump()
    store = pump.wait(open_store(url, pump))
    try:
        pump.wait(store.database.run_interaction("drop-lease", _drop_lease_txn))
    finally:
        pump.wait(store.close())


def _bundle(config: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cli_command("bundle", "--config", str(config), "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _finish(process: subprocess.Popen[str]) -> str:
    """Its standard output, once it has ended well."""
    if process.returncode is not None:
        return ""
    out, err = process.communicate(timeout=WAIT_SECONDS)
    assert process.returncode == 0, err
    return out


@pytest.mark.parametrize("lease_dropped", [False, True], ids=["lease", "lease-dropped"])
def test_command_line_runs_beside_serve_claim_each_phase_once(
    tmp_path: Path,
    pki: tuple[Path, dict[str, str]],
    sim: SimProcess,
    store_url: str,
    lease_dropped: bool,
) -> None:
    directory, fingerprints = pki
    path = tmp_path / "gateway.toml"
    config = cycle_config(path, directory, fingerprints, store_url, sim.port)
    gateway = GatewayProcess(config, directory)
    cycle = Cycle(gateway, sim)
    pause = tmp_path / "pause"
    pause.mkdir()
    # The files go in while serve bundles only at its start (before they arrive).
    cycle.start()
    cycle.upload_all()
    assert gateway.stop() == 0
    # A decides and builds the whole claim, and waits at its pause point holding the lease.
    a = _bundle(config, {ENVIRONMENT_VARIABLE: f"decided:{pause}"})
    b: subprocess.Popen[str] | None = None
    try:
        _until(lambda: any(pause.glob("paused-*")), "run A paused")
        if lease_dropped:
            _drop_lease(store_url)
        # serve now bundles every second beside A and B.
        cycle_config(path, directory, fingerprints, store_url, sim.port, interval_seconds=1)
        cycle.start()
        b = _bundle(config)
        if lease_dropped:
            _finish(b)  # B (or serve before it) claimed while A waited
        (pause / f"go-{a.pid}").touch()
        a_claims = json.loads(_finish(a).splitlines()[0])["claims"]
        # A held the lease throughout: it claimed. Its lease dropped: it was refused and
        # found nothing left when it decided again.
        assert len(a_claims) == (0 if lease_dropped else 1), a_claims
        _finish(b)
        cycle.wait_until_complete(store_url, None)
        problems = check_cycle(gateway, sim, cycle.uploads, store_url, None)
        assert problems == [], "\n".join(problems)
    finally:
        for process in (a, b):
            if process is not None and process.poll() is None:
                process.kill()
        gateway.stop()


@pytest.mark.postgres
def test_two_serve_processes_on_one_postgres_database_claim_each_phase_once(
    tmp_path: Path, pki: tuple[Path, dict[str, str]], sim: SimProcess, pg_url: str
) -> None:
    directory, fingerprints = pki
    config = cycle_config(
        tmp_path / "gateway.toml", directory, fingerprints, pg_url, sim.port, interval_seconds=1
    )
    first = GatewayProcess(config, directory)
    second = GatewayProcess(config, directory)
    cycle = Cycle(first, sim)
    cycle.start()
    second.start()
    try:
        cycle.upload_all()
        cycle.wait_until_complete(pg_url, None)
        assert second.stop() == 0, second.logs()[-3000:]
        assert "Traceback" not in second.logs(), second.logs()[-3000:]
        problems = check_cycle(first, sim, cycle.uploads, pg_url, None)
        assert problems == [], "\n".join(problems)
    finally:
        second.stop()
        first.stop()
