"""``igo-gateway admin``, ``cases`` and ``audit`` on a SQLite store, in process."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.admin.blocking import opened_stores
from adapters.admin.demo import seed_cases, seed_parked
from gateway.admin.cases import CaseKind
from gateway.cli import main
from gateway.crypto import Keyring
from gateway.loading import load_layouts
from tests.tools import write_cli_config


@pytest.fixture
def config(tmp_path: Path) -> Path:
    db = tmp_path / "gateway.db"
    path = tmp_path / "gateway.toml"
    write_cli_config(path, db)
    with opened_stores(f"sqlite:///{db}", None) as stores:
        stores.run.wait(seed_cases(stores.store, load_layouts(), datetime.now(UTC)))
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_create_user_reads_the_password_from_stdin_never_the_command_line(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    status, out, _ = run(
        capsys,
        "admin",
        "create-user",
        "--config",
        str(config),
        "--name",
        "anna",
        "--role",
        "viewer",
    )
    assert (status, out.strip()) == (0, "user anna created (viewer)")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    status, _, err = run(
        capsys, "admin", "create-user", "--config", str(config), "--name", "bob", "--role", "viewer"
    )
    assert status == 1
    assert "at least 12" in err
    status, out, _ = run(capsys, "admin", "list-users", "--config", str(config))
    assert out.split() == ["anna", "viewer", "active", "0", "sessions,", "0", "tokens"]
    status, out, _ = run(capsys, "admin", "create-token", "--config", str(config), "--name", "anna")
    assert status == 0
    assert len(out.strip()) >= 43


def test_cases_list_show_resolve(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "cases", "list", "--config", str(config), "--json")
    listed = json.loads(out)
    assert status == 0
    assert listed["counts"] == {
        **{kind.value: 0 for kind in CaseKind},
        "intake_rejected": 1,
        "parked": 1,
        "unmatched_retour": 1,
    }
    status, out, _ = run(capsys, "cases", "show", "parked:demo-claim", "--config", str(config))
    assert status == 0
    assert "actions: retry, write_off, note" in out
    status, out, _ = run(
        capsys,
        "cases",
        "resolve",
        "parked:demo-claim",
        "--action",
        "retry",
        "--config",
        str(config),
    )
    assert (status, out.strip()) == (0, "parked:demo-claim: retry done; the case is retried")
    status, _, err = run(
        capsys,
        "cases",
        "resolve",
        "parked:demo-claim",
        "--action",
        "retry",
        "--config",
        str(config),
    )
    assert status == 1
    assert "past niet" in err
    status, _, err = run(capsys, "cases", "show", "parked:nothing", "--config", str(config))
    assert status == 1


def test_audit_verify_finds_an_edited_entry_and_export_writes_json_lines(
    config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for _ in range(3):
        run(capsys, "cases", "show", "parked:demo-claim", "--config", str(config))
    status, out, _ = run(capsys, "audit", "verify", "--config", str(config))
    assert status == 0
    assert out.startswith("audit log intact: 3 entries")
    status, _, _ = run(
        capsys, "audit", "export", "--config", str(config), "--to", str(tmp_path / "a.jsonl")
    )
    lines = (tmp_path / "a.jsonl").read_text("utf-8").splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4]

    with sqlite3.connect(tmp_path / "gateway.db") as db:
        db.execute("DROP TRIGGER admin_audit_no_update")
        db.execute("UPDATE admin_audit SET actor = 'someone else' WHERE seq = 2")
    status, out, _ = run(capsys, "audit", "verify", "--config", str(config))
    assert status == 1
    assert "broken at entry 2" in out


def test_audit_head_is_recorded_and_a_rolled_back_log_fails_verify_head(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys.toml"
    assert main(["keys", "init", str(keys)]) == 0
    db = tmp_path / "gateway.db"
    config = write_cli_config(
        tmp_path / "gateway.toml", db, f'\n[encryption]\nkey_file = "{keys}"\n'
    )
    with opened_stores(f"sqlite:///{db}", Keyring.load(keys)) as stores:
        stores.run.wait(seed_cases(stores.store, load_layouts(), datetime.now(UTC)))
    capsys.readouterr()
    run(capsys, "cases", "show", "parked:demo-claim", "--config", str(config))
    shutil.copy(db, tmp_path / "earlier.db")
    for _ in range(2):
        run(capsys, "cases", "show", "parked:demo-claim", "--config", str(config))
    status, out, _ = run(capsys, "audit", "head", "--config", str(config))
    assert status == 0
    recorded = out.strip()
    seq, _, digest = recorded.partition(":")
    assert (int(seq), len(digest)) == (4, 64)  # the audit_keyed marker and 3 views
    status, out, _ = run(capsys, "audit", "verify", "--config", str(config), "--head", recorded)
    assert status == 0
    assert "(keyed)" in out

    shutil.copy(tmp_path / "earlier.db", db)  # the database rolled back, head and all
    status, out, _ = run(capsys, "audit", "verify", "--config", str(config))
    assert status == 0  # on its own the log cannot tell
    status, out, _ = run(capsys, "audit", "verify", "--config", str(config), "--head", recorded)
    assert status == 1
    assert "before the head recorded elsewhere" in out
    status, _, err = run(capsys, "audit", "verify", "--config", str(config), "--head", "5:xyz")
    assert status == 2
    assert "SEQ:HASH" in err


def test_the_leaver_process_from_the_command_line(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, role in (("anna", "operator"), ("bea", "administrator")):
        monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
        status, _, _ = run(
            capsys, "admin", "create-user", "--config", str(config), "--name", name, "--role", role
        )
        assert status == 0
    status, _, _ = run(capsys, "admin", "create-token", "--config", str(config), "--name", "anna")
    assert status == 0
    status, out, _ = run(capsys, "admin", "list-users", "--config", str(config))
    assert "anna                     operator       active    0 sessions, 1 tokens" in out

    status, out, _ = run(capsys, "admin", "revoke", "--config", str(config), "--name", "anna")
    assert (status, out.strip()) == (0, "user anna: 1 ended")
    status, out, _ = run(
        capsys, "admin", "set-role", "--config", str(config), "--name", "anna", "--role", "viewer"
    )
    assert (status, out.strip()) == (0, "user anna is now viewer")
    monkeypatch.setattr("sys.stdin", io.StringIO("another long password\n"))
    status, out, _ = run(
        capsys, "admin", "reset-password", "--config", str(config), "--name", "anna"
    )
    assert status == 0
    assert "new password set" in out
    status, out, _ = run(capsys, "admin", "disable-user", "--config", str(config), "--name", "anna")
    assert (status, out.strip()) == (0, "user anna disabled; 0 sessions and tokens ended")
    status, out, _ = run(capsys, "admin", "list-users", "--config", str(config))
    assert "anna                     viewer         disabled" in out
    status, _, _ = run(capsys, "admin", "enable-user", "--config", str(config), "--name", "anna")
    assert status == 0

    status, _, err = run(capsys, "admin", "disable-user", "--config", str(config), "--name", "bea")
    assert status == 1
    assert "last active administrator" in err
    status, _, err = run(
        capsys, "admin", "disable-user", "--config", str(config), "--name", "nobody"
    )
    assert (status, err.strip()) == (1, "igo-gateway admin disable-user: no user 'nobody'")

    status, out, _ = run(capsys, "audit", "export", "--config", str(config))
    actions = [json.loads(line)["action"] for line in out.splitlines()]
    for action in ("sessions_revoked", "role_changed", "password_reset", "user_disabled"):
        assert action in actions
    assert "another long password" not in out


def _parked_for(config: Path, insurer: str, count: int) -> list[str]:
    db = str(config.parent / "gateway.db")
    with opened_stores(f"sqlite:///{db}", None) as stores:
        parked: list[str] = stores.run.wait(
            seed_parked(
                stores.store,
                load_layouts(),
                datetime.now(UTC),
                tag="down",
                insurer=insurer,
                count=count,
            )
        )
    return parked


def test_cases_bulk_asks_first_then_makes_and_runs_a_batch(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    parked = _parked_for(config, "4444", 2)
    args = ("cases", "bulk", "--config", str(config), "--action", "retry", "--insurer", "4444")
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    status, out, _ = run(capsys, *args)
    assert status == 1
    assert "retry on 2 cases (Geparkeerd na mislukte verzending 2)" in out
    assert all(f"parked:{ref}" in out for ref in parked)
    assert "Voor elk van deze 2 zaken gaat het bestand terug in de wachtrij" in out
    assert "nothing done" in out
    status, out, _ = run(capsys, "cases", "batches", "--config", str(config))
    assert (status, out) == (0, "")

    status, out, _ = run(capsys, *args, "--yes")
    assert status == 0
    assert "batch 1: retry, running; done 0, skipped 0, failed 0, remaining 2 of 2" in out
    status, out, _ = run(capsys, "cases", "batch", "1", "--config", str(config), "--pause")
    assert (status, "paused" in out) == (0, True)
    status, _, err = run(capsys, "cases", "batch", "1", "--config", str(config), "--pause")
    assert status == 1
    assert "kan niet pause" in err
    run(capsys, "cases", "batch", "1", "--config", str(config), "--resume")
    status, out, _ = run(capsys, "cases", "batch", "1", "--config", str(config), "--run", "--json")
    assert status == 0
    batch = json.loads(out)
    assert batch["state"] == "finished"
    assert [i["outcome"] for i in batch["items"]] == ["done", "done"]
    status, out, _ = run(capsys, "cases", "list", "--config", str(config), "--insurer", "4444")
    assert "parked:" not in out  # both went back into the outbound queue
    status, _, err = run(capsys, "cases", "batch", "7", "--config", str(config))
    assert (status, err.strip()) == (1, "igo-gateway cases batch: no batch 7")


def test_cases_bulk_refuses_a_write_off_without_a_reason(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(
        capsys, "cases", "bulk", "--config", str(config), "--action", "write_off", "--yes"
    )
    assert status == 2
    assert "Vul een reden in" in err
    status, out, _ = run(
        capsys,
        "cases",
        "bulk",
        "--config",
        str(config),
        "--action",
        "write_off",
        "--yes",
        "--run",
        "--kind",
        "unmatched_retour",
        "--reason",
        "papieren declaratie",
    )
    assert status == 0
    assert "batch 1: write_off, finished; done 1" in out
