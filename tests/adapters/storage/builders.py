"""Messages to store in tests (synthetic data only)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.ports.messages import Direction, MessageStatus, NewMessage, NewStatus

T0 = datetime(2026, 2, 3, 9, 0, tzinfo=UTC)
KRAAM = "33001234"
MIDWIFE = "02001234"


def at(seconds: float) -> datetime:
    """``seconds`` after :data:`T0`."""
    return T0 + timedelta(seconds=seconds)


def upload(
    n: int,
    *,
    party: str = KRAAM,
    invoice: str | None = None,
    payee: str | None = None,
    payload: bytes | None = None,
    key: str | None = None,
    created_at: datetime | None = None,
    conversatie_id: str | None = None,
    **extra: Any,
) -> NewMessage:
    """Declaration ``n`` uploaded by ``party`` (its own payee when it has an invoice)."""
    data = payload if payload is not None else f"declaration {n} of {party}\r\n".encode()
    return NewMessage(
        traceer_id=f"up-{n:04d}",
        conversatie_id=conversatie_id or f"conv-{n:04d}",
        direction=Direction.FROM_PARTICIPANT,
        party=party,
        payload=data,
        sha256=hashlib.sha256(data).hexdigest(),
        created_at=created_at or at(n),
        status=NewStatus(MessageStatus.RECEIVED, None, "Bestand ontvangen en goedgekeurd."),
        idempotency_key=key or f"upload:{party}:{n}",
        filename=f"decl-{n}.asc",
        standard="KZ301",
        invoice_number=invoice,
        payee=payee if payee is not None else (party if invoice is not None else None),
        metadata={"afzender": {"rol": "ZORGAANBIEDER", "code": party}},
        **extra,
    )


def retour(
    n: int,
    *,
    to: NewMessage | None = None,
    party: str = KRAAM,
    traceer_id: str | None = None,
    created_at: datetime | None = None,
    payload: bytes | None = None,
) -> NewMessage:
    """Retour ``n`` waiting for ``party`` (an answer to ``to`` when given)."""
    data = payload if payload is not None else f"retour {n} for {party}\r\n".encode()
    return NewMessage(
        traceer_id=traceer_id or f"ret-{n:04d}",
        conversatie_id=to.conversatie_id if to is not None else f"conv-r{n:04d}",
        direction=Direction.TO_PARTICIPANT,
        party=to.party if to is not None else party,
        payload=data,
        sha256=hashlib.sha256(data).hexdigest(),
        created_at=created_at or (to.created_at if to is not None else at(n)),
        status=NewStatus(MessageStatus.DELIVERED, "0001", "Technische afkeuring klaargezet."),
        idempotency_key=f"retour:{n}",
        filename=f"KZ302-{n}.asc",
        standard="KZ302",
        reply_to=to.traceer_id if to is not None else None,
    )
