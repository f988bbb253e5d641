"""``igo-gateway config check``, ``config schema`` and ``config reference``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gateway.config import ConfigError, config_json_schema, load_config
from gateway.configdoc import reference_markdown
from gateway.terms import load_catalogue

__all__ = ["register", "schema_text"]

EXIT_OK, EXIT_INVALID = 0, 1


def register(sub: Any) -> None:
    group = sub.add_parser("config", help="check the config file; print its JSON Schema")
    commands = group.add_subparsers(dest="config_command", metavar="COMMAND", required=True)

    p = commands.add_parser(
        "check",
        help="check a config file",
        description="Check a config file as the gateway would at start-up, including that "
        "the files it names exist and the prestatie catalogue it names. Prints 'ok' (exit 0) "
        "or every problem found (exit 1).",
    )
    p.add_argument("--config", type=Path, default=Path("gateway.toml"), metavar="FILE")
    p.set_defaults(handler=_check)

    p = commands.add_parser(
        "schema",
        help="print the JSON Schema of the config file",
        description="Print the JSON Schema of the config file (schemas/config.schema.json "
        "is this output).",
    )
    p.set_defaults(handler=_schema)

    p = commands.add_parser(
        "reference",
        help="print the configuration reference (Markdown)",
        description="Print the configuration reference as Markdown, generated from the "
        "JSON Schema (docs/configuration.md is this output).",
    )
    p.set_defaults(handler=_reference)


def schema_text() -> str:
    """The JSON Schema as committed in ``schemas/config.schema.json``."""
    return json.dumps(config_json_schema(), indent=2, ensure_ascii=False) + "\n"


def _check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        catalogue = load_catalogue(config.bundling.catalogue)
    except ConfigError as exc:
        print(exc)
        return EXIT_INVALID
    if catalogue.is_example:
        print(f"note: the prestatie catalogue is the shipped EXAMPLE ({catalogue.source})")
    print("ok")
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    print(schema_text(), end="")
    return EXIT_OK


def _reference(args: argparse.Namespace) -> int:
    print(reference_markdown(), end="")
    return EXIT_OK
