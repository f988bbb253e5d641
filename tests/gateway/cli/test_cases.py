"""``igo-gateway cases resolve`` for the actions on rejected integral lines: a correction
given with ``--set`` is resubmitted as a new claim, and what is not a valid correction is
refused with exit 2 and a message that names the field, not the value."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.masking import mask_value
from tests.adapters.storage.test_resolution import RIGHT_MEMBER, Cycle, _cycle, rejected
from tests.gateway.rules.test_decide import TARIFFS
from tests.threadpump import ThreadPump
from tests.tools import write_cli_config

PARTICIPANTS = {"02001234": "midwifery", "33001234": "kraamzorg", "06001234": "hospital"}


def config_for(path: Path, db: Path) -> Path:
    tariffs = ", ".join(f"{code} = {amount}" for code, amount in TARIFFS.items())
    participants = "".join(
        f"""
[[participants]]
agb = "{agb}"
name = "Deelnemer {agb}"
discipline = "{discipline}"
variant = "A"
certificates = ["{n:064d}"]
"""
        for n, (agb, discipline) in enumerate(PARTICIPANTS.items())
    )
    insurers = "".join(
        f"""
[[insurers]]
uzovi = "{uzovi}"
name = "Verzekeraar {uzovi}"
[[insurers.contracts]]
year = 2026
rule_set = "regular-2023"
tariffs = {{ {tariffs} }}
"""
        for uzovi in ("3311", "3312")
    )
    write_cli_config(path, db, participants + insurers)
    return path


@pytest.fixture
def world(tmp_path: Path) -> tuple[Cycle, str, Path]:
    db = tmp_path / "gateway.db"
    for cycle in _cycle(ThreadPump(), f"sqlite:///{db}"):
        _, case_id = rejected(cycle)
    return cycle, case_id, config_for(tmp_path / "gateway.toml", db)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_resubmit_with_a_corrected_member_number(
    world: tuple[Cycle, str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, case_id, config = world
    monkeypatch.setattr("sys.stdin", io.StringIO(RIGHT_MEMBER + "\n"))
    status, out, err = run(
        capsys,
        "cases",
        "resolve",
        case_id,
        "--config",
        str(config),
        "--action",
        "resubmit",
        "--set",
        "member_number=-",  # from standard input: client data stays out of argv
        "--set",
        "uzovi=3311",
    )
    assert (status, err) == (0, "")
    assert out.strip() == f"{case_id}: resubmit done; the case is resubmitted"
    status, out, _ = run(capsys, "cases", "show", case_id, "--config", str(config), "--json")
    assert status == 0
    shown = json.loads(out)
    assert shown["case"]["state"] == "resubmitted"
    # The versions and their difference are shown to the administrator.
    corrected = shown["detail"]["versions"][-1]
    assert corrected["changes"]["member_number"]["is"] == mask_value(RIGHT_MEMBER)
    assert RIGHT_MEMBER not in out  # client data: masked, the claim file holds it whole
    assert corrected["corrects"] == case_id.partition(":")[2]


def test_a_bad_correction_is_refused_with_usage_exit_and_no_value_echoed(
    world: tuple[Cycle, str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cycle, case_id, config = world
    for given, expected in (
        ("member_number=<M&1>", "Verzekerdennummer heeft niet de juiste vorm"),
        ("member_number", "--set wants FIELD=VALUE"),
        ("bsn=123456782", "Onbekend veld: bsn"),
    ):
        status, out, err = run(
            capsys,
            "cases",
            "resolve",
            case_id,
            "--config",
            str(config),
            "--action",
            "resubmit",
            "--set",
            given,
        )
        assert status == 2, given
        assert expected in err
        assert "<M&1>" not in err
        assert "123456782" not in err
    # Nothing was claimed anew, and the case is still open.
    with sqlite3.connect(str(config.parent / "gateway.db")) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM integral_claims WHERE corrects IS NOT NULL")
    assert count == (0,)
    status, out, _ = run(capsys, "cases", "show", case_id, "--config", str(config), "--json")
    assert json.loads(out)["case"]["state"] == "open"
    del cycle
