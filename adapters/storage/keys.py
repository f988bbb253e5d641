"""Which keys the store needs, and whether the key file is the one it was written with.

Two tables hold sealed values, each with the id of the key that sealed them beside it
(:data:`SEALED_TABLES`): the journal's payloads and the declaration lines' client values.
:func:`key_usage` counts the rows each key still seals per table (``igo-gateway keys
status``); :func:`check_store_keys` runs at start and refuses (with
:class:`~gateway.crypto.CryptoError`, naming keys and tables) a key file that

* lacks a key the store still needs (removed before re-encryption was done),
* has a key of the right id that does not open what the store sealed with that id, or
* has another index key than the store's BSN index was made with (the first start with a
  key file records a keyed hash of a fixed text in ``encryption_checks``; a store from
  before that record is checked against a sealed line's BSN and its index instead);

and a store with sealed rows, or a recorded index key, started without a key file.
:class:`SqlKeys` asks both of the store (the facade builds it as ``store.keys``).
Re-encryption itself is :func:`adapters.storage.messages.reencrypt_txn`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Final, Protocol

from twisted.internet.defer import Deferred

from adapters.storage.database import Database, Transaction
from adapters.storage.journal import JournalCodec
from adapters.storage.lines import bsn_key
from gateway.crypto import CryptoError, Keyring

__all__ = [
    "SEALED_TABLES",
    "KeyUsage",
    "KeyedStore",
    "SqlKeys",
    "check_store_keys",
    "check_store_keys_txn",
    "key_usage",
]

SEALED_TABLES: Final = ("journal", "declaration_lines")
_INDEX_CHECK: Final = "index"
_INDEX_CHECK_TEXT: Final = "key-check:index"  # no digits: never the text of a lookup
_INDEX_SAMPLES: Final = 50

KeyUsage = dict[str, dict[str, int]]  # key id -> table -> rows it seals


class SqlKeys:
    """The keys area: which keys the store's sealed rows need, and whether the codec's
    key file fits them."""

    def __init__(self, database: Database, codec: JournalCodec) -> None:
        self.database = database
        self.codec = codec

    def usage(self) -> Deferred[KeyUsage]:
        """The rows each key seals, per table (keys that seal nothing are not named)."""
        return self.database.run_read("key_usage", key_usage_txn)

    def check(self) -> Deferred[None]:
        """Raise :class:`~gateway.crypto.CryptoError` when the key file does not fit the
        store (see the module); records the index key's check value on first use."""
        return self.database.run_interaction("check_keys", check_store_keys_txn, self.codec)


class KeyedStore(Protocol):
    """A store with a keys area (the facade, :class:`~adapters.storage.SqlMessageStore`)."""

    @property
    def keys(self) -> SqlKeys: ...


def key_usage(store: KeyedStore) -> Deferred[KeyUsage]:
    """The rows each key seals, per table (keys that seal nothing are not named)."""
    return store.keys.usage()


def check_store_keys(store: KeyedStore) -> Deferred[None]:
    """Raise :class:`~gateway.crypto.CryptoError` when the store's key file does not fit
    the store (see the module); records the index key's check value on first use."""
    return store.keys.check()


def key_usage_txn(txn: Transaction) -> KeyUsage:
    usage: KeyUsage = {}
    for table in SEALED_TABLES:
        txn.execute(
            f"SELECT key_id, COUNT(*) FROM {table} WHERE key_id IS NOT NULL"  # noqa: S608
            " GROUP BY key_id"
        )
        for key_id, rows in txn.fetchall():
            usage.setdefault(str(key_id), {})[table] = int(rows)
    return usage


def describe_usage(tables: dict[str, int]) -> str:
    return ", ".join(
        f"{table} ({rows} row{'s' if rows != 1 else ''})" for table, rows in tables.items()
    )


def index_check_value(keyring: Keyring) -> str:
    return keyring.index(_INDEX_CHECK_TEXT)


def check_store_keys_txn(txn: Transaction, codec: JournalCodec) -> None:
    usage = key_usage_txn(txn)
    txn.execute("SELECT value FROM encryption_checks WHERE name = ?", (_INDEX_CHECK,))
    row = txn.fetchone()
    recorded = None if row is None else str(row[0])
    keyring = codec.keyring
    if keyring is None:
        if usage:
            sealed = "; ".join(f"key {k!r}: {describe_usage(t)}" for k, t in usage.items())
            raise CryptoError(
                f"the store holds sealed rows ({sealed}) but no key file is configured "
                "([encryption] key_file)"
            )
        if recorded is not None:
            raise CryptoError(
                "the store's BSN index was made with a key file's index key, but no key "
                "file is configured ([encryption] key_file)"
            )
        return
    missing = {key_id: tables for key_id, tables in usage.items() if key_id not in keyring.keys}
    if missing:
        named = "; ".join(f"{k!r} for {describe_usage(t)}" for k, t in sorted(missing.items()))
        raise CryptoError(
            f"the key file lacks key(s) the store still needs: {named}. Is it the wrong key "
            "file? Otherwise put the removed key back (from the key file's backup) and remove "
            "it only when `igo-gateway keys status` shows it seals nothing"
        )
    for key_id in usage:
        _check_opens(txn, keyring, key_id)
    mine = index_check_value(keyring)
    if recorded is None:
        _check_index_by_data(txn, codec)
        txn.execute(
            "INSERT INTO encryption_checks (name, value, recorded_at) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO NOTHING",
            (_INDEX_CHECK, mine, datetime.now(UTC)),
        )
        txn.execute("SELECT value FROM encryption_checks WHERE name = ?", (_INDEX_CHECK,))
        row = txn.fetchone()
        recorded = mine if row is None else str(row[0])
    if recorded != mine:
        raise _wrong_index()


def _wrong_index() -> CryptoError:
    return CryptoError(
        "the key file's index key is not the one this store's BSN index was made with: "
        "is it the wrong key file?"
    )


def _check_opens(txn: Transaction, keyring: Keyring, key_id: str) -> None:
    """One sealed value of each table under ``key_id`` must open with the file's key."""
    samples: list[tuple[bytes, bytes]] = []
    txn.execute("SELECT sha256, payload FROM journal WHERE key_id = ? LIMIT 1", (key_id,))
    row = txn.fetchone()
    if row is not None:
        samples.append((bytes(row[1]), str(row[0]).encode("ascii")))
    txn.execute(
        "SELECT traceer_id, record_number, client FROM declaration_lines WHERE key_id = ? LIMIT 1",
        (key_id,),
    )
    row = txn.fetchone()
    if row is not None:
        samples.append((bytes(row[2]), f"{row[0]}:{row[1]}".encode()))
    for sealed, place in samples:
        try:
            keyring.open(key_id, sealed, place)
        except CryptoError:
            raise CryptoError(
                f"key {key_id!r} of the key file does not open what the store sealed with "
                "that key: is it the wrong key file?"
            ) from None


def _check_index_by_data(txn: Transaction, codec: JournalCodec) -> None:
    """For a store from before the recorded check: a sealed line's BSN index must be the
    file's index key's hash of its BSN. A line sealed after it was stored without a key
    file may still carry the unkeyed hash (re-encryption before this version left it):
    that says nothing about the key, and the next sample is taken."""
    keyring = codec.keyring
    assert keyring is not None
    txn.execute(
        "SELECT traceer_id, record_number, client, key_id, bsn_index FROM declaration_lines"
        " WHERE key_id IS NOT NULL AND bsn_index IS NOT NULL LIMIT ?",
        (_INDEX_SAMPLES,),
    )
    for row in txn.fetchall():
        client = keyring.open(str(row[3]), bytes(row[2]), f"{row[0]}:{row[1]}".encode())
        bsn = str(json.loads(client)["bsn"])
        if bsn_key(codec, bsn) == row[4]:
            return
        if bsn_key(JournalCodec(None), bsn) != row[4]:
            raise _wrong_index()
