"""Labels of the admin models: every member has one, and ages read as a person says them."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import timedelta

import pytest

from gateway.admin import labels
from gateway.admin.accounts import Role
from gateway.admin.batches import BatchControl, BatchState, ItemOutcome
from gateway.admin.cases import CaseAction, CaseState


@pytest.mark.parametrize(
    ("members", "table"),
    [
        (Role, labels.ROLE_LABELS),
        (CaseState, labels.STATE_LABELS),
        (CaseAction, labels.ACTION_LABELS),
        (BatchState, labels.BATCH_STATE_LABELS),
        (ItemOutcome, labels.ITEM_OUTCOME_LABELS),
        (BatchControl, labels.CONTROL_LABELS),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_every_member_has_a_label_and_nothing_else_has(
    members: type[enum.StrEnum], table: Mapping[str, str]
) -> None:
    assert set(table) == {m.value for m in members}
    assert all(table[m] for m in members)  # a member looks its label up itself


@pytest.mark.parametrize(
    ("age", "text"),
    [
        (timedelta(minutes=5), "5 min"),
        (timedelta(hours=1), "1 uur"),
        (timedelta(days=1, hours=23), "47 uur"),
        (timedelta(days=2), "2 dagen"),
    ],
)
def test_age_text(age: timedelta, text: str) -> None:
    assert labels.age_text(age) == text
