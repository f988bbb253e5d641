"""Deterministic crashes: the gateway kills itself (SIGKILL, through the test-only hook
``IGO_GATEWAY_CRASH_AT``) right after one step of the data path, is started again without
the hook, and the whole cycle — upload, bundle, send, retour, unpack — still ends with
every invariant of :func:`tests.crash.cycle.check_cycle`: every acknowledged upload
there, no claim at the insurer twice, every line one final outcome, every participant
one complete retour, the journal's hashes verifying.

One test per crash point (:data:`gateway.crashpoints.POINTS`), against the real
``igo-gateway serve`` and ``igo-gateway insurer-sim`` processes; the points after the
bundle also on PostgreSQL, where the stores differ most.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.crashpoints import POINTS
from gateway.crypto import Keyring, new_key_file
from tests.adapters.insurer_sim.support import SimProcess
from tests.crash.cycle import Cycle, check_cycle, cycle_config
from tests.gateway.running import GatewayProcess

pytestmark = pytest.mark.slow

# At an intake point the gateway dies under an upload, and the restart bundles what is in
# by then. So that the cycle's claim covers all three files, the intake points strike the
# third upload once committed ("journaled:3"), or an EPD's repeat of a file it sent under
# the same traceerId ("parsed:4": a repeat is checked like a first upload): a restart with
# part of the files in would bundle that part on its own (see the README on what partial
# bundling does).
INTAKE_POINTS = {"parsed": "parsed:4", "journaled": "journaled:3"}


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    path = tmp_path / "secrets" / "keys.toml"
    path.parent.mkdir()
    new_key_file(path, now=datetime.now(UTC))
    return path


def _cycle(
    tmp_path: Path, pki: tuple[Path, dict[str, str]], sim: SimProcess, url: str, keys: Path
) -> Cycle:
    directory, fingerprints = pki
    config = cycle_config(
        tmp_path / "gateway.toml", directory, fingerprints, url, sim.port, key_file=keys
    )
    return Cycle(GatewayProcess(config, directory), sim)


def _crash_and_recover(cycle: Cycle, point: str, url: str, keys: Path) -> None:
    """Run the cycle with the hook armed for ``point``; it must die there once; then
    complete it without the hook (the caller stops the gateway, whatever happens)."""
    cycle.start(crash_at=INTAKE_POINTS.get(point, point))
    cycle.upload_all(again=point == "parsed")
    if point not in INTAKE_POINTS:
        # Bundling runs at start-up: with every file in, start again, still armed.
        cycle.restart(crash_at=point)
        cycle.wait_for_death()
        assert f"crash point '{point}' reached" in cycle.gateway.logs()
        cycle.start()
    else:
        assert cycle.deaths == 1, "the hook never fired"
        assert f"crash point '{point}' reached" in cycle.gateway.logs()
        # The upload (or repeat) cut short was sent again under its traceerId: 204, and the
        # cycle's store check finds it stored once.
        assert all(a.status == 204 for u in cycle.uploads for a in u.answers)
        assert all(u.answers for u in cycle.uploads)
        cycle.restart()  # with every file in: bundling at start-up
    cycle.wait_until_complete(url, Keyring.load(keys))
    assert cycle.deaths == 1


@pytest.mark.parametrize("point", POINTS)
def test_a_crash_right_after_each_step_completes_the_cycle_once(
    tmp_path: Path, pki: tuple[Path, dict[str, str]], sim: SimProcess, keys: Path, point: str
) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'gateway.db'}"
    cycle = _cycle(tmp_path, pki, sim, url, keys)
    try:
        _crash_and_recover(cycle, point, url, keys)
        problems = check_cycle(cycle.gateway, sim, cycle.uploads, url, Keyring.load(keys))
        assert problems == [], "\n".join(problems)
    finally:
        cycle.gateway.stop()  # a no-op once check_cycle stopped it


@pytest.mark.postgres
@pytest.mark.parametrize("point", ["bundled", "claim-sent", "retours-built"])
def test_a_crash_after_a_step_completes_the_cycle_once_on_postgresql(
    tmp_path: Path,
    pki: tuple[Path, dict[str, str]],
    sim: SimProcess,
    keys: Path,
    pg_url: str,
    point: str,
) -> None:
    cycle = _cycle(tmp_path, pki, sim, pg_url, keys)
    try:
        _crash_and_recover(cycle, point, pg_url, keys)
        problems = check_cycle(cycle.gateway, sim, cycle.uploads, pg_url, Keyring.load(keys))
        assert problems == [], "\n".join(problems)
    finally:
        cycle.gateway.stop()


def test_an_unknown_crash_point_refuses_to_start(
    tmp_path: Path, pki: tuple[Path, dict[str, str]], sim: SimProcess, keys: Path
) -> None:
    cycle = _cycle(tmp_path, pki, sim, "sqlite:///data/gateway.db", keys)
    with pytest.raises(RuntimeError, match="no such crash point"):
        cycle.start(crash_at="jounraled")
