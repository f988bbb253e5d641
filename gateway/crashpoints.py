"""Deterministic crash points: a **test-only** hook that kills the gateway process right
after a chosen step of the data path, so the crash suite (``tests/crash/``) can prove that
a restart finishes the cycle with nothing lost and nothing sent twice.

The hook is armed only by the environment variable ``IGO_GATEWAY_CRASH_AT``, read once
when ``igo-gateway serve`` starts::

    IGO_GATEWAY_CRASH_AT=claim-sent        # die the first time a claim was acknowledged
    IGO_GATEWAY_CRASH_AT=journaled:3       # die after the third upload was committed

When it is set the gateway logs a critical line saying so at start-up; a value that names
no point refuses the start (a typo must not silently disarm a test). When it is not set,
:func:`reached` is one comparison and does nothing: production never arms it.

At the point the process sends itself SIGKILL: no ``finally`` blocks, no shutdown
triggers, no flushing of anything but what was already handed to the kernel — the same as
``kill -9`` from outside, only at an exact spot.

The points, in the order a declaration passes them:

==================  ========================================================================
``parsed``          intake: the upload is checked and its lines extracted, nothing stored yet
``journaled``       intake: upload, first status and lines committed (one transaction),
                    the answer not yet sent
``bundled``         bundler: the bundle — claim files queued for the insurer, claim links,
                    line outcomes — committed (one transaction)
``claim-sent``      forwarder: the insurer acknowledged a file, the gateway has not yet
                    recorded the delivery
``delivered``       forwarder: the delivery is recorded
``retour-stored``   collector: an insurer's retour journaled, the file it answers not yet
                    marked answered
``answered``        collector: the answered file marked, the retour not yet unpacked
``retours-built``   unpacker: every line's answer and the per-participant retours
                    committed, the insurer not yet told the retour was received
==================  ========================================================================
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass

from twisted.logger import Logger

from gateway.errors import ErrorKind, GatewayError

__all__ = [
    "ENVIRONMENT_VARIABLE",
    "POINTS",
    "CrashAt",
    "CrashPointError",
    "arm",
    "arm_from_environment",
    "reached",
]

log = Logger()

ENVIRONMENT_VARIABLE = "IGO_GATEWAY_CRASH_AT"
POINTS = (
    "parsed",
    "journaled",
    "bundled",
    "claim-sent",
    "delivered",
    "retour-stored",
    "answered",
    "retours-built",
)


class CrashPointError(GatewayError, ValueError):
    """``IGO_GATEWAY_CRASH_AT`` names no crash point (or a bad count)."""

    code = "crash-point-invalid"
    kind = ErrorKind.MISCONFIGURED


@dataclass(frozen=True, slots=True)
class CrashAt:
    """Die the ``nth`` time ``point`` is reached."""

    point: str
    nth: int = 1

    @classmethod
    def parse(cls, value: str) -> CrashAt:
        point, _, count = value.strip().partition(":")
        if point not in POINTS:
            raise CrashPointError(
                f"{ENVIRONMENT_VARIABLE}={value!r}: no such crash point"
                f" (one of {', '.join(POINTS)})"
            )
        if not count:
            return cls(point)
        if not count.isdigit() or int(count) < 1:
            raise CrashPointError(f"{ENVIRONMENT_VARIABLE}={value!r}: the count must be 1 or more")
        return cls(point, int(count))


@dataclass(slots=True)
class _Hook:
    armed: CrashAt | None = None
    seen: int = 0


_HOOK = _Hook()  # one per process, armed once at start-up


def arm(crash_at: CrashAt | None) -> None:
    """Arm (or, with None, disarm) the hook for this process."""
    _HOOK.armed, _HOOK.seen = crash_at, 0


def arm_from_environment(environ: Mapping[str, str] = os.environ) -> CrashAt | None:
    """Read ``IGO_GATEWAY_CRASH_AT`` once and arm the hook; None when it is not set.
    :class:`CrashPointError` for a value that names no point."""
    value = environ.get(ENVIRONMENT_VARIABLE, "")
    if not value:
        arm(None)
        return None
    crash_at = CrashAt.parse(value)
    arm(crash_at)
    log.critical(
        "TEST HOOK ARMED: {variable} is set; this process will kill itself (SIGKILL) the "
        "{nth}. time it reaches '{point}'. Never set it outside the crash tests.",
        variable=ENVIRONMENT_VARIABLE,
        nth=crash_at.nth,
        point=crash_at.point,
    )
    return crash_at


def reached(point: str) -> None:
    """The data path passed ``point``; kills the process if the hook is armed for it."""
    armed = _HOOK.armed
    if armed is None:
        return
    if point not in POINTS:  # pragma: no cover - a misspelt call site in the code
        raise ValueError(f"unknown crash point {point!r}")
    if point != armed.point:
        return
    _HOOK.seen += 1
    if _HOOK.seen < armed.nth:
        return
    # Written straight to the file descriptor: the logging machinery may buffer.
    os.write(2, f"crash point '{point}' reached ({_HOOK.seen}): SIGKILL\n".encode("ascii"))
    os.kill(os.getpid(), signal.SIGKILL)
