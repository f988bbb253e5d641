"""The REST insurer link wired to the insurer simulator's resource in memory: no sockets,
no real reactor, both sides on clocks the test advances."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from treq.testing import RequestTraversalAgent
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.client import readBody
from twisted.web.http_headers import Headers

from adapters.http_client import BytesProducer
from adapters.insurer_link.rest import RestInsurerLink
from adapters.insurer_sim.config import SimConfig
from adapters.insurer_sim.insurer import SimulatedInsurer
from adapters.insurer_sim.resource import InsurerSimResource, SimRequest
from gateway.insurer import Park, RetryPolicy
from gateway.loading import load_layouts
from gateway.ports.insurer import Delivery, InsurerLinkError, OutboundFile
from tests.adapters.insurer_sim.support import IGO, UZOVI

T = TypeVar("T")
REGISTRY = load_layouts()
BASE_URL = "https://insurer.test"
TIMEOUT = 10.0


@dataclass
class Harness:
    insurer: SimulatedInsurer
    sim_clock: Clock
    link_clock: Clock
    agent: Any
    link: RestInsurerLink
    caller: list[str | None] = field(default_factory=lambda: [IGO])

    def start(self, coro: Coroutine[Any, Any, T]) -> list[T | Failure]:
        """Start ``coro``; its outcome appears in the list once it has one."""
        results: list[T | Failure] = []
        Deferred.fromCoroutine(coro).addBoth(results.append)
        self.agent.flush()
        return results

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to its end (it must not wait on a clock) and return its result."""
        results = self.start(coro)
        assert results, "still waiting"
        result = results[0]
        if isinstance(result, Failure):
            result.raiseException()
        return result

    def advance(self, seconds: float) -> None:
        self.sim_clock.advance(seconds)
        self.link_clock.advance(seconds)
        self.agent.flush()

    def idle(self) -> bool:
        """No timers left on either side."""
        return not self.sim_clock.getDelayedCalls() and not self.link_clock.getDelayedCalls()

    def request(
        self, method: bytes, path: str, body: bytes = b"", content_type: bytes | None = None
    ) -> tuple[int, bytes]:
        """A raw request to the simulator, for what the link itself never sends."""
        headers = Headers()
        if content_type is not None:
            headers.addRawHeader(b"content-type", content_type)

        async def go() -> tuple[int, bytes]:
            response = await self.agent.request(
                method, (BASE_URL + path).encode(), headers, BytesProducer(body)
            )
            data: bytes = await readBody(response)
            return response.code, data

        return self.run(go())

    async def deliver(
        self, file: OutboundFile, policy: RetryPolicy, timeouts: list[str]
    ) -> Delivery | Park:
        """What a forwarder does: send, and on a retryable failure try again per the policy
        (the waits themselves are skipped)."""
        first = datetime.fromtimestamp(self.link_clock.seconds(), UTC)
        for attempt in itertools.count(1):
            try:
                return await self.link.send(file)
            except InsurerLinkError as exc:
                timeouts.append(str(exc))
                decision = policy.after_failure(
                    exc, attempt=attempt, first_attempt_at=first, now=first, random=lambda: 0.0
                )
                if isinstance(decision, Park):
                    return decision
        raise AssertionError("unreachable")


def harness(**sections: Any) -> Harness:
    tls = {"cert": "s.pem", "key": "s.key", "trust": "ca.pem"}
    config = SimConfig.model_validate({"uzovi": UZOVI, "tls": tls, **sections})
    sim_clock, link_clock = Clock(), Clock()
    counter = itertools.count(1)
    insurer = SimulatedInsurer(
        config,
        REGISTRY,
        lambda: datetime.fromtimestamp(sim_clock.seconds(), UTC),
        new_id=lambda: str(uuid.UUID(int=next(counter))),
    )
    callers: list[str | None] = [IGO]
    resource = InsurerSimResource(insurer, sim_clock, lambda request: callers[0])
    agent = RequestTraversalAgent(resource)
    # The simulator's own request class, as its real Site uses (the body is left unparsed).
    agent._serverFactory.requestFactory = SimRequest
    link = RestInsurerLink(link_clock, agent, BASE_URL, sender=IGO, insurer=UZOVI, timeout=TIMEOUT)
    return Harness(insurer, sim_clock, link_clock, agent, link, callers)
