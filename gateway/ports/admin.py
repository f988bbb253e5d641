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

The other way round, what the admin site and the CLI drive: :class:`Administration` (the
accounts, the queue and its cases, the search and the audit log;
:class:`gateway.admin.service.AdminService`) and :class:`BulkActions` (bulk actions as
batches; :class:`gateway.admin.bulk.BulkService`), with the views they answer
(:class:`Queue`, :class:`CaseView`, :class:`UserView`) and their refusals
(:class:`NotAllowedError`, :class:`LoginRefusedError`, :class:`SelectionChangedError`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from gateway.admin.accounts import Actor, Permission, Role
from gateway.admin.audit import AuditEntry, AuditHead, ChainReport, NewAuditEntry
from gateway.admin.batches import (
    Batch,
    BatchControl,
    BatchPreview,
    NewBatch,
    NextStep,
    StepResult,
)
from gateway.admin.cases import (
    ActionRefusedError,
    Case,
    CaseAction,
    CaseFacts,
    CaseFilter,
    CaseKind,
    CaseNote,
    KindSpec,
)
from gateway.admin.detail import CaseDetail, DecisionView, LineView, PregnancyView
from gateway.admin.fileview import FileView
from gateway.admin.labels import ClientView
from gateway.admin.search import DEFAULT_LIMIT, SearchHit, SearchQuery, SearchResult
from gateway.errors import ErrorKind, GatewayError
from gateway.ports.messages import MessageStore, StatusEntry
from gateway.ports.resolution import Effect

__all__ = [
    "SESSION_KINDS",
    "AdminStore",
    "Administration",
    "BatchStore",
    "BulkActions",
    "CaseView",
    "LoginRefusedError",
    "NewSession",
    "NotAllowedError",
    "Queue",
    "SearchStore",
    "SelectionChangedError",
    "SessionKind",
    "SessionRecord",
    "UserChange",
    "UserExistsError",
    "UserRecord",
    "UserView",
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


# --- what the admin site and the CLI drive ---------------------------------------------


class LoginRefusedError(GatewayError):
    """Wrong name or password (never said which), or too many failures in a row."""

    kind = ErrorKind.UNAUTHENTICATED

    def __init__(self, throttled: bool) -> None:
        super().__init__(
            "throttled" if throttled else "refused",
            code="te-veel-pogingen" if throttled else "aanmelding-onjuist",
            kind=ErrorKind.THROTTLED if throttled else ErrorKind.UNAUTHENTICATED,
        )
        self.throttled = throttled


class NotAllowedError(GatewayError):
    """The actor's role lacks ``permission``."""

    code = "geen-recht"
    kind = ErrorKind.NOT_ALLOWED

    def __init__(self, permission: Permission) -> None:
        super().__init__(f"not allowed: {permission.value}")
        self.permission = permission


@dataclass(frozen=True, slots=True)
class Queue:
    cases: list[Case]
    counts: dict[CaseKind, int]  # open cases per kind, of all (not only the filtered)
    now: datetime


@dataclass(frozen=True, slots=True)
class CaseView:
    case: Case
    detail: CaseDetail
    spec: KindSpec
    notes: list[CaseNote]
    history: list[AuditEntry]  # everything done to (or seen of) the case, oldest first
    statuses: list[StatusEntry]  # the message's own status history
    retourcodes: list[tuple[str, str]]  # (code, Dutch meaning)
    actions: list[CaseAction]  # what this actor may do now
    file: FileView | None
    now: datetime
    unmasked: bool = False
    prestaties: list[tuple[str, str]] = field(default_factory=list)  # a correction's choices
    client: ClientView | None = None  # whom the case is about (BSN masked unless unmasked)
    current: dict[str, str] = field(default_factory=dict)  # a correction's starting values
    # Every line of the case's pregnancy (all phases), for its birth date.
    pregnancy_lines: tuple[LineView, ...] = ()
    pregnancy_decisions: tuple[DecisionView, ...] = ()  # its phases, as the rules decided


@dataclass(frozen=True, slots=True)
class UserView:
    """An account as the administrator's page lists it."""

    user: UserRecord
    sessions: int  # live browser sessions
    tokens: int  # live API tokens


class SelectionChangedError(ActionRefusedError):
    """The filter selects other cases now than the confirmation showed: ``preview`` is
    what it selects now (to be confirmed anew)."""

    def __init__(self, preview: BatchPreview) -> None:
        super().__init__(
            "selectie-gewijzigd",
            "De selectie is veranderd sinds de bevestiging; kijk de nieuwe lijst na en "
            "bevestig opnieuw.",
            kind=ErrorKind.CONFLICT,
        )
        self.preview = preview


class Administration(Protocol):
    """What the admin site calls of the admin service
    (:class:`gateway.admin.service.AdminService`): every method checks the actor's role
    (:class:`NotAllowedError`) and audits what it shows or does."""

    @property
    def messages(self) -> MessageStore:
        """The journal the service reads uploads and their files from."""
        ...

    @property
    def clock(self) -> Callable[[], datetime]: ...

    def login(self, name: str, password: str, origin: str) -> Awaitable[tuple[str, Actor]]:
        """A new session's token and its actor, or :class:`LoginRefusedError`."""
        ...

    def authenticate(self, token: str | None, origin: str) -> Awaitable[Actor | None]:
        """The actor of a live session or API token; None for none."""
        ...

    def forget_session(self, token: str) -> Awaitable[None]: ...

    def logout(self, token: str, actor: Actor) -> Awaitable[None]: ...

    def users(self, actor: Actor) -> Awaitable[list[UserView]]: ...

    def disable_user(self, actor: Actor, name: str) -> Awaitable[int]:
        """Disable the account and end its sessions and tokens; how many ended."""
        ...

    def enable_user(self, actor: Actor, name: str) -> Awaitable[None]: ...

    def reset_password(self, actor: Actor, name: str, password: str) -> Awaitable[int]: ...

    def change_role(self, actor: Actor, name: str, role: Role) -> Awaitable[None]: ...

    def revoke_sessions(
        self, actor: Actor, name: str, kinds: frozenset[str] = SESSION_KINDS
    ) -> Awaitable[int]: ...

    def queue(self, actor: Actor, query: CaseFilter) -> Awaitable[Queue]: ...

    def case(self, actor: Actor, case_id: str, *, unmask: bool = False) -> Awaitable[CaseView]:
        """One case (:class:`~gateway.errors.NotFoundError` for none)."""
        ...

    def act(
        self,
        actor: Actor,
        case_id: str,
        action: CaseAction,
        reason: str,
        fields: Mapping[str, str] | None = None,
    ) -> Awaitable[Case]:
        """Do ``action`` to the case; :class:`~gateway.admin.cases.ActionRefusedError`
        when it does not fit."""
        ...

    def pregnancy(self, actor: Actor, pregnancy: str) -> Awaitable[PregnancyView]: ...

    def pregnancy_client(self, view: PregnancyView) -> Awaitable[ClientView | None]: ...

    def search(
        self,
        actor: Actor,
        query: SearchQuery,
        *,
        limit: int = DEFAULT_LIMIT,
        unmask: bool = False,
    ) -> Awaitable[SearchResult]: ...

    def audit_log(
        self, actor: Actor, *, after_seq: int = 0, limit: int | None = 200, export: bool = False
    ) -> Awaitable[list[AuditEntry]]: ...

    def verify_audit(
        self, *, incremental: bool = False, expected: tuple[int, str] | None = None
    ) -> Awaitable[ChainReport]: ...


class BulkActions(Protocol):
    """What the admin site calls of the bulk service
    (:class:`gateway.admin.bulk.BulkService`)."""

    def preview(
        self, actor: Actor, query: CaseFilter, action: CaseAction, reason: str | None
    ) -> Awaitable[BatchPreview]:
        """What a batch would do now; nothing is stored."""
        ...

    def create(
        self, actor: Actor, query: CaseFilter, action: CaseAction, reason: str, digest: str
    ) -> Awaitable[Batch]:
        """Store the batch the preview with ``digest`` showed (else
        :class:`SelectionChangedError`)."""
        ...

    def batch(self, actor: Actor, batch_id: int) -> Awaitable[Batch]: ...

    def list(self, actor: Actor, limit: int = 100) -> Awaitable[list[Batch]]: ...

    def control(self, actor: Actor, batch_id: int, control: BatchControl) -> Awaitable[Batch]: ...
