"""Command-line tools some tests need."""

from __future__ import annotations

import os
import shutil

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
