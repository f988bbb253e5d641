"""``igo-gateway keys``: init, rotate (at once or staged), activate, status and retire,
through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.storage import open_store
from adapters.storage.blocking import Blocking
from gateway.cli import main
from gateway.crypto import Keyring
from tests.adapters.storage.builders import upload
from tests.adapters.storage.test_lines import line


def config_with_keys(tmp_path: Path) -> Path:
    config = tmp_path / "gateway.toml"
    config.write_text(
        '[igo]\nname = "IGO"\nagb = "53001234"\n\n'
        '[epd_api.tls]\ncert = "c.pem"\nkey = "k.pem"\ntrust = "t.pem"\n\n'
        '[encryption]\nkey_file = "keys.toml"\n',
        encoding="utf-8",
    )
    return config


def test_init_rotate_and_activate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = config_with_keys(tmp_path)
    keys = tmp_path / "keys.toml"
    assert main(["keys", "init", str(keys)]) == 0
    first = Keyring.load(keys).current
    assert "[encryption]" in capsys.readouterr().out

    assert main(["keys", "rotate", "--config", str(config), "--stage"]) == 0
    ring = Keyring.load(keys)
    assert ring.current == first
    (staged,) = set(ring.keys) - {first}
    assert "keys activate" in capsys.readouterr().out

    assert main(["keys", "activate", "--config", str(config), staged]) == 0
    assert Keyring.load(keys).current == staged
    assert main(["keys", "init", str(keys)]) == 1  # never overwritten


def test_rotate_without_a_key_file_in_the_config_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[igo]\nname = "IGO"\nagb = "53001234"\n', encoding="utf-8")
    assert main(["keys", "rotate", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "epd_api" in err or "key_file" in err


def _store_with_sealed_lines(config: Path, keys: Path) -> None:
    """An upload with lines, sealed under the key file's current key."""
    (config.parent / "data").mkdir(exist_ok=True)
    run = Blocking()
    store = run.wait(
        open_store(f"sqlite:///{config.parent / 'data' / 'gateway.db'}", run, Keyring.load(keys))
    )
    try:
        run.wait(store.record_upload(upload(1), [], [line(0), line(1)]))
    finally:
        run.wait(store.close())


def _reencrypt(config: Path, keys: Path) -> None:
    run = Blocking()
    store = run.wait(
        open_store(f"sqlite:///{config.parent / 'data' / 'gateway.db'}", run, Keyring.load(keys))
    )
    try:
        while run.wait(store.reencrypt(10)):
            pass
    finally:
        run.wait(store.close())


def test_status_shows_what_each_key_seals_and_retire_waits_for_reencryption(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_with_keys(tmp_path)
    keys = tmp_path / "keys.toml"
    assert main(["keys", "init", str(keys)]) == 0
    old = Keyring.load(keys).current
    _store_with_sealed_lines(config, keys)
    assert main(["keys", "rotate", "--config", str(config)]) == 0
    capsys.readouterr()

    assert main(["keys", "status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    (old_line,) = [row for row in out.splitlines() if row.startswith(old)]
    assert "journal (1 row), declaration_lines (2 rows)" in old_line
    assert main(["keys", "retire", "--config", str(config), old]) == 1
    assert "still seals" in capsys.readouterr().err
    assert old in Keyring.load(keys).keys

    _reencrypt(config, keys)
    assert main(["keys", "status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    (old_line,) = [row for row in out.splitlines() if row.startswith(old)]
    assert "seals nothing" in old_line
    assert main(["keys", "retire", "--config", str(config), old]) == 0
    assert old not in Keyring.load(keys).keys
    assert main(["keys", "status", "--config", str(config)]) == 0


def test_status_fails_for_another_key_file_naming_the_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_with_keys(tmp_path)
    keys = tmp_path / "keys.toml"
    assert main(["keys", "init", str(keys)]) == 0
    _store_with_sealed_lines(config, keys)
    keys.unlink()
    assert main(["keys", "init", str(keys)]) == 0  # another key file under the same name
    capsys.readouterr()
    assert main(["keys", "status", "--config", str(config)]) == 1
    captured = capsys.readouterr()
    assert "NOT IN THE KEY FILE" in captured.out
    assert "journal (1 row), declaration_lines (2 rows)" in captured.err
