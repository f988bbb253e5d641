"""The audit log (NEN 7513 style): who did or saw what, about which case, when, from where.

Append-only and tamper-evident: each entry carries the SHA-256 of its own content and of
the entry before it, so editing an entry breaks its hash, and deleting one breaks the
chain at the next (or, for the newest, disagrees with the *head*: the last sequence
number and hash, kept apart and updated with every entry). :func:`verify_chain` names the
first entry that does not fit. The store refuses updates and deletes of entries as well;
the chain is what shows it when someone with the database's own rights did them anyway.

An entry never holds a BSN or a name: ``subject`` names a case, a pregnancy or a message
by its id, and ``detail`` says what was done (a reason typed by a user is kept as typed;
the forms say not to put client data in it).

Pure: entries in, hashes and verdicts out.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

__all__ = [
    "GENESIS_HASH",
    "AuditAction",
    "AuditEntry",
    "ChainReport",
    "NewAuditEntry",
    "chain_entry",
    "entry_hash",
    "entry_json",
    "verify_chain",
]

GENESIS_HASH: Final = "0" * 64


class AuditAction(enum.StrEnum):
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    USER_CREATED = "user_created"
    TOKEN_CREATED = "token_created"  # noqa: S105 - an action name, not a secret
    VIEW_QUEUE = "view_queue"
    VIEW_CASE = "view_case"
    UNMASK = "unmask"
    RETRY = "retry"
    WRITE_OFF = "write_off"
    REOPEN = "reopen"
    NOTE = "note"
    RESUBMIT = "resubmit"
    BREAK_BUNDLE = "break_bundle"
    PASS_ON = "pass_on"  # noqa: S105 - an action name, not a secret
    CLOSE_PHASE = "close_phase"
    VIEW_PREGNANCY = "view_pregnancy"
    VIEW_AUDIT = "view_audit"
    EXPORT_AUDIT = "export_audit"
    SEARCH = "search"  # the keys searched on; a BSN only as "zoeken op BSN"
    BATCH_CREATED = "batch_created"  # bulk actions (gateway.admin.batches)
    BATCH_PAUSED = "batch_paused"
    BATCH_RESUMED = "batch_resumed"
    BATCH_CANCELLED = "batch_cancelled"
    BATCH_FINISHED = "batch_finished"


@dataclass(frozen=True, slots=True)
class NewAuditEntry:
    """An entry to append; the store gives it its sequence number and hashes."""

    at: datetime
    actor: str
    role: str
    action: AuditAction
    subject: str | None = None  # a case, pregnancy or message id
    detail: str = ""
    origin: str = ""  # an IP address, or "cli"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: datetime
    actor: str
    role: str
    action: str
    subject: str | None
    detail: str
    origin: str
    prev_hash: str
    hash: str


def _stamp(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(
    prev_hash: str,
    seq: int,
    at: datetime,
    actor: str,
    role: str,
    action: str,
    subject: str | None,
    detail: str,
    origin: str,
) -> str:
    """SHA-256 (hex) of an entry's content and the hash before it, over canonical JSON."""
    content = {
        "prev": prev_hash,
        "seq": seq,
        "at": _stamp(at),
        "actor": actor,
        "role": role,
        "action": action,
        "subject": subject,
        "detail": detail,
        "origin": origin,
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chain_entry(new: NewAuditEntry, seq: int, prev_hash: str) -> AuditEntry:
    """``new`` as entry ``seq`` after the entry whose hash is ``prev_hash``."""
    # Microseconds are what both engines keep; the hash must survive the round trip.
    at = new.at.astimezone(UTC)
    action = new.action.value
    digest = entry_hash(
        prev_hash, seq, at, new.actor, new.role, action, new.subject, new.detail, new.origin
    )
    return AuditEntry(
        seq=seq,
        at=at,
        actor=new.actor,
        role=new.role,
        action=action,
        subject=new.subject,
        detail=new.detail,
        origin=new.origin,
        prev_hash=prev_hash,
        hash=digest,
    )


@dataclass(frozen=True, slots=True)
class ChainReport:
    entries: int
    head_hash: str  # the hash of the last entry checked (write it down to anchor the log)
    first_bad_seq: int | None = None
    problem: str = ""

    @property
    def intact(self) -> bool:
        return self.first_bad_seq is None


def verify_chain(entries: Iterable[AuditEntry], head: tuple[int, str] | None) -> ChainReport:
    """Check ``entries`` (in sequence order) and the stored head ``(seq, hash)``.

    Reports the first sequence number that does not fit: an entry whose content does not
    match its hash (edited), one that does not follow the hash before it, or a missing
    number (deleted; the missing one is named)."""
    prev_hash = GENESIS_HASH
    expected = 1
    count = 0
    for entry in entries:
        if entry.seq != expected:
            return ChainReport(count, prev_hash, expected, f"entry {expected} is missing")
        if entry.prev_hash != prev_hash:
            return ChainReport(count, prev_hash, entry.seq, "does not follow the entry before it")
        recomputed = entry_hash(
            entry.prev_hash,
            entry.seq,
            entry.at,
            entry.actor,
            entry.role,
            entry.action,
            entry.subject,
            entry.detail,
            entry.origin,
        )
        if recomputed != entry.hash:
            return ChainReport(count, prev_hash, entry.seq, "content does not match its hash")
        prev_hash = entry.hash
        expected += 1
        count += 1
    if head is not None:
        head_seq, head_hash = head
        if head_seq > count:
            return ChainReport(
                count, prev_hash, count + 1, f"entries {count + 1}-{head_seq} are missing"
            )
        if head_seq < count or head_hash != prev_hash:
            return ChainReport(
                count, prev_hash, head_seq + 1 if head_seq < count else head_seq,
                "the log's head does not match its last entry",
            )  # fmt: skip
    return ChainReport(count, prev_hash)


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    """An entry as the export and the JSON API give it."""
    return {
        "seq": entry.seq,
        "at": _stamp(entry.at),
        "actor": entry.actor,
        "role": entry.role,
        "action": entry.action,
        "subject": entry.subject,
        "detail": entry.detail,
        "origin": entry.origin,
        "prevHash": entry.prev_hash,
        "hash": entry.hash,
    }
