"""``igo-gateway insurer-sim --config FILE``: run the insurer simulator until stopped.

A separate server that plays a health insurer (or VECOZO in front of one): it takes the
gateway's claim files, checks them with the codec and answers with retour files by the
rules of its own config file. See ``adapters/insurer_sim/README.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)
from twisted.python.failure import Failure

from adapters.insurer_sim.config import SimConfig, load_sim_config
from adapters.insurer_sim.server import RunningSimulator, start_simulator
from gateway.config import ConfigError
from gateway.ei import LayoutError

__all__ = ["register", "run"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
log = Logger()


def register(sub: Any) -> None:
    p = sub.add_parser(
        "insurer-sim",
        help="run the insurer simulator (a rehearsal partner for the insurer link)",
        description="Run a simulated health insurer that speaks the VECOZO-style /berichten "
        "exchange over mutual TLS, checks every uploaded file with the codec and answers "
        "with a retour file by the rules in its config file (see "
        "fixtures/insurer-sim.example.toml). Runs until SIGINT or SIGTERM. Exit status: 0 "
        "after a clean stop, 1 when it cannot start, 2 for an invalid config file.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.set_defaults(handler=_insurer_sim)


def _insurer_sim(args: argparse.Namespace) -> int:
    try:
        config = load_sim_config(args.config)
    except ConfigError as exc:
        print(f"igo-gateway insurer-sim: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run(config)


def run(config: SimConfig) -> int:
    """Serve ``config`` on the global reactor until it stops; the exit status."""
    # Imported here: importing the reactor installs it, which other commands do not need.
    from twisted.internet import reactor  # noqa: PLC0415

    observer = FilteringLogObserver(
        textFileLogObserver(sys.stderr),
        [LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)],
    )
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    outcome = {"status": EXIT_OK}

    def cannot_start(failure: Failure) -> None:
        if failure.check(ConfigError, LayoutError, CannotListenError):
            log.critical("cannot start: {reason}", reason=str(failure.value))
        else:
            log.failure("cannot start", failure)
        outcome["status"] = EXIT_FAILED
        reactor.stop()

    def started(simulator: RunningSimulator) -> None:
        reactor.addSystemEventTrigger(
            "before", "shutdown", lambda: Deferred.fromCoroutine(simulator.stop())
        )

    def begin() -> None:
        d = Deferred.fromCoroutine(start_simulator(config, reactor))
        d.addCallbacks(started, cannot_start)

    reactor.callWhenRunning(begin)
    reactor.run()
    return outcome["status"]
