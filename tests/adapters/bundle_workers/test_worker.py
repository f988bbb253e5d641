"""What a bundle worker hands over: a prepared batch, pickled with the worker's reducers,
is the same batch on the other side (every object it holds, field for field)."""

from __future__ import annotations

import io
import pickle
from dataclasses import fields
from pathlib import Path

from adapters.bundle_workers.worker import HANDED_OVER, _by_fields
from adapters.storage import SqlMessageStore, open_store
from gateway.bundler import PreparedBatch
from tests.gateway.test_bundling_batches import KRAAM, MIDWIFE, WOMEN, bundler, take_in, upload_of
from tests.threadpump import ThreadPump


def test_each_class_handed_over_is_made_again_from_its_fields() -> None:
    for cls in HANDED_OVER:
        own = fields(cls)
        assert all(f.init for f in own), cls  # cls(*values) gives every field
        assert len(own) > 1, cls  # so that attrgetter gives a tuple of them


def test_a_prepared_batch_is_handed_over_whole(tmp_path: Path) -> None:
    pump = ThreadPump()
    store: SqlMessageStore = pump.wait(open_store(f"sqlite:///{tmp_path / 'g.db'}", pump))
    try:
        # Two women claimed: line outcomes, claim links, decisions and a queued file.
        take_in(store, pump, MIDWIFE, upload_of(MIDWIFE, "VK-1", WOMEN[0:2]))
        take_in(store, pump, KRAAM, upload_of(KRAAM, "KZ-1", WOMEN[0:2]))
        women = [w for group in pump.wait(store.bundles.bundle_groups(10**6)) for w in group]
        prepared: PreparedBatch = pump.wait(bundler(store, 10**6).prepare_batch(women, 0))
    finally:
        pump.wait(store.close())
    sent = prepared.without_plan()
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {cls: _by_fields(cls) for cls in HANDED_OVER}
    pickler.dump(sent)

    received = pickle.loads(buffer.getvalue())

    assert received == sent
    assert received.recording[0]  # a file queued
    assert received.recording[2]  # lines placed
    assert received.tally.claim_files == prepared.tally.claim_files
