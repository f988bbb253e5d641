"""``igo-gateway keys``: init, rotate (at once or staged) and activate, through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.crypto import Keyring


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
