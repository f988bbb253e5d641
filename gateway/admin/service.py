"""The admin workplace's service: logins, the queue, the case page and the actions, each
checked against the actor's role and written to the audit log.

The web site, the JSON API and the command line all go through :class:`AdminService`, so
they cannot differ in what they allow or what they log. It holds no state but the
login throttle (per name and address); "now" comes from the injected clock, and the password checks
(scrypt: deliberately slow) run through ``run_in_thread`` off the reactor thread.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Final, TypeVar

from twisted.internet.defer import DeferredSemaphore
from twisted.logger import Logger

from gateway.admin.accounts import (
    AccountError,
    Actor,
    PasswordHasher,
    Permission,
    Role,
    Throttle,
    check_password_rules,
    check_user_name,
    new_token,
    token_digest,
)
from gateway.admin.audit import (
    GENESIS_HASH,
    AuditAction,
    AuditEntry,
    ChainReport,
    ChainVerifier,
    NewAuditEntry,
)
from gateway.admin.cases import (
    KINDS,
    MAX_REASON_LENGTH,
    NEEDS_INPUT,
    ActionRefusedError,
    Case,
    CaseAction,
    CaseFilter,
    CaseKind,
    CaseNote,
    allowed_actions,
    check_action,
    counts_by_kind,
    parse_case_id,
    select_cases,
)
from gateway.admin.client import client_of
from gateway.admin.detail import CaseDetail, PregnancyView
from gateway.admin.fileview import view_file
from gateway.admin.labels import FIELD_LABELS, ClientView, Names
from gateway.admin.metrics import AdminMetrics
from gateway.admin.search import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    SearchQuery,
    SearchRefusedError,
    SearchResult,
    audit_detail,
    check_query,
)
from gateway.ei import LayoutRegistry
from gateway.errors import ErrorKind, NotFoundError
from gateway.loading import describe
from gateway.ports.admin import (
    SESSION_KINDS,
    AdminStore,
    CaseView,
    LoginRefusedError,
    NewSession,
    NotAllowedError,
    Queue,
    SearchStore,
    UserChange,
    UserView,
)
from gateway.ports.messages import MessageStore
from gateway.ports.resolution import ClosePhase, Effect, Field, Resubmission
from gateway.ports.runtime import RunInThread, run_inline
from gateway.resolution import Correction, Resolver
from gateway.rules.catalogue import Phase

log = Logger()

# Actions whose effect is prepared before their transaction, and those after which the
# bundler decides the lines again.
_PREPARED: Final = frozenset(
    {CaseAction.RESUBMIT, CaseAction.PASS_ON, CaseAction.BREAK_BUNDLE, CaseAction.CLOSE_PHASE}
)
_REDECIDES: Final = frozenset({CaseAction.BREAK_BUNDLE, CaseAction.CLOSE_PHASE})
_FIELDS: Final = frozenset(f.value for f in Field)

__all__ = ["AdminService"]

T = TypeVar("T")

DEFAULT_SESSION_LIFETIME: Final = timedelta(hours=8)
_MAX_TRACKED_ATTEMPTS: Final = 10_000
# Throttled logins are logged once per address (and account) per window, not each.
THROTTLED_LOG_WINDOW: Final = timedelta(minutes=15)
HASHES_AT_ONCE: Final = 4  # scrypt hashes and checks running at one time
AUDIT_VERIFY_PAGE: Final = 5000  # entries read per query when the chain is checked
_UNKNOWN_USER: Final = "(onbekend)"


@dataclass
class _Failures:
    count: int = 0
    last: datetime | None = None


@dataclass
class _ThrottledLogins:
    since: datetime  # when the window's one audit entry was written
    suppressed: int = 0  # refused in the window after it, without an entry of their own


@dataclass
class AdminService:
    admin: AdminStore
    messages: MessageStore
    layouts: LayoutRegistry | None
    clock: Callable[[], datetime]
    hasher: PasswordHasher = field(default_factory=PasswordHasher)
    # Failed logins in a row per (name, address) pair: kept in memory alike for names that
    # are accounts and names that are not (so the answers tell nothing about which exist),
    # and per pair, so that a guesser neither locks an account out from everywhere nor
    # keeps every administrator behind one proxy address out.
    throttle: Throttle = field(default_factory=Throttle)
    session_lifetime: timedelta = DEFAULT_SESSION_LIFETIME
    metrics: AdminMetrics | None = None
    run_in_thread: RunInThread = run_inline
    resolver: Resolver | None = None
    # Runs bundling now, after an action that has lines decided again (break, close).
    after_change: Callable[[], Awaitable[object]] | None = None
    search_store: SearchStore | None = None
    names: Names = field(default_factory=Names)  # participants, insurers, prestaties
    _attempts: OrderedDict[tuple[str, str], _Failures] = field(
        default_factory=OrderedDict, repr=False
    )
    _throttled: dict[tuple[str, str], _ThrottledLogins] = field(default_factory=dict, repr=False)
    _hash_slots: DeferredSemaphore = field(
        default_factory=lambda: DeferredSemaphore(HASHES_AT_ONCE), repr=False
    )
    # The last entry (number, hash) an intact check of the audit chain reached.
    _verified: tuple[int, str] | None = field(default=None, repr=False)

    # --- accounts -----------------------------------------------------------------------

    async def create_user(self, name: str, role: Role, password: str, actor: Actor) -> None:
        """Add a user (``actor`` is whoever bootstraps: e.g. ``cli:root``)."""
        check_user_name(name)
        check_password_rules(password)
        hashed = await self._hashing(lambda: self.hasher.hash(password))
        await self.admin.create_user(
            name,
            role,
            hashed,
            self._entry(actor, AuditAction.USER_CREATED, None, f"{name} ({role})"),
        )

    async def create_token(self, name: str, lifetime: timedelta, actor: Actor) -> str:
        """A new API token for user ``name``, valid for ``lifetime``; shown once."""
        user = await self.admin.user(name)
        if user is None or user.disabled:
            raise AccountError(f"no active user {name!r}")
        token = new_token()
        now = self.clock()
        await self.admin.add_token(
            NewSession(token_digest(token), "token", name, now, now + lifetime, actor.origin),
            self._entry(
                actor,
                AuditAction.TOKEN_CREATED,
                None,
                f"voor {name}, tot {(now + lifetime).date()}",
            ),
        )
        return token

    async def login(self, name: str, password: str, origin: str) -> tuple[str, Actor]:
        """A new session token and the actor it stands for; raises
        :class:`LoginRefusedError`."""
        now = self.clock()
        try:
            name = check_user_name(name.strip().lower())
        except AccountError:
            name = ""
        shown = name or _UNKNOWN_USER
        pair = (shown, origin)
        failures = self._attempts.get(pair)
        if failures is not None and self.throttle.refuses(failures.count, failures.last, now):
            await self._refused(
                shown, origin, now, "te veel mislukte pogingen voor deze naam vanaf dit adres", name
            )
            raise LoginRefusedError(throttled=True)
        user = await self.admin.user(name) if name else None
        stored = user.password_hash if user is not None and not user.disabled else None
        ok = await self._hashing(lambda: self.hasher.verify(password, stored))
        if not ok or user is None:
            self._count_failure(pair, now)
            entry = NewAuditEntry(now, shown, "", AuditAction.LOGIN_FAILED, None, "", origin)
            await self.admin.login_failed(name, entry)
            self._count_login("refused")
            raise LoginRefusedError(throttled=False)
        self._attempts.pop(pair, None)
        new_hash = None
        if self.hasher.needs_rehash(user.password_hash):
            new_hash = await self._hashing(lambda: self.hasher.hash(password))
        token = new_token()
        actor = Actor(user.name, user.role, origin)
        await self.admin.login_succeeded(
            NewSession(
                token_digest(token), "session", user.name, now, now + self.session_lifetime, origin
            ),
            self._entry(actor, AuditAction.LOGIN, None, ""),
            new_hash,
        )
        self._count_login("ok")
        return token, actor

    async def _refused(
        self, shown: str, origin: str, now: datetime, why: str, account: str
    ) -> None:
        """A throttled login: counted always, but logged once per address (and account,
        when the account is what throttles) per :data:`THROTTLED_LOG_WINDOW`; that entry
        says how many the window before it counted without an entry of their own."""
        self._count_login("throttled")
        key = (origin, account)
        seen = self._throttled.get(key)
        if seen is not None and now - seen.since < THROTTLED_LOG_WINDOW:
            seen.suppressed += 1
            return
        minutes = int(THROTTLED_LOG_WINDOW.total_seconds() // 60)
        detail = f"{why}; verdere geweigerde pogingen {minutes} minuten lang alleen geteld"
        if seen is not None and seen.suppressed:
            detail += f" (vorige periode: {seen.suppressed} niet apart vastgelegd)"
        if len(self._throttled) >= _MAX_TRACKED_ATTEMPTS:
            self._throttled.clear()  # bounded, as the address failures are
        self._throttled[key] = _ThrottledLogins(now)
        await self.admin.audit(
            NewAuditEntry(now, shown, "", AuditAction.LOGIN_FAILED, None, detail, origin)
        )

    def _count_failure(self, pair: tuple[str, str], now: datetime) -> None:
        attempts = self._attempts
        if pair not in attempts and len(attempts) >= _MAX_TRACKED_ATTEMPTS:
            # Bounded: forget the pairs that wait no longer, else the longest untouched.
            for stale in [
                key
                for key, seen in attempts.items()
                if not self.throttle.refuses(seen.count, seen.last, now)
            ]:
                del attempts[stale]
            while len(attempts) >= _MAX_TRACKED_ATTEMPTS:
                attempts.popitem(last=False)
        failures = attempts.setdefault(pair, _Failures())
        attempts.move_to_end(pair)
        failures.count += 1
        failures.last = now

    async def authenticate(self, token: str | None, origin: str) -> Actor | None:
        """The actor of a live session or API token; None for anything else."""
        if not token or len(token) > 200:
            return None
        record = await self.admin.session(token_digest(token), self.clock())
        return None if record is None else Actor(record.user, record.role, origin)

    async def forget_session(self, token: str) -> None:
        """End a session a browser brought to a new login (whoever's it was)."""
        if token and len(token) <= 200:
            await self.admin.end_session(token_digest(token), None)

    async def logout(self, token: str, actor: Actor) -> None:
        await self.admin.end_session(
            token_digest(token), self._entry(actor, AuditAction.LOGOUT, None, "")
        )

    # --- the accounts' life cycle (administrators; NEN 7510's leaver process) -----------

    async def users(self, actor: Actor) -> list[UserView]:
        """Every account with its live sessions and tokens."""
        self._require(actor, Permission.MANAGE_USERS)
        users = await self.admin.users()
        live = await self.admin.live_sessions(self.clock())
        return [
            UserView(
                user,
                live.get(user.name, {}).get("session", 0),
                live.get(user.name, {}).get("token", 0),
            )
            for user in users
        ]

    async def disable_user(self, actor: Actor, name: str) -> int:
        """Disable ``name`` (it can no longer log in) and end its sessions and API
        tokens; the number ended."""
        return await self._change(
            actor,
            UserChange(name, disabled=True, revoke=SESSION_KINDS),
            AuditAction.USER_DISABLED,
            f"{name}: uitgeschakeld; sessies en API-tokens ingetrokken",
        )

    async def enable_user(self, actor: Actor, name: str) -> None:
        """Let a disabled ``name`` log in again (its old sessions and tokens stay ended)."""
        await self._change(
            actor, UserChange(name, disabled=False), AuditAction.USER_ENABLED, f"{name}"
        )

    async def reset_password(self, actor: Actor, name: str, password: str) -> int:
        """Give ``name`` a new password and end its sessions and API tokens; the number
        ended. The password is never logged."""
        self._require(actor, Permission.MANAGE_USERS)  # before any scrypt work
        check_password_rules(password)
        hashed = await self._hashing(lambda: self.hasher.hash(password))
        return await self._change(
            actor,
            UserChange(name, password_hash=hashed, revoke=SESSION_KINDS),
            AuditAction.PASSWORD_RESET,
            f"{name}: nieuw wachtwoord; sessies en API-tokens ingetrokken",
        )

    async def change_role(self, actor: Actor, name: str, role: Role) -> None:
        """Give ``name`` another role; it applies at once, to its sessions and tokens too."""
        self._require(actor, Permission.MANAGE_USERS)
        user = await self.admin.user(name)
        if user is None:
            raise NotFoundError(name)
        await self._change(
            actor,
            UserChange(name, role=role),
            AuditAction.ROLE_CHANGED,
            f"{name}: {user.role.value} -> {role.value}",
        )

    async def revoke_sessions(
        self, actor: Actor, name: str, kinds: frozenset[str] = SESSION_KINDS
    ) -> int:
        """End ``name``'s browser sessions and/or API tokens; the number ended."""
        self._require(actor, Permission.MANAGE_USERS)
        if not kinds or not kinds <= SESSION_KINDS:
            raise AccountError("revoke sessions, tokens or both")
        what = " en ".join({"session": "sessies", "token": "API-tokens"}[k] for k in sorted(kinds))
        return await self._change(
            actor,
            UserChange(name, revoke=frozenset(kinds)),
            AuditAction.SESSIONS_REVOKED,
            f"{name}: {what} ingetrokken",
        )

    async def _change(
        self, actor: Actor, change: UserChange, action: AuditAction, detail: str
    ) -> int:
        self._require(actor, Permission.MANAGE_USERS)
        try:
            check_user_name(change.name)
        except AccountError:
            raise NotFoundError(change.name) from None
        ended = await self.admin.change_user(change, self._entry(actor, action, None, detail))
        if self.metrics is not None:
            self.metrics.audit_entries.labels(action.value).inc()
        return ended

    async def _hashing(self, fn: Callable[[], T]) -> T:
        """A password hash or check off the reactor thread, a few at a time: each takes
        scrypt's memory (128 MiB by default), so a flood of logins cannot take more."""
        await self._hash_slots.acquire()
        try:
            return await self.run_in_thread(fn)
        finally:
            self._hash_slots.release()

    # --- cases --------------------------------------------------------------------------

    async def queue(self, actor: Actor, query: CaseFilter) -> Queue:
        self._require(actor, Permission.VIEW_CASES)
        now = self.clock()
        every = await self.admin.cases()
        counts = self._publish(every, now)
        return Queue(select_cases(every, query, now), counts, now)

    async def refresh_metrics(self) -> None:
        """Open cases and the age of the oldest per kind, for the metrics (not audited:
        nobody views anything)."""
        self._publish(await self.admin.cases(), self.clock())

    def _publish(self, every: list[Case], now: datetime) -> dict[CaseKind, int]:
        counts = counts_by_kind(every)
        if self.metrics is not None:
            oldest = dict.fromkeys(CaseKind, 0.0)
            for case in every:
                if case.is_open:
                    age = case.age(now).total_seconds()
                    oldest[case.kind] = max(oldest[case.kind], age)
            for kind, count in counts.items():
                self.metrics.open_cases.labels(kind.value).set(count)
                self.metrics.oldest_open_case.labels(kind.value).set(oldest[kind])
        return counts

    async def case(self, actor: Actor, case_id: str, *, unmask: bool = False) -> CaseView:
        """The case page's content; the view (and an unmasking) is audited."""
        self._require(actor, Permission.VIEW_CASES)
        if unmask:
            self._require(actor, Permission.UNMASK)
        found = await self._find(case_id)
        case, notes = found
        action = AuditAction.UNMASK if unmask else AuditAction.VIEW_CASE
        await self._audit(self._entry(actor, action, case.id, ""))
        history = await self.admin.audit_entries(subject=case.id)
        statuses = await self.messages.statuses([case.facts.ref])
        codes = list(
            dict.fromkeys([*case.facts.retourcodes, *(s.code for s in statuses if s.code)])
        )
        file = None
        if case.facts.sha256 is not None and self.layouts is not None:
            payload = await self.messages.payload(case.facts.sha256)
            if payload is not None:
                layouts = self.layouts
                file = await self.run_in_thread(lambda: view_file(layouts, payload, unmask=unmask))
        may_act = actor.may(Permission.RESOLVE_CASES)
        detail = await self.admin.case_detail(case.facts)
        prestaties: list[tuple[str, str]] = []
        current: dict[str, str] = {}
        if detail.claim is not None and self.resolver is not None:
            prestaties = self.resolver.prestaties_for(Phase(detail.claim.phase))
            if CaseAction.RESUBMIT in allowed_actions(case):
                current = await self.resolver.current(detail.claim.reference)
        whole = await self.admin.pregnancy(detail.pregnancy) if detail.pregnancy else None
        return CaseView(
            pregnancy_lines=whole.lines if whole is not None else detail.lines,
            pregnancy_decisions=whole.decisions if whole is not None else detail.decisions,
            client=await self._client(detail, unmask),
            current=current,
            case=case,
            detail=detail,
            prestaties=prestaties,
            spec=KINDS[case.kind],
            notes=notes,
            history=history,
            statuses=statuses,
            retourcodes=[(code, describe(code)) for code in codes],
            actions=allowed_actions(case) if may_act else [],
            file=file,
            now=self.clock(),
            unmasked=unmask,
        )

    async def pregnancy_client(self, view: PregnancyView) -> ClientView | None:
        """The woman of a pregnancy (name and birth date; her BSN masked), as her files
        name her, for the pregnancy page (whose view is audited already)."""
        return await self._client(CaseDetail(lines=view.lines), False)

    async def _client(self, detail: CaseDetail, unmask: bool) -> ClientView | None:
        """The client as the claim file (else an original line's upload) names her."""
        if self.layouts is None:
            return None
        places = [(ln.traceer_id, ln.record_number) for ln in detail.lines]
        if detail.claim is not None:
            places.insert(0, (detail.claim.outbound, detail.claim.record_number))
        layouts = self.layouts
        for traceer_id, record_number in places[:3]:
            message = await self.messages.get_message(traceer_id)
            payload = await self.messages.payload(message.sha256) if message else None
            if payload is None:
                continue
            found = await self.run_in_thread(
                partial(client_of, layouts, payload, record_number, unmask=unmask)
            )
            if found is not None:
                return found
        return None

    async def act(
        self,
        actor: Actor,
        case_id: str,
        action: CaseAction,
        reason: str,
        fields: Mapping[str, str] | None = None,
    ) -> Case:
        """Do ``action`` (checked, in one transaction with its audit entry and, for the
        actions of :mod:`gateway.resolution`, the effect prepared for it). ``fields`` are
        a correction's changed fields (``resubmit`` only)."""
        kind = parse_case_id(case_id)
        try:
            if not actor.may(Permission.RESOLVE_CASES):
                raise ActionRefusedError(
                    "geen-recht",
                    f"Rol {actor.role.value} mag geen zaken afhandelen.",
                    kind=ErrorKind.NOT_ALLOWED,
                )
            if kind is None:
                raise NotFoundError(case_id)
            if fields and action not in NEEDS_INPUT:
                raise ActionRefusedError(
                    "velden-niet-verwacht",
                    f"Actie {action.value} neemt geen velden aan.",
                    kind=ErrorKind.INVALID,
                )
            effect: Effect | None = None
            if action in _PREPARED:
                current, _ = await self._find(case_id)
                check_action(current, action, actor, reason)
                effect = await self._prepare(current, action, fields or {})
                if isinstance(effect, Resubmission):
                    # The audit entry says which fields changed (never their values) and
                    # the new line; the reason gives up room for that if it must.
                    changed = ", ".join(
                        FIELD_LABELS.get(Field(name), name) if name in _FIELDS else name
                        for name in effect.changes
                    )
                    note = f" (verbeterd: {changed}; nieuwe regel {effect.link.reference})"
                    reason = (reason.strip()[: MAX_REASON_LENGTH - len(note)] + note).strip()
            case = await self.admin.act(case_id, action, actor, reason, self.clock(), effect)
        except ActionRefusedError as refused:
            if self.metrics is not None:
                self.metrics.refused.labels(refused.code).inc()
            raise
        if action in _REDECIDES and self.after_change is not None:
            try:
                await self.after_change()
                case, _ = await self._find(case_id)  # as the lines stand decided again
            except Exception:  # the scheduled run will do it; the action itself stands
                log.failure("bundling after {action} failed", action=action.value)
        if self.metrics is not None:
            self.metrics.actions.labels(case.kind.value, action.value).inc()
            self.metrics.audit_entries.labels(action.value).inc()
        return case

    async def prepare_for_batch(
        self, actor: Actor, case_id: str, action: CaseAction, reason: str
    ) -> Effect | None:
        """For a bulk-action batch: the effect ``action`` needs on the case (None for an
        action that needs none), prepared as :meth:`act` prepares it; raises
        :class:`~gateway.admin.cases.ActionRefusedError` when it does not fit (NotFoundError
        for no such case). The batch then does the action with it in the case's own
        transaction, checked again there."""
        if action not in _PREPARED:
            return None
        current, _ = await self._find(case_id)
        check_action(current, action, actor, reason)
        return await self._prepare(current, action, {})

    async def after_batch_action(self, action: CaseAction) -> None:
        """What :meth:`act` does after an action on a case: the bundler decides the lines
        again after one that changes them (a failure is logged; the scheduled run does it)."""
        if action in _REDECIDES and self.after_change is not None:
            try:
                await self.after_change()
            except Exception:
                log.failure("bundling after {action} failed", action=action.value)

    async def _prepare(self, case: Case, action: CaseAction, fields: Mapping[str, str]) -> Effect:
        if action is CaseAction.CLOSE_PHASE:
            pregnancy, _, rest = case.facts.ref.partition("|")
            return ClosePhase(pregnancy, Phase(rest.partition("|")[0]))
        if self.resolver is None:
            raise ActionRefusedError(
                "niet-beschikbaar",
                "Deze actie kan alleen in de draaiende gateway (serve).",
                kind=ErrorKind.UNAVAILABLE,
            )
        ref = case.facts.ref
        if action is CaseAction.RESUBMIT:
            return await self.resolver.resubmit(ref, Correction.parse(dict(fields)))
        if action is CaseAction.PASS_ON:
            return await self.resolver.pass_on(ref)
        return await self.resolver.break_claim(ref)

    async def pregnancy(self, actor: Actor, pregnancy: str) -> PregnancyView:
        """Every line of one pregnancy across participants and phases, with outcomes;
        viewing it is audited."""
        self._require(actor, Permission.VIEW_CASES)
        if not pregnancy or len(pregnancy) > 100:
            raise NotFoundError(pregnancy)
        found = await self.admin.pregnancy(pregnancy)
        if found is None:
            raise NotFoundError(pregnancy)
        await self._audit(self._entry(actor, AuditAction.VIEW_PREGNANCY, pregnancy, ""))
        return found

    async def _find(self, case_id: str) -> tuple[Case, list[CaseNote]]:
        if parse_case_id(case_id) is None:
            raise NotFoundError(case_id)
        found = await self.admin.case(case_id)
        if found is None:
            raise NotFoundError(case_id)
        return found

    # --- search -------------------------------------------------------------------------

    async def search(
        self,
        actor: Actor,
        query: SearchQuery,
        *,
        limit: int = DEFAULT_LIMIT,
        unmask: bool = False,
    ) -> SearchResult:
        """Uploads, retours, outbound files, lines and claims matching every key of
        ``query``, newest first. Audited with the keys searched on (a BSN only as "zoeken
        op BSN"); with ``unmask`` (its own permission) the lines' BSNs are shown, and the
        entry is an unmasking."""
        self._require(actor, Permission.VIEW_CASES)
        if unmask:
            self._require(actor, Permission.UNMASK)
        query = check_query(query)
        if self.search_store is None:
            raise SearchRefusedError(
                "zoeken-niet-beschikbaar",
                "Zoeken kan alleen op een SQL-opslag.",
                kind=ErrorKind.UNAVAILABLE,
            )
        limit = max(1, min(limit, MAX_LIMIT))
        action = AuditAction.UNMASK if unmask else AuditAction.SEARCH
        await self._audit(self._entry(actor, action, None, audit_detail(query)))
        hits, more = await self.search_store.search(query, limit, reveal=unmask)
        return SearchResult(hits, more, limit, unmasked=unmask)

    # --- the audit log ------------------------------------------------------------------

    async def audit_log(
        self, actor: Actor, *, after_seq: int = 0, limit: int | None = 200, export: bool = False
    ) -> list[AuditEntry]:
        """Entries after ``after_seq``; reading (and exporting) them is itself logged."""
        self._require(actor, Permission.VIEW_AUDIT)
        action = AuditAction.EXPORT_AUDIT if export else AuditAction.VIEW_AUDIT
        await self._audit(self._entry(actor, action, None, f"vanaf {after_seq + 1}"))
        return await self.admin.audit_entries(after_seq=after_seq, limit=limit)

    async def verify_audit(
        self, *, incremental: bool = False, expected: tuple[int, str] | None = None
    ) -> ChainReport:
        """Check the audit chain up to its head, a page of entries at a time. With
        ``incremental``, from the last entry an earlier intact check reached (if it is
        still there with the same hash) instead of from the first: the newer entries and
        the head are checked, the older ones not again. ``expected`` is a head recorded
        elsewhere (``igo-gateway audit head``) that the log must still hold."""
        head = await self.admin.audit_chain_head()
        start = (0, GENESIS_HASH)
        frontier: list[AuditEntry] = []
        if incremental and self._verified is not None and 0 < self._verified[0] <= head.seq:
            seq, digest = self._verified
            found = await self.admin.audit_entries(after_seq=seq - 1, limit=1)
            if found and found[0].seq == seq and found[0].hash == digest:
                # Checked again (content against hash) as the first entry of this check.
                frontier, start = found, (seq - 1, found[0].prev_hash)
        verifier = ChainVerifier(
            self.admin.audit_key, head.keyed_from, start=start, expected=expected
        )
        verifier.feed(frontier)
        position = start[0] + len(frontier)
        while position < head.seq and not verifier.broken:
            page = await self.admin.audit_entries(
                after_seq=position, limit=min(AUDIT_VERIFY_PAGE, head.seq - position)
            )
            if not page:
                break
            verifier.feed(page)
            position = page[-1].seq
        report = verifier.report(head)
        self._verified = (report.entries, report.head_hash) if report.intact else None
        return report

    # --- helpers ------------------------------------------------------------------------

    def _entry(
        self, actor: Actor, action: AuditAction, subject: str | None, detail: str
    ) -> NewAuditEntry:
        return NewAuditEntry(
            self.clock(), actor.name, actor.role.value, action, subject, detail, actor.origin
        )

    async def _audit(self, entry: NewAuditEntry) -> None:
        await self.admin.audit(entry)
        if self.metrics is not None:
            self.metrics.audit_entries.labels(entry.action.value).inc()

    def _count_login(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.logins.labels(outcome).inc()

    @staticmethod
    def _require(actor: Actor, permission: Permission) -> None:
        if not actor.may(permission):
            raise NotAllowedError(permission)
