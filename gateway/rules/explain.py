"""Every decision in words an IGO administrator understands, and as JSON.

BSNs are masked (the last three digits shown) unless asked otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.masking import TEXT_FILL, mask_value
from gateway.rules.catalogue import Catalogue
from gateway.rules.model import Decision, line_key

__all__ = ["explain_json", "explain_text"]

_KIND = {
    "integral": "integral claim",
    "monodisciplinary": "monodisciplinary",
    "bundle-broken": "bundle broken",
    "waiting": "waiting",
}


def _mask(bsn: str, unmask: bool) -> str:
    return bsn if unmask else mask_value(bsn, fill=TEXT_FILL)


def explain_json(decision: Decision, *, unmask: bool = False) -> dict[str, Any]:
    return {
        "pregnancy": decision.pregnancy,
        "phase": decision.phase.value if decision.phase else None,
        "insurer": decision.insurer,
        "decision": decision.kind.value,
        "rule": decision.rule,
        "why": list(decision.reasons),
        "waitingFor": decision.waiting_for,
        "until": decision.until.isoformat() if decision.until else None,
        "claims": [
            {
                "prestatie": c.prestatie,
                "name": c.name,
                "amount": c.amount,
                "from": c.first_day.isoformat(),
                "to": c.last_day.isoformat(),
                "absorbs": [f"{t}#{n}" for t, n in c.absorbs],
                "credits": c.credits,
            }
            for c in decision.claims
        ],
        "lines": [
            {
                "line": f"{line.traceer_id}#{line.record_number}",
                "participant": line.participant,
                "standard": line.standard,
                "prestatiecode": line.prestatiecode,
                "date": line.prestatie_date.isoformat(),
                "amount": line.amount,
                "reference": line.reference,
                "bsn": _mask(line.bsn, unmask),
                "place": decision.placements[line_key(line)].place.value,
                "reason": decision.placements[line_key(line)].reason,
                "retourcode": decision.placements[line_key(line)].code,
            }
            for line in decision.lines
        ],
    }


def explain_text(
    decisions: Sequence[Decision], catalogue: Catalogue, *, unmask: bool = False
) -> str:
    out: list[str] = []
    if catalogue.is_example:
        out += ["(example catalogue: its integral prestatie codes are placeholders)", ""]
    for d in decisions:
        phase = d.phase.value if d.phase else "no phase (code not in the mapping)"
        out.append(f"pregnancy {d.pregnancy} · {phase} · insurer {d.insurer}")
        out.append(f"  decision: {_KIND[d.kind.value]} — rule: {d.rule}")
        for reason in d.reasons:
            out.append(f"    because {reason}")
        if d.waiting_for:
            until = f" (not before {d.until.isoformat()})" if d.until else ""
            out.append(f"  waits for {d.waiting_for}{until}")
        for c in d.claims:
            euro = f"{c.amount / 100:,.2f}"
            credit = f", credits {c.credits}" if c.credits else ""
            out.append(
                f"  claim {c.prestatie} {c.name}: EUR {euro}, {c.first_day} – {c.last_day}"
                f", {len(c.absorbs)} line(s){credit}"
            )
        out.append("  lines:")
        for line in sorted(d.lines, key=lambda x: (x.prestatie_date, x.record_number)):
            placement = d.placements[line_key(line)]
            amount = f"{line.amount / 100:,.2f}" if line.amount is not None else "-"
            code = f" [{placement.code}]" if placement.code else ""
            out.append(
                f"    {line.prestatie_date} {line.participant} {line.standard} "
                f"{line.prestatiecode} EUR {amount} ref {line.reference} "
                f"BSN {_mask(line.bsn, unmask)} → {placement.place.value}{code}: "
                f"{placement.reason}"
            )
        out.append("")
    return "\n".join(out).rstrip() + "\n"
