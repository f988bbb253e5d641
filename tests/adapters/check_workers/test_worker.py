"""A check worker answers each request frame with the reply of the intake checks, a
failed reply when the checks raise, and ends when its input ends, writing nothing else."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from typing import Any

import pytest

from adapters.check_workers import worker, worker_command
from adapters.check_workers.wire import checked_from_reply, read_frame, reply_id, request_for
from gateway.ei import LayoutRegistry, ValidationResult
from gateway.lines import DeclaredLine
from gateway.loading import load_layouts
from gateway.upload_checks import check_upload
from tests.factories import kz301
from tests.gateway.ei.fixture_table import INVALID

REGISTRY = load_layouts()
AGB = "33001234"


def _replies(data: bytes) -> list[tuple[int, tuple[Any, ...]]]:
    stream = io.BytesIO(data)
    replies = []
    while (frame := read_frame(stream)) is not None:
        replies.append(reply_id(frame))
    return replies


def test_each_request_gets_its_reply_in_order() -> None:
    valid = kz301(REGISTRY, agb=AGB, lines=3)
    invalid = INVALID[0].read()
    requests = io.BytesIO(request_for(1, valid, "t-1", AGB) + request_for(2, invalid, "t-2", AGB))
    replies = io.BytesIO()

    assert worker.serve(REGISTRY, requests, replies) == 2

    (first, values), (second, other) = _replies(replies.getvalue())
    assert (first, second) == (1, 2)
    checked = checked_from_reply(REGISTRY, values)
    assert checked.sha256 == hashlib.sha256(valid).hexdigest()
    assert len(checked.lines) == 3
    rejected = checked_from_reply(REGISTRY, other)
    assert rejected.sha256 == hashlib.sha256(invalid).hexdigest()
    assert rejected.result.findings


def test_checks_that_raise_get_a_failed_reply_and_the_worker_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = check_upload

    def check(
        registry: LayoutRegistry, payload: bytes, traceer_id: str, participant: str
    ) -> tuple[ValidationResult, list[DeclaredLine]]:
        if traceer_id == "boom":
            raise RuntimeError("a fault in the checks")
        return real(registry, payload, traceer_id, participant)

    monkeypatch.setattr(worker, "check_upload", check)
    payload = kz301(REGISTRY, agb=AGB)
    requests = io.BytesIO(request_for(1, payload, "boom", AGB) + request_for(2, payload, "ok", AGB))
    replies = io.BytesIO()

    worker.serve(REGISTRY, requests, replies)

    (first, failed), (second, values) = _replies(replies.getvalue())
    assert (first, failed) == (1, ())
    assert second == 2
    assert values


def test_the_worker_process_answers_and_ends_with_its_input() -> None:
    payload = kz301(REGISTRY, agb=AGB, lines=2)
    done = subprocess.run(
        worker_command(),
        input=request_for(9, payload, "t-9", AGB),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    ((request_id, values),) = _replies(done.stdout)
    assert request_id == 9
    assert checked_from_reply(REGISTRY, values).sha256 == hashlib.sha256(payload).hexdigest()


def test_the_worker_command_is_this_interpreter() -> None:
    assert worker_command()[:3] == [sys.executable, "-m", "adapters.check_workers.worker"]
