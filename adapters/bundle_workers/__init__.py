"""Bundling batches prepared in a worker process (:class:`BundleWorkers`); see
:mod:`adapters.bundle_workers.pool`."""

from adapters.bundle_workers.pool import BundleWorkers
from adapters.bundle_workers.worker import WorkerSpec

__all__ = ["BundleWorkers", "WorkerSpec"]
