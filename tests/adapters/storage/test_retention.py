"""Retention: expired payloads are pruned once nothing needs them, their metadata stays,
and on SQLite the space is given back to the file system."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from adapters.storage import Transaction, open_store
from gateway.app import prune_expired
from gateway.metrics import Metrics
from tests.adapters.storage.builders import retour, upload
from tests.adapters.storage.test_lines import line
from tests.threadpump import ThreadPump

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=500)


def settle(txn: Transaction, traceer_id: str) -> None:
    txn.execute(
        "UPDATE declaration_lines SET state = 'absorbed', outcome = 'granted' WHERE traceer_id = ?",
        (traceer_id,),
    )


def test_only_what_nothing_needs_any_more_is_pruned(sql_url: str, pump: ThreadPump) -> None:
    store = pump.wait(open_store(sql_url, pump))
    try:
        done = upload(1, created_at=OLD)
        pending = upload(2, created_at=OLD)
        recent = upload(3, created_at=NOW)
        answer = retour(4, to=done, created_at=OLD)
        pump.wait(store.record_upload(done, [], [line(0, "up-0001")]))
        pump.wait(store.record_upload(pending, [], [line(0, "up-0002")]))
        pump.wait(store.record_upload(recent, [], [line(0, "up-0003")]))
        pump.wait(store.database.run_interaction("settle", settle, "up-0001"))
        pump.wait(store.database.run_interaction("settle", settle, "up-0003"))
        stored_answer = pump.wait(store.put_message(answer))

        metrics = Metrics()
        assert pump.wait(prune_expired(store, 400, metrics)) == 1  # the settled upload
        assert pump.wait(store.payload(answer.sha256)) == answer.payload  # not fetched yet
        pump.wait(store.confirm(stored_answer.traceer_id, stored_answer.party, NOW))
        assert pump.wait(prune_expired(store, 400, metrics)) == 1
        assert pump.wait(store.payload(answer.sha256)) is None

        assert pump.wait(store.payload(done.sha256)) is None
        assert pump.wait(store.payload(pending.sha256)) == pending.payload  # a line is open
        assert pump.wait(store.payload(recent.sha256)) == recent.payload  # not expired
        kept = pump.wait(store.get_message("up-0001"))
        assert kept is not None  # the metadata stays
        assert kept.size == len(done.payload)
        assert b"igo_gateway_pruned_payloads_total 2.0" in metrics.exposition()
    finally:
        pump.wait(store.close())


def test_pruning_gives_the_space_back_on_sqlite(tmp_path: object, pump: ThreadPump) -> None:
    path = f"{tmp_path}/g.db"
    store = pump.wait(open_store(f"sqlite:///{path}", pump))
    try:
        for n in range(1, 41):
            big = upload(n, created_at=OLD, payload=os.urandom(64 * 1024))
            pump.wait(store.record_upload(big, []))
        before = pump.wait(store.retention.size())
        assert pump.wait(prune_expired(store, 400)) == 40
        after = pump.wait(store.retention.size())
        assert after < before / 4, (before, after)
    finally:
        pump.wait(store.close())
    assert os.path.getsize(path) < before / 4  # the file itself, after the last checkpoint
