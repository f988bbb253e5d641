"""Simulated power loss on the embedded store (SQLite): everything the gateway wrote but
had not fsynced is lost at a random moment, and nothing acknowledged may be missing.

The gateway runs under the fault-injection shim of :mod:`tests.crash.faultfs` (loaded with
``LD_PRELOAD``), which keeps an undo log of every write to the data directory since the
file's last ``fsync``. Four EPD clients upload as in :mod:`tests.crash.test_crash`; at
seeded random moments the gateway is killed with SIGKILL and the undo logs are applied in
reverse — the power went — before it is started again. The disk is made slow (every
fsync waits a few milliseconds first), so that a cut usually finds written but unsynced
data; the test requires that some cut did. Afterwards the crash suite's invariants must
hold, through the API and in the store.

The second test proves the first can fail: with fsync switched off (the test-only
:data:`~adapters.storage.database.UNSAFE_NO_FSYNC_ENV`), the same run must find
acknowledged uploads missing.

``IGO_POWERLOSS_CUTS`` (default 8) and ``IGO_POWERLOSS_SEED`` make a longer or other run.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.storage.database import UNSAFE_NO_FSYNC_ENV
from gateway.crypto import Keyring, new_key_file
from tests.crash.faultfs import FaultFs, build_or_skip
from tests.crash.harness import (
    EpdClient,
    Gateway,
    Upload,
    acknowledged,
    check_from_outside,
    check_idempotency,
    check_store,
    hospital_participant,
    read_store,
)
from tests.gateway.running import (
    HOSPITAL,
    KRAAMZORG,
    MIDWIFE,
    GatewayProcess,
    write_config,
)

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("IGO_POWERLOSS_SEED", "20261201"))
CUTS = int(os.environ.get("IGO_POWERLOSS_CUTS", "8"))
FSYNC_DELAY_MS = 15  # a slow disk: the window between write and fsync is wide


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_or_skip(tmp_path_factory.mktemp("faultfs"))


@dataclass
class PowerCuts:
    """What the power cuts did: per cut, the seconds the gateway had been up, the uploads
    answered by then, and the bytes taken back per file."""

    moments: list[tuple[float, int, dict[str, int]]] = field(default_factory=list)

    @property
    def took_back_data(self) -> int:
        """Cuts that found written but unsynced data (and took it back)."""
        return sum(1 for _, _, lost in self.moments if lost)


def cut_power_at_random(
    gateway: Gateway,
    disk: FaultFs,
    rng: random.Random,
    cuts: int,
    lifetime: tuple[float, float],
    answered: Callable[[], int],
) -> PowerCuts:
    """Kill the gateway ``cuts`` times after a random time up, losing what it had not
    fsynced each time, and start it again; returns with the gateway running."""
    log = PowerCuts()
    for _ in range(cuts):
        started = time.monotonic()
        time.sleep(rng.uniform(*lifetime))
        up, count = time.monotonic() - started, answered()
        gateway.kill()
        log.moments.append((up, count, disk.power_loss()))
        gateway.start()
    return log


@dataclass
class Run:
    gateway: Gateway
    disk: FaultFs
    keys: Path
    clients: list[EpdClient]
    cuts: PowerCuts

    @property
    def uploads(self) -> list[Upload]:
        return [u for c in self.clients for u in c.uploads]

    def store_problems(self) -> list[str]:
        """The crash suite's store invariants, once the last gateway process stopped."""
        url = f"sqlite:///{self.disk.root / 'gateway.db'}"
        return check_store(read_store(url, Keyring.load(self.keys)), self.uploads)


def power_cut_run(
    tmp_path: Path,
    pki: tuple[Path, dict[str, str]],
    shim: Path,
    *,
    durable: bool,
    cuts: int,
    seed: int,
) -> Run:
    """Four EPDs uploading while the power is cut ``cuts`` times; the gateway is left
    running (started after the last cut)."""
    directory, fingerprints = pki
    keys = tmp_path / "secrets" / "keys.toml"
    keys.parent.mkdir()
    new_key_file(keys, now=datetime.now(UTC))
    config = write_config(
        tmp_path / "gateway.toml",
        directory,
        fingerprints,
        "sqlite:///data/gateway.db",
        key_file=keys,
        extra=hospital_participant(fingerprints[HOSPITAL]),
    )
    disk = FaultFs(shim, tmp_path / "data", tmp_path / "faultfs-state", tmp_path / "faultfs-ctl")
    env = disk.env(fsync_delay_ms=FSYNC_DELAY_MS)
    if not durable:
        env[UNSAFE_NO_FSYNC_ENV] = "1"
    gateway = Gateway(GatewayProcess(config, directory, env))
    gateway.start()
    rng = random.Random(seed)
    enough = threading.Event()
    clients = [
        EpdClient(name, agb, gateway, random.Random(rng.random()), enough, maximum=400)
        for name, agb in (("KA", KRAAMZORG), ("KB", KRAAMZORG), ("VK", MIDWIFE), ("ZH", HOSPITAL))
    ]
    for client in clients:
        client.start()
    try:
        log = cut_power_at_random(
            gateway,
            disk,
            rng,
            cuts,
            lifetime=(0.3, 1.6),
            answered=lambda: sum(len(u.answers) for c in clients for u in c.uploads),
        )
    finally:
        enough.set()
        for client in clients:
            client.join(120)
    return Run(gateway, disk, keys, clients, log)


def _no_tracebacks(log: str) -> None:
    assert "Traceback" not in log, log[-4000:]
    assert "unexpected error" not in log, log[-4000:]


def test_power_cuts_during_concurrent_uploads_lose_nothing_acknowledged(
    tmp_path: Path, pki: tuple[Path, dict[str, str]], shim: Path
) -> None:
    run = power_cut_run(tmp_path, pki, shim, durable=True, cuts=CUTS, seed=SEED)
    try:
        uploads = run.uploads
        assert [p for c in run.clients for p in c.problems] == []
        assert len(run.cuts.moments) == CUTS
        assert 0 < run.cuts.moments[-1][1] < sum(len(u.answers) for u in uploads)
        # Some cut struck while data was written but not yet fsynced, and took it back:
        # otherwise this run was no harder than SIGKILL.
        assert run.cuts.took_back_data > 0, run.cuts.moments
        assert [u for u in uploads if u.attempts > len(u.answers)], "no cut cut an upload short"
        assert len(acknowledged(uploads)) == len(uploads) >= 100
        assert check_idempotency(uploads) == []
        assert check_from_outside(run.gateway.process, uploads) == []
        log = run.gateway.process.logs()
    finally:
        status = run.gateway.stop()
    assert status == 0
    _no_tracebacks(log)
    assert run.disk.unmodelled() == []
    assert run.store_problems() == []
    print(  # shown with -s: what the run did
        f"{len(uploads)} files, {sum(u.attempts for u in uploads)} attempts, {CUTS} power "
        f"cuts, {run.cuts.took_back_data} took back unsynced data: "
        f"{[lost for _, _, lost in run.cuts.moments]}"
    )


def test_without_fsync_the_power_cuts_are_caught_losing_acknowledged_uploads(
    tmp_path: Path, pki: tuple[Path, dict[str, str]], shim: Path
) -> None:
    """The suite's teeth: SQLite with ``synchronous=OFF`` acknowledges uploads it has not
    made durable, and the same checks must report them lost."""
    run = power_cut_run(tmp_path, pki, shim, durable=False, cuts=3, seed=SEED + 1)
    try:
        assert "TEST ONLY: SQLite runs with synchronous=OFF" in run.gateway.process.logs()
    finally:
        assert run.gateway.stop() == 0
    assert run.cuts.took_back_data > 0
    problems = run.store_problems()
    lost = [p for p in problems if p.startswith("acknowledged ") and "not in the store" in p]
    assert lost, problems
    print(f"{len(lost)} acknowledged uploads lost without fsync; {len(problems)} problems")
