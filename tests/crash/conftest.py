"""Fixtures the crash and race suites share: one PKI per module, a plain insurer simulator
(a module that needs faults defines its own ``sim``), and the store on either engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adapters.insurer_sim.support import SimProcess, write_sim_config
from tests.gateway.running import make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    directory = tmp_path_factory.mktemp("pki") / "pki"
    return directory, make_pki(directory)


@pytest.fixture
def sim(tmp_path: Path, pki: tuple[Path, dict[str, str]]) -> Iterator[SimProcess]:
    directory, _ = pki
    process = SimProcess(write_sim_config(tmp_path / "sim.toml", directory), directory)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file in ``tmp_path``, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'gateway.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url
