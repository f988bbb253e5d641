"""How the simulated insurer judges one declaration file: pure, bytes in, retour out.

First the codec's intake checks (those of a real insurer's intake): a file that fails them,
that is not a declaration, that is addressed to another insurer, or that the rules reject
on purpose gets a whole-file technical rejection — 0001 in the 01 record, then the reason's
own code, and only the 01 and 99 records. Otherwise every prestatie line is judged by the
rules of :class:`~adapters.insurer_sim.config.SimRules`, in this order, each adding its
code (at most three): not insured 0320 (also for a member number the insurer does not
know for that BSN), already declared 0587, tariff not as agreed 0611.
A line without codes is granted its declared amount. The answer is a retour file in the
retour standard of the declaration's standard (KZ302 for KZ301, ZH309 for ZH308, …).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from adapters.insurer_sim.config import SimRules
from gateway.ei import (
    FieldValue,
    Layout,
    LayoutRegistry,
    Outcome,
    Record,
    build_retour,
    build_technical_rejection,
    line_amount,
    prestatie_groups,
    records_of,
    validate_bytes,
)

__all__ = [
    "DEFAULT_RETOUR_STANDARD",
    "NOT_INSURED",
    "OVERLAP",
    "TECHNICAL",
    "WRONG_TARIFF",
    "Judgement",
    "judge",
]

TECHNICAL = "0001"
NOT_INSURED = "0320"
OVERLAP = "0587"
WRONG_TARIFF = "0611"
WRONG_STANDARD = "0010"
WRONG_UZOVI = "0018"
# The retour standard of a file whose own standard cannot be read (the IGO's claims are KZ301).
DEFAULT_RETOUR_STANDARD = "KZ302"


@dataclass(frozen=True, slots=True)
class Judgement:
    """The insurer's answer to one file.

    ``accepted`` is False for a whole-file rejection (``codes`` then holds 0001 and the
    reason); otherwise the file is a claim with ``lines`` prestatie lines of which
    ``granted_lines`` were granted, ``granted_total`` eurocents in all.
    """

    retour: bytes
    retour_standard: str
    standard: str | None
    invoice_number: str | None
    accepted: bool
    codes: tuple[str, ...] = ()
    lines: int = 0
    granted_lines: int = 0
    granted_total: int = 0
    line_codes: tuple[str, ...] = ()  # every code given to a line, for the claims overview

    @property
    def rejected_lines(self) -> int:
        return self.lines - self.granted_lines


def judge(
    registry: LayoutRegistry,
    payload: bytes,
    rules: SimRules,
    *,
    uzovi: str,
    insurer_reference: str,
    today: date,
    sender: str | None = None,
) -> Judgement:
    """The retour for ``payload`` (see the module docs). Never raises on bad input."""
    result = validate_bytes(registry, payload, max_findings=20)
    layout = result.layout
    header = result.header

    def reject(retour: Layout, reason: str | None, standard: str | None) -> Judgement:
        extra = (reason,) if reason and reason != TECHNICAL else ()
        data = build_technical_rejection(
            retour,
            TECHNICAL,
            extra_codes=extra,
            header=header,
            insurer_reference=insurer_reference,
            retour_date=today,
            header_values=_fallback_header(sender, today),
        )
        return Judgement(
            retour=data,
            retour_standard=retour.standard,
            standard=standard,
            invoice_number=invoice,
            accepted=False,
            codes=(TECHNICAL, *extra),
        )

    invoice = _text(header, "invoice_number")
    if layout is None or layout.kind != "declaration" or layout.retour is None:
        fallback = registry.by_standard(DEFAULT_RETOUR_STANDARD)
        reason = result.findings[0].retourcode if result.findings else WRONG_STANDARD
        return reject(fallback, reason, layout.standard if layout else None)
    retour_layout = registry.retour_of(layout)
    if not result.valid:
        return reject(retour_layout, result.findings[0].retourcode, layout.standard)
    if rules.reject_all or (invoice is not None and invoice in rules.reject_invoices):
        return reject(retour_layout, None, layout.standard)
    addressed = _text(header, "uzovi")
    if addressed is not None and addressed.strip("0") and addressed != uzovi:
        return reject(retour_layout, WRONG_UZOVI, layout.standard)

    records = records_of(registry, payload)
    # A line's amount: its own, or (ZH308) that of the 06 tariefrecords under it.
    declared = {
        line.number_value("record_id"): line_amount(line, children, "declared_amount") or 0
        for line, children in prestatie_groups(records)
    }
    outcomes: dict[int, Outcome] = {}
    lines = granted_lines = granted_total = 0
    given: list[str] = []
    unknown_member = False  # the current 02 record's member number is not the insurer's
    for rec in records:
        if rec.layout.position != "detail":
            continue
        bsn = _text(rec, "bsn")
        if rec.type == "02":
            known = rules.members.get(bsn or "")
            unknown_member = known is not None and _text(rec, "member_number") != known
            if bsn in rules.not_insured or unknown_member:
                outcomes[rec.number_value("record_id")] = Outcome(codes=(NOT_INSURED,))
            continue
        if not rec.layout.has("prestatiecode") or rec.layout.parent == "04":
            continue  # a 06 tariefrecord is answered with its 04
        lines += 1
        outcome = _judge_line(
            rec,
            bsn or "",
            rules,
            unknown_member=unknown_member,
            declared=declared.get(rec.number_value("record_id"), 0),
        )
        outcomes[rec.number_value("record_id")] = outcome
        given += outcome.codes
        if not outcome.codes:
            granted_lines += 1
            granted_total += outcome.granted
    retour = build_retour(
        retour_layout,
        records,
        outcomes,
        insurer_reference=insurer_reference,
        retour_date=today,
    )
    return Judgement(
        retour=retour,
        retour_standard=retour_layout.standard,
        standard=layout.standard,
        invoice_number=invoice,
        accepted=True,
        lines=lines,
        granted_lines=granted_lines,
        granted_total=granted_total,
        line_codes=tuple(given),
    )


def _fallback_header(sender: str | None, today: date) -> dict[str, FieldValue]:
    """01 values for a rejection of a file whose own 01 could not be read."""
    values: dict[str, FieldValue] = {
        "message_kind": "P",
        "payee": "03",
        "period_begin": today,
        "period_end": today,
        "invoice_number": "ONBEKEND",
        "invoice_date": today,
        "currency": "EUR",
    }
    if sender is not None and len(sender) == 8 and sender.isdigit():
        values["praktijk_code"] = sender
    return values


def _judge_line(
    rec: Record, bsn: str, rules: SimRules, *, unknown_member: bool, declared: int
) -> Outcome:
    codes: list[str] = []
    prestatie_date = rec.get("prestatie_date")
    on = prestatie_date if isinstance(prestatie_date, date) else None
    if bsn in rules.not_insured or unknown_member:
        codes.append(NOT_INSURED)
    if any(rule.matches(bsn, on) for rule in rules.overlap):
        codes.append(OVERLAP)
    calculated: int | None = None
    agreed = rules.tariffs.get(_text(rec, "prestatiecode") or "")
    if agreed is not None and rec.layout.has("tariff"):
        tariff = rec.number_value("tariff")
        if tariff != agreed:
            codes.append(WRONG_TARIFF)
            number = (
                rec.number_value("number_performed") if rec.layout.has("number_performed") else 1
            )
            calculated = agreed * number
    if codes:
        return Outcome(granted=0, calculated=calculated, codes=tuple(codes))
    return Outcome(granted=declared)


def _text(rec: Record | None, name: str) -> str | None:
    if rec is None or not rec.layout.has(name):
        return None
    return rec.text(name).strip() or None
