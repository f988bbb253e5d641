"""Example cases in a store, one of each kind that exists today, made of synthetic data
(no real person's numbers): for trying the admin site (:mod:`adapters.admin.devserver`)
and for its tests.

* an upload of kraamzorg 33001234 rejected at intake (trailer total wrong, retourcode
  0040), with a comment record — the free text an EPD controls;
* an integral claim for insurer 3311 parked after failed deliveries;
* a retour from insurer 3311 that answers no file the gateway sent.

Seeding is idempotent (fixed idempotency keys): seeding the same ``tag`` again changes
nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from adapters.storage import SqlMessageStore
from gateway.ei import FileWriter, LayoutRegistry
from gateway.loading import describe
from gateway.ports.messages import Direction, MessageStatus, NewMessage, NewStatus

__all__ = ["DEMO_BSN", "SeededCases", "declaration", "seed_cases", "seed_parked"]

DEMO_BSN = "111222333"  # synthetic; passes the eleven-proof
PARTICIPANT = "33001234"
IGO = "53001234"
INSURER = "3311"


@dataclass(frozen=True, slots=True)
class SeededCases:
    intake_rejected: str  # traceer ids
    parked: str
    unmatched_retour: str


def declaration(
    registry: LayoutRegistry,
    *,
    agb: str = PARTICIPANT,
    invoice: str = "F2026-0001",
    comment: str | None = None,
    total: int | None = None,
    uzovi: str = INSURER,
) -> bytes:
    """A KZ301 kraamzorg declaration of ``agb`` with one prestatie; ``total`` overrides the
    trailer's total (a wrong one makes the file fail intake with 0040)."""
    w = FileWriter(registry.by_standard("KZ301"))
    w.header(
        message_kind="P",
        uzovi=uzovi,
        praktijk_code=agb,
        payee="03",
        period_begin=date(2026, 1, 1),
        period_end=date(2026, 1, 31),
        invoice_number=invoice,
        invoice_date=date(2026, 2, 2),
        currency="EUR",
    )
    w.insured(
        bsn=DEMO_BSN,
        uzovi=uzovi,
        birth_date=date(1994, 5, 6),
        gender="2",
        name_code_1="1",
        surname="Testpersoon",
        initials="A",
        house_number=12,
        deceased="2",
    )
    w.prestatie(
        bsn=DEMO_BSN,
        uzovi=uzovi,
        forwarding_allowed="1",
        prestatie_date=date(2026, 1, 10),
        prestatiecodelijst="044",
        prestatiecode="196202",
        performer_code=agb,
        tariff=12000,
        number_performed=1,
        calculated_amount=12000,
        declared_amount=12000,
        reference=f"{invoice}-1",
    )
    if comment is not None:
        w.comment(comment)
    return w.finish() if total is None else w.finish(total_declared=total)


def _message(
    tag: str,
    what: str,
    direction: Direction,
    party: str,
    payload: bytes,
    at: datetime,
    status: NewStatus,
    **extra: str,
) -> NewMessage:
    return NewMessage(
        traceer_id=f"{tag}-{what}",
        conversatie_id=f"{tag}-{what}-conv",
        direction=direction,
        party=party,
        payload=payload,
        sha256=hashlib.sha256(payload).hexdigest(),
        created_at=at,
        status=status,
        idempotency_key=f"demo:{tag}:{what}",
        filename=extra.get("filename"),
        standard=extra.get("standard"),
        invoice_number=extra.get("invoice_number"),
        reference_id=extra.get("reference_id"),
    )


async def seed_cases(
    store: SqlMessageStore,
    registry: LayoutRegistry,
    now: datetime,
    *,
    tag: str = "demo",
    filename: str = "declaratie-januari.asc",
    comment: str = "Graag snel verwerken, groet van de kraamzorg.",
) -> SeededCases:
    """One case of each kind, the oldest three days before ``now``."""
    rejected = _message(
        tag,
        "intake",
        Direction.FROM_PARTICIPANT,
        PARTICIPANT,
        declaration(registry, invoice=f"{tag[:6]}-0001", comment=comment, total=1),
        now - timedelta(days=3),
        NewStatus(
            MessageStatus.REJECTED,
            "0040",
            f"Bestand technisch afgekeurd: {describe('0040')} (record 5, veld 9907)",
        ),
        filename=filename,
        standard="KZ301",
    )
    await store.record_upload(rejected)

    claim = _message(
        tag,
        "claim",
        Direction.TO_INSURER,
        INSURER,
        declaration(registry, agb=IGO, invoice=f"{tag[:6]}-IGO1"),
        now - timedelta(days=2),
        NewStatus(MessageStatus.PROCESSING, None, "Klaar om te versturen."),
        filename="integraal-3311.asc",
        standard="KZ301",
        invoice_number=f"{tag[:6]}-IGO1",
    )
    outbox = store.outbox
    await outbox.enqueue(claim, INSURER, IGO)
    current = await outbox.get(claim.traceer_id)
    if current is not None and current.state.value == "queued":
        await outbox.park(
            claim.traceer_id,
            "connection refused (8 pogingen in 2 uur)",
            now - timedelta(days=1),
        )

    retour = _message(
        tag,
        "retour",
        Direction.FROM_INSURER,
        INSURER,
        b"retour that answers no file we sent\r\n" + tag.encode(),
        now - timedelta(hours=5),
        NewStatus(
            MessageStatus.RECEIVED,
            None,
            "Retourbestand hoort bij geen verstuurd bestand: ter beoordeling.",
        ),
        filename="retour-onbekend.asc",
        standard="KZ302",
        reference_id=f"{tag}-remote-77",
    )
    await store.put_message(retour)
    return SeededCases(rejected.traceer_id, claim.traceer_id, retour.traceer_id)


async def seed_parked(
    store: SqlMessageStore,
    registry: LayoutRegistry,
    now: datetime,
    *,
    tag: str,
    insurer: str,
    count: int = 1,
    error: str = "connection refused",
) -> list[str]:
    """``count`` integral claims for ``insurer`` parked after failed deliveries (as while
    the insurer was down), the oldest ``count`` hours before ``now``; their traceer ids.
    Idempotent per ``tag``, as :func:`seed_cases`."""
    parked = []
    for n in range(count):
        invoice = f"{tag[:4]}{insurer}{n:04d}"[:12]
        claim = _message(
            tag,
            f"claim-{insurer}-{n}",
            Direction.TO_INSURER,
            insurer,
            declaration(registry, agb=IGO, invoice=invoice, uzovi=insurer),
            now - timedelta(hours=count - n + 1),
            NewStatus(MessageStatus.PROCESSING, None, "Klaar om te versturen."),
            filename=f"integraal-{insurer}-{n}.asc",
            standard="KZ301",
            invoice_number=invoice,
        )
        outbox = store.outbox
        await outbox.enqueue(claim, insurer, IGO)
        current = await outbox.get(claim.traceer_id)
        if current is not None and current.state.value == "queued":
            await outbox.park(claim.traceer_id, error, now - timedelta(hours=count - n))
        parked.append(claim.traceer_id)
    return parked
