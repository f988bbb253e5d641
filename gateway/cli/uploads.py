"""``igo-gateway uploads reprocess``: check an upload again after a configuration fix, on
the store directly (the gateway may be running), audited as done by ``cli:<OS user>``.
What reprocessing means is said in :mod:`gateway.reprocess`. No bundling run from here:
the running gateway's next scheduled run decides the lines.

Exit status: 0 the upload's lines were stored or decided again, 1 nothing changed (still
rejected, factuurnummer taken) or no such upload or refused, 2 usage or config.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gateway.admin.cases import ActionRefusedError
from gateway.admin.serialise import reprocess_json
from gateway.cli.admin import CliError, admin_session, cli_actor, exit_status
from gateway.ports.reprocess import ReprocessOutcome

__all__ = ["register"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(sub: Any) -> None:
    group = sub.add_parser("uploads", help="participants' uploads")
    commands = group.add_subparsers(dest="uploads_command", metavar="COMMAND", required=True)
    p = commands.add_parser(
        "reprocess",
        help="check an upload again after a configuration fix (audited)",
        description="An upload rejected at intake is checked again with the layouts as they "
        "are now and, valid now, its lines are stored (once) and bundled; an accepted "
        "upload's lines are read from its file again: missing lines added, open lines "
        "refreshed, lines returned with 9001 decided again. Lines claimed, forwarded or "
        "cancelled are left as they are. One transaction with its audit entry.",
    )
    p.add_argument("traceer_id", metavar="TRACEER_ID")
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument(
        "--reason",
        required=True,
        help="why, e.g. which configuration was fixed (no BSN or name: it goes into the log)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(handler=_reprocess)


def _fail(message: str, status: int = EXIT_FAILED) -> int:
    print(f"igo-gateway uploads reprocess: {message}", file=sys.stderr)
    return status


def _reprocess(args: argparse.Namespace) -> int:
    try:
        with admin_session(args.config) as session:
            reprocessor = session.builder.reprocessor()
            result = session.run.wait(
                reprocessor.reprocess(args.traceer_id, cli_actor(), args.reason)
            )
    except CliError as exc:
        return _fail(str(exc), exc.status)
    except LookupError:
        return _fail(f"no upload {args.traceer_id}")
    except ActionRefusedError as exc:
        return _fail(str(exc), exit_status(exc.kind))
    if args.json:
        print(json.dumps(reprocess_json(result), ensure_ascii=False))
    else:
        print(f"{result.traceer_id}: {result.message}")
        print(
            f"regels: {result.lines_added} opgeslagen, {result.lines_refreshed} bijgewerkt, "
            f"{result.lines_reopened} opnieuw te beoordelen, {result.lines_kept} ongemoeid"
            + (f"; retourcode {result.code}" if result.code else "")
        )
    changed = result.outcome in (ReprocessOutcome.ACCEPTED, ReprocessOutcome.REDECIDED)
    return EXIT_OK if changed else EXIT_FAILED
