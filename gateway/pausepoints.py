"""A **test-only** pause point: hold a bundling run between deciding and recording, so that
the race tests with real processes (``tests/crash/test_concurrent_bundling.py``) can let a
second run go in between — without sleeps deciding the outcome. (In process, the tests
give the bundler a checkpoint of their own.)

Armed only by the environment variable ``IGO_GATEWAY_PAUSE_AT``, read when a bundler is
built (``igo-gateway bundle`` and ``serve``)::

    IGO_GATEWAY_PAUSE_AT=decided:/tmp/race     # the first run that reaches "decided"

At the point the process writes ``<folder>/paused-<pid>`` and waits (blocking, checking
every 20 ms) until ``<folder>/go-<pid>`` exists, then goes on; only the first run of the
process pauses. When the variable is not set nothing is armed and a run never waits.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from twisted.logger import Logger

from gateway.errors import ErrorKind, GatewayError

__all__ = ["ENVIRONMENT_VARIABLE", "POINTS", "PausePointError", "pause_point_from_environment"]

log = Logger()

ENVIRONMENT_VARIABLE = "IGO_GATEWAY_PAUSE_AT"
POINTS = ("decided",)
_CHECK_SECONDS = 0.02
_LONGEST_SECONDS = 600.0


class PausePointError(GatewayError, ValueError):
    """``IGO_GATEWAY_PAUSE_AT`` names no pause point or no folder."""

    code = "pause-point-invalid"
    kind = ErrorKind.MISCONFIGURED


def pause_point_from_environment(
    environ: Mapping[str, str] = os.environ,
) -> Callable[[str], Awaitable[None]] | None:
    """The checkpoint a bundler awaits at each step, or None when the hook is not armed."""
    value = environ.get(ENVIRONMENT_VARIABLE, "")
    if not value:
        return None
    point, _, folder = value.partition(":")
    if point not in POINTS or not folder:
        raise PausePointError(
            f"{ENVIRONMENT_VARIABLE}={value!r}: expected <point>:<folder>,"
            f" point one of {', '.join(POINTS)}"
        )
    where = Path(folder)
    log.critical(
        "TEST HOOK ARMED: {variable} is set; the first bundling run pauses at '{point}'. "
        "Never set it outside the race tests.",
        variable=ENVIRONMENT_VARIABLE,
        point=point,
    )
    done: list[bool] = []

    async def checkpoint(reached: str) -> None:
        if reached != point or done:
            return
        done.append(True)
        pid = os.getpid()
        (where / f"paused-{pid}").write_text(point)
        deadline = time.monotonic() + _LONGEST_SECONDS
        while not (where / f"go-{pid}").exists() and time.monotonic() < deadline:
            time.sleep(_CHECK_SECONDS)

    return checkpoint
