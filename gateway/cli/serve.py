"""``igo-gateway serve``: the long-running gateway."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway import crashpoints
from gateway.app import RunningGateway, start
from gateway.config import ConfigError, GatewayConfig, LoggingConfig, load_config
from gateway.crypto import CryptoError
from gateway.ei import LayoutError
from gateway.logs import begin_logging
from gateway.ports.messages import SchemaVersionError, StoreInUseError, StoreUnavailableError

__all__ = ["KNOWN_START_ERRORS", "register", "run", "run_until_stopped"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
log = Logger()


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the gateway",
        description="Run the gateway with the given config file until stopped (SIGINT or "
        "SIGTERM). Exit status: 0 after a clean stop, 1 when it cannot start (store, "
        "certificates, port), 2 for an invalid config file.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.set_defaults(handler=_serve)


# --- serve ----------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"igo-gateway serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run(config)


S = TypeVar("S")

# Why a server may fail to start that deserve one line, not a traceback.
KNOWN_START_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    CryptoError,
    SchemaVersionError,
    StoreInUseError,
    StoreUnavailableError,
    LayoutError,
    CannotListenError,
    crashpoints.CrashPointError,
)


def run_until_stopped(
    start: Callable[[Any], Awaitable[S]],
    stop: Callable[[S], Awaitable[None]],
    *,
    logging: LoggingConfig,
    on_started: Callable[[S], None] | None = None,
) -> int:
    """Start a server with ``start(reactor)`` on the global reactor and run until SIGINT or
    SIGTERM, stopping it with ``stop`` before the reactor ends; the exit status (1 when it
    could not start)."""
    # Imported here: importing the reactor installs it, which other commands do not need.
    from twisted.internet import reactor  # noqa: PLC0415

    begin_logging(logging, sys.stderr)
    outcome = {"status": EXIT_OK}

    def cannot_start(failure: Failure) -> None:
        if failure.check(*KNOWN_START_ERRORS):
            log.critical("cannot start: {reason}", reason=str(failure.value))
        else:
            log.failure("cannot start", failure)
        outcome["status"] = EXIT_FAILED
        reactor.stop()

    def started(server: S) -> None:
        reactor.addSystemEventTrigger(
            "before", "shutdown", lambda: Deferred.fromCoroutine(_awaited(stop(server)))
        )
        if on_started is not None:
            on_started(server)

    def begin() -> None:
        d = Deferred.fromCoroutine(_awaited(start(reactor)))
        d.addCallbacks(started, cannot_start)

    reactor.callWhenRunning(begin)
    reactor.run()
    return outcome["status"]


async def _awaited(awaitable: Awaitable[S]) -> S:
    return await awaitable


def run(config: GatewayConfig, on_started: Callable[[RunningGateway], None] | None = None) -> int:
    """Serve ``config`` on the global reactor until it stops; the exit status.

    The test-only crash hook (:mod:`gateway.crashpoints`) is armed here, from the
    environment, once; it is never armed otherwise."""

    async def armed_start(reactor: Any) -> RunningGateway:
        crashpoints.arm_from_environment()
        return await start(config, reactor)

    return run_until_stopped(
        armed_start,
        lambda gateway: gateway.stop(),
        logging=config.logging,
        on_started=on_started,
    )
