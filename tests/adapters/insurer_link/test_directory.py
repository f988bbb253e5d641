"""The drop-directory insurer link: atomic files out, only complete files in."""

from __future__ import annotations

import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from adapters.insurer_link.directory import DirectoryInsurerLink, write_atomically
from gateway.ports.insurer import (
    Delivery,
    FetchedRetour,
    InsurerLinkError,
    LinkErrorReason,
    OutboundFile,
)

T = TypeVar("T")
NOW = 1_800_000_000.0


def run(coro: Coroutine[Any, Any, T]) -> T:
    results: list[T | Failure] = []
    Deferred.fromCoroutine(coro).addBoth(results.append)
    (result,) = results
    if isinstance(result, Failure):
        result.raiseException()
    return result


def outbound(message_id: str = "out-0001", payload: bytes = b"claim\r\n") -> OutboundFile:
    return OutboundFile(message_id, "3311", "53001234", "KZ301", payload)


@pytest.fixture
def link(tmp_path: Path) -> DirectoryInsurerLink:
    return DirectoryInsurerLink(
        tmp_path / "out", tmp_path / "in", archive=tmp_path / "done", clock=lambda: NOW
    )


def visible(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def test_a_file_is_written_whole_under_its_id(link: DirectoryInsurerLink) -> None:
    assert run(link.send(outbound())) == Delivery("out-0001.asc", repeated=False)
    assert (link.outbox / "out-0001.asc").read_bytes() == b"claim\r\n"
    assert visible(link.outbox) == ["out-0001.asc"]
    assert not [p for p in link.outbox.iterdir() if p.name.endswith(".tmp")]


def test_a_resend_is_a_repeat_even_after_the_partner_took_the_file(
    link: DirectoryInsurerLink,
) -> None:
    run(link.send(outbound()))
    assert run(link.send(outbound())).repeated
    (link.outbox / "out-0001.asc").unlink()  # picked up by the insurer's transfer
    assert run(link.send(outbound())) == Delivery("out-0001.asc", repeated=True)
    assert visible(link.outbox) == []


def test_a_crash_between_file_and_ledger_is_recovered(link: DirectoryInsurerLink) -> None:
    link.outbox.mkdir()
    (link.outbox / "out-0001.asc").write_bytes(b"claim\r\n")  # written, ledger not yet
    assert run(link.send(outbound())).repeated
    assert (link.outbox / ".sent" / "out-0001.asc").exists()


def test_the_same_id_for_other_bytes_is_a_conflict(link: DirectoryInsurerLink) -> None:
    run(link.send(outbound()))
    with pytest.raises(InsurerLinkError) as caught:
        run(link.send(outbound(payload=b"other\r\n")))
    assert caught.value.reason is LinkErrorReason.CONFLICT
    (link.outbox / ".sent" / "out-0001.asc").unlink()
    with pytest.raises(InsurerLinkError, match="other content"):
        run(link.send(outbound(payload=b"other\r\n")))


def test_ids_become_safe_file_names(link: DirectoryInsurerLink) -> None:
    assert link.file_name("..a b:c") == "a_b_c.asc"
    assert run(link.send(outbound("..a b:c"))).remote_id == "a_b_c.asc"


def test_a_failed_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="No space"):
        write_atomically(tmp_path / "x.asc", b"data")
    assert list(tmp_path.iterdir()) == []


def test_a_file_system_error_is_a_retryable_link_error(tmp_path: Path) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file where the outbox should be")
    link = DirectoryInsurerLink(blocker, tmp_path / "in")
    with pytest.raises(InsurerLinkError) as caught:
        run(link.send(outbound()))
    assert caught.value.reason is LinkErrorReason.IO
    assert caught.value.retryable


def place(inbox: Path, name: str, data: bytes, age: float = 60.0) -> Path:
    inbox.mkdir(exist_ok=True)
    path = inbox / name
    path.write_bytes(data)
    os.utime(path, (NOW - age, NOW - age))
    return path


def test_only_complete_files_are_taken(link: DirectoryInsurerLink) -> None:
    place(link.inbox, "retour-1.asc", b"one")
    place(link.inbox, ".retour-2.asc.x1.tmp", b"half")
    place(link.inbox, "retour-3.asc.part", b"half")
    place(link.inbox, "retour-4.asc", b"being written", age=0.5)
    (link.inbox / "subfolder").mkdir()
    (retour,) = run(link.fetch())
    assert (retour.remote_id, retour.payload, retour.filename) == (
        "retour-1.asc",
        b"one",
        "retour-1.asc",
    )
    assert retour.received_at is not None


def test_an_empty_or_missing_inbox_has_nothing(link: DirectoryInsurerLink) -> None:
    assert run(link.fetch()) == []
    link.inbox.mkdir()
    assert run(link.fetch()) == []


def test_confirming_archives_the_file_once(link: DirectoryInsurerLink) -> None:
    place(link.inbox, "retour-1.asc", b"one")
    (retour,) = run(link.fetch())
    run(link.confirm(retour))
    assert run(link.fetch()) == []
    assert link.archive is not None
    assert (link.archive / "retour-1.asc").read_bytes() == b"one"
    run(link.confirm(retour))  # gone already: fine
    place(link.inbox, "retour-1.asc", b"again")  # the same name once more
    run(link.confirm(run(link.fetch())[0]))
    assert sorted(p.name for p in link.archive.iterdir()) == ["retour-1.asc", "retour-1.asc.1"]


def test_without_archive_a_confirmed_file_is_deleted(tmp_path: Path) -> None:
    link = DirectoryInsurerLink(tmp_path / "out", tmp_path / "in", clock=lambda: NOW)
    place(link.inbox, "r.asc", b"x")
    run(link.confirm(run(link.fetch())[0]))
    assert list(link.inbox.iterdir()) == []


def test_confirm_refuses_names_outside_the_inbox(link: DirectoryInsurerLink) -> None:
    with pytest.raises(InsurerLinkError, match="not an inbox file name"):
        run(link.confirm(FetchedRetour("../out/x.asc", b"")))


def test_blocking_work_can_run_elsewhere(tmp_path: Path) -> None:
    ran: list[str] = []

    async def elsewhere(work: Any) -> Any:
        ran.append("here")
        return work()

    link = DirectoryInsurerLink(tmp_path / "out", tmp_path / "in", run=elsewhere)
    assert not run(link.send(outbound())).repeated
    assert ran == ["here"]
