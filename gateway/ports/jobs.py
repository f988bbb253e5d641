"""The job lease port: the store's leases (:class:`Leases`, on SQL
``adapters.storage.leases``) that :class:`gateway.jobs.JobLock` takes so that one run of a
job goes on at a time across every process sharing the store, and its two errors.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from gateway.errors import ErrorKind, GatewayError

__all__ = ["JobBusyError", "LeaseLostError", "Leases"]


class LeaseLostError(GatewayError):
    """The run's lease was taken over (it expired): nothing of the run is stored."""

    code = "lease-lost"
    kind = ErrorKind.CONFLICT


class JobBusyError(GatewayError):
    """Another process runs the job now (for a run that does not wait)."""

    code = "job-busy"
    kind = ErrorKind.BUSY


class Leases(Protocol):
    """The store's job leases (``adapters.storage.leases``)."""

    def try_acquire(self, job: str, holder: str, seconds: float) -> Awaitable[str | None]: ...
    def renew(self, job: str, holder: str, seconds: float) -> Awaitable[bool]: ...
    def release(self, job: str, holder: str) -> Awaitable[None]: ...
