"""What an action will do, as the confirmation says it: for one case and for a batch."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.admin.batches import NEEDS_CASE_INPUT
from gateway.admin.cases import CaseAction, CaseFacts, CaseKind, build_case
from gateway.admin.consequences import bulk_consequence, consequence

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CASE = build_case(CaseFacts(CaseKind.PARKED, "t1", T0, True, "3311", insurer="3311"), None)


@pytest.mark.parametrize("action", list(CaseAction))
def test_every_action_says_what_it_does(action: CaseAction) -> None:
    assert consequence(action, CASE).endswith(".")


def test_the_insurer_is_named() -> None:
    assert "verzekeraar 3311" in consequence(CaseAction.RETRY, CASE)
    unknown = build_case(CaseFacts(CaseKind.PARKED, "t1", T0, True, "3311"), None)
    assert "aan verzekeraar de verzekeraar" in consequence(CaseAction.RETRY, unknown)


def test_a_batch_counts_its_cases_and_says_it_can_be_paused() -> None:
    one = bulk_consequence(CaseAction.WRITE_OFF, 1, [CASE])
    assert one.startswith("Voor elk van deze 1 zaak wordt de zaak afgeboekt")
    assert "pauzeren, hervatten of stoppen" in one
    done = bulk_consequence(CaseAction.WRITE_OFF, 3, [], confirmation=False)
    assert done.startswith("Voor elk van deze 3 zaken wordt")
    assert "overgeslagen (met de reden)" in done
    assert "pauzeren" not in done


@pytest.mark.parametrize("action", sorted(NEEDS_CASE_INPUT))
def test_an_action_without_a_bulk_text_is_told_by_its_single_case_text(
    action: CaseAction,
) -> None:
    said = bulk_consequence(action, 1, [CASE])
    assert f"gebeurt dit: {consequence(action, CASE)}" in said
