"""``igo-gateway init`` and the demo's set-up: a directory the gateway starts from."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.cli.demo import DEMO_PARTICIPANTS, write_demo
from gateway.config import load_config


def test_init_writes_a_commented_config_that_loads_with_its_certificates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "igo"
    status = main(
        [
            "init",
            str(target),
            "--igo",
            "53001111=Geboortezorg Test",
            "--participant",
            "02001111,midwifery,Verloskundigen Test",
            "--participant",
            "33001111,kraamzorg,Kraamzorg Test",
        ]
    )
    assert status == 0
    assert "igo-gateway serve --config" in capsys.readouterr().out
    config = load_config(target / "gateway.toml")  # also checks the TLS files exist
    assert (config.igo.agb, config.igo.name) == ("53001111", "Geboortezorg Test")
    assert [(p.agb, p.discipline.value) for p in config.participants] == [
        ("02001111", "midwifery"),
        ("33001111", "kraamzorg"),
    ]
    assert all(len(p.certificates) == 1 for p in config.participants)
    text = (target / "gateway.toml").read_text(encoding="utf-8")
    assert "# DEVELOPMENT certificates" in text
    assert "postgresql://" in text  # the alternative store is explained


def test_init_never_overwrites_a_config_without_force(tmp_path: Path) -> None:
    assert main(["init", str(tmp_path)]) == 0
    config = tmp_path / "gateway.toml"
    config.write_text("# mine\n", encoding="utf-8")
    assert main(["init", str(tmp_path)]) == 1
    assert config.read_text(encoding="utf-8") == "# mine\n"
    assert main(["init", str(tmp_path), "--force"]) == 0
    assert "(replace)" in config.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "args",
    [
        ["--participant", "02001111,dentist,Tandarts"],
        ["--participant", "0200,midwifery,Te kort"],
        ["--igo", "53001111"],
    ],
)
def test_init_refuses_bad_parties_with_a_usage_error(
    tmp_path: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", str(tmp_path), *args]) == 2
    assert "igo-gateway init:" in capsys.readouterr().err
    assert not (tmp_path / "gateway.toml").exists()


def test_the_demo_directory_is_reused_with_the_same_certificates(tmp_path: Path) -> None:
    first = load_config(write_demo(tmp_path, 18443))
    again = load_config(write_demo(tmp_path, 18444))
    assert again.epd_api.port == 18444
    assert [p.certificates for p in again.participants] == [
        p.certificates for p in first.participants
    ]
    assert [p.agb for p in first.participants] == [agb for agb, *_ in DEMO_PARTICIPANTS]
