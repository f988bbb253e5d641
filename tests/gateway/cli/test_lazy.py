"""The command line loads only what a command needs: ``validate`` and ``show`` the codec,
not the store, the admin site or the application."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys

import pytest

from gateway import cli
from tests.gateway.ei.fixture_table import MESSAGES

# Loaded by any command that opens the store or runs the gateway; never by the codec's.
HEAVY = ("adapters", "gateway.admin", "gateway.app", "gateway.ports", "twisted", "sqlite3")


def _registered(module: str) -> list[str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    importlib.import_module(f"gateway.cli.{module}").register(sub)
    return list(sub.choices)


def test_every_command_is_mapped_to_the_module_that_registers_it() -> None:
    registered = {command: module for module in cli._MODULES for command in _registered(module)}

    assert registered == cli.COMMANDS


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_the_parser_for_a_command_has_the_commands_of_its_module(command: str) -> None:
    parser = cli.build_parser(command)

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == _registered(cli.COMMANDS[command])


def test_without_a_known_command_every_command_is_offered(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in cli.COMMANDS:
        assert command in out


def test_an_unknown_command_is_a_usage_error_that_lists_the_commands(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["no-such-command"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err
    assert "validate" in err
    assert "serve" in err


@pytest.mark.parametrize("command", ["validate", "show"])
def test_codec_commands_load_only_the_codec(command: str) -> None:
    probe = (
        "import sys, json\n"
        "from gateway.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print(json.dumps(sorted(sys.modules)))\n"
        "sys.exit(code)\n"
    )
    fixture = MESSAGES / "kz301-minimal.asc"
    proc = subprocess.run(
        [sys.executable, "-c", probe, command, str(fixture)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    modules = json.loads(proc.stdout.splitlines()[-1])
    loaded = [m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY)]
    assert loaded == []
    assert "gateway.ei.validate" in modules
