"""The insurer side failing: the simulator answering 5xx, slow, holding its answer past the
gateway's timeout, cutting the connection after it took the claim, and killed outright.
Through all of it the gateway keeps serving the EPDs, retries with backoff, sends the
claim only ever under its one ``referentieId`` with the same bytes — so the insurer books
it once — and completes the cycle when the insurer answers again.

The simulator keeps its memory in its process: killed and started again it has forgotten
what it booked, so after a kill the check is on what reached it over both lives (its log
lines and ``/sim/claims``): one referentieId, one set of bytes, the claim's factuurnummer
under that id only. A real insurer recognises the repeat by that id; that it does is the
simulator's contract (``adapters/insurer_sim/README.md``), tested there.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.crypto import Keyring, new_key_file
from gateway.vsp import PULL_V1
from tests.adapters.insurer_sim.support import SimProcess, write_sim_config
from tests.crash.cycle import Cycle, check_cycle, cycle_config, free_port
from tests.crash.harness import VALID_UPLOAD_STATES
from tests.gateway.running import GatewayProcess, statuses

pytestmark = pytest.mark.slow

_FAILED = re.compile(r"attempt (\d+) of (\S+) to insurer 3311 failed \((\w+)\)")


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    path = tmp_path / "secrets" / "keys.toml"
    path.parent.mkdir()
    new_key_file(path, now=datetime.now(UTC))
    return path


def _sim(path: Path, pki: Path, port: int, faults: dict[str, Any] | None = None) -> SimProcess:
    config = write_sim_config(path, pki, faults=faults)
    config.write_text(config.read_text().replace("port = 0", f"port = {port}"))
    return SimProcess(config, pki)


def _failures(log: str) -> list[tuple[int, str]]:
    return [(int(m[1]), m[3]) for m in _FAILED.finditer(log)]


def _wait_for(predicate: Any, what: str, cycle: Cycle, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}:\n{cycle.log_tail()}"
        time.sleep(0.1)


def _serves_epds(cycle: Cycle) -> None:
    """While the insurer misbehaves, every EPD is answered: its queue and its status."""
    for item in cycle.uploads:
        with cycle.gateway.client(item.participant) as epd:
            assert epd.get(f"{PULL_V1}/berichten").status_code == 200
            (status,) = statuses(epd, traceerId=item.answers[0].traceer_id)
            assert status["berichtstatus"] in VALID_UPLOAD_STATES


def _ready(cycle: Cycle) -> dict[str, Any]:
    answer: dict[str, Any] = cycle.gateway.operations("/readyz").json()
    return answer


def test_5xx_slow_stalled_and_cut_answers_are_retried_and_the_claim_booked_once(
    tmp_path: Path, pki: tuple[Path, dict[str, str]], keys: Path
) -> None:
    directory, fingerprints = pki
    faults = {
        "fail_first": 2,
        "fail_status": 500,
        "stall_first": 1,  # booked, answered after the gateway gave up waiting (3 s)
        "stall_seconds": 6,
        "cut_first": 1,  # the repeat: recognised, then the connection cut unanswered
        "response_delay_seconds": 0.3,  # and slow throughout
        # The retour comes late, so that the gateway learns only by sending again that
        # the insurer has the claim (a retour matched first ends the attempts).
        "retour_delay_seconds": 9,
    }
    sim = _sim(tmp_path / "sim.toml", directory, free_port(), faults)
    sim.start()
    url = f"sqlite:///{tmp_path / 'data' / 'gateway.db'}"
    config = cycle_config(
        tmp_path / "gateway.toml", directory, fingerprints, url, sim.port, key_file=keys
    )
    cycle = Cycle(GatewayProcess(config, directory), sim)
    try:
        cycle.start()
        cycle.upload_all()
        cycle.restart()  # bundles at start-up and begins sending into the faults
        _wait_for(lambda: len(_failures(cycle.gateway.logs())) >= 3, "3 failures", cycle)
        _serves_epds(cycle)
        assert _ready(cycle)["insurers"] == {"3311": "failing"}
        _wait_for(lambda: "delivered out-" in cycle.gateway.logs(), "the delivery", cycle)
        assert _ready(cycle)["insurers"] == {"3311": "ok"}
        cycle.wait_until_complete(url, Keyring.load(keys))
        failures = _failures(cycle.gateway.logs())
        problems = check_cycle(cycle.gateway, sim, cycle.uploads, url, Keyring.load(keys))
        assert problems == [], "\n".join(problems)
        claims = sim.claims()
    finally:
        cycle.gateway.stop()
        sim.stop()
    # 500, 500, no answer in time (the insurer booked it), the connection cut; then the
    # fifth attempt is answered 204 — the insurer took it as the same file (its own record
    # says "repeated"). Each under the same traceerId.
    print(f"failed attempts: {failures}")  # shown with -s
    assert [n for n, _ in failures] == [1, 2, 3, 4], failures
    # (A connection cut mid-request is "unreachable" to the link: retried all the same.)
    assert [r for _, r in failures] == ["unavailable", "unavailable", "timeout", "unreachable"]
    assert claims["uploads"] == 5
    assert [r["uitkomst"] for r in claims["ontvangen"]] == ["booked", "repeated", "repeated"]
    assert claims["claims"] == 1
    assert "delivered out-" in cycle.gateway.logs()
    assert "(attempt 5" in cycle.gateway.logs()
    assert len({r["traceerId"] for r in claims["ontvangen"]}) == 1


def test_a_killed_insurer_holds_up_only_its_claims_and_the_cycle_ends_when_it_is_back(
    tmp_path: Path, pki: tuple[Path, dict[str, str]], keys: Path
) -> None:
    """Killed while it holds back its answer to the claim it booked; the gateway retries
    an unreachable insurer with backoff and serves its EPDs; the insurer is started again
    on its address and gets the claim again under the same id."""
    directory, fingerprints = pki
    port = free_port()
    first = _sim(tmp_path / "sim-1.toml", directory, port, {"stall_first": 1, "stall_seconds": 60})
    first.start()
    url = f"sqlite:///{tmp_path / 'data' / 'gateway.db'}"
    config = cycle_config(
        tmp_path / "gateway.toml", directory, fingerprints, url, port, key_file=keys
    )
    cycle = Cycle(GatewayProcess(config, directory), first)
    again = _sim(tmp_path / "sim-2.toml", directory, port)
    try:
        cycle.start()
        cycle.upload_all()
        cycle.restart()
        _wait_for(lambda: "upload booked" in first.logs(), "the claim booked", cycle)
        running = first.process
        assert running is not None
        running.kill()  # SIGKILL, with the claim's answer still held back
        first.stop()
        _wait_for(
            lambda: [r for _, r in _failures(cycle.gateway.logs())].count("unreachable") >= 2,
            "two attempts at an unreachable insurer",
            cycle,
        )
        _serves_epds(cycle)
        assert _ready(cycle)["insurers"] == {"3311": "failing"}
        again.start()
        cycle.sim = again
        cycle.wait_until_complete(url, Keyring.load(keys))
        problems = check_cycle(
            cycle.gateway,
            again,
            cycle.uploads,
            url,
            Keyring.load(keys),
            earlier_sim_log=first.logs(),
        )
        assert problems == [], "\n".join(problems)
    finally:
        cycle.gateway.stop()
        again.stop()
    failures = _failures(cycle.gateway.logs())
    assert failures[0][1] in ("timeout", "unreachable"), failures
    assert {r for _, r in failures[1:]} == {"unreachable"}, failures
