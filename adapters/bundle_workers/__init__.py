"""Bundling batches prepared in a worker process (:class:`BundleWorkers`); see
:mod:`adapters.bundle_workers.pool`."""

from adapters.bundle_workers.pool import BundleWorkers, WorkerSpec

__all__ = ["BundleWorkers", "WorkerSpec"]
