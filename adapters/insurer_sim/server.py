"""Starting the simulator: the resource behind a mutual-TLS listening port."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.web import server

from adapters.insurer_sim.config import SimConfig
from adapters.insurer_sim.insurer import SimulatedInsurer
from adapters.insurer_sim.resource import InsurerSimResource, SimRequest
from adapters.tls import server_context_factory
from gateway.ei import LayoutRegistry
from gateway.loading import load_layouts

__all__ = ["RunningSimulator", "start_simulator"]

log = Logger()


@dataclass(slots=True)
class RunningSimulator:
    insurer: SimulatedInsurer
    port: IListeningPort

    @property
    def url(self) -> str:
        address: Any = self.port.getHost()
        return f"https://{address.host}:{address.port}"

    async def stop(self) -> None:
        stopped = self.port.stopListening()
        if stopped is not None:
            await stopped


async def start_simulator(
    config: SimConfig, reactor: Any, registry: LayoutRegistry | None = None
) -> RunningSimulator:
    """Listen on ``config``'s address with mutual TLS; raises ``TLSSetupError`` for unusable
    certificate files and ``CannotListenError`` for a taken port."""
    tls = config.tls
    options = server_context_factory(tls.cert, tls.key, tls.trust, tls.crl)

    def now() -> datetime:
        return datetime.fromtimestamp(reactor.seconds(), UTC)

    insurer = SimulatedInsurer(config, registry or load_layouts(), now)
    site = server.Site(InsurerSimResource(insurer, reactor), reactor=reactor)
    site.requestFactory = SimRequest
    site.displayTracebacks = False
    endpoint = SSL4ServerEndpoint(reactor, config.port, options, interface=config.host)
    port: IListeningPort = await endpoint.listen(site)
    running = RunningSimulator(insurer, port)
    log.info(
        "insurer simulator listening on {url} (UZOVI {uzovi})", url=running.url, uzovi=config.uzovi
    )
    return running
