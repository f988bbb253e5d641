"""The admin store on SQLite and PostgreSQL, driven through the admin service: accounts,
sessions, throttling, the audit chain (and what tampering does to it), cases of every
kind that exists today, and every action with its permissions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from adapters.admin.demo import SeededCases, seed_cases
from adapters.storage import SqlMessageStore, Transaction, open_store
from adapters.storage.admin import SqlAdminStore
from gateway.admin.accounts import Actor, PasswordHasher, Role, ScryptParameters
from gateway.admin.audit import AuditAction
from gateway.admin.cases import (
    ActionRefusedError,
    CaseAction,
    CaseFilter,
    CaseKind,
    CaseState,
    case_id,
)
from gateway.admin.service import AdminService
from gateway.ei import LayoutRegistry
from gateway.errors import ErrorKind
from gateway.loading import load_layouts
from gateway.ports.admin import LoginRefusedError, NotAllowedError, UserExistsError
from gateway.ports.outbox import OutboundState
from tests.threadpump import ThreadPump

T = TypeVar("T")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
FAST = ScryptParameters(log2_n=10, r=8, p=1)  # cheap for tests; production uses 2**15

ROOT = Actor("cli:root", Role.ADMINISTRATOR, "cli")


@pytest.fixture(scope="module")
def layouts() -> LayoutRegistry:
    return load_layouts()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    pump: ThreadPump
    store: SqlMessageStore
    admin: SqlAdminStore
    service: AdminService
    clock: Clock
    seeded: SeededCases

    def wait(self, awaitable: Any) -> Any:
        return self.pump.wait(awaitable)

    def user(self, name: str, role: Role) -> Actor:
        self.wait(self.service.create_user(name, role, PASSWORD, ROOT))
        return Actor(name, role, "127.0.0.1")

    def sql(self, sql: str, *params: object) -> None:
        def run(txn: Transaction) -> None:
            txn.execute(sql, params)

        self.wait(self.store.database.run_interaction("test_sql", run))


@pytest.fixture
def world(sql_url: str, pump: ThreadPump, layouts: LayoutRegistry) -> Iterator[World]:
    store = pump.wait(open_store(sql_url, pump))
    admin = SqlAdminStore(store.database)
    clock = Clock()
    service = AdminService(
        admin,
        store,
        layouts,
        clock,
        hasher=PasswordHasher(FAST),
        session_lifetime=timedelta(hours=1),
    )
    seeded = pump.wait(seed_cases(store, layouts, T0))
    try:
        yield World(pump, store, admin, service, clock, seeded)
    finally:
        pump.wait(store.close())


# --- accounts and sessions -------------------------------------------------------------------


def test_a_user_logs_in_and_gets_a_session_that_expires(world: World) -> None:
    world.user("anna", Role.OPERATOR)
    token, actor = world.wait(world.service.login("Anna", PASSWORD, "10.1.2.3"))
    assert (actor.name, actor.role) == ("anna", Role.OPERATOR)
    assert world.wait(world.service.authenticate(token, "10.1.2.3")) == actor
    # Only the token's digest is stored.
    user = world.wait(world.admin.user("anna"))
    assert user is not None
    assert user.password_hash.startswith("scrypt$10$8$1$")
    assert PASSWORD not in user.password_hash
    world.clock.now = T0 + timedelta(hours=1)
    assert world.wait(world.service.authenticate(token, "10.1.2.3")) is None


def test_wrong_passwords_and_unknown_names_are_refused_alike_and_logged(world: World) -> None:
    world.user("anna", Role.VIEWER)
    for name in ("anna", "nobody", "<script>"):
        error = world.pump.wait_error(world.service.login(name, "wrong password!", "10.0.0.9"))
        assert isinstance(error, LoginRefusedError)
        assert not error.throttled
    entries = world.wait(world.admin.audit_entries())
    failed = [e for e in entries if e.action == AuditAction.LOGIN_FAILED]
    assert [e.actor for e in failed] == ["anna", "nobody", "(onbekend)"]
    assert all(e.origin == "10.0.0.9" for e in failed)


def _fail(world: World, name: str, origin: str) -> LoginRefusedError:
    error = world.pump.wait_error(world.service.login(name, "wrong password!", origin))
    assert isinstance(error, LoginRefusedError)
    return error


def test_logins_are_throttled_after_repeated_failures_per_name_and_address(
    world: World,
) -> None:
    world.user("anna", Role.VIEWER)
    for n in range(5):
        world.clock.now = T0 + timedelta(seconds=n)
        assert not _fail(world, "anna", "10.0.0.1").throttled
    # The right password now waits too, from that address...
    error = world.pump.wait_error(world.service.login("anna", PASSWORD, "10.0.0.1"))
    assert isinstance(error, LoginRefusedError)
    assert error.throttled
    # ...but not from another one: a guesser cannot lock the account out everywhere.
    token, _ = world.wait(world.service.login("anna", PASSWORD, "10.9.9.9"))
    assert token
    world.clock.now += timedelta(seconds=3)
    token, _ = world.wait(world.service.login("anna", PASSWORD, "10.0.0.1"))
    assert token
    user = world.wait(world.admin.user("anna"))
    assert user is not None
    assert user.failed_logins == 0


def test_known_and_unknown_names_are_throttled_alike(world: World) -> None:
    """The throttle does not tell which names are accounts: the same attempts get the
    same answers for a user and for a name nobody has."""
    world.user("anna", Role.VIEWER)
    answers: dict[str, list[bool]] = {}
    for name in ("anna", "nobody"):
        world.clock.now = T0
        answers[name] = [_fail(world, name, "10.0.0.1").throttled for _ in range(8)]
    assert answers["anna"] == answers["nobody"] == [False] * 5 + [True] * 3


def test_failures_behind_one_address_do_not_lock_out_other_accounts(world: World) -> None:
    """Every administrator may come through the same proxy address: someone guessing
    other names from it does not keep them out."""
    world.user("anna", Role.ADMINISTRATOR)
    for n in range(40):
        _fail(world, f"guess{n % 4}", "10.0.0.1")
    assert _fail(world, "guess0", "10.0.0.1").throttled
    token, actor = world.wait(world.service.login("anna", PASSWORD, "10.0.0.1"))
    assert token
    assert actor.name == "anna"


def test_a_user_name_is_taken_once(world: World) -> None:
    world.user("anna", Role.VIEWER)
    error = world.pump.wait_error(world.service.create_user("anna", Role.OPERATOR, PASSWORD, ROOT))
    assert isinstance(error, UserExistsError)


def test_logout_ends_the_session(world: World) -> None:
    world.user("anna", Role.VIEWER)
    token, actor = world.wait(world.service.login("anna", PASSWORD, "10.0.0.1"))
    world.wait(world.service.logout(token, actor))
    assert world.wait(world.service.authenticate(token, "10.0.0.1")) is None


def test_an_api_token_authenticates_until_it_expires(world: World) -> None:
    world.user("script", Role.OPERATOR)
    token = world.wait(world.service.create_token("script", timedelta(days=1), ROOT))
    actor = world.wait(world.service.authenticate(token, "10.0.0.5"))
    assert actor is not None
    assert actor.role is Role.OPERATOR
    world.clock.now = T0 + timedelta(days=2)
    assert world.wait(world.service.authenticate(token, "10.0.0.5")) is None


# --- the audit log ---------------------------------------------------------------------------


def test_the_audit_chain_verifies_and_tampering_is_found(world: World, sql_url: str) -> None:
    viewer = world.user("vera", Role.VIEWER)
    for _ in range(3):
        world.wait(world.service.case(viewer, case_id(CaseKind.PARKED, world.seeded.parked)))
    report = world.wait(world.service.verify_audit())
    assert report.intact
    assert report.entries == 4

    # The store refuses edits outright...
    error = world.pump.wait_error(
        world.store.database.run_interaction(
            "edit", lambda txn: txn.execute("UPDATE admin_audit SET actor = 'x' WHERE seq = 2")
        )
    )
    assert "append-only" in str(error)
    # ...and someone who removes that guard is still found out by the chain.
    _drop_guard(world, sql_url)
    world.sql("UPDATE admin_audit SET detail = 'edited' WHERE seq = 3")
    report = world.wait(world.service.verify_audit())
    assert (report.intact, report.first_bad_seq) == (False, 3)


def test_a_deleted_entry_is_found_in_the_middle_and_at_the_end(world: World, sql_url: str) -> None:
    viewer = world.user("vera", Role.VIEWER)
    for _ in range(4):
        world.wait(world.service.case(viewer, case_id(CaseKind.PARKED, world.seeded.parked)))
    _drop_guard(world, sql_url)
    world.sql("DELETE FROM admin_audit WHERE seq = 5")
    report = world.wait(world.service.verify_audit())
    assert (report.first_bad_seq, report.problem) == (5, "entries 5-5 are missing")
    world.sql("DELETE FROM admin_audit WHERE seq = 3")
    report = world.wait(world.service.verify_audit())
    assert (report.first_bad_seq, report.problem) == (3, "entry 3 is missing")


def _drop_guard(world: World, sql_url: str) -> None:
    if sql_url.startswith("sqlite"):
        world.sql("DROP TRIGGER admin_audit_no_update")
        world.sql("DROP TRIGGER admin_audit_no_delete")
    else:
        world.sql("DROP TRIGGER admin_audit_append_only ON admin_audit")


# --- cases -----------------------------------------------------------------------------------


def test_the_queue_has_one_open_case_of_each_kind_oldest_first(world: World) -> None:
    viewer = world.user("vera", Role.VIEWER)
    queue = world.wait(world.service.queue(viewer, CaseFilter()))
    assert [c.kind for c in queue.cases] == [
        CaseKind.INTAKE_REJECTED,
        CaseKind.PARKED,
        CaseKind.UNMATCHED_RETOUR,
    ]
    # The seed has no bundling in it: the kinds that come from bundling and the insurers'
    # answers are tested in test_resolution.
    seeded = {CaseKind.INTAKE_REJECTED, CaseKind.PARKED, CaseKind.UNMATCHED_RETOUR}
    assert queue.counts == {kind: int(kind in seeded) for kind in CaseKind}
    rejected, parked, retour = queue.cases
    assert (rejected.facts.participant, rejected.facts.retourcodes) == ("33001234", ("0040",))
    assert rejected.age(queue.now) == timedelta(days=3)
    assert (parked.facts.insurer, parked.facts.participant) == ("3311", "53001234")
    assert "connection refused" in parked.facts.summary
    assert retour.facts.insurer == "3311"
    assert "geen verstuurd bestand" in retour.facts.summary


def test_the_queue_filters_by_kind_insurer_participant_retourcode_and_age(world: World) -> None:
    viewer = world.user("vera", Role.VIEWER)

    def kinds(**query: Any) -> list[CaseKind]:
        queue = world.wait(world.service.queue(viewer, CaseFilter(**query)))
        return [c.kind for c in queue.cases]

    assert kinds(kinds=frozenset({CaseKind.PARKED})) == [CaseKind.PARKED]
    assert kinds(insurer="3311") == [CaseKind.PARKED, CaseKind.UNMATCHED_RETOUR]
    assert kinds(participant="33001234") == [CaseKind.INTAKE_REJECTED]
    assert kinds(retourcode="0040") == [CaseKind.INTAKE_REJECTED]
    # Ages: rejected 3 days, parked 1 day (since it was parked), retour 5 hours.
    assert kinds(min_age_days=1) == [CaseKind.INTAKE_REJECTED, CaseKind.PARKED]
    assert kinds(min_age_days=2) == [CaseKind.INTAKE_REJECTED]
    assert kinds(max_age_days=0) == []
    assert kinds(max_age_days=1) == [CaseKind.PARKED, CaseKind.UNMATCHED_RETOUR]


def test_viewing_a_case_is_audited_and_shows_codes_history_and_a_masked_file(
    world: World,
) -> None:
    viewer = world.user("vera", Role.VIEWER)
    cid = case_id(CaseKind.INTAKE_REJECTED, world.seeded.intake_rejected)
    view = world.wait(world.service.case(viewer, cid))
    assert view.retourcodes[0][0] == "0040"
    assert view.retourcodes[0][1]
    assert view.actions == []  # a viewer may look, not act
    assert view.file is not None
    assert view.file.masked
    shown = " ".join(f.value for r in view.file.records for f in r.fields)
    assert "111222333" not in shown
    assert "Testpersoon" not in shown
    assert [e.action for e in view.history] == ["view_case"]
    assert view.history[0].subject == cid
    assert view.history[0].actor == "vera"


def test_unmasking_needs_the_permission_and_is_audited(world: World) -> None:
    viewer = world.user("vera", Role.VIEWER)
    operator = world.user("otto", Role.OPERATOR)
    cid = case_id(CaseKind.INTAKE_REJECTED, world.seeded.intake_rejected)
    error = world.pump.wait_error(world.service.case(viewer, cid, unmask=True))
    assert isinstance(error, NotAllowedError)
    view = world.wait(world.service.case(operator, cid, unmask=True))
    assert view.file is not None
    shown = " ".join(f.value for r in view.file.records for f in r.fields)
    assert "111222333" in shown
    assert view.history[-1].action == "unmask"


def test_retrying_a_parked_file_queues_it_due_now(world: World) -> None:
    operator = world.user("otto", Role.OPERATOR)
    world.clock.now = T0 + timedelta(minutes=5)
    cid = case_id(CaseKind.PARKED, world.seeded.parked)
    case = world.wait(world.service.act(operator, cid, CaseAction.RETRY, ""))
    assert case.state is CaseState.RETRIED
    assert not case.facts.active
    outbound = world.wait(world.store.outbox.get(world.seeded.parked))
    assert outbound is not None
    assert (outbound.state, outbound.due_at) == (OutboundState.QUEUED, world.clock.now)
    # Retrying again does not fit any more.
    error = world.pump.wait_error(world.service.act(operator, cid, CaseAction.RETRY, ""))
    assert isinstance(error, ActionRefusedError)
    assert error.code == "actie-past-niet"
    # Parked again after the retry: the case is open again.
    world.clock.now = T0 + timedelta(minutes=10)
    world.wait(world.store.outbox.park(world.seeded.parked, "timeout", world.clock.now))
    queue = world.wait(
        world.service.queue(operator, CaseFilter(kinds=frozenset({CaseKind.PARKED})))
    )
    assert [c.state for c in queue.cases] == [CaseState.OPEN]
    entries = world.wait(world.admin.audit_entries(subject=cid))
    assert [e.action for e in entries] == ["retry"]


def test_write_off_needs_a_reason_and_reopen_brings_the_case_back(world: World) -> None:
    operator = world.user("otto", Role.OPERATOR)
    cid = case_id(CaseKind.UNMATCHED_RETOUR, world.seeded.unmatched_retour)
    error = world.pump.wait_error(world.service.act(operator, cid, CaseAction.WRITE_OFF, "  "))
    assert isinstance(error, ActionRefusedError)
    assert error.kind is ErrorKind.INVALID
    case = world.wait(
        world.service.act(
            operator, cid, CaseAction.WRITE_OFF, "Hoort bij een oude papieren declaratie"
        )
    )
    assert case.state is CaseState.WRITTEN_OFF
    assert case.record is not None
    assert case.record.reason.startswith("Hoort bij")
    queue = world.wait(world.service.queue(operator, CaseFilter()))
    assert queue.counts[CaseKind.UNMATCHED_RETOUR] == 0
    closed = world.wait(world.service.queue(operator, CaseFilter(include_closed=True)))
    assert cid in [c.id for c in closed.cases]
    world.clock.now += timedelta(minutes=1)
    case = world.wait(world.service.act(operator, cid, CaseAction.REOPEN, "toch nog uitzoeken"))
    assert case.state is CaseState.OPEN
    history = world.wait(world.admin.audit_entries(subject=cid))
    assert [(e.action, e.detail) for e in history] == [
        ("write_off", "Hoort bij een oude papieren declaratie"),
        ("reopen", "toch nog uitzoeken"),
    ]


def test_notes_are_kept_with_the_case(world: World) -> None:
    operator = world.user("otto", Role.OPERATOR)
    cid = case_id(CaseKind.INTAKE_REJECTED, world.seeded.intake_rejected)
    world.wait(world.service.act(operator, cid, CaseAction.NOTE, "Kraamzorg gebeld"))
    view = world.wait(world.service.case(operator, cid))
    assert [(n.author, n.text) for n in view.notes] == [("otto", "Kraamzorg gebeld")]
    assert view.case.state is CaseState.OPEN


@pytest.mark.parametrize("action", list(CaseAction))
def test_a_viewer_can_do_no_action(world: World, action: CaseAction) -> None:
    viewer = world.user("vera", Role.VIEWER)
    cid = case_id(CaseKind.PARKED, world.seeded.parked)
    error = world.pump.wait_error(world.service.act(viewer, cid, action, "een reden"))
    assert isinstance(error, ActionRefusedError)
    assert error.kind is ErrorKind.NOT_ALLOWED
    outbound = world.wait(world.store.outbox.get(world.seeded.parked))
    assert outbound is not None
    assert outbound.state is OutboundState.PARKED
    assert world.wait(world.admin.audit_entries(subject=cid)) == []


def test_an_unknown_case_is_not_found(world: World) -> None:
    operator = world.user("otto", Role.OPERATOR)
    for bad in ("parked:nope", "nonsense", "unknown_kind:x"):
        assert isinstance(world.pump.wait_error(world.service.case(operator, bad)), LookupError)
        error = world.pump.wait_error(world.service.act(operator, bad, CaseAction.NOTE, "x"))
        assert isinstance(error, LookupError)


def test_only_an_administrator_reads_the_audit_log_and_reading_is_logged(world: World) -> None:
    operator = world.user("otto", Role.OPERATOR)
    boss = world.user("bea", Role.ADMINISTRATOR)
    assert isinstance(world.pump.wait_error(world.service.audit_log(operator)), NotAllowedError)
    entries = world.wait(world.service.audit_log(boss, export=True))
    assert entries[-1].action == "export_audit"
    assert entries[-1].actor == "bea"


# --- the accounts' life cycle ----------------------------------------------------------------


def test_a_disabled_user_loses_sessions_and_tokens_and_cannot_log_in(world: World) -> None:
    boss = world.user("bea", Role.ADMINISTRATOR)
    world.user("anna", Role.OPERATOR)
    session, _ = world.wait(world.service.login("anna", PASSWORD, "10.0.0.1"))
    token = world.wait(world.service.create_token("anna", timedelta(days=1), ROOT))
    assert world.wait(world.service.disable_user(boss, "anna")) == 2
    for secret in (session, token):
        assert world.wait(world.service.authenticate(secret, "10.0.0.1")) is None
    error = world.pump.wait_error(world.service.login("anna", PASSWORD, "10.0.0.1"))
    assert isinstance(error, LoginRefusedError)
    (view,) = [v for v in world.wait(world.service.users(boss)) if v.user.name == "anna"]
    assert view.user.disabled
    assert (view.sessions, view.tokens) == (0, 0)

    world.wait(world.service.enable_user(boss, "anna"))
    assert world.wait(world.service.authenticate(token, "10.0.0.1")) is None  # stays ended
    assert world.wait(world.service.login("anna", PASSWORD, "10.0.0.1"))[1].name == "anna"
    actions = [e.action for e in world.wait(world.admin.audit_entries())]
    assert "user_disabled" in actions
    assert "user_enabled" in actions
    assert world.wait(world.service.verify_audit()).intact


def test_a_password_reset_ends_the_sessions_and_only_the_new_password_works(
    world: World,
) -> None:
    boss = world.user("bea", Role.ADMINISTRATOR)
    world.user("anna", Role.VIEWER)
    session, _ = world.wait(world.service.login("anna", PASSWORD, "10.0.0.1"))
    new = "a new long password"
    assert world.wait(world.service.reset_password(boss, "anna", new)) == 1
    assert world.wait(world.service.authenticate(session, "10.0.0.1")) is None
    assert isinstance(
        world.pump.wait_error(world.service.login("anna", PASSWORD, "10.0.0.2")),
        LoginRefusedError,
    )
    assert world.wait(world.service.login("anna", new, "10.0.0.3"))[1].name == "anna"
    entries = world.wait(world.admin.audit_entries())
    (reset,) = [e for e in entries if e.action == "password_reset"]
    assert new not in reset.detail
    assert (reset.actor, reset.role) == ("bea", "administrator")
    error = world.pump.wait_error(world.service.reset_password(boss, "anna", "short"))
    assert "at least 12" in str(error)


def test_a_role_change_applies_at_once_and_tokens_can_be_revoked_alone(world: World) -> None:
    boss = world.user("bea", Role.ADMINISTRATOR)
    world.user("anna", Role.VIEWER)
    session, _ = world.wait(world.service.login("anna", PASSWORD, "10.0.0.1"))
    token = world.wait(world.service.create_token("anna", timedelta(days=1), ROOT))
    world.wait(world.service.change_role(boss, "anna", Role.OPERATOR))
    actor = world.wait(world.service.authenticate(session, "10.0.0.1"))
    assert actor.role is Role.OPERATOR
    assert world.wait(world.service.revoke_sessions(boss, "anna", frozenset({"token"}))) == 1
    assert world.wait(world.service.authenticate(token, "10.0.0.1")) is None
    assert world.wait(world.service.authenticate(session, "10.0.0.1")) is not None
    details = [e.detail for e in world.wait(world.admin.audit_entries())]
    assert "anna: viewer -> operator" in details
    assert "anna: API-tokens ingetrokken" in details


def test_only_administrators_manage_accounts_and_the_last_one_stays(world: World) -> None:
    boss = world.user("bea", Role.ADMINISTRATOR)
    operator = world.user("otto", Role.OPERATOR)
    for attempt in (
        world.service.disable_user(operator, "bea"),
        world.service.users(operator),
        world.service.change_role(operator, "otto", Role.ADMINISTRATOR),
        world.service.reset_password(operator, "bea", "a new long password"),
    ):
        assert isinstance(world.pump.wait_error(attempt), NotAllowedError)
    for attempt in (
        world.service.disable_user(boss, "bea"),
        world.service.change_role(boss, "bea", Role.VIEWER),
    ):
        error = world.pump.wait_error(attempt)
        assert "last active administrator" in str(error)
    assert isinstance(
        world.pump.wait_error(world.service.disable_user(boss, "nobody")), LookupError
    )
    world.user("bob", Role.ADMINISTRATOR)
    world.wait(world.service.disable_user(boss, "bea"))  # another administrator is left
    user = world.wait(world.admin.user("bea"))
    assert user is not None
    assert user.disabled


def test_a_login_with_an_older_hash_stores_one_with_todays_cost(world: World) -> None:
    world.user("anna", Role.VIEWER)
    assert world.service.hasher.parameters.log2_n == 10
    world.service.hasher = PasswordHasher(ScryptParameters(log2_n=11))
    world.wait(world.service.login("anna", PASSWORD, "10.0.0.1"))
    user = world.wait(world.admin.user("anna"))
    assert user is not None
    assert user.password_hash.startswith("scrypt$11$")
