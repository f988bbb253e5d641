"""The intake checks of uploads in worker processes (:class:`CheckWorkers`); see
:mod:`adapters.check_workers.pool`."""

from adapters.check_workers.pool import CheckWorkers, ProcessReactor, worker_command

__all__ = ["CheckWorkers", "ProcessReactor", "worker_command"]
