"""``igo-gateway settlement``: per participant and period, every line, what was granted for
it, what the IGO owes the participant, and what is still open — as CSV or JSON."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

from gateway.cli.bundle import run_with_store
from gateway.config import ConfigError, load_config
from gateway.crypto import CryptoError
from gateway.ports.messages import StoreError
from gateway.ports.outcomes import SettlementRow

__all__ = ["register", "settlement_json"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
COLUMNS = (
    "participant",
    "upload",
    "record",
    "reference",
    "date",
    "prestatiecode",
    "declared",
    "state",
    "outcome",
    "granted",
    "retourcodes",
    "integral_line",
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "settlement",
        help="what the IGO owes each participant for a period (CSV or JSON)",
        description="Every line of the period (by prestatie date) with its outcome and the "
        "amount granted to the participant, and per participant the totals: declared, "
        "granted (net of credits), still open, paid by the insurer itself (lines forwarded "
        "under the participant's own AGB code) and what the IGO owes (the rest).",
    )
    p.add_argument("--config", type=Path, required=True, metavar="FILE")
    p.add_argument("--participant", metavar="AGB", help="only this participant")
    p.add_argument("--from", dest="start", type=date.fromisoformat, required=True, metavar="DAY")
    p.add_argument("--to", dest="end", type=date.fromisoformat, required=True, metavar="DAY")
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.set_defaults(handler=_settlement)


def _row(r: SettlementRow) -> dict[str, Any]:
    line = r.line
    return {
        "participant": line.participant,
        "upload": line.traceer_id,
        "record": line.record_number,
        "reference": line.reference,
        "date": line.prestatie_date.isoformat(),
        "prestatiecode": line.prestatiecode,
        "declared": line.amount,
        "state": r.state,
        "outcome": r.outcome,
        "granted": r.granted,
        "retourcodes": " ".join(r.codes),
        "integral_line": r.claim_reference,
    }


def settlement_json(rows: list[SettlementRow], start: date, end: date) -> dict[str, Any]:
    """Per participant: lines, declared and granted (net of credits: a credit line's answer
    is the reversed grant), still open, what the insurer paid the participant itself (lines
    forwarded under its own AGB code, answered in the insurer's retour passed on) and what
    the IGO owes it (the rest of what was granted)."""
    totals: dict[str, dict[str, int]] = defaultdict(
        lambda: {"lines": 0, "declared": 0, "granted": 0, "open": 0, "paidByInsurer": 0}
    )
    for r in rows:
        t = totals[r.line.participant]
        t["lines"] += 1
        t["declared"] += r.line.amount or 0
        t["granted"] += r.granted or 0
        t["open"] += r.outcome is None
        if r.state == "forwarded":
            t["paidByInsurer"] += r.granted or 0
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "participants": [
            {"participant": agb, **values, "owed": values["granted"] - values["paidByInsurer"]}
            for agb, values in sorted(totals.items())
        ],
        "lines": [_row(r) for r in rows],
    }


def _settlement(args: argparse.Namespace) -> int:
    if args.end < args.start:
        print("igo-gateway settlement: --to is before --from", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"igo-gateway settlement: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        rows: list[SettlementRow] = run_with_store(
            config, lambda store: store.outcomes.settlement(args.participant, args.start, args.end)
        )
    except (StoreError, CryptoError) as exc:
        print(f"igo-gateway settlement: {exc}", file=sys.stderr)
        return EXIT_FAILED
    report = settlement_json(rows, args.start, args.end)
    if args.format == "json":
        print(json.dumps(report, ensure_ascii=False))
        return EXIT_OK
    writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(report["lines"])
    return EXIT_OK
