"""Small builders of declaration files for tests (synthetic data only)."""

from __future__ import annotations

from datetime import date

from gateway.ei import FieldValue, FileWriter, LayoutRegistry

__all__ = ["BSNS", "INSURED", "header", "insured", "kz301", "prestatie", "vk301", "zh308"]

# Synthetic BSNs that pass the eleven-proof (with a non-zero sum); no real person's.
BSNS = ("111222333", "123456782", "999990020", "999999990")


# The synthetic 02 record every test file carries (no real person).
INSURED: dict[str, FieldValue] = {
    "birth_date": date(1994, 5, 6),
    "gender": "2",
    "name_code_1": "1",
    "surname": "Testpersoon",
    "initials": "A",
    "house_number": 12,
    "deceased": "2",
}


def header(
    w: FileWriter,
    *,
    agb: str,
    invoice: str,
    uzovi: str = "3311",
    code_field: str = "praktijk_code",
    payee: str = "03",
    period: tuple[date, date] = (date(2026, 1, 1), date(2026, 1, 31)),
    invoice_date: date = date(2026, 2, 2),
) -> None:
    """The 01 record of a declaration of ``agb`` (by default a praktijk, paid to it)."""
    w.header(
        message_kind="P",
        uzovi=uzovi,
        payee=payee,
        period_begin=period[0],
        period_end=period[1],
        invoice_number=invoice,
        invoice_date=invoice_date,
        currency="EUR",
        **{code_field: agb},
    )


def insured(w: FileWriter, bsn: str, uzovi: str = "3311") -> None:
    """The synthetic woman's 02 record with ``bsn``."""
    w.insured(bsn=bsn, uzovi=uzovi, **INSURED)


def prestatie(
    w: FileWriter,
    *,
    bsn: str,
    day: date,
    reference: str,
    performer: str,
    code: str = "196202",
    codelijst: str = "044",
    tariff: int = 12000,
    uzovi: str = "3311",
) -> None:
    """A 04 record of the 310-position frame: one prestatie at ``tariff``."""
    w.prestatie(
        bsn=bsn,
        uzovi=uzovi,
        forwarding_allowed="1",
        prestatie_date=day,
        prestatiecodelijst=codelijst,
        prestatiecode=code,
        performer_code=performer,
        tariff=tariff,
        number_performed=1,
        calculated_amount=tariff,
        declared_amount=tariff,
        reference=reference,
    )


def kz301(
    registry: LayoutRegistry,
    *,
    agb: str = "33001234",
    invoice: str = "F2026-0001",
    lines: int = 1,
    bsn: str = BSNS[0],
    comment: str | None = None,
) -> bytes:
    """A valid KZ301 kraamzorg declaration of ``agb`` (paid to the praktijk code)."""
    w = FileWriter(registry.by_standard("KZ301"))
    header(w, agb=agb, invoice=invoice)
    insured(w, bsn)
    for i in range(lines):
        prestatie(
            w,
            bsn=bsn,
            day=date(2026, 1, 10 + i % 15),
            reference=f"{invoice}-{i + 1}",
            performer=agb,
        )
        if comment is not None:
            w.comment(comment)
    return w.finish()


def vk301(
    registry: LayoutRegistry,
    *,
    agb: str = "02001234",
    invoice: str = "V2026-0001",
    lines: int = 1,
    bsn: str = BSNS[0],
) -> bytes:
    """A valid midwifery (VK301) declaration of practice ``agb``: ``lines`` prestaties."""
    w = FileWriter(registry.by_standard("VK301"))
    header(
        w,
        agb=agb,
        invoice=invoice,
        period=(date(2026, 1, 1), date(2026, 8, 31)),
        invoice_date=date(2026, 9, 7),
    )
    insured(w, bsn)
    for i in range(lines):
        prestatie(
            w,
            bsn=bsn,
            day=date(2026, 1 + i % 8, 5),
            reference=f"{invoice}-{i + 1}",
            performer="02012345",
            code="1101",  # volledige prenatale zorg (list 032)
            codelijst="032",
            tariff=85000,
        )
    return w.finish()


def zh308(
    registry: LayoutRegistry,
    *,
    agb: str = "06001234",
    invoice: str = "Z2026-0001",
    lines: int = 1,
    bsn: str = BSNS[0],
    activities: int = 1,
    amount: int = 289557,
    version: str = "08",
) -> bytes:
    """A valid hospital (ZH308) declaration of institution ``agb``: ``lines`` DBCs, each
    with its 06 tariefrecord declaring ``amount`` (the hospital's money is on the 06, not
    the 04) and, in v9.0 (``version="09"``), ``activities`` zorgactiviteit (16) records."""
    layout = registry.by_standard("ZH308", version)
    w = FileWriter(layout)
    header(
        w,
        agb=agb,
        invoice=invoice,
        code_field="instelling_code",
        payee="04",
        period=(date(2026, 7, 1), date(2026, 7, 31)),
        invoice_date=date(2026, 8, 14),
    )
    insured(w, bsn)
    for i in range(lines):
        day = date(2026, 7, 1 + i % 28)
        values: dict[str, FieldValue] = {
            "bsn": bsn,
            "uzovi": "3311",
            "forwarding_allowed": "1",
            "prestatiecodelijst": "041",
            "prestatiecode": "ZZ0001",  # placeholder declaratiecode
            "prestatie_date": day,
            "prestatie_end_date": date(2026, 7, 2 + i % 28),
            "prestatie_sequence": 1,
            "referrer_kind": "02",
            "number_performed": 1,
            "instelling_code": agb,
            "debit_credit": "D",
            "reference": f"{invoice}-{i + 1}",
        }
        if layout.record("04").has("birth_date"):
            values["birth_date"] = date(1994, 5, 6)
        if layout.record("04").has("zorgactiviteit_code"):
            values["zorgactiviteit_code"] = "190037"  # poliklinische bevalling, med. indicatie
        if layout.record("04").has("redeclaration_code"):
            values["redeclaration_code"] = "01"
        w.prestatie(**values)
        w.detail(
            "06",
            {
                "bsn": bsn,
                "uzovi": "3311",
                "prestatiecodelijst": "041",
                "prestatiecode": "ZZ0001",  # placeholder declaratiecode
                "prestatie_date": day,
                "prestatie_sequence": 1,
                "tariff": amount,
                "calculated_amount": amount,
                "declared_amount": amount,
                "reference": f"{invoice}-{i + 1}-T1",
            },
        )
        if "16" in layout.records:
            for j in range(activities):
                w.detail("16", {"content": f"190011 202607{1 + i % 28:02d} {j + 1:04d}"})
    return w.finish()
