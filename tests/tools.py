"""Command-line tools some tests need."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def required_tool(name: str) -> str:
    """The path of command-line tool ``name``; skips the test without it, except in CI
    (``CI=true``), where ``.ci/run`` installs it and its absence fails the test."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed — required in CI", pytrace=False)
        pytest.skip(f"{name} is not installed")
    return path


def write_cli_config(path: Path, db: Path, extra: str = "") -> Path:
    """A config for the command line's store commands: the IGO, a SQLite store at ``db``
    and the EPD API's certificate names (not read by them), then ``extra``."""
    path.write_text(
        f"""[igo]
name = "IGO Test"
agb = "53001234"

[store]
url = "sqlite:///{db}"

[epd_api.tls]
cert = "server.pem"
key = "server.key"
trust = "ca.pem"
{extra}""",
        encoding="utf-8",
    )
    return path
