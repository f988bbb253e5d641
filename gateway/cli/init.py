"""``igo-gateway init DIR``: a starting point for a real installation — a commented config
file and a development PKI that lets it start at once, to be replaced by real certificates."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gateway.cli.starter import CONFIG_NAME, Member, write_installation
from gateway.config import ConfigError, load_config
from gateway.pki import Party, PkiError

__all__ = ["register"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DISCIPLINES = ("midwifery", "kraamzorg", "hospital")
EXAMPLE_IGO = "53000000=Voorbeeld IGO (replace)"
EXAMPLE_MEMBERS = (
    "02000000,midwifery,Voorbeeld verloskundigenpraktijk (replace)",
    "33000000,kraamzorg,Voorbeeld kraamzorgorganisatie (replace)",
    "06000000,hospital,Voorbeeld ziekenhuis (replace)",
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "init",
        help="write a commented starter config and a development PKI into DIR",
        description="Write DIR/gateway.toml, every setting explained, and a development PKI "
        "(DIR/pki) so that `igo-gateway serve --config DIR/gateway.toml` starts at once. "
        "Replace the certificates with your own before production. Without --igo and "
        "--participant, example values are written, marked '(replace)'.",
    )
    p.add_argument("directory", type=Path, metavar="DIR")
    p.add_argument("--igo", metavar="AGB=NAME", help=f"the IGO (default {EXAMPLE_IGO!r})")
    p.add_argument(
        "--participant",
        action="append",
        default=[],
        metavar="AGB,DISCIPLINE,NAME",
        help=f"a participant (repeatable); DISCIPLINE is one of {', '.join(DISCIPLINES)}",
    )
    p.add_argument("--port", type=int, default=8443, help="port of the EPD API (default 8443)")
    p.add_argument("--force", action="store_true", help="overwrite DIR/gateway.toml")
    p.set_defaults(handler=_init)


def _igo(text: str) -> Party:
    agb, sep, name = text.partition("=")
    if not sep:
        raise PkiError(f"--igo {text!r}: expected AGB=NAME")
    return Party(agb.strip(), name.strip(), "igo")


def _member(text: str) -> Member:
    parts = [p.strip() for p in text.split(",", 2)]
    if len(parts) != 3 or parts[1] not in DISCIPLINES:
        raise PkiError(
            f"--participant {text!r}: expected AGB,DISCIPLINE,NAME with DISCIPLINE one of "
            + ", ".join(DISCIPLINES)
        )
    Party(parts[0], parts[2])  # checks the AGB code and the name
    return Member(parts[0], parts[2], parts[1])


def _init(args: argparse.Namespace) -> int:
    config_path = args.directory / CONFIG_NAME
    if config_path.exists() and not args.force:
        print(
            f"igo-gateway init: {config_path} exists; use --force to overwrite it",
            file=sys.stderr,
        )
        return EXIT_FAILED
    try:
        igo = _igo(args.igo or EXAMPLE_IGO)
        members = [_member(m) for m in (args.participant or EXAMPLE_MEMBERS)]
    except PkiError as exc:
        print(f"igo-gateway init: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        path = write_installation(
            args.directory,
            igo,
            members,
            port=args.port,
            header=[
                "Configuration of the IGO declaration gateway, written by `igo-gateway init`.",
                "The certificates in pki/ are for DEVELOPMENT only: replace them with your own.",
            ],
            comments=True,
        )
        load_config(path)
    except (PkiError, ConfigError, OSError) as exc:
        print(f"igo-gateway init: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {path} and a development PKI in {args.directory / 'pki'}")
    print(f"next: edit {path}, then: igo-gateway serve --config {path}")
    return EXIT_OK
