"""Settings of the gateway's own process, made once when an ``igo-gateway`` command starts.

Python's cyclic garbage collector looks at the youngest container objects after every 700
new ones by default. Bundling, unpacking and intake make hundreds of thousands of
short-lived ones a batch (lines, decisions, records, rows), so at the default the collector
runs thousands of times a batch, and each young collection that leaves survivors makes the
next older one come sooner. At :data:`YOUNG_THRESHOLD` it runs about fourteen times less
often; the older generations keep Python's thresholds. Measured on a tenth of a national
year (``python -m tests.benchmarks.cycle --share 0.1``, docs/benchmarks.md): the whole cycle
about 10 % faster, the peak memory the same within a few MiB. Garbage without cycles is
freed at once as before; a cycle among the youngest objects is found after at most 10,000
new objects instead of 700 (the gateway's ``python_gc_collections_total`` metric counts the
collector's runs).
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "tune_garbage_collector"]

YOUNG_THRESHOLD = 10_000


def tune_garbage_collector() -> None:
    """Let the collector look at the youngest objects after :data:`YOUNG_THRESHOLD` new
    ones (the older generations' thresholds stay as they are)."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
