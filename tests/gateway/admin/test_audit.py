"""The audit chain: pure verification of edits, deletions and a stale head."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.admin.audit import (
    GENESIS_HASH,
    AuditAction,
    AuditEntry,
    AuditHead,
    NewAuditEntry,
    chain_entry,
    head_mac,
    parse_recorded_head,
    verify_chain,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def chain(n: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    prev = GENESIS_HASH
    for i in range(1, n + 1):
        new = NewAuditEntry(
            T0 + timedelta(seconds=i), "anna", "operator", AuditAction.VIEW_CASE, f"parked:{i}"
        )
        entry = chain_entry(new, i, prev)
        entries.append(entry)
        prev = entry.hash
    return entries


def head(entries: list[AuditEntry]) -> tuple[int, str]:
    return (entries[-1].seq, entries[-1].hash) if entries else (0, GENESIS_HASH)


def test_an_intact_chain_verifies() -> None:
    entries = chain(5)
    report = verify_chain(entries, head(entries))
    assert report.intact
    assert (report.entries, report.head_hash) == (5, entries[-1].hash)
    assert verify_chain([], (0, GENESIS_HASH)).intact


def test_an_edited_entry_is_named() -> None:
    entries = chain(5)
    entries[2] = replace(entries[2], detail="nothing happened")
    report = verify_chain(entries, head(entries))
    assert (report.first_bad_seq, report.problem) == (3, "content does not match its hash")


def test_an_edited_entry_with_a_recomputed_hash_breaks_the_next_link() -> None:
    entries = chain(5)
    forged = chain_entry(
        NewAuditEntry(T0, "mallory", "operator", AuditAction.VIEW_CASE), 3, entries[1].hash
    )
    entries[2] = forged
    report = verify_chain(entries, head(entries))
    assert report.first_bad_seq == 4


def test_deleted_entries_are_named_in_the_middle_and_at_the_end() -> None:
    entries = chain(5)
    assert verify_chain(entries[:2] + entries[3:], head(entries)).first_bad_seq == 3
    assert verify_chain(entries[:4], head(entries)).first_bad_seq == 5


def test_timestamps_in_other_zones_hash_alike() -> None:
    new = NewAuditEntry(
        T0.astimezone(ZoneInfo("Europe/Amsterdam")), "a", "viewer", AuditAction.LOGIN
    )
    entry = chain_entry(new, 1, GENESIS_HASH)
    assert entry == chain_entry(replace(new, at=T0), 1, GENESIS_HASH)


KEY = b"a" * 32


def keyed_chain(n: int, keyed_from: int = 1) -> tuple[list[AuditEntry], AuditHead]:
    entries: list[AuditEntry] = []
    prev = GENESIS_HASH
    for i in range(1, n + 1):
        new = NewAuditEntry(T0 + timedelta(seconds=i), "anna", "operator", AuditAction.NOTE, "c")
        entry = chain_entry(new, i, prev, KEY if i >= keyed_from else None)
        entries.append(entry)
        prev = entry.hash
    last = entries[-1]
    return entries, AuditHead(last.seq, last.hash, keyed_from, head_mac(KEY, n, prev, keyed_from))


def test_a_keyed_chain_verifies_with_its_key_only() -> None:
    entries, stored = keyed_chain(4, keyed_from=3)
    assert verify_chain(entries, stored, key=KEY).intact
    assert verify_chain(entries, stored, key=b"b" * 32).first_bad_seq == 3
    no_key = verify_chain(entries, stored)
    assert "needs the key file" in no_key.problem


def test_a_keyed_head_cannot_be_moved_or_stripped_of_its_mac() -> None:
    entries, stored = keyed_chain(4)
    moved = AuditHead(3, entries[2].hash, 1, stored.mac)
    assert "not sealed" in verify_chain(entries[:3], moved, key=KEY).problem
    stripped = AuditHead(4, entries[3].hash, 1, None)
    assert "not sealed" in verify_chain(entries, stripped, key=KEY).problem


def test_a_recorded_head_is_parsed_strictly() -> None:
    assert parse_recorded_head(f"12:{'A' * 64}\n") == (12, "a" * 64)
    for bad in ("12", f"x:{'a' * 64}", "12:abc", f"١٢:{'a' * 64}", f"12:{'g' * 64}"):
        with pytest.raises(ValueError, match="head"):
            parse_recorded_head(bad)
