"""Payloads sealed in the journal: unreadable at rest, readable through the store, and
re-encrypted under a new key without losing a byte — on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from adapters.storage import SqlMessageStore, Transaction, open_store
from gateway.crypto import Keyring
from gateway.ports.messages import StoreError
from tests.adapters.storage.builders import upload
from tests.threadpump import ThreadPump

BSN = b"111222333"


def ring(*names: str, current: str | None = None, index: bytes = b"i" * 32) -> Keyring:
    keys = {name: name.encode().ljust(32, b".") for name in names}
    return Keyring(keys=keys, current=current or names[-1], index_key=index)


def declaration(n: int) -> bytes:
    return b"0113003...." + BSN + b"... declaration %d\r\n" % n


def raw_journal(store: SqlMessageStore, pump: ThreadPump) -> list[tuple[bytes, str | None]]:
    def read(txn: Transaction) -> list[tuple[bytes, str | None]]:
        txn.execute("SELECT payload, key_id FROM journal ORDER BY sha256")
        return [(bytes(p), k) for p, k in txn.fetchall()]

    return pump.wait(store.database.run_read("raw", read))


def test_payloads_are_sealed_at_rest_and_read_back(sql_url: str, pump: ThreadPump) -> None:
    store = pump.wait(open_store(sql_url, pump, ring("k1")))
    try:
        stored = pump.wait(store.record_upload(upload(1, payload=declaration(1)), []))
        assert stored.message is not None
        assert pump.wait(store.payload(stored.message.sha256)) == declaration(1)
        ((blob, key_id),) = raw_journal(store, pump)
        assert key_id == "k1"
        assert BSN not in blob
        assert declaration(1) not in blob
    finally:
        pump.wait(store.close())


def test_rotation_reencrypts_everything_and_keeps_it_readable(
    sql_url: str, pump: ThreadPump
) -> None:
    # Written partly unencrypted, partly under k1.
    store = pump.wait(open_store(sql_url, pump))
    pump.wait(store.record_upload(upload(1, payload=declaration(1)), []))
    pump.wait(store.close())
    store = pump.wait(open_store(sql_url, pump, ring("k1")))
    pump.wait(store.record_upload(upload(2, payload=declaration(2)), []))
    pump.wait(store.close())

    store = pump.wait(open_store(sql_url, pump, ring("k1", "k2")))
    try:
        assert pump.wait(store.reencrypt(limit=1)) == 1
        assert pump.wait(store.reencrypt(limit=10)) == 1
        assert pump.wait(store.reencrypt(limit=10)) == 0
        assert {k for _, k in raw_journal(store, pump)} == {"k2"}
    finally:
        pump.wait(store.close())

    store = pump.wait(open_store(sql_url, pump, ring("k2")))  # k1 retired
    try:
        for n in (1, 2):
            message = pump.wait(store.get_message(f"up-{n:04d}"))
            assert message is not None
            assert pump.wait(store.payload(message.sha256)) == declaration(n)
    finally:
        pump.wait(store.close())


def test_sealed_payloads_without_their_key_are_an_error_not_garbage(
    sql_url: str, pump: ThreadPump
) -> None:
    store = pump.wait(open_store(sql_url, pump, ring("k1")))
    stored = pump.wait(store.record_upload(upload(1, payload=declaration(1)), []))
    pump.wait(store.close())
    assert stored.message is not None
    for keyring in (None, ring("other")):
        store = pump.wait(open_store(sql_url, pump, keyring))
        try:
            error = pump.wait_error(store.payload(stored.message.sha256))
            assert isinstance(error, StoreError)
        finally:
            pump.wait(store.close())


def test_a_sealed_payload_moved_to_another_row_does_not_open(
    sql_url: str, pump: ThreadPump
) -> None:
    store = pump.wait(open_store(sql_url, pump, ring("k1")))
    try:
        a = pump.wait(store.record_upload(upload(1, payload=declaration(1)), [])).message
        b = pump.wait(store.record_upload(upload(2, payload=declaration(2)), [])).message
        assert a is not None
        assert b is not None

        def swap(txn: Transaction) -> None:
            txn.execute("SELECT payload FROM journal WHERE sha256 = ?", (a.sha256,))
            row = txn.fetchone()
            assert row is not None
            txn.execute("UPDATE journal SET payload = ? WHERE sha256 = ?", (row[0], b.sha256))

        pump.wait(store.database.run_interaction("swap", swap))
        assert isinstance(pump.wait_error(store.payload(b.sha256)), StoreError)
    finally:
        pump.wait(store.close())


def test_reencrypt_needs_a_key_file(tmp_path: Path, pump: ThreadPump) -> None:
    store = pump.wait(open_store(f"sqlite:///{tmp_path / 'g.db'}", pump))
    try:
        assert isinstance(pump.wait_error(store.reencrypt()), StoreError)
    finally:
        pump.wait(store.close())


def test_the_index_is_keyed_and_stable() -> None:
    a = ring("k1", index=os.urandom(32))
    assert a.index("111222333") == a.index("111222333")
    assert a.index("111222333") != ring("k1", index=os.urandom(32)).index("111222333")
    assert "111222333" not in a.index("111222333")
    assert base64.b16decode(a.index("111222333").upper())  # hex


@pytest.mark.parametrize("current", ["k1", "k2"])
def test_a_ring_seals_with_its_current_key(current: str) -> None:
    keyring = ring("k1", "k2", current=current)
    key_id, sealed = keyring.seal(b"data", b"aad")
    assert key_id == current
    assert keyring.open(key_id, sealed, b"aad") == b"data"
