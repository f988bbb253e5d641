"""Crash safety: the real gateway killed with SIGKILL while EPDs upload, restarted, and
nothing acknowledged lost or doubled.

Four EPD clients (the kraamzorg organisation twice, the midwifery practice and the
hospital, each with its own client certificate) upload distinct files from threads; a
seeded killer sends SIGKILL at random moments and starts the gateway again. Clients retry
an upload whose answer they did not get with the same bytes. At the end the invariants of
:mod:`tests.crash.harness` are checked from the outside (the EPD API) and in the store.

SIGKILL proves that nothing is acknowledged before it is handed to the database and
committed; it does not prove durability against power loss (the kernel still writes what
the process handed it) — :mod:`tests.crash.test_powerloss` cuts the power.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.crypto import Keyring, new_key_file
from gateway.loading import load_layouts
from gateway.vsp import PULL_V1
from tests.crash.harness import (
    VALID_UPLOAD_STATES,
    EpdClient,
    Gateway,
    acknowledged,
    check_from_outside,
    check_idempotency,
    check_store,
    hospital_participant,
    kill_at_random,
    read_store,
    store_path,
)
from tests.factories import kz301
from tests.gateway.running import (
    HOSPITAL,
    KRAAMZORG,
    MIDWIFE,
    GatewayProcess,
    make_pki,
    statuses,
    upload,
    write_config,
)

pytestmark = pytest.mark.slow

SEED = 20260815
REGISTRY = load_layouts()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    directory = tmp_path_factory.mktemp("pki") / "pki"
    return directory, make_pki(directory)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return "sqlite:///data/gateway.db"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    path = tmp_path / "secrets" / "keys.toml"
    path.parent.mkdir()
    new_key_file(path, now=datetime.now(UTC))
    return path


@pytest.fixture
def gateway(
    tmp_path: Path, pki: tuple[Path, dict[str, str]], store_url: str, keys: Path
) -> Iterator[Gateway]:
    directory, fingerprints = pki
    config = write_config(
        tmp_path / "gateway.toml",
        directory,
        fingerprints,
        store_url,
        key_file=keys,
        extra=hospital_participant(fingerprints[HOSPITAL]),
    )
    running = Gateway(GatewayProcess(config, directory))
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _store_url(config: Path) -> str:
    for line in config.read_text(encoding="utf-8").splitlines():
        if line.startswith("url = "):
            return str(line.removeprefix("url = ").strip().strip('"'))
    raise AssertionError("no store url in the config")


def _no_tracebacks(log: str) -> None:
    assert "Traceback" not in log, log[-4000:]
    assert "unexpected error" not in log, log[-4000:]


MAX_FILES = 1000  # per client: more than it can upload during the kills


def test_random_kills_during_concurrent_uploads_lose_and_double_nothing(
    gateway: Gateway, keys: Path, store_url: str
) -> None:
    kills = 8 if store_url.startswith("sqlite") else 6
    rng = random.Random(SEED)
    enough = threading.Event()
    clients = [
        EpdClient(name, agb, gateway, random.Random(rng.random()), enough, maximum=MAX_FILES)
        for name, agb in (
            ("KA", KRAAMZORG),
            ("KB", KRAAMZORG),
            ("VK", MIDWIFE),
            ("ZH", HOSPITAL),
        )
    ]
    for client in clients:
        client.start()
    try:
        killed = kill_at_random(
            gateway,
            rng,
            kills,
            lifetime=(0.2, 1.6),
            answered=lambda: sum(len(u.answers) for c in clients for u in c.uploads),
            busy=lambda: any(c.in_flight.is_set() for c in clients),
        )
    finally:
        enough.set()
        for client in clients:
            client.join(120)

    uploads = [u for c in clients for u in c.uploads]
    assert [p for c in clients for p in c.problems] == []
    assert len(killed.moments) == kills
    # The kills fell among the uploads, not before or after them all.
    last_kill_after = killed.moments[-1][1]
    assert 0 < last_kill_after < sum(len(u.answers) for u in uploads)
    retried = [u for u in uploads if u.attempts > len(u.answers)]
    assert retried, "no kill ever cut an upload short: the test proved nothing"
    assert all(len(c.uploads) < MAX_FILES for c in clients), "a client ran out of files"
    assert len(acknowledged(uploads)) == len(uploads) >= 200
    assert check_idempotency(uploads) == []

    # The EPDs' view, through the API of a gateway started again.
    assert check_from_outside(gateway.process, uploads) == []
    log = gateway.process.logs()
    assert gateway.stop() == 0
    _no_tracebacks(log)

    # The store's view, with every gateway process gone.
    url = store_path(gateway.process.config, _store_url(gateway.process.config))
    view = read_store(url, Keyring.load(keys))
    assert check_store(view, uploads) == []
    print(  # shown with -s: what the run did
        f"{len(uploads)} files, {sum(u.attempts for u in uploads)} attempts, "
        f"{len(retried)} retried, {kills} kills, {gateway.starts} starts"
    )


def test_a_kill_right_after_the_acknowledgement_loses_nothing(
    gateway: Gateway, keys: Path, store_url: str
) -> None:
    """Each upload is answered, then the gateway is killed at once: the answer was only sent
    after the commit, so the upload is there after the restart, and sending it again under
    its traceerId stores nothing new."""
    process = gateway.process
    receipts: list[tuple[bytes, str]] = []
    for number in range(3):
        payload = kz301(REGISTRY, agb=KRAAMZORG, invoice=f"KILL-{number}", lines=2)
        with process.client(KRAAMZORG) as epd:
            answer = upload(epd, KRAAMZORG, payload)
        assert answer.status_code == 204, answer.response.text
        gateway.kill()
        receipts.append((payload, answer.traceer_id))
        gateway.start()

    with process.client(KRAAMZORG) as epd:
        for payload, traceer_id in receipts:
            assert epd.get(f"{PULL_V1}/berichten/{traceer_id}/payload").content == payload
            found = statuses(epd, traceerId=traceer_id)
            status = next(s for s in found if s["referentiegegevens"]["traceerId"] == traceer_id)
            # Received, or (once bundling settled its lines) processed.
            assert status["berichtstatus"] in VALID_UPLOAD_STATES, status
            again = upload(epd, KRAAMZORG, payload, traceer_id=traceer_id)
            assert again.status_code == 204
    log = process.logs()
    assert gateway.stop() == 0
    _no_tracebacks(log)

    view = read_store(store_path(process.config, _store_url(process.config)), Keyring.load(keys))
    assert sorted(t for t, *_ in view.uploads) == sorted(t for _, t in receipts)
    assert all(view.lines[t] == 2 for _, t in receipts)
    assert view.unreferenced_journal == []
