"""``igo-gateway keys``: the key file of the encryption at rest."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.storage import open_store
from adapters.storage.blocking import Blocking
from adapters.storage.keys import SEALED_TABLES, check_store_keys, describe_usage, key_usage
from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.crypto import (
    CryptoError,
    Keyring,
    activate_key,
    new_key_file,
    remove_key,
    rotate_key_file,
)
from gateway.ports.messages import StoreError

__all__ = ["register"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_RESTART = (
    "Restart the gateway: it seals new files with the current key and re-encrypts what "
    "older keys sealed in the background (the journal and the declaration lines). Remove an "
    "old key only when that is done: `igo-gateway keys status` shows it seals nothing, and "
    "`igo-gateway keys retire KEY` removes it."
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

    p = commands.add_parser(
        "status",
        help="how many stored rows each key still seals, and whether the key file fits",
        description="For every key the store uses or the key file holds: the rows it seals "
        "per table (" + ", ".join(SEALED_TABLES) + "), and whether the key file is the "
        "store's (exit 1 when it lacks a key the store needs or is another store's).",
    )
    p.add_argument("--config", type=Path, required=True, metavar="CONFIG")
    p.set_defaults(handler=_status)

    p = commands.add_parser(
        "retire",
        help="remove an old key from the key file once it seals nothing",
        description="Remove KEY from the config's key file; refused while the store still "
        "has rows sealed with it (see `keys status`) or while it is the current key.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="CONFIG")
    p.add_argument("key_id", metavar="KEY")
    p.set_defaults(handler=_retire)


def _key_file(args: argparse.Namespace, command: str) -> Path | None:
    config = _config(args, command)
    return None if config is None else config.encryption.key_file


def _config(args: argparse.Namespace, command: str) -> GatewayConfig | None:
    """The config, when it names a key file (else the reason is printed)."""
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
    return config


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


def _status(args: argparse.Namespace) -> int:
    config = _config(args, "status")
    if config is None or config.encryption.key_file is None:
        return EXIT_USAGE
    try:
        keyring = Keyring.load(config.encryption.key_file)
        run = Blocking()
        store = run.wait(open_store(config.store.url, run, keyring))
        try:
            usage = run.wait(key_usage(store))
            try:
                run.wait(check_store_keys(store))
                verdict = None
            except CryptoError as exc:
                verdict = str(exc)
        finally:
            run.wait(store.close())
    except (CryptoError, StoreError, OSError) as exc:
        print(f"igo-gateway keys status: {exc}", file=sys.stderr)
        return EXIT_FAILED
    for key_id in [*keyring.keys, *sorted(usage.keys() - keyring.keys.keys())]:
        tables = usage.get(key_id, {})
        if key_id not in keyring.keys:
            state = "NOT IN THE KEY FILE"
        elif key_id == keyring.current:
            state = "current"
        else:
            state = "old"
        seals = describe_usage(tables) if tables else "nothing"
        hint = "" if tables or state != "old" else " (may be retired: igo-gateway keys retire)"
        print(f"{key_id:<28} {state:<20} seals {seals}{hint}")
    if verdict is not None:
        print(f"igo-gateway keys status: {verdict}", file=sys.stderr)
        return EXIT_FAILED
    print("the key file fits the store")
    return EXIT_OK


def _retire(args: argparse.Namespace) -> int:
    config = _config(args, "retire")
    if config is None or config.encryption.key_file is None:
        return EXIT_USAGE
    path = config.encryption.key_file
    try:
        keyring = Keyring.load(path)
        if args.key_id not in keyring.keys:
            raise CryptoError(f"{path}: no key {args.key_id!r}")
        run = Blocking()
        store = run.wait(open_store(config.store.url, run, keyring))
        try:
            tables = run.wait(key_usage(store)).get(args.key_id)
        finally:
            run.wait(store.close())
        if tables:
            raise CryptoError(
                f"key {args.key_id!r} still seals {describe_usage(tables)}: wait for the "
                "re-encryption (a running gateway does it; `keys status` shows progress)"
            )
        remove_key(path, args.key_id)
    except (CryptoError, StoreError, OSError) as exc:
        print(f"igo-gateway keys retire: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"key {args.key_id} removed from {path}")
    return EXIT_OK
