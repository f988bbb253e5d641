"""Key rotation and key checks: every sealed table moves to the new key, ``key_usage``
counts what each key still seals, and a store refuses a key file that lacks a key it
needs or is not the one it was written with — on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from adapters.storage import SqlMessageStore, Transaction, open_store
from adapters.storage.keys import check_store_keys, key_usage
from adapters.storage.lines import bsn_key
from adapters.storage.search import SqlSearchStore
from gateway.admin.search import HitKind, SearchQuery
from gateway.crypto import CryptoError, Keyring
from tests.adapters.storage.builders import upload
from tests.adapters.storage.test_lines import line
from tests.threadpump import ThreadPump


def ring(*names: str, index: bytes = b"i" * 32, fill: bytes = b".") -> Keyring:
    keys = {name: name.encode().ljust(32, fill) for name in names}
    return Keyring(keys=keys, current=names[-1], index_key=index)


def key_ids(store: SqlMessageStore, pump: ThreadPump, table: str) -> set[str | None]:
    def read(txn: Transaction) -> set[str | None]:
        txn.execute(f"SELECT DISTINCT key_id FROM {table}")
        return {row[0] for row in txn.fetchall()}

    return pump.wait(store.database.run_read("key_ids", read))


def written_under_k1(sql_url: str, pump: ThreadPump) -> None:
    store = pump.wait(open_store(sql_url, pump, ring("k1")))
    try:
        pump.wait(store.record_upload(upload(1), [], [line(0), line(1)]))
        pump.wait(store.record_upload(upload(2), [], [line(0, traceer_id="up-0002")]))
    finally:
        pump.wait(store.close())


def test_rotation_reseals_the_declaration_lines_as_well_as_the_journal(
    sql_url: str, pump: ThreadPump
) -> None:
    written_under_k1(sql_url, pump)
    store = pump.wait(open_store(sql_url, pump, ring("k1", "k2")))
    try:
        assert pump.wait(key_usage(store)) == {
            "k1": {"journal": 2, "declaration_lines": 3},
        }
        while pump.wait(store.reencrypt(limit=2)):
            pass
        assert key_ids(store, pump, "journal") == {"k2"}
        assert key_ids(store, pump, "declaration_lines") == {"k2"}
        assert pump.wait(key_usage(store)) == {"k2": {"journal": 2, "declaration_lines": 3}}
    finally:
        pump.wait(store.close())

    store = pump.wait(open_store(sql_url, pump, ring("k2")))  # k1 removed
    try:
        pump.wait(check_store_keys(store))
        assert pump.wait(store.declared_lines("up-0001")) == [line(0), line(1)]
    finally:
        pump.wait(store.close())


def test_a_store_refuses_a_key_file_without_a_key_it_needs_naming_the_tables(
    sql_url: str, pump: ThreadPump
) -> None:
    written_under_k1(sql_url, pump)
    store = pump.wait(open_store(sql_url, pump, ring("k2")))
    try:
        error = pump.wait_error(check_store_keys(store))
        assert isinstance(error, CryptoError)
        assert "'k1'" in str(error)
        assert "journal (2 rows)" in str(error)
        assert "declaration_lines (3 rows)" in str(error)
    finally:
        pump.wait(store.close())


def test_a_store_with_sealed_rows_refuses_to_run_without_a_key_file(
    sql_url: str, pump: ThreadPump
) -> None:
    written_under_k1(sql_url, pump)
    store = pump.wait(open_store(sql_url, pump))
    try:
        error = pump.wait_error(check_store_keys(store))
        assert isinstance(error, CryptoError)
        assert "no key file" in str(error)
    finally:
        pump.wait(store.close())


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(ring("k1", fill=b"x"), id="same-key-id-other-key"),
        pytest.param(ring("k1", index=b"j" * 32), id="other-index-key"),
        pytest.param(ring("k9", index=b"j" * 32), id="another-key-file"),
    ],
)
def test_a_store_refuses_another_key_file(sql_url: str, pump: ThreadPump, other: Keyring) -> None:
    written_under_k1(sql_url, pump)
    store = pump.wait(open_store(sql_url, pump, ring("k1")))
    try:
        pump.wait(check_store_keys(store))  # the right file passes
    finally:
        pump.wait(store.close())
    store = pump.wait(open_store(sql_url, pump, other))
    try:
        error = pump.wait_error(check_store_keys(store))
        assert isinstance(error, CryptoError)
        assert "key file" in str(error)
    finally:
        pump.wait(store.close())


def test_the_index_key_is_checked_even_when_nothing_sealed_is_left(
    sql_url: str, pump: ThreadPump
) -> None:
    store = pump.wait(open_store(sql_url, pump, ring("k1")))
    try:
        pump.wait(check_store_keys(store))  # records what the index key is
    finally:
        pump.wait(store.close())
    for other in (ring("k1", index=b"j" * 32), None):
        store = pump.wait(open_store(sql_url, pump, other))
        try:
            error = pump.wait_error(check_store_keys(store))
            assert isinstance(error, CryptoError)
            assert "index" in str(error)
        finally:
            pump.wait(store.close())


def test_a_store_without_any_key_runs_without_a_key_file(sql_url: str, pump: ThreadPump) -> None:
    store = pump.wait(open_store(sql_url, pump))
    try:
        pump.wait(store.record_upload(upload(1), [], [line(0)]))
        pump.wait(check_store_keys(store))
        assert pump.wait(key_usage(store)) == {}
    finally:
        pump.wait(store.close())


def test_lines_stored_without_a_key_file_are_found_by_bsn_once_resealed(
    sql_url: str, pump: ThreadPump
) -> None:
    store = pump.wait(open_store(sql_url, pump))  # encryption switched on later
    try:
        pump.wait(store.record_upload(upload(1), [], [line(0), line(1)]))
    finally:
        pump.wait(store.close())
    store = pump.wait(open_store(sql_url, pump, ring("k1")))
    try:
        pump.wait(check_store_keys(store))
        while pump.wait(store.reencrypt(limit=10)):
            pass
        assert key_ids(store, pump, "declaration_lines") == {"k1"}
        search = SqlSearchStore(store.database, store.codec)
        hits, _ = pump.wait(search.search(SearchQuery(bsn=line(0).bsn), 10, reveal=False))
        assert {hit.kind for hit in hits} >= {HitKind.LINE}
        (woman,) = {row[0] for row in raw_women(store, pump)}
        assert woman == store.bundles.woman_of(line(0))
        # the BSN index's pairs hold the keyed hashes only: the unkeyed ones went
        assert raw_pairs(store, pump) == [(bsn_key(store.codec, line(0).bsn), woman)]
    finally:
        pump.wait(store.close())


def raw_women(store: SqlMessageStore, pump: ThreadPump) -> list[tuple[str]]:
    def read(txn: Transaction) -> list[tuple[str]]:
        txn.execute("SELECT woman FROM declaration_lines")
        return [(str(row[0]),) for row in txn.fetchall()]

    return pump.wait(store.database.run_read("women", read))


def raw_pairs(store: SqlMessageStore, pump: ThreadPump) -> list[tuple[str, str]]:
    def read(txn: Transaction) -> list[tuple[str, str]]:
        txn.execute("SELECT bsn_index, woman FROM bsn_women")
        return [(str(row[0]), str(row[1])) for row in txn.fetchall()]

    return pump.wait(store.database.run_read("pairs", read))


def test_an_unkeyed_index_left_by_an_older_reencryption_is_no_sign_of_a_wrong_key(
    sql_url: str, pump: ThreadPump
) -> None:
    store = pump.wait(open_store(sql_url, pump))
    try:
        pump.wait(store.record_upload(upload(1), [], [line(0)]))
    finally:
        pump.wait(store.close())
    store = pump.wait(open_store(sql_url, pump, ring("k1")))
    try:
        # Sealed as an older version did: the client value only, the unkeyed index kept.
        keyring = store.codec.keyring
        assert keyring is not None

        def seal_only(txn: Transaction) -> None:
            txn.execute("SELECT traceer_id, record_number, client FROM declaration_lines")
            for traceer_id, record_number, client in txn.fetchall():
                place = f"{traceer_id}:{record_number}".encode()
                key_id, sealed = keyring.seal(bytes(client), place)
                txn.execute(
                    "UPDATE declaration_lines SET client = ?, key_id = ?"
                    " WHERE traceer_id = ? AND record_number = ?",
                    (sealed, key_id, traceer_id, record_number),
                )

        pump.wait(store.database.run_interaction("seal_only", seal_only))
        pump.wait(check_store_keys(store))  # no refusal
    finally:
        pump.wait(store.close())
    store = pump.wait(open_store(sql_url, pump, ring("k1", index=b"j" * 32)))
    try:  # the recorded check value still finds another index key
        assert isinstance(pump.wait_error(check_store_keys(store)), CryptoError)
    finally:
        pump.wait(store.close())
