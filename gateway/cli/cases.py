"""``igo-gateway cases``: the administrator's queue on the command line, working on the
store directly (the gateway may be running): ``list``, ``show``, ``resolve`` and
``search``; and bulk actions: ``bulk`` (one action on every case of a filter, as a batch,
after a confirmation that lists them; ``--yes`` skips the question), ``batches`` and
``batch`` (progress; pause, resume, cancel, or run it here). Every view of a case, every
action and every search is written to the audit log as done by ``cli:<OS user>``. A
search by BSN takes the number from a prompt or from standard input (``--bsn-prompt``),
never from the command line, where other users of the machine could read it.

Exit status: 0 done, 1 no such case or the action does not fit it, 2 usage or config.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from gateway.admin.batches import Batch, BatchControl, BatchPreview, BatchState
from gateway.admin.bulk import BatchRunner, BulkService
from gateway.admin.cases import KINDS, ActionRefusedError, CaseAction, CaseFilter, CaseKind
from gateway.admin.consequences import bulk_consequence
from gateway.admin.labels import age_text
from gateway.admin.search import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    SearchQuery,
    SearchRefusedError,
    parse_day,
)
from gateway.admin.serialise import (
    batch_json,
    case_json,
    case_view_json,
    preview_json,
    search_result_json,
)
from gateway.cli.admin import AdminSession, CliError, admin_session, cli_actor, exit_status
from gateway.ports.admin import NotAllowedError

__all__ = ["register"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(sub: Any) -> None:
    group = sub.add_parser("cases", help="the administrator's queue of cases")
    commands = group.add_subparsers(dest="cases_command", metavar="COMMAND", required=True)

    p = commands.add_parser("list", help="open cases, oldest first (filters as on the site)")
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument("--kind", choices=[k.value for k in CaseKind])
    p.add_argument("--insurer", metavar="UZOVI")
    p.add_argument("--participant", metavar="AGB")
    p.add_argument("--retourcode", metavar="CODE")
    p.add_argument("--min-age-days", type=int, metavar="N")
    p.add_argument("--all", action="store_true", help="also cases written off or resolved")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(handler=_list)

    p = commands.add_parser("show", help="one case: facts, retourcodes, history (audited)")
    p.add_argument("case_id", metavar="CASE")
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_show)

    p = commands.add_parser(
        "resolve",
        help="act on a case: retry, resubmit, pass_on, break_bundle, close_phase, "
        "write_off, reopen or note",
        description="retry: send a parked file again, due now, under the same id; "
        "resubmit: claim a rejected integral line again with the fields given by --set "
        "(member_number, uzovi, first_day, last_day, prestatie); pass_on: the insurer's "
        "rejection to the participants, in their retours; break_bundle: the originals go "
        "monodisciplinarily (--reason required); close_phase: a waiting phase is complete; "
        "write_off: close the case (--reason required); reopen: back in the queue; note: "
        "add --reason as a note. Each is one transaction with its audit entry. After "
        "break_bundle and close_phase the running gateway's next bundling run decides the "
        "lines again.",
    )
    p.add_argument("case_id", metavar="CASE")
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument("--action", required=True, choices=[a.value for a in CaseAction])
    p.add_argument("--reason", default="", help="why (no BSN or name: it goes into the log)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="resubmit only: a corrected field, e.g. --set uzovi=3312; FIELD=- reads the "
        "value from standard input (asked at a terminal): give a member number that way, "
        "so that it stays out of the shell's history and the process list",
    )
    p.set_defaults(handler=_resolve)

    p = commands.add_parser(
        "search",
        help="find uploads, retours, outbound files, lines and claims by business keys",
        description="Every key given must match; newest first, at most --limit hits. Dates "
        "(YYYY-MM-DD) are the prestatie date of a line, the day a message was stored. "
        "--bsn-prompt asks for a client's BSN (or reads one line from standard input); "
        "it is matched through a keyed hash and never written to the audit log.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument("--factuurnummer", metavar="NUMBER")
    p.add_argument("--reference", metavar="REF", help="a line's or claim's reference")
    p.add_argument("--traceer-id", metavar="ID")
    p.add_argument("--participant", metavar="AGB")
    p.add_argument("--insurer", metavar="UZOVI")
    p.add_argument("--retourcode", metavar="CODE")
    p.add_argument("--from", dest="date_from", metavar="DATE")
    p.add_argument("--to", dest="date_to", metavar="DATE", help="inclusive")
    p.add_argument("--bsn-prompt", action="store_true", help="search on a client's BSN")
    p.add_argument("--unmask", action="store_true", help="show the lines' BSNs (audited)")
    p.add_argument("--limit", type=int, default=DEFAULT_LIMIT, metavar=f"N (<= {MAX_LIMIT})")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_search)

    _register_bulk(commands)


def _fail(command: str, message: str, status: int = EXIT_FAILED) -> int:
    print(f"igo-gateway cases {command}: {message}", file=sys.stderr)
    return status


def _list(args: argparse.Namespace) -> int:
    query = CaseFilter(
        kinds=frozenset({CaseKind(args.kind)}) if args.kind else frozenset(),
        insurer=args.insurer,
        participant=args.participant,
        retourcode=args.retourcode,
        min_age_days=args.min_age_days,
        include_closed=args.all,
    )
    try:
        with admin_session(args.config) as session:
            queue = session.run.wait(session.service.queue(cli_actor(), query))
    except CliError as exc:
        return _fail("list", str(exc), exc.status)
    if args.json:
        result = {
            "counts": {k.value: n for k, n in queue.counts.items()},
            "cases": [case_json(c, queue.now) for c in queue.cases],
        }
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return EXIT_OK
    print("open: " + ", ".join(f"{KINDS[k].label} {n}" for k, n in queue.counts.items()))
    for case in queue.cases:
        facts = case.facts
        codes = ",".join(facts.retourcodes) or "-"
        print(
            f"{case.id}  {case.state.value:<11} {age_text(case.age(queue.now)):>8}  "
            f"insurer {facts.insurer or '-':<4}  participant {facts.participant or '-':<8}"
            f"  codes {codes}  {facts.filename or ''}"
        )
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    try:
        with admin_session(args.config) as session:
            view = session.run.wait(session.service.case(cli_actor(), args.case_id))
    except CliError as exc:
        return _fail("show", str(exc), exc.status)
    except LookupError:
        return _fail("show", f"no case {args.case_id}")
    if args.json:
        print(json.dumps(case_view_json(view), ensure_ascii=False, indent=2))
        return EXIT_OK
    case = view.case
    print(f"{case.id}: {view.spec.label} ({case.state.value})")
    print(f"  {view.spec.explanation}")
    for label, value in (
        ("file", case.facts.filename),
        ("standard", case.facts.standard),
        ("participant", case.facts.participant),
        ("insurer", case.facts.insurer),
        ("since", f"{case.facts.since:%Y-%m-%d %H:%M} UTC ({age_text(case.age(view.now))})"),
        ("summary", case.facts.summary),
        *case.facts.details.items(),
    ):
        if value:
            print(f"  {label}: {value}")
    for code, meaning in view.retourcodes:
        print(f"  retourcode {code}: {meaning}")
    if case.record is not None and case.record.reason:
        print(f"  {case.record.state.value} by {case.record.changed_by}: {case.record.reason}")
    for note in view.notes:
        print(f"  note {note.at:%Y-%m-%d %H:%M} {note.author}: {note.text}")
    for entry in view.history:
        print(
            f"  #{entry.seq} {entry.at:%Y-%m-%d %H:%M} {entry.actor} {entry.action} {entry.detail}"
        )
    print("  actions: " + (", ".join(a.value for a in view.actions) or "none"))
    return EXIT_OK


def _read_value(name: str) -> str:
    """A field's value from standard input: asked at a terminal, else one line."""
    if sys.stdin.isatty():
        return input(f"{name}: ")
    return sys.stdin.readline().rstrip("\r\n")


def _resolve(args: argparse.Namespace) -> int:
    action = CaseAction(args.action)
    fields = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name:
            return _fail("resolve", "--set wants FIELD=VALUE", EXIT_USAGE)
        if value == "-":
            value = _read_value(name.strip())
        fields[name.strip()] = value
    try:
        with admin_session(args.config) as session:
            case = session.run.wait(
                session.service.act(cli_actor(), args.case_id, action, args.reason, fields)
            )
    except CliError as exc:
        return _fail("resolve", str(exc), exc.status)
    except LookupError:
        return _fail("resolve", f"no case {args.case_id}")
    except ActionRefusedError as exc:
        return _fail("resolve", str(exc), exit_status(exc.kind))
    print(f"{case.id}: {action.value} done; the case is {case.state.value}")
    return EXIT_OK


def _read_bsn() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("BSN: ")
    return sys.stdin.readline().strip()


def _search(args: argparse.Namespace) -> int:
    try:
        query = SearchQuery(
            factuurnummer=args.factuurnummer,
            reference=args.reference,
            traceer_id=args.traceer_id,
            participant=args.participant,
            insurer=args.insurer,
            retourcode=args.retourcode,
            date_from=parse_day("date_from", args.date_from),
            date_to=parse_day("date_to", args.date_to),
            bsn=_read_bsn() if args.bsn_prompt else None,
        )
        with admin_session(args.config) as session:
            result = session.run.wait(
                session.service.search(cli_actor(), query, limit=args.limit, unmask=args.unmask)
            )
    except CliError as exc:
        return _fail("search", str(exc), exc.status)
    except SearchRefusedError as exc:
        return _fail("search", str(exc), exit_status(exc.kind))
    if args.json:
        print(json.dumps(search_result_json(result), ensure_ascii=False, indent=2))
        return EXIT_OK
    for hit in result.hits:
        what = hit.traceer_id + (f"#{hit.record_number}" if hit.record_number is not None else "")
        extra = [
            f"factuur {hit.factuurnummer}" if hit.factuurnummer else "",
            f"ref {hit.reference}" if hit.reference else "",
            f"codes {','.join(hit.retourcodes)}" if hit.retourcodes else "",
            f"pregnancy {hit.pregnancy}" if hit.pregnancy else "",
            f"bsn {hit.bsn}" if hit.bsn else "",
            f"case {hit.case_id}" if hit.case_id else "",
        ]
        print(
            f"{hit.on.isoformat()}  {hit.kind.value:<8} {what}  "
            f"participant {hit.participant or '-'}  insurer {hit.insurer or '-'}  "
            f"{hit.state}{' / ' + hit.outcome if hit.outcome else ''}  "
            + "  ".join(e for e in extra if e)
        )
    more = "; more matched: narrow the search" if result.more else ""
    print(f"{len(result.hits)} hits{more}")
    return EXIT_OK


# --- bulk actions ----------------------------------------------------------------------------


def _register_bulk(commands: Any) -> None:
    p = commands.add_parser(
        "bulk",
        help="one action on every case of a filter, as a batch",
        description="Shows exactly which cases the action will be done to (and asks to go on, "
        "unless --yes), then makes a batch of them. A running gateway does the batch in the "
        "background, one case at a time, each in its own transaction with its own audit "
        "entry; --run does it here instead. A case the action no longer fits by then is "
        "skipped. Filters as for 'list'.",
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument("--action", required=True, choices=[a.value for a in CaseAction])
    p.add_argument("--reason", default="", help="one reason for all (no BSN or name)")
    _add_filter_args(p)
    p.add_argument("--yes", action="store_true", help="do not ask; make the batch")
    p.add_argument("--run", action="store_true", help="do the batch here, to its end")
    p.add_argument("--json", action="store_true", help="the preview and batch as JSON")
    p.set_defaults(handler=_bulk)

    p = commands.add_parser("batches", help="the bulk-action batches, newest first")
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_batches)

    p = commands.add_parser(
        "batch", help="one batch: its progress; pause, resume, cancel or run it"
    )
    p.add_argument("batch_id", type=int, metavar="ID")
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    steer = p.add_mutually_exclusive_group()
    for control in BatchControl:
        steer.add_argument(
            f"--{control.value}", dest="control", action="store_const", const=control.value
        )
    steer.add_argument("--run", action="store_true", help="do its remaining cases here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_batch, control=None)


def _add_filter_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", choices=[k.value for k in CaseKind])
    p.add_argument("--insurer", metavar="UZOVI")
    p.add_argument("--participant", metavar="AGB")
    p.add_argument("--retourcode", metavar="CODE")
    p.add_argument("--min-age-days", type=int, metavar="N")
    p.add_argument("--max-age-days", type=int, metavar="N")
    p.add_argument("--all", action="store_true", help="also cases written off or resolved")


def _query(args: argparse.Namespace) -> CaseFilter:
    return CaseFilter(
        kinds=frozenset({CaseKind(args.kind)}) if args.kind else frozenset(),
        insurer=args.insurer,
        participant=args.participant,
        retourcode=args.retourcode,
        min_age_days=args.min_age_days,
        max_age_days=args.max_age_days,
        include_closed=args.all,
    )


def _bulk_service(session: AdminSession) -> BulkService:
    return session.builder.bulk_service()


def _print_preview(preview: BatchPreview) -> None:
    kinds = ", ".join(f"{KINDS[k].label} {n}" for k, n in preview.kinds.items()) or "none"
    print(f"{preview.action.value} on {len(preview.cases)} cases ({kinds})")
    if preview.left_out:
        print(f"left out: {preview.left_out} cases of the filter the action does not fit")
    for case in preview.cases:
        facts = case.facts
        print(
            f"  {case.id}  {age_text(case.age(preview.now)):>8}  insurer {facts.insurer or '-':<4}"
            f"  participant {facts.participant or '-':<8}  {facts.filename or ''}"
        )
    print(bulk_consequence(preview.action, len(preview.cases), preview.cases))


def _print_batch(batch: Batch) -> None:
    p = batch.progress
    print(
        f"batch {batch.id}: {batch.action.value}, {batch.state.value}; done {p.done}, "
        f"skipped {p.skipped}, failed {p.failed}, remaining {p.remaining} of {p.total}"
    )
    for item in batch.items:
        outcome = item.outcome.value if item.outcome is not None else "to do"
        print(f"  {item.case_id}  {outcome}{'  ' + item.detail if item.detail else ''}")


def _confirmed() -> bool:
    try:
        answer = input("Make this batch? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes", "j", "ja")


def _run_batch(session: AdminSession, bulk: BulkService, batch_id: int) -> Batch:
    """Do a batch's remaining cases here, until it is no longer running (a runner does the
    running batches oldest first: an older one still running is done first)."""
    runner = BatchRunner(bulk)
    while True:
        batch = session.run.wait(bulk.batch(cli_actor(), batch_id))
        if batch.state is not BatchState.RUNNING:
            return batch
        if session.run.wait(runner.run_once()) == 0:
            return session.run.wait(bulk.batch(cli_actor(), batch_id))


def _bulk(args: argparse.Namespace) -> int:
    action, actor = CaseAction(args.action), cli_actor()
    query = _query(args)
    try:
        with admin_session(args.config) as session:
            bulk = _bulk_service(session)
            preview = session.run.wait(bulk.preview(actor, query, action, args.reason))
            if args.json and not args.yes:
                print(json.dumps(preview_json(preview), ensure_ascii=False, indent=2))
                return EXIT_OK
            if not args.json:
                _print_preview(preview)
            if not preview.cases:
                return _fail("bulk", "no case of the filter fits the action")
            if not args.yes and not _confirmed():
                print("nothing done")
                return EXIT_FAILED
            batch = session.run.wait(bulk.create(actor, query, action, args.reason, preview.digest))
            if args.run:
                batch = _run_batch(session, bulk, batch.id)
    except CliError as exc:
        return _fail("bulk", str(exc), exc.status)
    except ActionRefusedError as exc:
        return _fail("bulk", str(exc), exit_status(exc.kind))
    if args.json:
        print(json.dumps(batch_json(batch, items=args.run), ensure_ascii=False, indent=2))
    else:
        _print_batch(batch)
        if not args.run:
            print("the running gateway does it in the background (or: cases batch ID --run)")
    return EXIT_OK


def _batches(args: argparse.Namespace) -> int:
    try:
        with admin_session(args.config) as session:
            batches = session.run.wait(_bulk_service(session).list(cli_actor()))
    except CliError as exc:
        return _fail("batches", str(exc), exc.status)
    if args.json:
        print(json.dumps({"batches": [batch_json(b) for b in batches]}, indent=2))
        return EXIT_OK
    for batch in batches:
        _print_batch(batch)
    return EXIT_OK


def _batch(args: argparse.Namespace) -> int:
    actor = cli_actor()
    try:
        with admin_session(args.config) as session:
            bulk = _bulk_service(session)
            if args.control is not None:
                session.run.wait(bulk.control(actor, args.batch_id, BatchControl(args.control)))
            batch = (
                _run_batch(session, bulk, args.batch_id)
                if args.run
                else session.run.wait(bulk.batch(actor, args.batch_id))
            )
    except CliError as exc:
        return _fail("batch", str(exc), exc.status)
    except LookupError:
        return _fail("batch", f"no batch {args.batch_id}")
    except (ActionRefusedError, NotAllowedError) as exc:
        return _fail("batch", str(exc))
    if args.json:
        print(json.dumps(batch_json(batch, items=True), ensure_ascii=False, indent=2))
    else:
        _print_batch(batch)
    return EXIT_OK
