"""Integral claim files: KZ301 files declared by the IGO, one per insurer and run.

Pure: claim lines in, a file and its provenance out. The IGO's AGB code is the praktijk
code and the payee; every claim line is a 04 record at the contract price (a credit line
with a negative amount naming the line it credits); each woman's 02 record repeats the one
her own providers sent (the caller passes those values in, by BSN). A credit and a debit of
the same prestatie, amount and date in one file cancel out and are left out both (a file
must not hold them, retourcode 8062); when the date differs (the correction removed the
care that dated the line) both go out: the credit with the old date, the debit with the
new one. The caller gives the factuurnummer (unique per payee) and
checks the file with the codec's Validator before sending.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from gateway.ei import FieldValue, FileWriter, LayoutRegistry
from gateway.rules.catalogue import Catalogue, Phase
from gateway.rules.model import ClaimLine, LineKey

__all__ = ["ClaimFile", "ClaimLink", "PlannedLine", "build_claim_file"]

STANDARD = "KZ301"
_INSURED_FIELDS = (
    "member_number",
    "patient_number",
    "gender",
    "name_code_1",
    "surname",
    "prefix",
    "initials",
    "postcode",
    "house_number",
    "house_number_addition",
    "country",
    "deceased",
)


@dataclass(frozen=True, slots=True)
class PlannedLine:
    """A claim line with where it belongs."""

    pregnancy: str
    phase: Phase
    line: ClaimLine


@dataclass(frozen=True, slots=True)
class ClaimLink:
    """Provenance of one integral line of a file: factuurnummer, NUM040 and reference, and
    the original lines it absorbed."""

    invoice_number: str
    record_number: int
    reference: str
    pregnancy: str
    phase: Phase
    prestatie: str
    amount: int
    absorbs: tuple[LineKey, ...]
    credits: str | None
    first_day: date | None = None
    last_day: date | None = None


@dataclass(frozen=True)
class ClaimFile:
    insurer: str
    invoice_number: str
    payload: bytes
    links: tuple[ClaimLink, ...]

    @property
    def total(self) -> int:
        return sum(link.amount for link in self.links)


def _without_cancelling_pairs(planned: Sequence[PlannedLine]) -> list[PlannedLine]:
    kept = list(planned)
    for credit in [p for p in planned if p.line.amount < 0]:
        twin = next(
            (
                p
                for p in kept
                if p is not credit
                and p.pregnancy == credit.pregnancy
                and p.line.prestatie == credit.line.prestatie
                and p.line.amount == -credit.line.amount
                and p.line.first_day == credit.line.first_day
            ),
            None,
        )
        if twin is not None and credit in kept:
            kept.remove(twin)
            kept.remove(credit)
    return kept


def build_claim_file(
    planned: Sequence[PlannedLine],
    *,
    registry: LayoutRegistry,
    catalogue: Catalogue,
    igo_agb: str,
    insurer: str,
    invoice_number: str,
    invoice_date: date,
    insured: Mapping[str, Mapping[str, FieldValue]],
) -> ClaimFile | None:
    """The claim file for ``planned`` (None when nothing is left to claim)."""
    lines = _without_cancelling_pairs(planned)
    if not lines:
        return None
    writer = FileWriter(registry.by_standard(STANDARD))
    writer.header(
        message_kind="P",
        uzovi=insurer,
        praktijk_code=igo_agb,
        payee="03",
        period_begin=min(p.line.first_day for p in lines),
        period_end=max(p.line.last_day for p in lines),
        invoice_number=invoice_number,
        invoice_date=invoice_date,
        currency="EUR",
    )
    links: list[ClaimLink] = []
    by_woman: dict[str, list[PlannedLine]] = {}
    for p in lines:
        by_woman.setdefault(p.line.bsn, []).append(p)
    for bsn, own in by_woman.items():
        values = insured.get(bsn, {})
        writer.insured(
            bsn=bsn,
            uzovi=insurer,
            birth_date=own[0].line.birth_date,
            **{name: values[name] for name in _INSURED_FIELDS if values.get(name) is not None},
        )
        for p in own:
            line = p.line
            number = writer.next_record_id
            reference = f"{invoice_number}-{number}"
            writer.prestatie(
                bsn=bsn,
                uzovi=insurer,
                forwarding_allowed="1",
                prestatie_date=line.first_day,
                prestatiecodelijst=catalogue.codelijst,
                prestatiecode=line.prestatie,
                performer_code=igo_agb,
                tariff=abs(line.amount),
                number_performed=1,
                calculated_amount=line.amount,
                declared_amount=line.amount,
                reference=reference,
                previous_reference=line.credits,
            )
            links.append(
                ClaimLink(
                    invoice_number=invoice_number,
                    record_number=number,
                    reference=reference,
                    pregnancy=p.pregnancy,
                    phase=p.phase,
                    prestatie=line.prestatie,
                    amount=line.amount,
                    absorbs=line.absorbs,
                    credits=line.credits,
                    first_day=line.first_day,
                    last_day=line.last_day,
                )
            )
    return ClaimFile(insurer, invoice_number, writer.finish(), tuple(links))
