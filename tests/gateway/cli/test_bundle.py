"""``igo-gateway bundle`` and ``explain`` as an IGO administrator runs them, on a store
holding the three participants' fixture declarations."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from twisted.internet import defer

from adapters.storage import open_store
from gateway.intake import Intake
from gateway.loading import load_layouts
from gateway.ports.intake import Upload
from gateway.vsp import send_metadata
from tests.gateway.rules.test_decide import TARIFFS
from tests.gateway.running import cli_command, make_pki, write_config
from tests.gateway.test_bundler import FILES, MESSAGES
from tests.threadpump import ThreadPump

pytestmark = pytest.mark.slow


def contract_section() -> str:
    tariffs = ", ".join(f'"{code}" = {amount}' for code, amount in TARIFFS.items())
    return f"""
[[participants]]
agb = "06001234"
name = "Ziekenhuis Test"
discipline = "hospital"
variant = "B"

[[insurers]]
uzovi = "3311"
name = "Zorgverzekeraar Test"
[[insurers.contracts]]
year = 2026
rule_set = "regular-2023"
tariffs = {{ {tariffs} }}

[bundling]
grace_days = 0
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    pki = tmp_path / "pki"
    path = write_config(
        tmp_path / "gateway.toml",
        pki,
        make_pki(pki),
        "sqlite:///data/gateway.db",
        extra=contract_section(),
    )
    pump = ThreadPump()
    (tmp_path / "data").mkdir()
    store = pump.wait(open_store(f"sqlite:///{tmp_path / 'data' / 'gateway.db'}", pump))
    intake = Intake(
        store,
        load_layouts(),
        clock=lambda: datetime(2026, 11, 1, tzinfo=UTC),
        run_in_thread=lambda f: defer.succeed(f()),
    )
    for agb, (discipline, name) in FILES.items():
        metadata = send_metadata(agb, "EI")
        pump.wait(intake.receive(Upload(agb, discipline, metadata, (MESSAGES / name).read_bytes())))
    pump.wait(store.close())
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command(*args), capture_output=True, text=True, timeout=120, check=False
    )


def test_dry_run_then_bundle_then_nothing_left(config: Path) -> None:
    dry = run("bundle", "--config", str(config), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    summary = json.loads(dry.stdout)
    assert summary["dryRun"] is True
    (claim,) = summary["claims"]
    assert (claim["insurer"], claim["lines"]) == ("3311", 6)
    assert claim["total"] == 2 * 150000 + 120000 + 90000 + 2 * 100000
    assert summary["lines"] == {"absorbed": 27}

    human = run("bundle", "--config", str(config), "--dry-run")
    assert "would be claimed now (dry run, nothing stored)" in human.stdout
    assert "EUR 7,100.00" in human.stdout

    done = run("bundle", "--config", str(config), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["claims"][0]["factuurnummer"].startswith("IGO")
    after = json.loads(run("bundle", "--config", str(config), "--dry-run", "--json").stdout)
    assert after["claims"] == []


def test_explain_names_the_rule_and_masks_bsns(config: Path) -> None:
    text = run("explain", "--config", str(config))
    assert text.returncode == 0, text.stderr
    assert "decision: integral claim — rule: integral" in text.stdout
    assert "999990007" not in text.stdout
    assert "******007" in text.stdout
    first = json.loads(run("explain", "--config", str(config), "--json").stdout.splitlines()[0])
    one = run("explain", "--config", str(config), "--pregnancy", first["pregnancy"], "--json")
    assert {json.loads(line)["pregnancy"] for line in one.stdout.splitlines()} == {
        first["pregnancy"]
    }
    unknown = run("explain", "--config", str(config), "--pregnancy", "nope")
    assert unknown.returncode == 1


def test_a_waiting_phase_closed_by_hand_is_claimed(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    pki = tmp_path / "pki"
    write_config(config, pki, make_pki(pki), "sqlite:///data/gateway.db", extra=contract_section())
    (tmp_path / "data").mkdir()
    pump = ThreadPump()
    store = pump.wait(open_store(f"sqlite:///{tmp_path / 'data' / 'gateway.db'}", pump))
    intake = Intake(
        store,
        load_layouts(),
        clock=lambda: datetime(2026, 11, 1, tzinfo=UTC),
        run_in_thread=lambda f: defer.succeed(f()),
    )
    # Only the kraamzorg's file: no birth is declared for woman A, her phases wait.
    metadata = send_metadata("33001234", "EI")
    payload = (MESSAGES / FILES["33001234"][1]).read_bytes()
    pump.wait(intake.receive(Upload("33001234", "kraamzorg", metadata, payload)))
    pump.wait(store.close())

    waiting = [
        json.loads(line)
        for line in run("explain", "--config", str(config), "--json").stdout.splitlines()
    ]
    prenatal = next(d for d in waiting if d["decision"] == "waiting" and d["phase"] == "prenatal")
    closed = run(
        "close-phase", "--config", str(config), "--pregnancy", prenatal["pregnancy"],
        "--phase", "prenatal", "--by", "beheerder",
    )  # fmt: skip
    assert closed.returncode == 0, closed.stderr
    again = [
        json.loads(line)
        for line in run("explain", "--config", str(config), "--json").stdout.splitlines()
    ]
    decided = next(
        d for d in again if d["pregnancy"] == prenatal["pregnancy"] and d["phase"] == "prenatal"
    )
    assert decided["decision"] == "integral"
    assert "closed by hand by an administrator" in decided["why"]


def test_bundle_json_lists_the_claim_lines(config: Path) -> None:
    summary = json.loads(run("bundle", "--config", str(config), "--dry-run", "--json").stdout)
    (claim,) = summary["claims"]
    lines = claim["integralLines"]
    assert len(lines) == claim["lines"] == 6
    assert sum(line["amount"] for line in lines) == claim["total"]
    for line in lines:
        assert line["prestatie"].startswith("IG")
        assert line["from"] <= line["to"]
        assert line["phase"] in ("prenatal", "natal", "postnatal")
        assert line["absorbs"]
        assert all("#" in key for key in line["absorbs"])
    assert sum(len(line["absorbs"]) for line in lines) == summary["lines"]["absorbed"]


def test_dry_run_and_explain_decide_as_on_another_day(config: Path) -> None:
    # On 1 August the births of late July are known, their postnatal periods are not over.
    early = json.loads(
        run(
            "bundle", "--config", str(config), "--dry-run", "--json", "--as-of", "2026-08-01"
        ).stdout
    )  # fmt: skip
    phases = {line["phase"] for c in early["claims"] for line in c["integralLines"]}
    assert "postnatal" not in phases
    assert early["lines"].get("waiting", 0) > 0
    explained = [
        json.loads(line)
        for line in run(
            "explain", "--config", str(config), "--json", "--as-of", "2026-08-01"
        ).stdout.splitlines()
    ]  # fmt: skip
    assert {d["decision"] for d in explained if d["phase"] == "postnatal"} == {"waiting"}
    # A real run cannot pretend to be on another day.
    refused = run("bundle", "--config", str(config), "--as-of", "2026-08-01")
    assert refused.returncode == 2
    assert "--as-of" in refused.stderr
