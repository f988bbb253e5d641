"""The retour file to a participant: its own upload's records answered, in its own retour
standard — what the unpacker sends when an insurer's retour comes in, and what the bundler
sends for the lines it answers itself (returned with 9001, or a late line joining a claimed
one). Pure apart from the new message's id: bytes and values in, a message to store out.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

from gateway.ei import LayoutRegistry, Outcome, Record, build_retour
from gateway.ports.messages import Direction, Message, MessageStatus, NewMessage, NewStatus

__all__ = ["participant_retour"]


def participant_retour(
    registry: LayoutRegistry,
    upload: Message,
    originals: Sequence[Record],
    outcomes: Mapping[int, Outcome],
    *,
    insurer_reference: str,
    at: datetime,
    answers: str | None = None,
) -> NewMessage | None:
    """The retour to ``upload``'s participant, in its own retour standard, answering the
    records ``outcomes`` names (NUM040 → outcome) and only those; None when the upload's
    standard is unknown. ``answers`` is the insurer retour it passes on, when there is one:
    it, not the bytes, is then its identity — built again from the same retour on another
    day (a crash before the insurer was told the retour arrived), the file differs in its
    date and must still not reach the participant twice."""
    if not originals:
        return None
    layout = registry.lookup(
        originals[0].text("standard_code"),
        originals[0].text("version"),
        originals[0].text("subversion"),
    )
    if layout is None:
        return None
    retour_layout = registry.retour_of(layout)
    data = build_retour(
        retour_layout,
        originals,
        outcomes,
        insurer_reference=insurer_reference,
        retour_date=at.date(),
        answered_only=True,
    )
    sha = hashlib.sha256(data).hexdigest()
    traceer_id = str(uuid.uuid4())
    return NewMessage(
        traceer_id=traceer_id,
        conversatie_id=upload.conversatie_id,
        direction=Direction.TO_PARTICIPANT,
        party=upload.party,
        payload=data,
        sha256=sha,
        created_at=at,
        status=NewStatus(MessageStatus.DELIVERED, None, "Retourinformatie klaargezet."),
        idempotency_key=f"answer:{upload.traceer_id}:{answers or sha}",
        filename=f"{retour_layout.standard}-{traceer_id}.asc",  # one upload, several retours
        standard=retour_layout.standard,
        reply_to=upload.traceer_id,
    )
