"""Declaration lines stored with their upload on SQLite and PostgreSQL: read back whole, the
client's numbers never stored in the clear with a key file, nothing stored for an upload
that was not."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from adapters.storage import MemoryMessageStore, SqlMessageStore, Transaction, open_store
from adapters.storage.journal import JournalCodec
from adapters.storage.lines import COLUMNS, People, line_from_row, woman_key
from gateway.crypto import Keyring
from gateway.lines import DeclaredLine
from tests.adapters.storage.builders import upload
from tests.threadpump import ThreadPump

KEYS = Keyring(keys={"k1": b"k" * 32}, current="k1", index_key=b"i" * 32)


def line(n: int, traceer_id: str = "up-0001", **changes: object) -> DeclaredLine:
    base = DeclaredLine(
        traceer_id=traceer_id,
        record_number=n + 1,
        participant="33001234",
        standard="KZ301",
        bsn="999990007",
        birth_date=date(1994, 5, 6),
        insurer="3311",
        prestatiecodelijst="044",
        prestatiecode="196202",
        prestatie_date=date(2026, 7, 26 + n),
        prestatie_end_date=None,
        amount=4375 * (n + 1),
        reference=f"KZA-{n}",
        previous_reference=None,
        performer="33012345",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def raw_rows(store: SqlMessageStore, pump: ThreadPump) -> list[tuple[object, ...]]:
    def read(txn: Transaction) -> list[tuple[object, ...]]:
        txn.execute("SELECT woman, client, key_id FROM declaration_lines")
        return [tuple(row) for row in txn.fetchall()]

    return pump.wait(store.database.run_read("raw", read))


def test_lines_are_stored_with_their_upload_and_read_back(sql_url: str, pump: ThreadPump) -> None:
    store = pump.wait(open_store(sql_url, pump))
    try:
        lines = [
            line(0),
            line(1, amount=-4375, previous_reference="KZA-0"),
            line(2, birth_date=None),
            line(
                3,
                standard="ZH308",
                zorgproduct="159999030",
                zorgactiviteiten=("039485", "190037"),
            ),
        ]
        pump.wait(store.record_upload(upload(1), [], lines))
        assert pump.wait(store.declared_lines("up-0001")) == lines
        assert pump.wait(store.open_lines()) == lines
        # The same upload again stores nothing more.
        pump.wait(store.record_upload(upload(1), [], lines))
        assert len(pump.wait(store.open_lines())) == 4
    finally:
        pump.wait(store.close())


def test_an_upload_of_many_lines_of_several_women_is_stored_whole(
    sql_url: str, pump: ThreadPump
) -> None:
    # Each woman's client data is encoded once per upload, and every line keeps its own.
    women = [("999990007", date(1994, 5, 6)), ("999990019", None), ("999990020", date(1990, 1, 2))]
    lines = [
        line(0, record_number=n + 1, reference=f"KZA-{n}", bsn=bsn, birth_date=born)
        for n in range(450)
        for bsn, born in [women[n % 3]]
    ]
    store = pump.wait(open_store(sql_url, pump))
    try:
        pump.wait(store.record_upload(upload(1), [], lines))

        assert pump.wait(store.declared_lines("up-0001")) == lines
        rows = raw_rows(store, pump)
        keys = {w: woman_key(store.codec, *w) for w in women}
        assert sorted(str(woman) for woman, _, _ in rows) == sorted(
            keys[(ln.bsn, ln.birth_date)] for ln in lines
        )
    finally:
        pump.wait(store.close())


@pytest.mark.parametrize("keyring", [None, KEYS], ids=["plain", "sealed"])
def test_a_read_of_many_lines_decodes_each_woman_once_and_every_line_is_its_own(
    sql_url: str, pump: ThreadPump, keyring: Keyring | None
) -> None:
    # Read with the decoded women kept for the read (as a bundling batch reads): the same
    # lines as stored, for women who share a BSN or a birth date.
    women = [("999990007", date(1994, 5, 6)), ("999990007", None), ("999990019", date(1994, 5, 6))]
    lines = [
        line(0, record_number=n + 1, reference=f"KZA-{n}", bsn=bsn, birth_date=born)
        for n in range(30)
        for bsn, born in [women[n % 3]]
    ]
    store = pump.wait(open_store(sql_url, pump, keyring))
    try:
        pump.wait(store.record_upload(upload(1), [], lines))
        people: People = {}
        read_once = pump.wait(store.database.run_read("lines", _all_lines, store.codec, people))
        assert read_once == lines
        assert len(people) == 3
    finally:
        pump.wait(store.close())


def _all_lines(txn: Transaction, codec: JournalCodec, people: People) -> list[DeclaredLine]:
    txn.execute(f"SELECT {COLUMNS} FROM declaration_lines ORDER BY record_number")
    return [line_from_row(row, codec, people) for row in txn.fetchall()]


def test_with_a_key_file_the_clients_numbers_are_sealed(sql_url: str, pump: ThreadPump) -> None:
    store = pump.wait(open_store(sql_url, pump, KEYS))
    try:
        pump.wait(store.record_upload(upload(1), [], [line(0)]))
        ((woman, client, key_id),) = raw_rows(store, pump)
        assert key_id == "k1"
        assert isinstance(client, bytes | memoryview)
        assert b"999990007" not in bytes(client)
        assert woman == KEYS.index("999990007|1994-05-06")
        assert woman == woman_key(store.codec, "999990007", date(1994, 5, 6))
        assert pump.wait(store.declared_lines("up-0001")) == [line(0)]
    finally:
        pump.wait(store.close())


def test_the_memory_store_keeps_lines_of_new_uploads_only() -> None:
    pump = ThreadPump()
    store = MemoryMessageStore()
    pump.wait(store.record_upload(upload(1), [], [line(0)]))
    pump.wait(store.record_upload(upload(1), [], [line(0)]))
    assert store.lines == [line(0)]
