"""``igo-gateway keys``: the key file of the encryption at rest."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.config import ConfigError, load_config
from gateway.crypto import CryptoError, activate_key, new_key_file, rotate_key_file

__all__ = ["register"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_RESTART = (
    "Restart the gateway: it seals new files with the current key and re-encrypts what "
    "older keys sealed in the background. Remove an old key only when that is done "
    "(the log says 're-encryption done')."
)


def register(sub: Any) -> None:
    group = sub.add_parser("keys", help="the key file of the encryption at rest")
    commands = group.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)

    p = commands.add_parser(
        "init",
        help="write a new key file",
        description="Write a new key file (owner-readable only) with one data key and the "
        "index key; name it in the config as [encryption] key_file. Back it up apart from "
        "the store: without it the stored files cannot be read.",
    )
    p.add_argument("file", type=Path, metavar="FILE")
    p.set_defaults(handler=_init)

    p = commands.add_parser(
        "rotate",
        help="add a new data key and make it current",
        description="Add a new data key to the config's key file and make it current. With "
        "several gateway instances: --stage first (every instance learns the key), restart "
        "them all, then `keys activate KEY`, and restart again. " + _RESTART,
    )
    p.add_argument("--config", type=Path, required=True, metavar="CONFIG")
    p.add_argument("--stage", action="store_true", help="add the key without making it current")
    p.set_defaults(handler=_rotate)

    p = commands.add_parser("activate", help="make a staged key current")
    p.add_argument("--config", type=Path, required=True, metavar="CONFIG")
    p.add_argument("key_id", metavar="KEY")
    p.set_defaults(handler=_activate)


def _key_file(args: argparse.Namespace, command: str) -> Path | None:
    try:
        config = load_config(args.config, check_files=False)
    except ConfigError as exc:
        print(f"igo-gateway keys {command}: {exc}", file=sys.stderr)
        return None
    if config.encryption.key_file is None:
        print(
            f"igo-gateway keys {command}: {args.config} names no [encryption] key_file",
            file=sys.stderr,
        )
        return None
    return config.encryption.key_file


def _init(args: argparse.Namespace) -> int:
    try:
        key_id = new_key_file(args.file, now=datetime.now(UTC))
    except (CryptoError, OSError) as exc:
        print(f"igo-gateway keys init: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {args.file} (current key {key_id}); in the config:")
    print(f'\n[encryption]\nkey_file = "{args.file}"')
    return EXIT_OK


def _rotate(args: argparse.Namespace) -> int:
    path = _key_file(args, "rotate")
    if path is None:
        return EXIT_USAGE
    try:
        key_id = rotate_key_file(path, now=datetime.now(UTC), activate=not args.stage)
    except (CryptoError, OSError) as exc:
        print(f"igo-gateway keys rotate: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.stage:
        print(
            f"added key {key_id} (not current yet). Restart every instance, then: "
            f"igo-gateway keys activate --config {args.config} {key_id}"
        )
    else:
        print(f"added key {key_id}, now current. {_RESTART}")
    return EXIT_OK


def _activate(args: argparse.Namespace) -> int:
    path = _key_file(args, "activate")
    if path is None:
        return EXIT_USAGE
    try:
        activate_key(path, args.key_id)
    except (CryptoError, OSError) as exc:
        print(f"igo-gateway keys activate: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"key {args.key_id} is current. {_RESTART}")
    return EXIT_OK
