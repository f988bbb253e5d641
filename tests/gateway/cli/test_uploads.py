"""``igo-gateway uploads reprocess`` on a SQLite store, in process."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.admin.blocking import opened_stores
from adapters.admin.demo import SeededCases, seed_cases
from gateway.cli import main
from gateway.loading import load_layouts
from tests.adapters.admin.test_reprocess_site import misconfigured  # noqa: F401 - a fixture
from tests.gateway.test_reprocess import KZ301, receive
from tests.tools import write_cli_config


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, Path, SeededCases]:
    db = tmp_path / "gateway.db"
    path = tmp_path / "gateway.toml"
    write_cli_config(path, db)
    with opened_stores(f"sqlite:///{db}", None) as stores:
        seeded = stores.run.wait(seed_cases(stores.store, load_layouts(), datetime.now(UTC)))
    return path, db, seeded


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_reprocess_from_the_command_line(
    store: tuple[Path, Path, SeededCases],
    capsys: pytest.CaptureFixture[str],
    misconfigured: object,  # noqa: F811 - the fixture imported above
) -> None:
    config, db, seeded = store
    with pytest.raises(SystemExit) as usage:  # argparse: a reason is required
        main(["uploads", "reprocess", seeded.intake_rejected, "--config", str(config)])
    assert usage.value.code == 2
    assert "--reason" in capsys.readouterr().err
    status, out, _ = run(
        capsys,
        "uploads",
        "reprocess",
        seeded.intake_rejected,
        "--config",
        str(config),
        "--reason",
        "layouts bijgewerkt",
        "--json",
    )
    assert status == 1  # still rejected: nothing changed
    assert json.loads(out)["outcome"] == "still_rejected"
    with opened_stores(f"sqlite:///{db}", None) as stores:
        traceer = receive(stores.run, stores.store, misconfigured, KZ301.read_bytes())  # type: ignore[arg-type]
    status, out, _ = run(
        capsys, "uploads", "reprocess", traceer, "--config", str(config), "--reason", "KZ301"
    )
    assert status == 0
    assert "nu goedgekeurd" in out
    status, _, err = run(
        capsys, "uploads", "reprocess", "nope", "--config", str(config), "--reason", "x"
    )
    assert status == 1
    assert "no upload nope" in err
    status, out, _ = run(capsys, "audit", "export", "--config", str(config))
    entries = [json.loads(line) for line in out.splitlines()]
    assert [(e["action"], e["subject"]) for e in entries if e["action"] == "reprocess"] == [
        ("reprocess", seeded.intake_rejected),
        ("reprocess", traceer),
    ]
