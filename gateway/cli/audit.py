"""``igo-gateway audit``: check and export the admin audit log.

``verify`` recomputes the hash chain: exit 0 when intact (printing the number of entries
and the newest hash — write it down elsewhere to anchor the log), 1 naming the first entry
that was edited or deleted. ``export`` writes the entries as JSON lines (and logs that it
did).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gateway.admin.audit import entry_json
from gateway.cli.admin import CliError, admin_session, cli_actor

__all__ = ["register"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(sub: Any) -> None:
    group = sub.add_parser("audit", help="check and export the admin audit log")
    commands = group.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)

    p = commands.add_parser(
        "verify",
        help="check the audit log's hash chain",
        description="Exit 0 when every entry matches its hash and follows the one before; "
        "1 naming the first entry edited or deleted.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.set_defaults(handler=_verify)

    p = commands.add_parser("export", help="write the audit log as JSON lines")
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument("--after", type=int, default=0, metavar="SEQ", help="entries after SEQ")
    p.add_argument("--to", type=Path, metavar="FILE", help="default: standard output")
    p.set_defaults(handler=_export)


def _verify(args: argparse.Namespace) -> int:
    try:
        with admin_session(args.config) as session:
            report = session.run.wait(session.service.verify_audit())
    except CliError as exc:
        print(f"igo-gateway audit verify: {exc}", file=sys.stderr)
        return exc.status
    if report.intact:
        print(f"audit log intact: {report.entries} entries, newest hash {report.head_hash}")
        return EXIT_OK
    print(
        f"audit log broken at entry {report.first_bad_seq}: {report.problem} "
        f"({report.entries} entries before it are intact)"
    )
    return EXIT_FAILED


def _export(args: argparse.Namespace) -> int:
    try:
        with admin_session(args.config) as session:
            entries = session.run.wait(
                session.service.audit_log(
                    cli_actor(), after_seq=args.after, limit=None, export=True
                )
            )
    except CliError as exc:
        print(f"igo-gateway audit export: {exc}", file=sys.stderr)
        return exc.status
    text = "".join(json.dumps(entry_json(e), ensure_ascii=False) + "\n" for e in entries)
    if args.to is None:
        sys.stdout.write(text)
    else:
        try:
            args.to.write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"igo-gateway audit export: {args.to}: {exc.strerror}", file=sys.stderr)
            return EXIT_FAILED
        print(f"wrote {len(entries)} entries to {args.to}", file=sys.stderr)
    return EXIT_OK
