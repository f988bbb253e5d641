"""Run the global reactor step by step while a benchmark waits for a result, so that what
needs a real reactor (the check workers' processes, driven by the reactor as in
``igo-gateway serve``) runs inside a script written as a sequence of waits.

:class:`ReactorPump` has the ``wait`` of :class:`~adapters.storage.blocking.Blocking`
(the store hands its results back through ``callFromThread``, which the reactor runs on
the waiting thread), but drives the reactor's own loop: timed calls, calls from threads,
and the I/O of the processes it spawned. It starts the reactor without its signal
handlers (Ctrl-C still ends the script) and reaps the processes that ended itself.
Once started, the global reactor stays started for the rest of the process: use it in a
script of its own (a benchmark's ``main``), not in a test process that shares the reactor.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar, cast

from twisted.internet.interfaces import IReactorCore
from twisted.internet.process import reapAllProcesses

from adapters.storage.blocking import wait_stepping

__all__ = ["ReactorPump"]

T = TypeVar("T")
# How long one step of the loop waits for I/O when nothing is due (a thread's call wakes
# it at once; this bounds how late an ended process is noticed).
STEP_SECONDS = 0.05


class ReactorPump:
    def __init__(self) -> None:
        # Imported here: importing it installs the global reactor, wanted only when used.
        from twisted.internet import reactor  # noqa: PLC0415

        self.reactor: Any = cast(Any, reactor)
        if not cast(IReactorCore, reactor).running:
            self.reactor.startRunning(installSignalHandlers=False)

    def wait(self, awaitable: Awaitable[T], timeout: float = 120.0) -> T:
        """Run the reactor until ``awaitable`` has a result; return it or raise its error."""
        return wait_stepping(awaitable, self._step, timeout, f"no result within {timeout} s")

    def _step(self, remaining: float) -> None:
        self.reactor.iterate(min(remaining, STEP_SECONDS))
        reapAllProcesses()
