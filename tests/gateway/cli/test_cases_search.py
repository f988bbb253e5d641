"""``igo-gateway cases search`` on a SQLite store, in process: the BSN read from standard
input (never an argument), the hits printed masked, the search audited without it."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from adapters.admin.blocking import opened_stores
from adapters.admin.demo import DEMO_BSN, seed_cases
from gateway.admin.search import MASKED_BSN
from gateway.cli import main
from gateway.lines import DeclaredLine
from gateway.loading import load_layouts
from tests.adapters.storage.builders import upload
from tests.tools import write_cli_config


def _line(n: int, bsn: str) -> DeclaredLine:
    return DeclaredLine(
        traceer_id="up-0007",
        record_number=n,
        participant="33001234",
        standard="KZ301",
        bsn=bsn,
        birth_date=None,
        insurer="3311",
        prestatiecodelijst="044",
        prestatiecode="196202",
        prestatie_date=date(2026, 10, n),
        prestatie_end_date=None,
        amount=1000,
        reference=f"R-{n}",
        previous_reference=None,
        performer=None,
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    db = tmp_path / "gateway.db"
    path = tmp_path / "gateway.toml"
    write_cli_config(path, db)
    with opened_stores(f"sqlite:///{db}", None) as stores:
        stores.run.wait(seed_cases(stores.store, load_layouts(), datetime.now(UTC)))
        lines = [_line(1, DEMO_BSN), _line(2, "999990007")]
        stores.run.wait(stores.store.record_upload(upload(7, invoice="F-7"), [], lines))
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_search_reads_the_bsn_from_stdin_and_prints_it_masked(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(DEMO_BSN + "\n"))
    status, out, _ = run(capsys, "cases", "search", "--config", str(config), "--bsn-prompt")
    assert status == 0
    printed = out.splitlines()
    assert [line.split()[1] for line in printed[:-1]] == ["line", "upload"]  # newest first
    assert "up-0007#1" in out
    assert "up-0007#2" not in out  # another client's line
    assert f"bsn {MASKED_BSN}" in out
    assert DEMO_BSN not in out
    assert printed[-1] == "2 hits"

    monkeypatch.setattr("sys.stdin", io.StringIO(DEMO_BSN + "\n"))
    status, out, _ = run(
        capsys, "cases", "search", "--config", str(config), "--bsn-prompt", "--unmask", "--json"
    )
    assert status == 0
    hits = json.loads(out)["hits"]
    assert [h["bsn"] for h in hits if h["kind"] == "line"] == [DEMO_BSN]

    status, out, _ = run(capsys, "audit", "export", "--config", str(config))
    assert status == 0
    assert DEMO_BSN not in out
    entries = [json.loads(line) for line in out.splitlines()]
    searches = [(e["action"], e["detail"]) for e in entries if "zoeken" in e["detail"]]
    assert searches == [("search", "zoeken: zoeken op BSN"), ("unmask", "zoeken: zoeken op BSN")]


def test_search_refuses_bad_keys_and_a_bsn_argument(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("123456789\n"))
    status, _, err = run(capsys, "cases", "search", "--config", str(config), "--bsn-prompt")
    assert status == 2
    assert "elfproef" in err
    assert "123456789" not in err
    status, _, err = run(capsys, "cases", "search", "--config", str(config))
    assert status == 2
    assert "zoeksleutel" in err
    with pytest.raises(SystemExit):
        main(["cases", "search", "--config", str(config), "--bsn", DEMO_BSN])
    status, _, err = run(capsys, "cases", "search", "--config", str(config), "--from", "1 nov")
    assert status == 2
