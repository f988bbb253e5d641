"""The admin ports: the admin store, the search and the batches.

:class:`AdminStore` keeps accounts, sessions, the audit log and the cases' own records;
implemented on SQL by :class:`adapters.storage.admin.SqlAdminStore`, in the same database
as the messages (a case's facts are read from the message tables, and an action changes
both in one transaction). Every method is one transaction; every method that changes
something appends its audit entry in that same transaction, so nothing is done unlogged.

:class:`SearchStore` answers the administrator's search (``adapters.storage.search``) and
:class:`BatchStore` keeps bulk actions (``adapters.storage.batches``). The values they
pass that the admin's pure rules work on too (cases, audit entries, search queries,
batches) live with those rules in :mod:`gateway.admin`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gateway.admin.accounts import Actor, Role
from gateway.admin.audit import AuditEntry, AuditHead, NewAuditEntry
from gateway.admin.batches import Batch, BatchControl, NewBatch, NextStep, StepResult
from gateway.admin.cases import Case, CaseAction, CaseFacts, CaseNote
from gateway.admin.detail import CaseDetail, PregnancyView
from gateway.admin.search import SearchHit, SearchQuery
from gateway.errors import ErrorKind, GatewayError
from gateway.ports.resolution import Effect

__all__ = [
    "SESSION_KINDS",
    "AdminStore",
    "BatchStore",
    "NewSession",
    "SearchStore",
    "SessionKind",
    "SessionRecord",
    "UserChange",
    "UserExistsError",
    "UserRecord",
]


class UserExistsError(GatewayError):
    """A user of that name exists already."""

    code = "gebruiker-bestaat"
    kind = ErrorKind.CONFLICT


@dataclass(frozen=True, slots=True)
class UserRecord:
    name: str
    role: Role
    password_hash: str
    created_at: datetime
    disabled: bool
    failed_logins: int
    last_failed_at: datetime | None


SessionKind = str  # "session" (a browser's cookie) or "token" (an API token)
SESSION_KINDS: frozenset[SessionKind] = frozenset({"session", "token"})


@dataclass(frozen=True, slots=True)
class UserChange:
    """What to change of one account (None: leave as it is), in one transaction."""

    name: str
    role: Role | None = None
    password_hash: str | None = None  # also clears the failed logins
    disabled: bool | None = None
    revoke: frozenset[SessionKind] = frozenset()  # end the user's sessions/tokens of these kinds


@dataclass(frozen=True, slots=True)
class NewSession:
    digest: str  # SHA-256 of the token; the token itself is never stored
    kind: SessionKind
    user: str
    created_at: datetime
    expires_at: datetime
    origin: str


@dataclass(frozen=True, slots=True)
class SessionRecord:
    digest: str
    kind: SessionKind
    user: str
    role: Role
    created_at: datetime
    expires_at: datetime


class AdminStore(Protocol):
    # --- accounts and sessions ----------------------------------------------------------

    def create_user(
        self, name: str, role: Role, password_hash: str, audit: NewAuditEntry
    ) -> Awaitable[None]:
        """Raises :class:`UserExistsError` when ``name`` is taken."""
        ...

    def user(self, name: str) -> Awaitable[UserRecord | None]: ...

    def users(self) -> Awaitable[list[UserRecord]]: ...

    def change_user(self, change: UserChange, audit: NewAuditEntry) -> Awaitable[int]:
        """Apply ``change`` with its audit entry; the number of sessions and tokens ended.
        Raises :class:`~gateway.errors.NotFoundError` for no such user, and
        :class:`~gateway.admin.accounts.AccountError` when the change would leave no active
        administrator."""
        ...

    def live_sessions(self, now: datetime) -> Awaitable[dict[str, dict[SessionKind, int]]]:
        """Per user, the sessions and tokens that are live at ``now``, by kind."""
        ...

    def login_failed(self, name: str, audit: NewAuditEntry) -> Awaitable[None]:
        """Count a failed login for ``name`` (if it exists) and log it."""
        ...

    def login_succeeded(
        self, session: NewSession, audit: NewAuditEntry, new_hash: str | None = None
    ) -> Awaitable[None]:
        """Reset the failures, store the session (and a rehashed password), log it; and
        drop expired sessions."""
        ...

    def add_token(self, session: NewSession, audit: NewAuditEntry) -> Awaitable[None]: ...

    def session(self, digest: str, now: datetime) -> Awaitable[SessionRecord | None]:
        """The live session (or token) with this digest of an enabled user; None if it is
        unknown or expired."""
        ...

    def end_session(self, digest: str, audit: NewAuditEntry | None) -> Awaitable[None]: ...

    # --- the audit log ------------------------------------------------------------------

    def audit(self, entry: NewAuditEntry) -> Awaitable[AuditEntry]: ...

    def audit_entries(
        self, *, after_seq: int = 0, limit: int | None = None, subject: str | None = None
    ) -> Awaitable[list[AuditEntry]]:
        """Entries after ``after_seq`` in sequence order (about ``subject`` only, if
        given)."""
        ...

    def audit_head(self) -> Awaitable[tuple[int, str]]:
        """The sequence number and hash of the newest entry, as kept apart from it."""
        ...

    def audit_chain_head(self) -> Awaitable[AuditHead]:
        """The head with what keys it: from which entry on, and its own MAC."""
        ...

    @property
    def audit_key(self) -> bytes | None:
        """The chain's key (from the key file; None without one)."""
        ...

    # --- cases --------------------------------------------------------------------------

    def cases(self) -> Awaitable[list[Case]]:
        """Every case whose facts hold now, and every case with a record of its own."""
        ...

    def case(self, case_id: str) -> Awaitable[tuple[Case, list[CaseNote]] | None]: ...

    def act(
        self,
        case_id: str,
        action: CaseAction,
        actor: Actor,
        reason: str,
        at: datetime,
        effect: Effect | None = None,
    ) -> Awaitable[Case]:
        """Do ``action`` to the case in one transaction with its audit entry: checked
        against the case as it stands in that transaction (raises
        :class:`~gateway.admin.cases.ActionRefusedError`), NotFoundError for no such case.
        ``effect`` is what an action of :mod:`gateway.resolution` stores with it."""
        ...

    def case_detail(self, facts: CaseFacts) -> Awaitable[CaseDetail]:
        """The integral line, original lines and decisions a case is about."""
        ...

    def pregnancy(self, pregnancy: str) -> Awaitable[PregnancyView | None]:
        """Every line, claim and decision of one pregnancy."""
        ...


class SearchStore(Protocol):
    def search(
        self, query: SearchQuery, limit: int, *, reveal: bool
    ) -> Awaitable[tuple[list[SearchHit], bool]]:
        """At most ``limit`` hits, newest first, and whether more matched. A line's BSN is
        read from its sealed value only with ``reveal``; otherwise it is
        :data:`~gateway.admin.search.MASKED_BSN`."""
        ...


class BatchStore(Protocol):
    """Where batches are kept (:class:`adapters.storage.batches.SqlBatchStore`): each method
    one transaction; each change with its audit entry in that transaction."""

    def create_batch(self, new: NewBatch) -> Awaitable[Batch]:
        """Store ``new`` with its items, and its audit entry as done by its creator."""
        ...

    def batch(self, batch_id: int, *, items: bool = False) -> Awaitable[Batch | None]: ...

    def batches(self, limit: int = 100) -> Awaitable[list[Batch]]:
        """The newest batches first."""
        ...

    def control_batch(
        self, batch_id: int, control: BatchControl, actor: Actor, at: datetime
    ) -> Awaitable[Batch]:
        """Pause, resume or cancel (raises :class:`~gateway.admin.cases.ActionRefusedError`
        when it does not fit the batch's state, NotFoundError for no such batch)."""
        ...

    def next_step(self, at: datetime) -> Awaitable[NextStep | StepResult | None]:
        """The next case of the oldest running batch; a batch with none left is finished
        (and that is the result). None: no batch runs."""
        ...

    def do_step(
        self, step: NextStep, effect: Effect | None, refused: str | None, at: datetime
    ) -> Awaitable[StepResult]:
        """Do ``step``'s case with ``effect`` (prepared for an action that needs one), in
        one transaction with its audit entry and its outcome; or record it skipped because
        preparing it was ``refused``. Nothing if the batch no longer runs."""
        ...
