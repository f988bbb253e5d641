"""``igo-gateway backup`` and ``igo-gateway restore``: the embedded SQLite store, safely."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from adapters.storage.backup import BackupError, backup_sqlite, restore_sqlite, sqlite_path
from gateway.config import ConfigError, GatewayConfig, load_config

__all__ = ["register"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(sub: Any) -> None:
    p = sub.add_parser(
        "backup",
        help="copy the embedded SQLite store, also while the gateway runs",
        description="Copy the SQLite store of the config to FILE with SQLite's online backup "
        "(consistent while the gateway runs). FILE appears only once complete and synced. "
        "For PostgreSQL use pg_dump.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="CONFIG")
    p.add_argument("--to", type=Path, required=True, metavar="FILE", dest="target")
    p.set_defaults(handler=_backup)

    p = sub.add_parser(
        "restore",
        help="replace the embedded SQLite store with a backup (gateway stopped)",
        description="Check FILE (integrity, a schema this gateway can run) and make it the "
        "config's SQLite store. Refused while a gateway runs on the store; --force to "
        "replace an existing store.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="CONFIG")
    p.add_argument("--from", type=Path, required=True, metavar="FILE", dest="source")
    p.add_argument("--force", action="store_true", help="replace the existing store")
    p.set_defaults(handler=_restore)


def _config(args: argparse.Namespace, command: str) -> GatewayConfig | None:
    try:
        return load_config(args.config, check_files=False)
    except ConfigError as exc:
        print(f"igo-gateway {command}: {exc}", file=sys.stderr)
        return None


def _backup(args: argparse.Namespace) -> int:
    config = _config(args, "backup")
    if config is None:
        return EXIT_USAGE
    try:
        info = backup_sqlite(sqlite_path(config.store.url), args.target)
    except BackupError as exc:
        print(f"igo-gateway backup: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"backup written: {info.path} ({info.size} bytes, schema version {info.schema_version})")
    return EXIT_OK


def _restore(args: argparse.Namespace) -> int:
    config = _config(args, "restore")
    if config is None:
        return EXIT_USAGE
    try:
        info = restore_sqlite(args.source, sqlite_path(config.store.url), force=args.force)
    except BackupError as exc:
        print(f"igo-gateway restore: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(
        f"restored {args.source} to {info.path} (schema version {info.schema_version}); "
        "the gateway migrates it further at start-up if needed"
    )
    return EXIT_OK
