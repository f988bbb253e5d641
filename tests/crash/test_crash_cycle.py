"""Random kills while claims are sent and retours unpacked: the upload-time kills of
``test_crash.py`` carried on into the rest of the cycle.

The three participants' files are in; then the gateway is started again and again (it
bundles at start-up), and SIGKILLed at a seeded random moment inside a window of the
exchange with the insurer simulator:

* **sending** — from the moment the simulator booked (or recognised) the claim until its
  answer, held back ``response_delay_seconds``, reaches the gateway: the insurer has the
  file, the gateway does not know it yet (twice: the retour is held back a few seconds,
  so the restarted gateway sends the claim again, under the same id, once its lease ends);
* **unpacking** — from the moment the gateway matched a fetched retour to its claim, while
  it unpacks it into the participants' retours and confirms receipt to the insurer (whose
  answer is slowed the same way).

After the last kill a gateway runs the cycle to its end, and
:func:`tests.crash.cycle.check_cycle` checks every invariant.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest

from gateway.crypto import Keyring, new_key_file
from tests.adapters.insurer_sim.support import SimProcess, write_sim_config
from tests.crash.cycle import Cycle, check_cycle, cycle_config
from tests.gateway.running import GatewayProcess

pytestmark = pytest.mark.slow

SEED = 20261201
SLOW_ANSWERS = 0.4  # the simulator's every answer waits this long
# A retour appears this long after its claim was booked: until then a restarted gateway
# can only learn by sending again (under the same id) that the insurer has the claim.
RETOUR_DELAY = 7.0
WINDOW_SECONDS = 20.0  # how long to wait for the start of a window


@pytest.fixture
def sim(tmp_path: Path, pki: tuple[Path, dict[str, str]]) -> Iterator[SimProcess]:
    directory, _ = pki
    config = write_sim_config(
        tmp_path / "sim.toml",
        directory,
        faults={"response_delay_seconds": SLOW_ANSWERS, "retour_delay_seconds": RETOUR_DELAY},
    )
    process = SimProcess(config, directory)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _count(log: list[str], since: int, text: str) -> int:
    return sum(text in line for line in log[since:])


def _more(log: list[str], since: int, text: str, than: int) -> bool:
    return _count(log, since, text) > than


def _kill_in_window(
    cycle: Cycle, opened: Callable[[], bool], rng: random.Random, longest: float
) -> bool:
    """Wait until ``opened()``, then SIGKILL the gateway a random moment (up to
    ``longest`` seconds) later; False when the window never opened."""
    deadline = time.monotonic() + WINDOW_SECONDS
    while not opened():
        assert not cycle.died(), cycle.log_tail()
        if time.monotonic() > deadline:
            assert cycle.gateway.stop() == 0
            return False
        time.sleep(0.01)
    time.sleep(rng.uniform(0, longest))
    running = cycle.gateway.process
    assert running is not None
    running.kill()
    running.wait()
    cycle.wait_for_death()
    return True


def test_random_kills_while_claims_are_sent_and_retours_unpacked(
    tmp_path: Path, pki: tuple[Path, dict[str, str]], sim: SimProcess, store_url: str
) -> None:
    directory, fingerprints = pki
    keys = tmp_path / "secrets" / "keys.toml"
    keys.parent.mkdir()
    new_key_file(keys, now=datetime.now(UTC))
    config = cycle_config(
        tmp_path / "gateway.toml", directory, fingerprints, store_url, sim.port, key_file=keys
    )
    cycle = Cycle(GatewayProcess(config, directory), sim)
    rng = random.Random(SEED)
    landed: list[str] = []
    cycle.start()
    try:
        cycle.upload_all()
        assert cycle.gateway.stop() == 0
        # Sending: the simulator took the claim; its answer is still on the way.
        for _ in range(2):
            booked = _count(sim.log, 0, "upload ")
            cycle.start()
            since = len(cycle.gateway.log)
            if _kill_in_window(
                cycle,
                partial(_more, sim.log, 0, "upload ", booked),
                rng,
                SLOW_ANSWERS * 0.6,
            ):
                assert _count(cycle.gateway.log, since, "delivered out-") == 0
                landed.append("sending")
        # Unpacking: a retour matched, not yet confirmed to the insurer. Once. The
        # simulator takes a confirmation when it arrives, so a kill after the gateway
        # sent it finds no retour to fetch again (the crash points "answered" and
        # "retours-built" strike before it, every time).
        cycle.start()
        since = len(cycle.gateway.log)
        if _kill_in_window(
            cycle,
            partial(_more, cycle.gateway.log, since, ": matched, answers", 0),
            rng,
            SLOW_ANSWERS * 0.6,
        ):
            landed.append("unpacking")
        cycle.start()
        cycle.wait_until_complete(store_url, Keyring.load(keys))
        assert landed == ["sending", "sending", "unpacking"], landed
        problems = check_cycle(cycle.gateway, sim, cycle.uploads, store_url, Keyring.load(keys))
        assert problems == [], "\n".join(problems)
    finally:
        cycle.gateway.stop()  # a no-op once check_cycle stopped it
    received = sim.claims()["ontvangen"]
    # The claim reached the insurer at each sending kill; once the retour is matched, no
    # further attempt is needed (or made), so there may be no third.
    assert len(received) >= 2
    print(f"kills: {landed}; the insurer received the claim {len(received)} times")  # with -s
