"""``igo-gateway pki init``: a DEVELOPMENT-ONLY CA with server and client certificates."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.config import ConfigError, load_config
from gateway.pki import CA_CERT, DEFAULT_DAYS, SERVER_CERT, SERVER_KEY, Party, PkiError, init_pki

__all__ = ["register"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

_WARNING = (
    "DEVELOPMENT ONLY: the keys are unencrypted and the CA is self-signed; production "
    "certificates come from a real CA."
)


def register(sub: Any) -> None:
    group = sub.add_parser("pki", help="development-only certificates for the gateway's mutual TLS")
    commands = group.add_subparsers(dest="pki_command", metavar="COMMAND", required=True)
    p = commands.add_parser(
        "init",
        help="(development only) create a CA, a localhost server certificate and client "
        "certificates",
        description="Create a development CA in DIR (EC P-256), a server certificate for "
        "localhost (also 127.0.0.1 and ::1), one client certificate per participant (CN = "
        "its AGB code, O = its name) and one for the IGO itself, and index.json listing "
        "each client certificate's SHA-256 fingerprint for the config file. " + _WARNING,
    )
    p.add_argument("directory", type=Path, metavar="DIR")
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="take the IGO and the participants from this config file",
    )
    p.add_argument(
        "--participant",
        action="append",
        default=[],
        metavar="AGB=NAME",
        help="a participant to issue a client certificate for (repeatable)",
    )
    p.add_argument("--igo", metavar="AGB=NAME", help="the IGO (when there is no --config)")
    p.add_argument(
        "--days",
        type=int,
        default=DEFAULT_DAYS,
        metavar="N",
        help=f"validity of every certificate (default {DEFAULT_DAYS})",
    )
    p.add_argument("--force", action="store_true", help="replace the CA that DIR already holds")
    p.set_defaults(handler=_init)


def _party(text: str, role: str) -> Party:
    agb, sep, name = text.partition("=")
    if not sep:
        raise PkiError(f"{text!r}: expected AGB=NAME")
    return Party(agb.strip(), name.strip(), role)


def _init(args: argparse.Namespace) -> int:
    try:
        parties = _parties(args)
    except ConfigError as exc:
        print(f"igo-gateway pki init: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PkiError as exc:
        print(f"igo-gateway pki init: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        index = init_pki(
            args.directory, parties, now=datetime.now(UTC), days=args.days, force=args.force
        )
    except PkiError as exc:
        print(f"igo-gateway pki init: {exc}", file=sys.stderr)
        return EXIT_FAILED
    d = index.directory
    print(f"{_WARNING}\n")
    if not any(c.role == "igo" for c in index.clients):
        print("note: no IGO given (--config or --igo): no IGO certificate issued\n")
    print(f"CA:     {d / CA_CERT}  sha256 {index.ca_fingerprint_sha256}")
    print(f"server: {d / SERVER_CERT} (localhost, 127.0.0.1, ::1)")
    for c in index.clients:
        print(f"{c.role} {c.agb} ({c.name}): {d / c.cert}  sha256 {c.fingerprint_sha256}")
    # Paths in the config file are relative to its own directory.
    base = args.config.resolve().parent if args.config is not None else None
    rel = Path(os.path.relpath(d.resolve(), base)) if base is not None else d.resolve()
    print("\nFor the config file:\n\n[epd_api.tls]")
    print(f'cert = "{rel / SERVER_CERT}"\nkey = "{rel / SERVER_KEY}"\ntrust = "{rel / CA_CERT}"')
    for c in index.clients:
        if c.role == "participant":
            print(f'\n# {c.agb} {c.name}\ncertificates = ["{c.fingerprint_sha256}"]')
    return EXIT_OK


def _parties(args: argparse.Namespace) -> list[Party]:
    parties: list[Party] = []
    igo: Party | None = None
    if args.config is not None:
        # The TLS files the config names may be the ones about to be created.
        config = load_config(args.config, check_files=False)
        igo = Party(config.igo.agb, config.igo.name, "igo")
        parties += [Party(p.agb, p.name) for p in config.participants]
    if args.igo is not None:
        igo = _party(args.igo, "igo")
    known = {p.agb for p in parties}
    for text in args.participant:
        party = _party(text, "participant")
        if party.agb not in known:
            parties.append(party)
            known.add(party.agb)
    return [*parties, igo] if igo is not None else parties
