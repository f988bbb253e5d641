"""Small builders of declaration files for tests (synthetic data only)."""

from __future__ import annotations

from datetime import date

from gateway.ei import FileWriter, LayoutRegistry

# Synthetic BSNs that pass the eleven-proof; no real person's.
BSNS = ("111222333", "123456782", "100000009", "999999990")


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
