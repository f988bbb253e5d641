"""The admin store on SQL (:class:`gateway.admin.ports.AdminStore`): accounts, sessions, the
audit log and the cases' own records, in the same database as the messages.

Cases are computed here from the message tables by one *source* per kind (see
:data:`SOURCES`): a function ``fn(txn, ref)`` that returns the facts of every case of its
kind that holds now (``ref`` None) or of one case (``ref`` given, whether it holds now or
not). A later kind adds its function there. An action re-reads its case in the same
transaction that changes it, so two administrators acting at once cannot both resolve the
same case.

The audit log is appended under a lock of its head row (``FOR UPDATE`` on PostgreSQL; on
SQLite one writer runs at a time anyway), so that several gateway instances extend one
chain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

from twisted.internet.defer import Deferred

from adapters.storage.database import POSTGRES, Database, Transaction, decode_timestamp
from adapters.storage.messages import JournalCodec, statuses_txn
from adapters.storage.resolution import (
    RESOLUTION_SOURCES,
    apply_effect_txn,
    case_detail_txn,
    pregnancy_txn,
)
from gateway.admin.accounts import AccountError, Actor, Role
from gateway.admin.audit import (
    AuditAction,
    AuditEntry,
    AuditHead,
    NewAuditEntry,
    chain_entry,
    head_mac,
)
from gateway.admin.cases import (
    Case,
    CaseAction,
    CaseFacts,
    CaseKind,
    CaseNote,
    CaseRecord,
    CaseState,
    build_case,
    check_action,
    parse_case_id,
)
from gateway.admin.detail import CaseDetail, PregnancyView
from gateway.ports.admin import NewSession, SessionRecord, UserChange, UserExistsError, UserRecord
from gateway.ports.messages import Direction, MessageStatus, StatusEntry, StoreError
from gateway.ports.resolution import Effect

__all__ = ["SOURCES", "SqlAdminStore", "append_audit_txn"]


class SqlAdminStore:
    def __init__(self, database: Database, codec: JournalCodec | None = None) -> None:
        self.database = database
        self.codec = codec or JournalCodec(None)

    # --- accounts and sessions ----------------------------------------------------------

    def create_user(
        self, name: str, role: Role, password_hash: str, audit: NewAuditEntry
    ) -> Deferred[None]:
        return self.database.run_interaction(
            "admin_create_user", create_user_txn, name, role, password_hash, audit
        )

    def user(self, name: str) -> Deferred[UserRecord | None]:
        return self.database.run_read("admin_user", user_txn, name)

    def users(self) -> Deferred[list[UserRecord]]:
        return self.database.run_read("admin_users", users_txn)

    def change_user(self, change: UserChange, audit: NewAuditEntry) -> Deferred[int]:
        return self.database.run_interaction("admin_change_user", change_user_txn, change, audit)

    def live_sessions(self, now: datetime) -> Deferred[dict[str, dict[str, int]]]:
        return self.database.run_read("admin_live_sessions", live_sessions_txn, now)

    def login_failed(self, name: str, audit: NewAuditEntry) -> Deferred[None]:
        return self.database.run_interaction("admin_login_failed", login_failed_txn, name, audit)

    def login_succeeded(
        self, session: NewSession, audit: NewAuditEntry, new_hash: str | None = None
    ) -> Deferred[None]:
        return self.database.run_interaction(
            "admin_login", login_succeeded_txn, session, audit, new_hash
        )

    def add_token(self, session: NewSession, audit: NewAuditEntry) -> Deferred[None]:
        return self.database.run_interaction("admin_add_token", add_session_txn, session, audit)

    def session(self, digest: str, now: datetime) -> Deferred[SessionRecord | None]:
        return self.database.run_read("admin_session", session_txn, digest, now)

    def end_session(self, digest: str, audit: NewAuditEntry | None) -> Deferred[None]:
        return self.database.run_interaction("admin_end_session", end_session_txn, digest, audit)

    # --- the audit log ------------------------------------------------------------------

    def audit(self, entry: NewAuditEntry) -> Deferred[AuditEntry]:
        return self.database.run_interaction("admin_audit", append_audit_txn, entry)

    def audit_entries(
        self, *, after_seq: int = 0, limit: int | None = None, subject: str | None = None
    ) -> Deferred[list[AuditEntry]]:
        return self.database.run_read(
            "admin_audit_entries", audit_entries_txn, after_seq, limit, subject
        )

    def audit_head(self) -> Deferred[tuple[int, str]]:
        return self.database.run_read("admin_audit_head", audit_head_txn)

    def audit_chain_head(self) -> Deferred[AuditHead]:
        """The head with what keys it (``keyed_from``, its MAC)."""
        return self.database.run_read("admin_audit_chain_head", audit_chain_head_txn)

    @property
    def audit_key(self) -> bytes | None:
        """The key the chain is checked with (None: the store has no key file)."""
        return self.database.audit_key

    def key_audit_chain(self, at: datetime) -> Deferred[bool]:
        """Key the chain now if the store has a key and the chain is not keyed yet."""
        return self.database.run_interaction("admin_key_audit", key_audit_chain_txn, at)

    # --- cases --------------------------------------------------------------------------

    def cases(self) -> Deferred[list[Case]]:
        return self.database.run_read("admin_cases", cases_txn)

    def case(self, case_id: str) -> Deferred[tuple[Case, list[CaseNote]] | None]:
        return self.database.run_read("admin_case", case_txn, case_id)

    def act(
        self,
        case_id: str,
        action: CaseAction,
        actor: Actor,
        reason: str,
        at: datetime,
        effect: Effect | None = None,
    ) -> Deferred[Case]:
        return self.database.run_interaction(
            "admin_act", act_txn, case_id, action, actor, reason, at, effect, self.codec
        )

    def case_detail(self, facts: CaseFacts) -> Deferred[CaseDetail]:
        return self.database.run_read("admin_case_detail", case_detail_txn, facts)

    def pregnancy(self, pregnancy: str) -> Deferred[PregnancyView | None]:
        return self.database.run_read("admin_pregnancy", pregnancy_txn, pregnancy)


# --- accounts and sessions ---------------------------------------------------------------

_SELECT_USERS: Final = (
    "SELECT name, role, password_hash, created_at, disabled_at, failed_logins, last_failed_at"
    " FROM admin_users"
)


def _user(row: tuple[Any, ...]) -> UserRecord:
    return UserRecord(
        name=row[0],
        role=Role(row[1]),
        password_hash=row[2],
        created_at=decode_timestamp(row[3]),
        disabled=row[4] is not None,
        failed_logins=int(row[5]),
        last_failed_at=None if row[6] is None else decode_timestamp(row[6]),
    )


def create_user_txn(
    txn: Transaction, name: str, role: Role, password_hash: str, audit: NewAuditEntry
) -> None:
    txn.execute(
        "INSERT INTO admin_users (name, role, password_hash, created_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (name) DO NOTHING",
        (name, role.value, password_hash, audit.at),
    )
    if txn.rowcount != 1:
        raise UserExistsError(f"user {name!r} exists already")
    append_audit_txn(txn, audit)


def user_txn(txn: Transaction, name: str) -> UserRecord | None:
    txn.execute(_SELECT_USERS + " WHERE name = ?", (name,))
    row = txn.fetchone()
    return None if row is None else _user(row)


def users_txn(txn: Transaction) -> list[UserRecord]:
    txn.execute(_SELECT_USERS + " ORDER BY name")
    return [_user(row) for row in txn.fetchall()]


_SELECT_FOR_CHANGE: Final = (
    "SELECT name, role, disabled_at FROM admin_users WHERE name = ? OR role = ?"
)
_SELECT_FOR_CHANGE_PG: Final = _SELECT_FOR_CHANGE + " FOR UPDATE"


def change_user_txn(txn: Transaction, change: UserChange, audit: NewAuditEntry) -> int:
    # The administrators' rows are locked too: two of them cannot each disable the other.
    txn.execute(
        _SELECT_FOR_CHANGE_PG if txn.engine == POSTGRES else _SELECT_FOR_CHANGE,
        (change.name, Role.ADMINISTRATOR.value),
    )
    rows = {row[0]: row for row in txn.fetchall()}
    target = rows.get(change.name)
    if target is None:
        raise LookupError(change.name)
    active_admin = target[1] == Role.ADMINISTRATOR.value and target[2] is None
    stops = change.disabled is True or (
        change.role is not None and change.role is not Role.ADMINISTRATOR
    )
    if active_admin and stops:
        others = [
            n
            for n, row in rows.items()
            if n != change.name and row[2] is None and row[1] == Role.ADMINISTRATOR.value
        ]
        if not others:
            raise AccountError(
                f"{change.name} is the last active administrator; make another one first"
            )
    if change.role is not None:
        txn.execute(
            "UPDATE admin_users SET role = ? WHERE name = ?", (change.role.value, change.name)
        )
    if change.password_hash is not None:
        txn.execute(
            "UPDATE admin_users SET password_hash = ?, failed_logins = 0, last_failed_at = NULL"
            " WHERE name = ?",
            (change.password_hash, change.name),
        )
    if change.disabled is not None:
        txn.execute(
            "UPDATE admin_users SET disabled_at = ?, failed_logins = 0, last_failed_at = NULL"
            " WHERE name = ?",
            (audit.at if change.disabled else None, change.name),
        )
    revoked = 0
    for kind in sorted(change.revoke):
        txn.execute(
            "DELETE FROM admin_sessions WHERE user_name = ? AND kind = ?", (change.name, kind)
        )
        revoked += max(txn.rowcount, 0)
    append_audit_txn(txn, audit)
    return revoked


def live_sessions_txn(txn: Transaction, now: datetime) -> dict[str, dict[str, int]]:
    txn.execute(
        "SELECT user_name, kind, COUNT(*) FROM admin_sessions WHERE expires_at > ?"
        " GROUP BY user_name, kind",
        (now,),
    )
    found: dict[str, dict[str, int]] = {}
    for user, kind, count in txn.fetchall():
        found.setdefault(str(user), {})[str(kind)] = int(count)
    return found


def login_failed_txn(txn: Transaction, name: str, audit: NewAuditEntry) -> None:
    if name:
        txn.execute(
            "UPDATE admin_users SET failed_logins = failed_logins + 1, last_failed_at = ?"
            " WHERE name = ?",
            (audit.at, name),
        )
    append_audit_txn(txn, audit)


def add_session_txn(txn: Transaction, session: NewSession, audit: NewAuditEntry) -> None:
    txn.execute(
        "INSERT INTO admin_sessions (digest, kind, user_name, created_at, expires_at, origin)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            session.digest,
            session.kind,
            session.user,
            session.created_at,
            session.expires_at,
            session.origin,
        ),
    )
    append_audit_txn(txn, audit)


def login_succeeded_txn(
    txn: Transaction, session: NewSession, audit: NewAuditEntry, new_hash: str | None
) -> None:
    txn.execute("DELETE FROM admin_sessions WHERE expires_at <= ?", (session.created_at,))
    txn.execute(
        "UPDATE admin_users SET failed_logins = 0, last_failed_at = NULL,"
        " password_hash = COALESCE(?, password_hash) WHERE name = ?",
        (new_hash, session.user),
    )
    add_session_txn(txn, session, audit)


def session_txn(txn: Transaction, digest: str, now: datetime) -> SessionRecord | None:
    txn.execute(
        "SELECT s.digest, s.kind, s.user_name, u.role, s.created_at, s.expires_at"
        " FROM admin_sessions s JOIN admin_users u ON u.name = s.user_name"
        " WHERE s.digest = ? AND s.expires_at > ? AND u.disabled_at IS NULL",
        (digest, now),
    )
    row = txn.fetchone()
    if row is None:
        return None
    return SessionRecord(
        digest=row[0],
        kind=row[1],
        user=row[2],
        role=Role(row[3]),
        created_at=decode_timestamp(row[4]),
        expires_at=decode_timestamp(row[5]),
    )


def end_session_txn(txn: Transaction, digest: str, audit: NewAuditEntry | None) -> None:
    txn.execute("DELETE FROM admin_sessions WHERE digest = ?", (digest,))
    if audit is not None:
        append_audit_txn(txn, audit)


# --- the audit log -----------------------------------------------------------------------

_SELECT_AUDIT: Final = (
    "SELECT seq, at, actor, role, action, subject, detail, origin, prev_hash, hash FROM admin_audit"
)


def _audit_entry(row: tuple[Any, ...]) -> AuditEntry:
    return AuditEntry(
        seq=int(row[0]),
        at=decode_timestamp(row[1]),
        actor=row[2],
        role=row[3],
        action=row[4],
        subject=row[5],
        detail=row[6],
        origin=row[7],
        prev_hash=row[8],
        hash=row[9],
    )


def append_audit_txn(txn: Transaction, new: NewAuditEntry) -> AuditEntry:
    """Append ``new`` to the chain (in the caller's transaction), keyed with the
    transaction's audit key when the store has one. The first entry appended with a key to
    a chain begun without one is preceded by an ``audit_keyed`` marker, from which on the
    chain is keyed (see :mod:`gateway.admin.audit`)."""
    head = _lock_head_txn(txn)
    key = txn.audit_key
    if key is None:
        if head.keyed_from is not None:
            raise StoreError(
                "the audit log is keyed, and only a gateway with the key file can extend it "
                "([encryption] key_file)"
            )
        entry = _insert_entry_txn(txn, chain_entry(new, head.seq + 1, head.hash))
        txn.execute(
            "UPDATE admin_audit_head SET seq = ?, hash = ? WHERE id = 1", (entry.seq, entry.hash)
        )
        return entry
    keyed_from = head.keyed_from
    seq, prev = head.seq, head.hash
    if keyed_from is None:
        keyed_from = seq + 1
        marker = _insert_entry_txn(txn, chain_entry(_keyed_marker(new.at, seq), seq + 1, prev, key))
        seq, prev = marker.seq, marker.hash
    entry = _insert_entry_txn(txn, chain_entry(new, seq + 1, prev, key))
    _move_head_txn(txn, entry, keyed_from, key)
    return entry


def _keyed_marker(at: datetime, before: int) -> NewAuditEntry:
    detail = f"keten vanaf hier met sleutel; regels 1-{before} ervoor zonder"
    return NewAuditEntry(
        at,
        "gateway",
        "",
        AuditAction.AUDIT_KEYED,
        None,
        detail if before else "keten met sleutel",
        "gateway",
    )


def _move_head_txn(txn: Transaction, entry: AuditEntry, keyed_from: int, key: bytes) -> None:
    txn.execute(
        "UPDATE admin_audit_head SET seq = ?, hash = ?, keyed_from = ?, mac = ? WHERE id = 1",
        (entry.seq, entry.hash, keyed_from, head_mac(key, entry.seq, entry.hash, keyed_from)),
    )


def key_audit_chain_txn(txn: Transaction, at: datetime) -> bool:
    """Key a chain begun without a key (append its ``audit_keyed`` marker) when the store
    has a key and the chain is not keyed yet; True if it did."""
    key = txn.audit_key
    if key is None:
        return False
    head = _lock_head_txn(txn)
    if head.keyed_from is not None:
        return False
    marker = chain_entry(_keyed_marker(at, head.seq), head.seq + 1, head.hash, key)
    _move_head_txn(txn, _insert_entry_txn(txn, marker), marker.seq, key)
    return True


def _lock_head_txn(txn: Transaction) -> AuditHead:
    if txn.engine == POSTGRES:
        txn.execute(
            "SELECT seq, hash, keyed_from, mac FROM admin_audit_head WHERE id = 1 FOR UPDATE"
        )
    else:
        txn.execute("SELECT seq, hash, keyed_from, mac FROM admin_audit_head WHERE id = 1")
    row = txn.fetchone()
    if row is None:  # pragma: no cover - the migration inserts it
        raise StoreError("the audit log has no head row")
    return _head(row)


def _head(row: tuple[Any, ...]) -> AuditHead:
    return AuditHead(int(row[0]), str(row[1]), None if row[2] is None else int(row[2]), row[3])


def _insert_entry_txn(txn: Transaction, entry: AuditEntry) -> AuditEntry:
    txn.execute(
        "INSERT INTO admin_audit (seq, at, actor, role, action, subject, detail, origin,"
        " prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            entry.seq,
            entry.at,
            entry.actor,
            entry.role,
            entry.action,
            entry.subject,
            entry.detail,
            entry.origin,
            entry.prev_hash,
            entry.hash,
        ),
    )
    return entry


def audit_entries_txn(
    txn: Transaction, after_seq: int, limit: int | None, subject: str | None
) -> list[AuditEntry]:
    sql = _SELECT_AUDIT + " WHERE seq > ?"
    params: list[object] = [after_seq]
    if subject is not None:
        sql += " AND subject = ?"
        params.append(subject)
    sql += " ORDER BY seq"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    txn.execute(sql, params)
    return [_audit_entry(row) for row in txn.fetchall()]


def audit_head_txn(txn: Transaction) -> tuple[int, str]:
    txn.execute("SELECT seq, hash FROM admin_audit_head WHERE id = 1")
    row = txn.fetchone()
    return (0, "0" * 64) if row is None else (int(row[0]), str(row[1]))


def audit_chain_head_txn(txn: Transaction) -> AuditHead:
    txn.execute("SELECT seq, hash, keyed_from, mac FROM admin_audit_head WHERE id = 1")
    row = txn.fetchone()
    return AuditHead(0, "0" * 64) if row is None else _head(row)


# --- case sources ------------------------------------------------------------------------

Source = Callable[[Transaction, str | None], list[CaseFacts]]


def _statuses_by_message(txn: Transaction, ids: list[str]) -> dict[str, list[StatusEntry]]:
    found: dict[str, list[StatusEntry]] = {}
    for entry in statuses_txn(txn, tuple(ids)):
        found.setdefault(entry.traceer_id, []).append(entry)
    return found


def _first_code(statuses: list[StatusEntry]) -> tuple[tuple[str, ...], str]:
    """The retourcode and description of a message's first status that has a code (its
    rejection), else of its first status."""
    for entry in statuses:
        if entry.code:
            return (entry.code,), entry.description
    return (), statuses[0].description if statuses else ""


def intake_rejected_txn(txn: Transaction, ref: str | None) -> list[CaseFacts]:
    sql = (
        "SELECT traceer_id, created_at, party, filename, standard, sha256, status"
        " FROM messages WHERE direction = ?"
    )
    params: list[object] = [Direction.FROM_PARTICIPANT.value]
    if ref is None:
        sql += " AND status = ?"
        params.append(MessageStatus.REJECTED.value)
    else:
        sql += " AND traceer_id = ?"
        params.append(ref)
    txn.execute(sql + " ORDER BY created_at, seq", params)
    rows = txn.fetchall()
    statuses = _statuses_by_message(txn, [row[0] for row in rows])
    facts = []
    for row in rows:
        codes, summary = _first_code(statuses.get(row[0], []))
        facts.append(
            CaseFacts(
                kind=CaseKind.INTAKE_REJECTED,
                ref=row[0],
                since=decode_timestamp(row[1]),
                active=row[6] == MessageStatus.REJECTED.value,
                party=row[2],
                participant=row[2],
                retourcodes=codes,
                summary=summary,
                filename=row[3],
                standard=row[4],
                sha256=row[5],
            )
        )
    return facts


def parked_txn(txn: Transaction, ref: str | None) -> list[CaseFacts]:
    sql = (
        "SELECT o.traceer_id, o.updated_at, o.insurer, o.sender, o.attempts, o.last_error,"
        " o.state, o.first_attempt_at, m.filename, m.standard, m.sha256, m.invoice_number"
        " FROM outbound o JOIN messages m ON m.traceer_id = o.traceer_id"
    )
    if ref is None:
        txn.execute(sql + " WHERE o.state = 'parked' ORDER BY o.updated_at, m.seq")
    else:
        txn.execute(sql + " WHERE o.traceer_id = ?", (ref,))
    facts = []
    for row in txn.fetchall():
        details = {"pogingen": str(row[4]), "toestand verzending": str(row[6])}
        if row[7] is not None:
            details["eerste poging"] = decode_timestamp(row[7]).isoformat(timespec="seconds")
        if row[11]:
            details["factuurnummer"] = str(row[11])
        facts.append(
            CaseFacts(
                kind=CaseKind.PARKED,
                ref=row[0],
                since=decode_timestamp(row[1]),
                active=row[6] == "parked",
                party=row[2],
                insurer=row[2],
                participant=row[3],
                summary=row[5] or "",
                filename=row[8],
                standard=row[9],
                sha256=row[10],
                details=details,
            )
        )
    return facts


def unmatched_retour_txn(txn: Transaction, ref: str | None) -> list[CaseFacts]:
    sql = (
        "SELECT traceer_id, created_at, party, filename, standard, sha256, reply_to,"
        " reference_id FROM messages WHERE direction = ?"
    )
    params: list[object] = [Direction.FROM_INSURER.value]
    if ref is None:
        sql += " AND reply_to IS NULL"
    else:
        sql += " AND traceer_id = ?"
        params.append(ref)
    txn.execute(sql + " ORDER BY created_at, seq", params)
    rows = txn.fetchall()
    statuses = _statuses_by_message(txn, [row[0] for row in rows])
    facts = []
    for row in rows:
        codes, summary = _first_code(statuses.get(row[0], []))
        facts.append(
            CaseFacts(
                kind=CaseKind.UNMATCHED_RETOUR,
                ref=row[0],
                since=decode_timestamp(row[1]),
                active=row[6] is None,
                party=row[2],
                insurer=row[2],
                retourcodes=codes,
                summary=summary,
                filename=row[3],
                standard=row[4],
                sha256=row[5],
                details={"kenmerk verzekeraar": str(row[7])} if row[7] else {},
            )
        )
    return facts


SOURCES: Final[Mapping[CaseKind, Source]] = {
    CaseKind.INTAKE_REJECTED: intake_rejected_txn,
    CaseKind.PARKED: parked_txn,
    CaseKind.UNMATCHED_RETOUR: unmatched_retour_txn,
    **RESOLUTION_SOURCES,
}


# --- cases -------------------------------------------------------------------------------

_SELECT_RECORDS: Final = "SELECT case_id, state, reason, changed_at, changed_by FROM admin_cases"


def _record(row: tuple[Any, ...]) -> CaseRecord:
    return CaseRecord(
        case_id=row[0],
        state=CaseState(row[1]),
        reason=row[2],
        changed_at=decode_timestamp(row[3]),
        changed_by=row[4],
    )


def _facts_txn(txn: Transaction, kind: CaseKind, ref: str) -> CaseFacts | None:
    found = SOURCES[kind](txn, ref)
    return found[0] if found else None


def _record_txn(txn: Transaction, case: str) -> CaseRecord | None:
    txn.execute(_SELECT_RECORDS + " WHERE case_id = ?", (case,))
    row = txn.fetchone()
    return None if row is None else _record(row)


def cases_txn(txn: Transaction) -> list[Case]:
    facts = {f.id: f for source in SOURCES.values() for f in source(txn, None)}
    txn.execute(_SELECT_RECORDS)
    records = {record.case_id: record for record in map(_record, txn.fetchall())}
    for case in records.keys() - facts.keys():
        parsed = parse_case_id(case)
        found = _facts_txn(txn, *parsed) if parsed is not None else None
        if found is not None:
            facts[case] = found
    return [build_case(f, records.get(case)) for case, f in facts.items()]


def case_txn(txn: Transaction, case: str) -> tuple[Case, list[CaseNote]] | None:
    parsed = parse_case_id(case)
    if parsed is None:
        return None
    facts = _facts_txn(txn, *parsed)
    if facts is None:
        return None
    txn.execute(
        "SELECT case_id, at, author, text FROM admin_case_notes WHERE case_id = ? ORDER BY at, id",
        (case,),
    )
    notes = [CaseNote(row[0], decode_timestamp(row[1]), row[2], row[3]) for row in txn.fetchall()]
    return build_case(facts, _record_txn(txn, case)), notes


# Each action is logged under the audit action of the same name.
_AUDITED: Final = {action: AuditAction(action.value) for action in CaseAction}

_NEW_STATE: Final = {
    CaseAction.RETRY: CaseState.RETRIED,
    CaseAction.RESUBMIT: CaseState.RESUBMITTED,
    CaseAction.BREAK_BUNDLE: CaseState.BROKEN,
    CaseAction.PASS_ON: CaseState.PASSED_ON,
    CaseAction.CLOSE_PHASE: CaseState.PHASE_CLOSED,
    CaseAction.WRITE_OFF: CaseState.WRITTEN_OFF,
    CaseAction.REOPEN: CaseState.OPEN,
}


def act_txn(
    txn: Transaction,
    case: str,
    action: CaseAction,
    actor: Actor,
    reason: str,
    at: datetime,
    effect: Effect | None = None,
    codec: JournalCodec | None = None,
) -> Case:
    parsed = parse_case_id(case)
    facts = _facts_txn(txn, *parsed) if parsed is not None else None
    if parsed is None or facts is None:
        raise LookupError(case)
    current = build_case(facts, _record_txn(txn, case))
    reason = check_action(current, action, actor, reason)
    if action is CaseAction.RETRY:
        _requeue_txn(txn, facts.ref, at)
    if action in _NEEDS_EFFECT:
        if effect is None:  # pragma: no cover - the service prepares one
            raise StoreError(f"action {action.value} needs its prepared effect")
        apply_effect_txn(txn, effect, actor, reason, at, codec or JournalCodec(None))
    if action is CaseAction.NOTE:
        txn.execute(
            "INSERT INTO admin_case_notes (case_id, at, author, text) VALUES (?, ?, ?, ?)",
            (case, at, actor.name, reason),
        )
    else:
        txn.execute(
            "INSERT INTO admin_cases (case_id, kind, ref, state, reason, changed_at, changed_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (case_id) DO UPDATE SET"
            " state = excluded.state, reason = excluded.reason,"
            " changed_at = excluded.changed_at, changed_by = excluded.changed_by",
            (case, facts.kind.value, facts.ref, _NEW_STATE[action].value, reason, at, actor.name),
        )
    append_audit_txn(
        txn,
        NewAuditEntry(
            at, actor.name, actor.role.value, _AUDITED[action], case, reason, actor.origin
        ),
    )
    after = _facts_txn(txn, parsed[0], parsed[1])
    assert after is not None
    return build_case(after, _record_txn(txn, case))


_NEEDS_EFFECT: Final = frozenset(
    {CaseAction.RESUBMIT, CaseAction.BREAK_BUNDLE, CaseAction.PASS_ON, CaseAction.CLOSE_PHASE}
)


def _requeue_txn(txn: Transaction, traceer_id: str, at: datetime) -> None:
    """A parked file back in the queue, due now: the forwarder sends it again, under the
    same traceer id and factuurnummer (the insurer sees no second claim)."""
    txn.execute(
        "UPDATE outbound SET state = 'queued', due_at = ?, updated_at = ?"
        " WHERE traceer_id = ? AND state = 'parked'",
        (at, at, traceer_id),
    )
    if txn.rowcount != 1:  # pragma: no cover - check_action saw it parked in this transaction
        raise StoreError(f"outbound file {traceer_id} is not parked")
