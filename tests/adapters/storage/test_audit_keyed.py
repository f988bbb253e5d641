"""The keyed audit chain on SQLite and PostgreSQL: someone with the database's rights but
without the key file can neither cut the tail and move the head nor recompute the chain;
a chain begun without a key is keyed from a marker on; a head recorded elsewhere finds a
rolled-back log; and checks are incremental."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.storage import SqlMessageStore, Transaction, open_store
from adapters.storage.admin import SqlAdminStore
from gateway.admin.accounts import Actor, PasswordHasher, Role, ScryptParameters
from gateway.admin.audit import GENESIS_HASH, AuditAction, AuditEntry
from gateway.admin.service import AdminService
from gateway.crypto import Keyring
from gateway.ports.admin import LoginRefusedError
from tests.threadpump import ThreadPump

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
KEYS = Keyring(keys={"k1": b"k" * 32}, current="k1", index_key=b"i" * 32)
ROOT = Actor("cli:root", Role.ADMINISTRATOR, "cli")
PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Chain:
    pump: ThreadPump
    store: SqlMessageStore
    admin: SqlAdminStore
    service: AdminService
    clock: Clock
    url: str

    def wait(self, awaitable: Any) -> Any:
        return self.pump.wait(awaitable)

    def sql(self, sql: str, *params: object) -> None:
        def run(txn: Transaction) -> None:
            txn.execute(sql, params)

        self.wait(self.store.database.run_interaction("test_sql", run))

    def entries(self) -> list[AuditEntry]:
        admin = self.service.admin
        found: list[AuditEntry] = self.wait(admin.audit_entries())
        return found

    def log(self, n: int) -> None:
        for i in range(n):
            self.clock.now += timedelta(seconds=1)
            self.wait(
                self.service.admin.audit(self.service._entry(ROOT, AuditAction.NOTE, f"c:{i}", "x"))
            )

    def drop_guard(self) -> None:
        if self.url.startswith("sqlite"):
            self.sql("DROP TRIGGER admin_audit_no_update")
            self.sql("DROP TRIGGER admin_audit_no_delete")
        else:
            self.sql("DROP TRIGGER admin_audit_append_only ON admin_audit")


def _open(url: str, pump: ThreadPump, keyring: Keyring | None) -> Chain:
    store = pump.wait(open_store(url, pump, keyring))
    clock = Clock()
    admin = SqlAdminStore(store.database, store.codec)
    service = AdminService(
        admin,
        store,
        None,
        clock,
        hasher=PasswordHasher(ScryptParameters(log2_n=10)),
    )
    return Chain(pump, store, admin, service, clock, url)


@pytest.fixture
def keyed(sql_url: str, pump: ThreadPump) -> Iterator[Chain]:
    chain = _open(sql_url, pump, KEYS)
    try:
        yield chain
    finally:
        pump.wait(chain.store.close())


def _sha256_chain(entries: list[AuditEntry]) -> list[tuple[int, str, str]]:
    """What someone without the key can compute: the plain SHA-256 chain over the rows."""
    prev = GENESIS_HASH
    out = []
    for e in entries:
        content = {
            "prev": prev,
            "seq": e.seq,
            "at": e.at.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor": e.actor,
            "role": e.role,
            "action": e.action,
            "subject": e.subject,
            "detail": "nothing to see" if e.seq == 3 else e.detail,
            "origin": e.origin,
        }
        text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(text.encode()).hexdigest()
        out.append((e.seq, prev, digest))
        prev = digest
    return out


def test_cutting_the_tail_and_moving_the_head_is_found(keyed: Chain) -> None:
    keyed.log(6)
    assert keyed.wait(keyed.service.verify_audit()).intact
    keyed.drop_guard()
    last = keyed.entries()[3]
    keyed.sql("DELETE FROM admin_audit WHERE seq > ?", last.seq)
    keyed.sql("UPDATE admin_audit_head SET seq = ?, hash = ? WHERE id = 1", last.seq, last.hash)
    report = keyed.wait(keyed.service.verify_audit())
    assert not report.intact
    assert "head is not sealed with the key" in report.problem


def test_recomputing_the_whole_chain_without_the_key_is_found(keyed: Chain) -> None:
    keyed.log(5)
    keyed.drop_guard()
    rows = _sha256_chain(keyed.entries())
    for seq, prev, digest in rows:
        keyed.sql(
            "UPDATE admin_audit SET detail = CASE WHEN seq = 3 THEN 'nothing to see'"
            " ELSE detail END, prev_hash = ?, hash = ? WHERE seq = ?",
            prev,
            digest,
            seq,
        )
    seq, _, digest = rows[-1]
    keyed.sql(
        "UPDATE admin_audit_head SET seq = ?, hash = ?, keyed_from = NULL, mac = NULL WHERE id = 1",
        seq,
        digest,
    )
    report = keyed.wait(keyed.service.verify_audit())
    assert not report.intact
    assert "not keyed although a key file is configured" in report.problem


def test_a_chain_begun_without_a_key_is_keyed_from_a_marker_on(
    sql_url: str, pump: ThreadPump
) -> None:
    plain = _open(sql_url, pump, None)
    try:
        plain.log(3)
    finally:
        pump.wait(plain.store.close())
    keyed = _open(sql_url, pump, KEYS)
    try:
        assert keyed.wait(keyed.admin.key_audit_chain(T0)) is True
        assert keyed.wait(keyed.admin.key_audit_chain(T0)) is False
        keyed.log(2)
        entries = keyed.entries()
        assert [e.action for e in entries][3] == "audit_keyed"
        assert "regels 1-3 ervoor zonder" in entries[3].detail
        assert keyed.wait(keyed.service.verify_audit()).intact
        # The unkeyed part is covered by the keyed entries after it.
        keyed.drop_guard()
        keyed.sql("UPDATE admin_audit SET detail = 'edited' WHERE seq = 2")
        report = keyed.wait(keyed.service.verify_audit())
        assert report.first_bad_seq == 2
    finally:
        pump.wait(keyed.store.close())
    # Without the key file the keyed log can be neither extended nor checked.
    plain = _open(sql_url, pump, None)
    try:
        report = plain.wait(plain.service.verify_audit())
        assert not report.intact
        assert "needs the key file" in report.problem
        error = pump.wait_error(
            plain.service.admin.audit(plain.service._entry(ROOT, AuditAction.NOTE, "c", "x"))
        )
        assert "key file" in str(error)
    finally:
        pump.wait(plain.store.close())


def test_a_head_recorded_elsewhere_finds_a_rolled_back_log(keyed: Chain) -> None:
    keyed.log(3)
    entries = keyed.entries()
    early = keyed.wait(keyed.service.admin.audit_chain_head())
    keyed.log(3)
    recorded = keyed.wait(keyed.service.admin.audit_chain_head())
    assert keyed.wait(keyed.service.verify_audit(expected=(recorded.seq, recorded.hash))).intact
    assert keyed.wait(keyed.service.verify_audit(expected=(entries[1].seq, entries[1].hash))).intact
    # Roll back to the earlier state (as a restored copy would be): head and MAC valid.
    keyed.drop_guard()
    keyed.sql("DELETE FROM admin_audit WHERE seq > ?", early.seq)
    keyed.sql(
        "UPDATE admin_audit_head SET seq = ?, hash = ?, keyed_from = ?, mac = ? WHERE id = 1",
        early.seq,
        early.hash,
        early.keyed_from,
        early.mac,
    )
    assert keyed.wait(keyed.service.verify_audit()).intact  # alone, it cannot tell
    report = keyed.wait(keyed.service.verify_audit(expected=(recorded.seq, recorded.hash)))
    assert not report.intact
    assert "before the head recorded elsewhere" in report.problem
    wrong = (entries[1].seq, "0" * 64)
    assert not keyed.wait(keyed.service.verify_audit(expected=wrong)).intact


def test_a_check_goes_on_from_where_the_last_intact_one_ended(
    keyed: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    keyed.log(4)
    assert keyed.wait(keyed.service.verify_audit(incremental=True)).entries == 5
    keyed.log(3)
    admin = keyed.service.admin
    reads: list[int] = []
    real = admin.audit_entries

    def spy(**kwargs: Any) -> Any:
        reads.append(kwargs.get("after_seq", 0))
        return real(**kwargs)

    monkeypatch.setattr(admin, "audit_entries", spy)
    report = keyed.wait(keyed.service.verify_audit(incremental=True))
    assert (report.intact, report.entries) == (True, 8)
    assert min(reads) >= 4  # the entry it ended at (to see it is unchanged), then newer ones
    # The entry it ended at is checked again (content against hash) by the next check.
    keyed.drop_guard()
    keyed.sql("UPDATE admin_audit SET detail = 'edited' WHERE seq = 8")
    reads.clear()
    report = keyed.wait(keyed.service.verify_audit(incremental=True))
    assert report.first_bad_seq == 8
    assert reads == [7]
    # A full check reads from the first entry.
    reads.clear()
    assert keyed.wait(keyed.service.verify_audit()).first_bad_seq == 8
    assert reads[0] == 0


def test_throttled_logins_are_logged_once_per_address_and_account_per_window(
    keyed: Chain,
) -> None:
    service = keyed.service
    keyed.wait(service.create_user("anna", Role.VIEWER, PASSWORD, ROOT))
    for _ in range(5):
        keyed.pump.wait_error(service.login("anna", "wrong password!", "10.0.0.1"))
    for _ in range(300):  # a flood while the account waits
        error = keyed.pump.wait_error(service.login("anna", "wrong password!", "10.0.0.1"))
        assert isinstance(error, LoginRefusedError)
        assert error.throttled
    failed = [e for e in keyed.entries() if e.action == AuditAction.LOGIN_FAILED]
    assert len(failed) == 6
    assert "alleen geteld" in failed[-1].detail
    # The next window's entry says how many the one before counted.
    keyed.clock.now += timedelta(minutes=16)
    keyed.pump.wait_error(service.login("anna", "wrong password!", "10.0.0.1"))
    keyed.pump.wait_error(service.login("anna", "wrong password!", "10.0.0.1"))
    failed = [e for e in keyed.entries() if e.action == AuditAction.LOGIN_FAILED]
    assert len(failed) == 8
    assert "299 niet apart vastgelegd" in failed[-1].detail
