"""The ``igo-gateway`` command line. Each group of subcommands lives in its own module and
registers itself on the parser; :func:`main` dispatches."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from gateway.cli import (
    admin,
    audit,
    backup,
    bundle,
    cases,
    codec,
    config,
    demo,
    init,
    insurer_sim,
    keys,
    pki,
    serve,
    settlement,
    uploads,
)

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]

_MODULES = (
    codec,
    config,
    init,
    pki,
    serve,
    demo,
    bundle,
    settlement,
    backup,
    keys,
    insurer_sim,
    admin,
    cases,
    uploads,
    audit,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="igo-gateway",
        description="Declaration gateway for integral birth care organisations (IGOs).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
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
