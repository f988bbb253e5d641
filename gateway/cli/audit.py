"""``igo-gateway audit``: check and export the admin audit log.

``verify`` recomputes the hash chain (keyed with the key file's audit key when the config
names one): exit 0 when intact, 1 naming the first entry that was edited or deleted; with
``--head SEQ:HASH`` (a head recorded earlier) also 1 when the log no longer holds that
entry with that hash — a log rolled back or cut, head and all. ``head`` prints the newest
entry as ``SEQ:HASH`` after checking the chain, for recording outside the gateway's
machines (see docs/operations.md). ``export`` writes the entries as JSON lines (and logs
that it did).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gateway.admin.audit import entry_json, parse_recorded_head
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
    p.add_argument(
        "--head",
        metavar="SEQ:HASH",
        help="a head recorded earlier by `audit head`: the log must still hold it",
    )
    p.set_defaults(handler=_verify)

    p = commands.add_parser(
        "head",
        help="print the newest entry as SEQ:HASH, to record outside the gateway",
        description="Check the chain, then print its head as SEQ:HASH (exit 1, printing "
        "nothing on standard output, when the chain is broken). Record the line where "
        "whoever can change the database cannot (another machine, a ticket, paper); later "
        "`audit verify --head SEQ:HASH` shows whether the log still holds it.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.set_defaults(handler=_head)

    p = commands.add_parser("export", help="write the audit log as JSON lines")
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument("--after", type=int, default=0, metavar="SEQ", help="entries after SEQ")
    p.add_argument("--to", type=Path, metavar="FILE", help="default: standard output")
    p.set_defaults(handler=_export)


def _verify(args: argparse.Namespace) -> int:
    try:
        expected = parse_recorded_head(args.head) if args.head else None
    except ValueError as exc:
        print(f"igo-gateway audit verify: --head: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with admin_session(args.config) as session:
            report = session.run.wait(session.service.verify_audit(expected=expected))
            keyed = session.service.admin.audit_key is not None
    except CliError as exc:
        print(f"igo-gateway audit verify: {exc}", file=sys.stderr)
        return exc.status
    if report.intact:
        kind = "keyed" if keyed else "UNKEYED (no key file: the chain shows edits, not rewrites)"
        anchored = f"; holds the recorded head {args.head}" if expected else ""
        print(
            f"audit log intact: {report.entries} entries ({kind}), "
            f"head {report.entries}:{report.head_hash}{anchored}"
        )
        return EXIT_OK
    print(
        f"audit log broken at entry {report.first_bad_seq}: {report.problem} "
        f"({report.entries} entries before it are intact)"
    )
    return EXIT_FAILED


def _head(args: argparse.Namespace) -> int:
    try:
        with admin_session(args.config) as session:
            report = session.run.wait(session.service.verify_audit())
    except CliError as exc:
        print(f"igo-gateway audit head: {exc}", file=sys.stderr)
        return exc.status
    if not report.intact:
        print(
            f"igo-gateway audit head: the log is broken at entry {report.first_bad_seq} "
            f"({report.problem}); nothing to record",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(f"{report.entries}:{report.head_hash}")
    return EXIT_OK


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
