"""The test-only crash hook: inert unless armed from the environment, refuses a point
that does not exist, and kills the process with SIGKILL the nth time its point is
reached (checked in a child process)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from gateway import crashpoints
from gateway.crashpoints import ENVIRONMENT_VARIABLE, CrashAt, CrashPointError


@pytest.fixture(autouse=True)
def disarmed() -> object:
    yield None
    crashpoints.arm(None)


def test_unset_it_is_inert() -> None:
    assert crashpoints.arm_from_environment({}) is None
    for point in crashpoints.POINTS:
        crashpoints.reached(point)  # returns: nothing is armed


@pytest.mark.parametrize(
    ("value", "expected"),
    [("journaled", CrashAt("journaled", 1)), ("claim-sent:3", CrashAt("claim-sent", 3))],
)
def test_a_point_and_an_optional_count(value: str, expected: CrashAt) -> None:
    assert crashpoints.arm_from_environment({ENVIRONMENT_VARIABLE: value}) == expected


@pytest.mark.parametrize("value", ["jounraled", "journaled:0", "journaled:x", ":2"])
def test_a_typo_is_refused_not_ignored(value: str) -> None:
    with pytest.raises(CrashPointError):
        CrashAt.parse(value)


def test_armed_for_one_point_others_pass() -> None:
    crashpoints.arm(CrashAt("retours-built"))
    crashpoints.reached("journaled")
    crashpoints.reached("bundled")


def test_the_nth_time_it_kills_the_process_without_cleanup() -> None:
    script = (
        "import sys\n"
        "from gateway import crashpoints\n"
        "crashpoints.arm_from_environment()\n"
        "try:\n"
        "    for n in range(1, 5):\n"
        "        print(n, flush=True)\n"
        "        crashpoints.reached('bundled')\n"
        "finally:\n"
        "    print('cleanup ran', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={ENVIRONMENT_VARIABLE: "bundled:2", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=crashpoints.__file__.rsplit("/gateway/", 1)[0],
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert done.stdout.split() == ["1", "2"]  # died at the second, no finally block
    assert "crash point 'bundled' reached (2): SIGKILL" in done.stderr
