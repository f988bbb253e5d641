"""Small builders of declaration files for tests (synthetic data only)."""

from __future__ import annotations

from datetime import date

from gateway.ei import FileWriter, LayoutRegistry

__all__ = ["BSNS", "kz301", "vk301", "zh308"]

# Synthetic BSNs that pass the eleven-proof (with a non-zero sum); no real person's.
BSNS = ("111222333", "123456782", "999990020", "999999990")


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
    w.header(
        message_kind="P",
        uzovi="3311",
        praktijk_code=agb,
        payee="03",
        period_begin=date(2026, 1, 1),
        period_end=date(2026, 1, 31),
        invoice_number=invoice,
        invoice_date=date(2026, 2, 2),
        currency="EUR",
    )
    w.insured(
        bsn=bsn,
        uzovi="3311",
        birth_date=date(1994, 5, 6),
        gender="2",
        name_code_1="1",
        surname="Testpersoon",
        initials="A",
        house_number=12,
        deceased="2",
    )
    for i in range(lines):
        w.prestatie(
            bsn=bsn,
            uzovi="3311",
            forwarding_allowed="1",
            prestatie_date=date(2026, 1, 10 + i % 15),
            prestatiecodelijst="044",
            prestatiecode="196202",
            performer_code=agb,
            tariff=12000,
            number_performed=1,
            calculated_amount=12000,
            declared_amount=12000,
            reference=f"{invoice}-{i + 1}",
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
    w.header(
        message_kind="P",
        uzovi="3311",
        praktijk_code=agb,
        payee="03",
        period_begin=date(2026, 1, 1),
        period_end=date(2026, 8, 31),
        invoice_number=invoice,
        invoice_date=date(2026, 9, 7),
        currency="EUR",
    )
    w.insured(
        bsn=bsn,
        uzovi="3311",
        birth_date=date(1994, 5, 6),
        gender="2",
        name_code_1="1",
        surname="Testpersoon",
        initials="A",
        house_number=12,
        deceased="2",
    )
    for i in range(lines):
        w.prestatie(
            bsn=bsn,
            uzovi="3311",
            forwarding_allowed="1",
            prestatie_date=date(2026, 1 + i % 8, 5),
            prestatiecodelijst="045",
            prestatiecode="190001",
            performer_code="02012345",
            tariff=85000,
            number_performed=1,
            calculated_amount=85000,
            declared_amount=85000,
            reference=f"{invoice}-{i + 1}",
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
) -> bytes:
    """A valid hospital (ZH308) declaration of institution ``agb``: ``lines`` DBCs, each
    with ``activities`` zorgactiviteit (16) records."""
    w = FileWriter(registry.by_standard("ZH308"))
    w.header(
        message_kind="P",
        uzovi="3311",
        instelling_code=agb,
        payee="04",
        period_begin=date(2026, 7, 1),
        period_end=date(2026, 7, 31),
        invoice_number=invoice,
        invoice_date=date(2026, 8, 14),
        currency="EUR",
    )
    w.insured(
        bsn=bsn,
        uzovi="3311",
        birth_date=date(1994, 5, 6),
        gender="2",
        name_code_1="1",
        surname="Testpersoon",
        initials="A",
        house_number=12,
        deceased="2",
    )
    for i in range(lines):
        w.prestatie(
            bsn=bsn,
            uzovi="3311",
            forwarding_allowed="1",
            birth_date=date(1994, 5, 6),
            prestatiecodelijst="020",
            prestatiecode="15C438",
            prestatie_date=date(2026, 7, 1 + i % 28),
            prestatie_end_date=date(2026, 7, 2 + i % 28),
            prestatie_sequence=1,
            referrer_kind="02",
            number_performed=1,
            redeclaration_code="01",
            instelling_code=agb,
            debit_credit="D",
            reference=f"{invoice}-{i + 1}",
        )
        for j in range(activities):
            w.detail("16", {"content": f"190011 202607{1 + i % 28:02d} {j + 1:04d}"})
    return w.finish()
