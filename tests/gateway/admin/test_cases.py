"""Cases: how facts and the administrator's record make a state, filters, counts, and which
actions fit whom."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.admin.accounts import Actor, Role
from gateway.admin.cases import (
    KINDS,
    NEEDS_EFFECT,
    STATE_AFTER,
    ActionRefusedError,
    CaseAction,
    CaseFacts,
    CaseFilter,
    CaseKind,
    CaseRecord,
    CaseState,
    allowed_actions,
    build_case,
    case_id,
    check_action,
    counts_by_kind,
    parse_case_id,
    select_cases,
)
from gateway.errors import ErrorKind

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
OPERATOR = Actor("otto", Role.OPERATOR, "10.0.0.1")
VIEWER = Actor("vera", Role.VIEWER, "10.0.0.2")


def facts(kind: CaseKind = CaseKind.PARKED, *, active: bool = True, **kw: object) -> CaseFacts:
    values: dict[str, object] = {"ref": "t1", "since": T0, "party": "3311", **kw}
    return CaseFacts(kind=kind, active=active, **values)  # type: ignore[arg-type]


def record(state: CaseState, at: datetime) -> CaseRecord:
    return CaseRecord("parked:t1", state, "", at, "otto")


def test_case_ids_round_trip_and_nonsense_is_refused() -> None:
    assert parse_case_id(case_id(CaseKind.PARKED, "abc:def")) == (CaseKind.PARKED, "abc:def")
    for bad in ("", "parked", "parked:", "nokind:x", "x" * 300):
        assert parse_case_id(bad) is None


def test_state_from_facts_and_record() -> None:
    assert build_case(facts(), None).state is CaseState.OPEN
    written_off = record(CaseState.WRITTEN_OFF, T0 + timedelta(hours=1))
    assert build_case(facts(), written_off).state is CaseState.WRITTEN_OFF
    # The situation arose again after the record: open again.
    assert build_case(facts(since=T0 + timedelta(hours=2)), written_off).is_open
    assert build_case(facts(active=False), None).state is CaseState.RESOLVED
    retried = record(CaseState.RETRIED, T0)
    assert build_case(facts(active=False), retried).state is CaseState.RETRIED


def test_actions_fit_the_kind_and_the_state() -> None:
    assert allowed_actions(build_case(facts(), None)) == [
        CaseAction.RETRY,
        CaseAction.WRITE_OFF,
        CaseAction.NOTE,
    ]
    rejected = build_case(facts(CaseKind.INTAKE_REJECTED), None)
    assert CaseAction.RETRY not in allowed_actions(rejected)
    closed = build_case(facts(), record(CaseState.WRITTEN_OFF, T0 + timedelta(hours=1)))
    assert allowed_actions(closed) == [CaseAction.REOPEN, CaseAction.NOTE]


def test_check_action_refuses_viewers_missing_reasons_and_misfits() -> None:
    case = build_case(facts(), None)
    with pytest.raises(ActionRefusedError) as refused:
        check_action(case, CaseAction.RETRY, VIEWER, "")
    assert refused.value.kind is ErrorKind.NOT_ALLOWED
    with pytest.raises(ActionRefusedError) as refused:
        check_action(case, CaseAction.WRITE_OFF, OPERATOR, "   ")
    assert refused.value.kind is ErrorKind.INVALID
    with pytest.raises(ActionRefusedError) as refused:
        check_action(case, CaseAction.REOPEN, OPERATOR, "")
    assert refused.value.kind is ErrorKind.CONFLICT
    assert check_action(case, CaseAction.WRITE_OFF, OPERATOR, "  dubbel  ") == "dubbel"


def test_filters_and_counts() -> None:
    now = T0 + timedelta(days=5)
    cases = [
        build_case(facts(ref="a", insurer="3311", since=T0), None),
        build_case(
            facts(
                CaseKind.INTAKE_REJECTED,
                ref="b",
                participant="33001234",
                retourcodes=("0040",),
                since=T0 + timedelta(days=4),
            ),
            None,
        ),
        build_case(facts(ref="c", active=False), None),
    ]
    assert [c.facts.ref for c in select_cases(cases, CaseFilter(), now)] == ["a", "b"]
    assert [c.facts.ref for c in select_cases(cases, CaseFilter(retourcode="0040"), now)] == ["b"]
    assert [c.facts.ref for c in select_cases(cases, CaseFilter(min_age_days=2), now)] == ["a"]
    everything = select_cases(cases, CaseFilter(include_closed=True), now)
    assert len(everything) == 3
    assert counts_by_kind(cases) == {
        **dict.fromkeys(CaseKind, 0),
        CaseKind.INTAKE_REJECTED: 1,
        CaseKind.PARKED: 1,
    }


def test_every_action_but_a_note_moves_the_case_and_a_reopened_case_is_open_again() -> None:
    assert set(STATE_AFTER) == set(CaseAction) - {CaseAction.NOTE}
    assert STATE_AFTER[CaseAction.REOPEN] is CaseState.OPEN
    assert STATE_AFTER[CaseAction.WRITE_OFF] is CaseState.WRITTEN_OFF
    # A case an action closes no longer offers that action; reopening offers it again.
    for kind, spec in KINDS.items():
        for action in spec.actions - {CaseAction.NOTE, CaseAction.REOPEN}:
            before = build_case(facts(kind), None)
            assert action in allowed_actions(before)
            after = build_case(facts(kind), record(STATE_AFTER[action], T0 + timedelta(hours=1)))
            assert action not in allowed_actions(after)
            assert CaseAction.REOPEN in allowed_actions(after)
            reopened = build_case(
                facts(kind), record(STATE_AFTER[CaseAction.REOPEN], T0 + timedelta(hours=2))
            )
            assert action in allowed_actions(reopened)


def test_the_actions_with_a_prepared_effect_are_those_of_rejected_lines_and_phases() -> None:
    special = KINDS[CaseKind.REJECTED_LINE].actions | KINDS[CaseKind.WAITING_PHASE].actions
    assert special - KINDS[CaseKind.INTAKE_REJECTED].actions == NEEDS_EFFECT
