"""The audit log (NEN 7513 style): who did or saw what, about which case, when, from where.

Append-only and tamper-evident: each entry carries a hash of its own content and of the
entry before it, so editing an entry breaks its hash, and deleting one breaks the chain at
the next (or, for the newest, disagrees with the *head*: the last sequence number and
hash, kept apart and updated with every entry). :func:`verify_chain` names the first entry
that does not fit. The store refuses updates and deletes of entries as well; the chain is
what shows it when someone with the database's own rights did them anyway.

**Keyed.** With a key file (:meth:`gateway.crypto.Keyring.audit_key`, a key that is not in
the database) the hash is an HMAC-SHA256, and the head carries an HMAC of itself
(:func:`head_mac`): someone with the database's rights but without the key file can
neither recompute the chain after an edit nor cut its tail and move the head. A chain
begun without a key (SHA-256 only) is keyed from the first entry appended with one: that
entry is an ``audit_keyed`` marker whose keyed hash covers the unkeyed chain before it,
and the head records from which sequence number on entries are keyed (``keyed_from``,
itself under the head's MAC).

**What stays open.** Rolling the whole database back to an earlier state (a backup, or a
copy taken earlier) leaves a valid chain and head, only shorter: the operator writes the
head down elsewhere (``igo-gateway audit head``) and :func:`verify_chain` checks the log
against it (``expected``). Nothing here stops deletion; the chain shows it.

An entry never holds a BSN or a name: ``subject`` names a case, a pregnancy or a message
by its id, and ``detail`` says what was done (a reason typed by a user is kept as typed;
the forms say not to put client data in it).

Pure: entries in, hashes and verdicts out.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

__all__ = [
    "GENESIS_HASH",
    "AuditAction",
    "AuditEntry",
    "AuditHead",
    "ChainReport",
    "ChainVerifier",
    "NewAuditEntry",
    "chain_entry",
    "entry_hash",
    "entry_json",
    "head_mac",
    "parse_recorded_head",
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
    USER_DISABLED = "user_disabled"  # accounts (gateway.admin.service: the leaver process)
    USER_ENABLED = "user_enabled"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - an action name, not a secret
    ROLE_CHANGED = "role_changed"
    SESSIONS_REVOKED = "sessions_revoked"
    AUDIT_KEYED = "audit_keyed"  # from this entry on the chain is keyed (an HMAC)
    REPROCESS = "reprocess"  # an upload checked and decided again (gateway.reprocess)


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
    key: bytes | None = None,
) -> str:
    """SHA-256 (hex) of an entry's content and the hash before it, over canonical JSON; an
    HMAC-SHA256 with ``key`` when given."""
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
    if key is not None:
        return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditHead:
    """The head as the store keeps it: the newest entry's number and hash; from which
    number on entries are keyed (None: none are); and the head's own MAC (None without a
    key)."""

    seq: int
    hash: str
    keyed_from: int | None = None
    mac: str | None = None


def head_mac(key: bytes, seq: int, digest: str, keyed_from: int | None) -> str:
    text = f"igo-gateway audit head|{seq}|{digest}|{keyed_from}"
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def chain_entry(
    new: NewAuditEntry, seq: int, prev_hash: str, key: bytes | None = None
) -> AuditEntry:
    """``new`` as entry ``seq`` after the entry whose hash is ``prev_hash`` (keyed with
    ``key`` when given)."""
    # Microseconds are what both engines keep; the hash must survive the round trip.
    at = new.at.astimezone(UTC)
    action = new.action.value
    digest = entry_hash(
        prev_hash, seq, at, new.actor, new.role, action, new.subject, new.detail, new.origin, key
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


class ChainVerifier:
    """Checks entries fed to it in sequence order, from ``start`` (the number and hash of
    the last entry already verified; the genesis by default), then the head.

    ``key`` is the chain's key (None: the store has none); entries from ``keyed_from`` on
    are checked as keyed. ``expected`` is a head recorded elsewhere (``audit head``): the
    log must hold that entry with that hash.
    """

    def __init__(
        self,
        key: bytes | None,
        keyed_from: int | None,
        *,
        start: tuple[int, str] = (0, GENESIS_HASH),
        expected: tuple[int, str] | None = None,
    ) -> None:
        self.key = key
        self.keyed_from = keyed_from
        self.expected = expected
        self.last_seq, self.prev_hash = start
        self.count = 0
        self.bad: tuple[int, str] | None = None
        if keyed_from is not None and key is None:
            self.bad = (keyed_from, "the log is keyed from here on: checking it needs the key file")

    @property
    def broken(self) -> bool:
        return self.bad is not None

    def feed(self, entries: Iterable[AuditEntry]) -> bool:
        """Check ``entries``; False once something does not fit (the rest is ignored)."""
        for entry in entries:
            if self.bad is not None:
                return False
            self._check(entry)
        return self.bad is None

    def _check(self, entry: AuditEntry) -> None:
        expected = self.last_seq + 1
        if entry.seq != expected:
            self.bad = (expected, f"entry {expected} is missing")
            return
        if entry.prev_hash != self.prev_hash:
            self.bad = (entry.seq, "does not follow the entry before it")
            return
        keyed = self.keyed_from is not None and entry.seq >= self.keyed_from
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
            self.key if keyed else None,
        )
        if not hmac.compare_digest(recomputed, entry.hash):
            self.bad = (entry.seq, "content does not match its hash")
            return
        recorded = self.expected
        if (
            recorded is not None
            and entry.seq == recorded[0]
            and not hmac.compare_digest(entry.hash, recorded[1])
        ):
            self.bad = (entry.seq, "differs from the head recorded elsewhere")
            return
        self.prev_hash = entry.hash
        self.last_seq = entry.seq
        self.count += 1

    def report(self, head: AuditHead | tuple[int, str] | None) -> ChainReport:
        """The verdict once every entry up to the head was fed."""
        if self.bad is not None:
            return ChainReport(self.last_seq, self.prev_hash, *self.bad)
        done = self.last_seq
        if head is not None:
            if not isinstance(head, AuditHead):
                head = AuditHead(*head)
            problem = self._head_problem(head)
            if problem is not None:
                return ChainReport(done, self.prev_hash, *problem)
        if self.expected is not None and self.expected[0] > done:
            return ChainReport(
                done,
                self.prev_hash,
                done + 1,
                f"the log ends at {done}, before the head recorded elsewhere "
                f"({self.expected[0]}): entries were removed",
            )
        return ChainReport(done, self.prev_hash)

    def _head_problem(self, head: AuditHead) -> tuple[int, str] | None:
        done = self.last_seq
        if head.seq > done:
            return done + 1, f"entries {done + 1}-{head.seq} are missing"
        if head.seq < done or head.hash != self.prev_hash:
            return (
                head.seq + 1 if head.seq < done else head.seq,
                "the log's head does not match its last entry",
            )
        if self.key is None:
            return None
        if head.keyed_from is None:
            if head.seq == 0:
                return None
            return head.seq, "the log is not keyed although a key file is configured"
        if head.mac is None or not hmac.compare_digest(
            head.mac, head_mac(self.key, head.seq, head.hash, head.keyed_from)
        ):
            return head.seq, "the log's head is not sealed with the key (moved or rewritten)"
        return None


def verify_chain(
    entries: Iterable[AuditEntry],
    head: AuditHead | tuple[int, str] | None,
    *,
    key: bytes | None = None,
    expected: tuple[int, str] | None = None,
) -> ChainReport:
    """Check ``entries`` (in sequence order, from the first) and the stored head.

    Reports the first sequence number that does not fit: an entry whose content does not
    match its hash (edited), one that does not follow the hash before it, or a missing
    number (deleted; the missing one is named); with ``key``, a head without its valid
    MAC; with ``expected``, a log that lacks that entry or ends before it."""
    keyed_from = head.keyed_from if isinstance(head, AuditHead) else None
    verifier = ChainVerifier(key, keyed_from, expected=expected)
    verifier.feed(entries)
    return verifier.report(head)


def parse_recorded_head(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` as ``audit head`` prints it; ValueError otherwise."""
    seq_text, sep, digest = text.strip().partition(":")
    if not sep or not (seq_text.isascii() and seq_text.isdigit()) or len(digest) != 64:
        raise ValueError("a recorded head is SEQ:HASH (as `igo-gateway audit head` prints it)")
    try:
        bytes.fromhex(digest)
    except ValueError:
        raise ValueError("a recorded head's hash is 64 hex digits") from None
    return int(seq_text), digest.lower()


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
