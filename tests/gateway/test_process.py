"""Every ``igo-gateway`` command runs with the garbage collector's young threshold raised,
the older generations' thresholds as Python set them."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from gateway.cli import main
from gateway.process import YOUNG_THRESHOLD, tune_garbage_collector
from tests.gateway.ei.fixture_table import MESSAGES


@pytest.fixture(autouse=True)
def thresholds() -> Iterator[tuple[int, int, int]]:
    """Python's default thresholds during the test, and the suite's own after it."""
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield gc.get_threshold()
    gc.set_threshold(*before)


def test_the_young_threshold_is_raised_and_the_older_ones_kept(
    thresholds: tuple[int, int, int],
) -> None:
    tune_garbage_collector()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, *thresholds[1:])
    assert thresholds[0] < YOUNG_THRESHOLD


def test_a_command_runs_with_the_tuned_collector(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(MESSAGES / "kz301-kraamzorg-33001234.asc")]) == 0
    capsys.readouterr()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
