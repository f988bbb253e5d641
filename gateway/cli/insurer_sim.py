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

from adapters.insurer_sim.config import SimConfig, load_sim_config
from adapters.insurer_sim.server import start_simulator
from gateway.cli.serve import run_until_stopped
from gateway.config import ConfigError, LoggingConfig

__all__ = ["register", "run"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(sub: Any) -> None:
    p = sub.add_parser(
        "insurer-sim",
        help="run the insurer simulator (a rehearsal partner for the insurer link)",
        description="Run a simulated health insurer that plays VECOZO's side of the VSP-Koppeling "
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
    return run_until_stopped(
        lambda reactor: start_simulator(config, reactor),
        lambda simulator: simulator.stop(),
        logging=LoggingConfig(),
    )
