"""The ``igo-gateway`` command line. Each group of subcommands lives in its own module and
registers itself on the parser; :func:`main` dispatches."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from gateway.process import tune_garbage_collector

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]

# The modules that register subcommands, in the order of the help listing.
_MODULES = (
    "codec",
    "config",
    "init",
    "pki",
    "serve",
    "demo",
    "epd",
    "bundle",
    "settlement",
    "backup",
    "keys",
    "insurer_sim",
    "admin",
    "cases",
    "audit",
    "uploads",
)
# Which module registers which command, so that a command imports only its own module and
# what that needs: `igo-gateway validate` loads the codec, not the store or the admin site.
# A command missing here still works (every module is then loaded); a test keeps the two
# in step.
COMMANDS = {
    "validate": "codec",
    "show": "codec",
    "config": "config",
    "init": "init",
    "pki": "pki",
    "serve": "serve",
    "demo": "demo",
    "epd": "epd",
    "bundle": "bundle",
    "explain": "bundle",
    "close-phase": "bundle",
    "settlement": "settlement",
    "backup": "backup",
    "restore": "backup",
    "keys": "keys",
    "insurer-sim": "insurer_sim",
    "admin": "admin",
    "cases": "cases",
    "audit": "audit",
    "uploads": "uploads",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command, or only with ``command`` and the commands of its
    module when the module of ``command`` is known."""
    parser = argparse.ArgumentParser(
        prog="igo-gateway",
        description="Declaration gateway for integral birth care organisations (IGOs).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    module = COMMANDS.get(command) if command is not None else None
    for name in (module,) if module is not None else _MODULES:
        importlib.import_module(f"gateway.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    command = words[0] if words and not words[0].startswith("-") else None
    parser = build_parser(command)
    args = parser.parse_args(words)
    handler: Handler = args.handler
    tune_garbage_collector()
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # e.g. `igo-gateway show big.asc | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
