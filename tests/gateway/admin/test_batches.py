"""Bulk actions, the pure part: which actions may run in bulk, the preview, the digest of
a selection, the state machine of a batch, and the filter kept with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.admin.batches import (
    BatchControl,
    BatchState,
    check_bulk_action,
    filter_from_json,
    filter_json,
    next_state,
    preview_batch,
    selection_digest,
)
from gateway.admin.cases import (
    ActionRefusedError,
    Case,
    CaseAction,
    CaseFacts,
    CaseFilter,
    CaseKind,
    CaseRecord,
    CaseState,
    build_case,
)
from gateway.errors import ErrorKind

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def case(kind: CaseKind, ref: str, hours: int, insurer: str = "3311") -> Case:
    facts = CaseFacts(kind, ref, NOW - timedelta(hours=hours), True, insurer, insurer=insurer)
    return build_case(facts, None)


def test_the_preview_keeps_the_fitting_cases_oldest_first_and_counts_the_rest() -> None:
    written_off = build_case(
        CaseFacts(CaseKind.PARKED, "p9", NOW - timedelta(hours=9), True, "3311", insurer="3311"),
        CaseRecord("parked:p9", CaseState.WRITTEN_OFF, "x", NOW, "bea"),
    )
    every = [
        case(CaseKind.PARKED, "p2", 2),
        case(CaseKind.UNMATCHED_RETOUR, "r1", 5),
        case(CaseKind.PARKED, "p1", 7),
        case(CaseKind.PARKED, "other", 8, insurer="4444"),
        written_off,
    ]
    preview = preview_batch(every, CaseFilter(insurer="3311"), CaseAction.RETRY, "", NOW)
    assert preview.case_ids == ["parked:p1", "parked:p2"]
    assert (preview.left_out, preview.left_out_kinds) == (1, {CaseKind.UNMATCHED_RETOUR: 1})
    assert preview.kinds == {CaseKind.PARKED: 2}
    assert preview.digest == selection_digest(["parked:p1", "parked:p2"])
    assert not preview.too_many


def test_the_digest_changes_with_the_selection_and_its_order() -> None:
    one = selection_digest(["parked:a", "parked:b"])
    assert one == selection_digest(["parked:a", "parked:b"])
    assert one != selection_digest(["parked:b", "parked:a"])
    assert one != selection_digest(["parked:a"])
    assert one != selection_digest(["parked:a\nparked:b"])


def test_write_off_and_note_need_one_reason_for_all() -> None:
    assert check_bulk_action(CaseAction.RETRY, "  ") == ""
    assert check_bulk_action(CaseAction.WRITE_OFF, " papier ") == "papier"
    for action in (CaseAction.WRITE_OFF, CaseAction.NOTE):
        with pytest.raises(ActionRefusedError) as refused:
            check_bulk_action(action, "")
        assert (refused.value.code, refused.value.kind) == ("reden-ontbreekt", ErrorKind.INVALID)
    with pytest.raises(ActionRefusedError) as refused:
        check_bulk_action(CaseAction.RETRY, "x" * 2001)
    assert refused.value.code == "reden-te-lang"


def test_an_action_that_needs_input_per_case_is_refused_in_bulk() -> None:
    with pytest.raises(ActionRefusedError) as refused:
        check_bulk_action(CaseAction.RESUBMIT, "tekst")
    assert (refused.value.code, refused.value.kind) == ("niet-in-bulk", ErrorKind.INVALID)
    assert "per zaak" in str(refused.value)
    with pytest.raises(ActionRefusedError):
        check_bulk_action(CaseAction.RESUBMIT, None)  # not even previewed
    with pytest.raises(ActionRefusedError) as refused:
        check_bulk_action(CaseAction.BREAK_BUNDLE, "")  # needs one reason for all
    assert refused.value.code == "reden-ontbreekt"
    assert check_bulk_action(CaseAction.PASS_ON, None) == ""


def test_a_batch_moves_between_its_states_only_as_allowed() -> None:
    assert next_state(BatchState.RUNNING, BatchControl.PAUSE) is BatchState.PAUSED
    assert next_state(BatchState.PAUSED, BatchControl.RESUME) is BatchState.RUNNING
    assert next_state(BatchState.PAUSED, BatchControl.CANCEL) is BatchState.CANCELLED
    assert next_state(BatchState.RUNNING, BatchControl.CANCEL) is BatchState.CANCELLED
    for state, control in (
        (BatchState.RUNNING, BatchControl.RESUME),
        (BatchState.PAUSED, BatchControl.PAUSE),
        (BatchState.FINISHED, BatchControl.CANCEL),
        (BatchState.CANCELLED, BatchControl.RESUME),
    ):
        with pytest.raises(ActionRefusedError):
            next_state(state, control)


def test_the_filter_survives_its_json() -> None:
    query = CaseFilter(
        kinds=frozenset({CaseKind.PARKED, CaseKind.UNMATCHED_RETOUR}),
        insurer="3311",
        participant="33001234",
        retourcode="0040",
        min_age_days=2,
        max_age_days=9,
        include_closed=True,
    )
    assert filter_from_json(filter_json(query)) == query
    assert filter_from_json(filter_json(CaseFilter())) == CaseFilter()
