"""The pool side of the check workers, against a reactor that records the processes it
is asked to start (no process runs here; ``test_with_gateway`` runs real ones): replies
in any chunking, failures that fall back to the intake's own checks, a worker started
again after it ended, and a stop that waits for the workers."""

from __future__ import annotations

import hashlib
import marshal
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from adapters.check_workers import CheckWorkers
from adapters.check_workers.wire import frame, reply_failed, reply_for
from gateway.loading import load_layouts
from gateway.metrics import Metrics
from gateway.ports.intake import CheckedFile, FileCheckUnavailableError
from gateway.upload_checks import check_upload
from tests.factories import kz301

REGISTRY = load_layouts()
AGB = "33001234"


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.signals: list[str] = []
        self.stdin_closed = False
        self.exited = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def signalProcess(self, signal: str) -> None:
        if self.exited:
            raise ProcessExitedAlready()
        self.signals.append(signal)

    def closeStdin(self) -> None:
        self.stdin_closed = True


class _Reactor(Clock):
    """Starts no process: connects each worker's protocol to a recording transport (or
    fails to start the next ``failing`` ones)."""

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[tuple[Any, list[str], _Transport]] = []
        self.failing = 0

    def spawnProcess(
        self, protocol: Any, executable: str, args: list[str], **kwargs: Any
    ) -> _Transport:
        if self.failing:
            self.failing -= 1
            raise FileNotFoundError(executable)
        transport = _Transport()
        protocol.makeConnection(transport)
        self.spawned.append((protocol, args, transport))
        return transport


def _results(d: Deferred[Any]) -> list[object]:
    out: list[object] = []
    d.addCallbacks(out.append, lambda f: out.append(f.value))
    return out


def _end(protocol: Any) -> None:
    protocol.processEnded(Failure(RuntimeError("ended")))


@pytest.fixture
def reactor() -> _Reactor:
    return _Reactor()


def test_a_reply_in_pieces_answers_its_check(reactor: _Reactor) -> None:
    workers = CheckWorkers(reactor, REGISTRY, 2)  # type: ignore[arg-type]
    workers.start()
    assert workers.running == 2
    payload = kz301(REGISTRY, agb=AGB, lines=2)
    got = _results(workers.check(payload, "t-1", AGB))
    protocol, _, transport = reactor.spawned[0]
    assert transport.written, "the request went to the first worker"
    result, lines = check_upload(REGISTRY, payload, "t-1", AGB)
    reply = reply_for(0, hashlib.sha256(payload).hexdigest(), result, lines)

    for at in range(0, len(reply), 7):
        protocol.childDataReceived(1, reply[at : at + 7])

    (checked,) = got
    assert isinstance(checked, CheckedFile)
    assert checked.lines == lines
    assert checked.result.findings == result.findings


def test_checks_go_to_the_worker_with_the_fewest_waiting(reactor: _Reactor) -> None:
    workers = CheckWorkers(reactor, REGISTRY, 2)  # type: ignore[arg-type]
    workers.start()
    for n in range(4):
        workers.check(b"x", f"t-{n}", AGB)
    assert [len(t.written) for _, _, t in reactor.spawned] == [2, 2]


def test_a_failed_reply_and_an_ended_worker_fail_over_to_the_intake(reactor: _Reactor) -> None:
    workers = CheckWorkers(reactor, REGISTRY, 1, restart_seconds=2)  # type: ignore[arg-type]
    workers.start()
    protocol, args, _ = reactor.spawned[0]
    failed = _results(workers.check(b"x", "t-1", AGB))
    waiting = _results(workers.check(b"y", "t-2", AGB))

    protocol.childDataReceived(1, reply_failed(0))
    assert isinstance(failed[0], FileCheckUnavailableError)
    assert waiting == []

    reactor.advance(60)  # a worker that has run a while
    _end(protocol)
    assert isinstance(waiting[0], FileCheckUnavailableError)
    assert workers.running == 0
    (none_running,) = _results(workers.check(b"z", "t-3", AGB))
    assert isinstance(none_running, FileCheckUnavailableError)

    reactor.advance(2)  # started again
    assert len(reactor.spawned) == 2
    assert reactor.spawned[1][1] == args
    assert workers.running == 1


def test_a_worker_that_keeps_ending_at_once_is_started_again_less_often(
    reactor: _Reactor,
) -> None:
    workers = CheckWorkers(reactor, REGISTRY, 1, restart_seconds=1)  # type: ignore[arg-type]
    workers.start()
    waits = []
    for _ in range(8):
        _end(reactor.spawned[-1][0])  # at once
        spawned = len(reactor.spawned)
        waited = 0
        while len(reactor.spawned) == spawned:
            reactor.advance(1)
            waited += 1
        waits.append(waited)
    assert waits == [2, 4, 8, 16, 32, 60, 60, 60]
    reactor.advance(30)  # this one runs a while
    _end(reactor.spawned[-1][0])
    reactor.advance(1)
    assert workers.running == 1, "after a worker that ran, the wait is short again"


def test_a_worker_that_cannot_be_started_is_tried_again_and_the_gateway_checks_meanwhile(
    reactor: _Reactor,
) -> None:
    reactor.failing = 2
    workers = CheckWorkers(reactor, REGISTRY, 1, restart_seconds=1)  # type: ignore[arg-type]
    workers.start()  # does not raise: the gateway starts all the same
    assert workers.running == 0
    (meanwhile,) = _results(workers.check(b"x", "t-1", AGB))
    assert isinstance(meanwhile, FileCheckUnavailableError)
    reactor.advance(2)  # the second try fails too
    assert workers.running == 0
    reactor.advance(4)  # the third starts it
    assert workers.running == 1


def test_a_reply_that_does_not_fit_fails_over_to_the_intake(reactor: _Reactor) -> None:
    workers = CheckWorkers(reactor, REGISTRY, 1)  # type: ignore[arg-type]
    workers.start()
    protocol = reactor.spawned[0][0]
    got = _results(workers.check(b"x", "t-1", AGB))
    # A layout this gateway does not have (a worker of another version, say).
    reply = frame(marshal.dumps((0, "0" * 64, "KZ301-9.9", (), 3, {}, False, None, ())))
    protocol.childDataReceived(1, reply)
    (failed,) = got
    assert isinstance(failed, FileCheckUnavailableError)
    assert workers.running == 1  # the worker itself goes on


def test_a_worker_that_has_already_exited_is_not_killed_again(reactor: _Reactor) -> None:
    workers = CheckWorkers(reactor, REGISTRY, 1)  # type: ignore[arg-type]
    workers.start()
    protocol, _, transport = reactor.spawned[0]
    transport.exited = True  # its end not yet reported to the reactor
    protocol.childDataReceived(1, reply_failed(41))  # nonsense: it is to be ended
    assert transport.signals == []
    assert workers.running == 0


def test_a_reply_to_nothing_waiting_ends_the_worker(reactor: _Reactor) -> None:
    workers = CheckWorkers(reactor, REGISTRY, 1)  # type: ignore[arg-type]
    workers.start()
    protocol, _, transport = reactor.spawned[0]
    protocol.childDataReceived(1, reply_failed(41))
    assert transport.signals == ["KILL"]
    assert workers.running == 0


def test_what_a_worker_writes_on_standard_error_is_counted_not_kept(reactor: _Reactor) -> None:
    workers = CheckWorkers(reactor, REGISTRY, 1)  # type: ignore[arg-type]
    workers.start()
    reactor.spawned[0][0].childDataReceived(2, b"BSN 123456782 went wrong")
    assert workers.stderr_bytes == 24


def test_stop_closes_the_input_and_waits_for_every_worker(reactor: _Reactor) -> None:
    workers = CheckWorkers(reactor, REGISTRY, 2, stop_seconds=5)  # type: ignore[arg-type]
    workers.start()
    stopped = _results(workers.stop())
    assert [t.stdin_closed for _, _, t in reactor.spawned] == [True, True]
    _end(reactor.spawned[0][0])
    assert stopped == []
    reactor.advance(5)  # the second did not end: killed
    assert reactor.spawned[1][2].signals == ["KILL"]
    _end(reactor.spawned[1][0])
    assert stopped == [None]
    reactor.advance(60)
    assert len(reactor.spawned) == 2, "no worker is started again after a stop"


def test_at_least_one_process() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        CheckWorkers(_Reactor(), REGISTRY, 0)  # type: ignore[arg-type]


def test_the_metrics_show_the_workers_running_and_the_uploads_checked_here(
    reactor: _Reactor,
) -> None:
    metrics = Metrics()
    workers = CheckWorkers(reactor, REGISTRY, 2, metrics=metrics)  # type: ignore[arg-type]

    def sample(name: str) -> float | None:
        return metrics.registry.get_sample_value(name)

    workers.start()
    assert sample("igo_gateway_check_workers") == 2
    protocol = reactor.spawned[0][0]
    _results(workers.check(b"x", "t-1", AGB))  # to the first worker
    _end(protocol)
    assert sample("igo_gateway_check_workers") == 1
    assert sample("igo_gateway_checks_in_gateway_total") == 1
    _end(reactor.spawned[1][0])
    _results(workers.check(b"y", "t-2", AGB))  # none running
    assert sample("igo_gateway_checks_in_gateway_total") == 2
