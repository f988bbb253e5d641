"""The composition root: every store and service of the gateway, built once from the config
(in the style of synapse's ``HomeServer``).

:class:`GatewayBuilder` is made from a checked :class:`~gateway.config.GatewayConfig`, the
reactor (or the command line's :class:`~adapters.storage.blocking.Blocking` stand-in) and the
opened store. Each ``get``-style accessor (``layouts()``, ``admin_store()``,
``admin_service()``, ``bulk_service()``, …) builds its object on the first call, with all of
its collaborators passed to its constructor, and hands out the same object on every later
call: a reader finds here how the whole system is wired, and two parts that share a
service share the one object (the bulk actions and the admin site share the admin service;
the batch runner and the site share the bulk service).

The data files are read here too: the EI layouts (:func:`gateway.loading.load_layouts`)
and the prestatie catalogue (:func:`gateway.terms.load_catalogue`) on first use, and the
key file by :func:`load_keyring`, which runs before the store is opened (the store needs
the keys). ``serve`` (:func:`gateway.app.start`), every command line that builds services,
the demo and the admin dev server all build through this class. Listening on sockets and
the scheduled jobs (each a :class:`~gateway.repeating.Repeating` over a service built here)
stay with the entry point that runs them: :mod:`gateway.app` for ``serve``,
:mod:`adapters.admin.devserver` for the dev server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar, cast

from twisted.internet.defer import DeferredLock
from twisted.internet.interfaces import (
    IListeningPort,
    IOpenSSLContextFactory,
    IOpenSSLServerConnectionCreator,
    IProtocolFactory,
    IReactorCore,
    IReactorFromThreads,
    IReactorProcess,
    IReactorSSL,
    IReactorTCP,
    IReactorThreads,
    IReactorTime,
)
from twisted.logger import Logger
from zope.interface import Interface

from adapters.bundle_workers import BundleWorkers, WorkerSpec
from adapters.check_workers import CheckWorkers, ProcessReactor
from adapters.insurer_link.directory import DirectoryInsurerLink
from adapters.insurer_link.rest import RestInsurerLink
from adapters.notices import transport_for
from adapters.storage import SqlMessageStore
from adapters.storage.blocking import Blocking
from gateway.admin.bulk import BulkService
from gateway.admin.labels import Names
from gateway.admin.metrics import AdminMetrics, BulkMetrics
from gateway.admin.service import AdminService
from gateway.bundler import BUNDLING_JOB, Bundler
from gateway.collector import RetourCollector
from gateway.config import GatewayConfig, InsurerConfig, LinkKind, RetryConfig
from gateway.crypto import Keyring
from gateway.ei import LayoutRegistry
from gateway.forwarder import Forwarder
from gateway.insurer import RetryPolicy
from gateway.intake import Intake
from gateway.jobs import JobLock
from gateway.loading import load_layouts
from gateway.metrics import Metrics
from gateway.notices import NOTICES_JOB, NoticeMetrics, Notifier
from gateway.pausepoints import pause_point_from_environment
from gateway.ports.insurer import InsurerLink
from gateway.ports.outcomes import CollectedRetour
from gateway.ports.runtime import RunInThread
from gateway.reprocess import Reprocessor
from gateway.resolution import Resolver
from gateway.retours import new_traceer_id
from gateway.rules.catalogue import Catalogue, Event
from gateway.rules.model import Terms
from gateway.terms import load_catalogue, terms_from_config
from gateway.unpacker import Unpacker

if TYPE_CHECKING:
    from adapters.admin.site import AdminSite

__all__ = [
    "GatewayBuilder",
    "GatewayReactor",
    "RunInThread",
    "load_keyring",
    "reactor_now",
    "utc_now",
]

log = Logger()
# A store private to the process that opens it (no worker process can share it).
IN_MEMORY = "sqlite:///:memory:"
T = TypeVar("T")
B = TypeVar("B", bound="GatewayBuilder")


class GatewayReactor(
    IReactorCore,
    IReactorTime,
    IReactorTCP,
    IReactorSSL,
    IReactorThreads,
    IReactorFromThreads,
    IReactorProcess,
    Interface,
):
    """What ``serve`` needs of the reactor (as synapse's ``ISynapseReactor``): the global
    reactor provides all of it; the entry point casts it to this once.

    ``listenTCP`` and ``listenSSL`` are declared again as Twisted documents them (any
    protocol factory; a connection creator as the TLS settings), where the inherited
    annotations are narrower."""

    def listenTCP(
        port: int,  # noqa: N805 - a zope interface's methods have no self
        factory: IProtocolFactory,
        backlog: int = 50,
        interface: str = "",
    ) -> IListeningPort:
        """Listen on TCP ``port``."""

    def listenSSL(
        port: int,  # noqa: N805 - a zope interface's methods have no self
        factory: IProtocolFactory,
        contextFactory: IOpenSSLContextFactory | IOpenSSLServerConnectionCreator,  # noqa: N803
        backlog: int = 50,
        interface: str = "",
    ) -> IListeningPort:
        """Listen with TLS on ``port``."""


def built_once(build: Callable[[B], T]) -> Callable[[B], T]:
    """An accessor of the builder that builds its part on the first call and hands out
    that part on every later one (synapse's ``cache_in_self``), kept on the builder itself
    (so a builder and what it built go together). A part that needs itself, through
    others, while it is being built is a wiring mistake: :class:`RuntimeError`."""
    name = build.__name__

    @wraps(build)
    def accessor(builder: B) -> T:
        built = builder._built
        if name in built:
            part: T = built[name]
            return part
        if name in builder._building:
            raise RuntimeError(f"{name}() needs itself to be built: a circular dependency")
        builder._building.add(name)
        try:
            part = build(builder)
        finally:
            builder._building.discard(name)
        built[name] = part
        return part

    return accessor


def utc_now() -> datetime:
    """The wall clock, in UTC, for what runs without a reactor (the builder's services
    take :func:`reactor_now` instead)."""
    return datetime.now(UTC)


def reactor_now(clock: IReactorTime) -> Callable[[], datetime]:
    """``clock``'s time as an aware UTC datetime: the one clock services and timers share
    (the reactor's, or a test's ``task.Clock``)."""

    def now() -> datetime:
        return datetime.fromtimestamp(clock.seconds(), UTC)

    return now


async def _on_this_thread(work: Callable[[], Any]) -> Any:
    return work()


def load_keyring(config: GatewayConfig) -> Keyring | None:
    """The key file of ``[encryption]``, or None (files are then stored unencrypted, which
    is logged). Read before the store opens: the store seals and unseals with it."""
    path = config.encryption.key_file
    if path is None:
        log.warn(
            "no [encryption] key_file: stored files are kept UNENCRYPTED "
            "(igo-gateway keys init FILE makes one)"
        )
        return None
    keyring = Keyring.load(path)
    log.info("stored files are sealed with key {key_id}", key_id=keyring.current)
    return keyring


def retry_policy(retry: RetryConfig) -> RetryPolicy:
    """An insurer link's ``[retry]`` settings as the forwarder's policy."""
    return RetryPolicy(
        first_delay=timedelta(seconds=retry.first_delay_seconds),
        factor=retry.factor,
        max_delay=timedelta(seconds=max(retry.max_delay_seconds, retry.first_delay_seconds)),
        max_attempts=retry.max_attempts,
        give_up_after=timedelta(hours=retry.give_up_after_hours),
    )


def layout_versions(registry: LayoutRegistry) -> dict[str, tuple[int, int]]:
    """Each standard's version and subversion, as a berichtstroom names them."""
    versions: dict[str, tuple[int, int]] = {}
    for layout in registry.standards():
        try:
            versions[layout.standard] = (int(layout.version), int(layout.subversion))
        except ValueError:
            continue
    return versions


class GatewayBuilder:
    """Builds each part of the gateway once, on first use (see the module).

    ``reactor`` keeps time for leases and jobs and, for ``serve``, opens the insurer links'
    and notices' connections (a command line's :class:`~adapters.storage.blocking.Blocking`
    keeps time only: it opens none); ``store`` is the opened message store, whose database the
    area stores share; ``keyring`` is what :func:`load_keyring` read. ``metrics`` is the
    process's metrics (None: nothing is counted, as on a command line); ``run_in_thread``
    runs CPU-heavy work (parsing, hashing) off the reactor thread (None: on the calling
    thread); ``bundle_after_change``: an administrator's action that has lines decided
    again runs bundling at once (``serve``), else the running gateway's next scheduled run
    does; ``now`` and ``new_id`` are the clock and the id factory every service gets (by
    default the reactor's own time, :func:`reactor_now`, so that services and timers keep
    one clock)."""

    def __init__(
        self,
        config: GatewayConfig,
        reactor: GatewayReactor | Blocking,
        store: SqlMessageStore,
        *,
        keyring: Keyring | None = None,
        metrics: Metrics | None = None,
        run_in_thread: RunInThread | None = None,
        bundle_after_change: bool = False,
        now: Callable[[], datetime] | None = None,
        new_id: Callable[[], str] = new_traceer_id,
    ) -> None:
        self.config = config
        self.reactor = reactor
        self.store = store
        self.now: Callable[[], datetime] = now or reactor_now(reactor)
        self.new_id = new_id
        self.run_in_thread: RunInThread = run_in_thread or _on_this_thread
        self._keyring = keyring
        self._metrics = metrics
        self._bundle_after_change = bundle_after_change
        self._built: dict[str, Any] = {}
        self._building: set[str] = set()

    def _network(self) -> GatewayReactor:
        """The reactor, for a part that opens connections."""
        if isinstance(self.reactor, Blocking):
            raise RuntimeError("a command line opens no connections: this part is serve's")
        return self.reactor

    # --- what was read ---------------------------------------------------------------------

    def keyring(self) -> Keyring | None:
        return self._keyring

    def metrics(self) -> Metrics | None:
        return self._metrics

    @built_once
    def layouts(self) -> LayoutRegistry:
        return load_layouts()

    @built_once
    def catalogue(self) -> Catalogue:
        return load_catalogue(self.config.bundling.catalogue)

    @built_once
    def terms(self) -> Terms:
        return terms_from_config(self.config)

    @built_once
    def admin_names(self) -> Names:
        """The names the admin site shows beside codes: the config's participants and
        insurers, the catalogue's prestaties and code descriptions."""
        return admin_names(self.config, self.catalogue())

    # --- the declaration flow --------------------------------------------------------------

    @built_once
    def intake(self) -> Intake:
        return Intake(
            self.store,
            self.layouts(),
            clock=self.now,
            run_in_thread=self.run_in_thread,
            new_id=self.new_id,
            metrics=self._metrics,
            berichtstroom=self.config.epd_api.berichtstroom,
            checks=self.check_workers(),
        )

    @built_once
    def check_workers(self) -> CheckWorkers | None:
        """The check workers of ``[epd_api] check_processes`` (None when it is 0, and for a
        command line); ``serve`` starts them with the EPD API and stops them after it
        (until they run, uploads are checked in this process)."""
        processes = self.config.epd_api.check_processes
        if processes == 0 or isinstance(self.reactor, Blocking):
            return None  # a command line checks the files it reads itself
        # The global reactor spawns processes too (IReactorProcess, in GatewayReactor).
        return CheckWorkers(
            cast(ProcessReactor, self._network()),
            self.layouts(),
            processes,
            metrics=self._metrics,
        )

    @built_once
    def bundling_lock(self) -> DeferredLock:
        """One bundling run at a time in this process (a stop waits for it)."""
        return DeferredLock()

    @built_once
    def bundler(self) -> Bundler:
        """The bundler that stores its runs: under the store's bundling lease, so one
        process bundles at a time (:class:`~gateway.bundler.Bundler`)."""
        lease = JobLock(
            self.store.leases,
            BUNDLING_JOB,
            self.reactor,
            seconds=self.config.bundling.lease_seconds,
        )
        return self._bundler(
            self.now, metrics=self._metrics, lock=lease, workers=self.bundle_workers()
        )

    @built_once
    def bundle_workers(self) -> BundleWorkers | None:
        """The bundle worker of ``[bundling] worker_processes`` (None when it is 0, and for
        a command line: its bundle command shows each batch's plan, made in its own
        process, and for a store in memory, which no other process can open); started
        with the first batch, stopped by ``serve`` when it stops."""
        if (
            self.config.bundling.worker_processes == 0
            or isinstance(self.reactor, Blocking)
            or self.config.store.url == IN_MEMORY
        ):
            return None
        spec = WorkerSpec(
            self.config.store.url,
            self.config.encryption.key_file,
            self.catalogue(),
            self.terms(),
            self.config.bundling.distribution,
        )
        return BundleWorkers(self.reactor, spec)

    def planning_bundler(self, as_of: date | None = None) -> Bundler:
        """A bundler for plans and explanations (it takes no lease), deciding as on
        ``as_of`` (noon UTC) when given. Not cached: each day is its own."""

        def now() -> datetime:
            if as_of is None:
                return self.now()
            return datetime.combine(as_of, time(12), tzinfo=UTC)

        return self._bundler(now)

    def _bundler(
        self,
        now: Callable[[], datetime],
        *,
        metrics: Metrics | None = None,
        lock: JobLock | None = None,
        workers: BundleWorkers | None = None,
    ) -> Bundler:
        return Bundler(
            self.store,
            self.store.bundles,
            self.layouts(),
            self.catalogue(),
            self.terms(),
            now=now,
            metrics=metrics,
            run_in_thread=self.run_in_thread,
            distribution=self.config.bundling.distribution,
            lock=lock,
            checkpoint=pause_point_from_environment(),
            workers=workers,
        )

    async def bundle_now(self) -> None:
        """A bundling run that waits its turn (in this process and over every process)."""
        lock = self.bundling_lock()
        await lock.acquire()
        try:
            await self.bundler().run(wait=True)
        finally:
            lock.release()

    async def bundle_if_free(self) -> None:
        """A bundling run that leaves the work to a process that bundles now
        (:class:`~gateway.jobs.JobBusyError`)."""
        lock = self.bundling_lock()
        await lock.acquire()
        try:
            await self.bundler().run(wait=False)
        finally:
            lock.release()

    @built_once
    def unpacker(self) -> Unpacker:
        """The return unpacker as the config says (distribution model, shares, overheads)."""
        config = self.config
        disciplines = {p.agb: p.discipline for p in config.participants}
        overheads = {
            i.uzovi: max(i.contracts, key=lambda c: c.year).overhead_percent
            for i in config.insurers
            if i.contracts
        }
        return Unpacker(
            self.store,
            self.store.outcomes,
            self.layouts(),
            now=self.now,
            model=config.bundling.distribution,
            shares=config.bundling.shares,
            discipline_of=disciplines.get,
            overhead_of=lambda insurer: overheads.get(insurer, 0.0),
            metrics=self._metrics,
            run_in_thread=self.run_in_thread,
            new_id=self.new_id,
        )

    @built_once
    def resolver(self) -> Resolver:
        """The effects of the administrator's actions on rejected lines."""
        return Resolver(
            self.store,
            self.store.resolution,
            self.store.bundles.reserve,
            self.layouts(),
            self.catalogue(),
            self.terms(),
            self.unpacker(),
            now=self.now,
            run_in_thread=self.run_in_thread,
        )

    # --- the insurers ----------------------------------------------------------------------

    @built_once
    def insurer_states(self) -> dict[str, str]:
        """Each linked insurer's state as the operations endpoint shows it (the forwarder
        keeps it current)."""
        return {i.uzovi: "unknown" for i in self.config.insurers if i.link is not None}

    @built_once
    def insurer_links(self) -> dict[str, InsurerLink]:
        links: dict[str, InsurerLink] = {}
        for insurer in self.config.insurers:
            link = self._insurer_link(insurer)
            if link is not None:
                links[insurer.uzovi] = link
        return links

    def _insurer_link(self, insurer: InsurerConfig) -> InsurerLink | None:
        link = insurer.link
        if link is None:
            return None
        if link.kind is LinkKind.DIRECTORY:
            assert link.outbox is not None
            assert link.inbox is not None
            return DirectoryInsurerLink(link.outbox, link.inbox, run=self.run_in_thread)
        assert link.base_url is not None
        assert link.tls is not None
        return RestInsurerLink.with_certificate(
            self._network(),
            link.base_url,
            cert=str(link.tls.cert),
            key=str(link.tls.key),
            ca=str(link.tls.trust),
            crl=str(link.tls.crl) if link.tls.crl is not None else None,
            sender=self.config.igo.agb,
            insurer=insurer.uzovi,
            timeout=link.timeout_seconds,
            versions=layout_versions(self.layouts()),
        )

    def _linked(self) -> list[InsurerConfig]:
        links = self.insurer_links()
        return [i for i in self.config.insurers if i.uzovi in links]

    def poll_intervals(self) -> dict[str, float]:
        """Seconds between sending and fetching rounds, per linked insurer."""
        return {i.uzovi: i.link.poll_seconds for i in self._linked() if i.link is not None}

    @built_once
    def forwarder(self) -> Forwarder:
        linked = self._linked()
        return Forwarder(
            self.store.outbox,
            self.insurer_links(),
            now=self.now,
            policies={i.uzovi: retry_policy(i.link.retry) for i in linked if i.link is not None},
            leases={
                i.uzovi: timedelta(seconds=i.link.lease_seconds)
                for i in linked
                if i.link is not None
            },
            metrics=self._metrics,
            states=self.insurer_states(),
        )

    @built_once
    def collector(self) -> RetourCollector:
        unpacker = self.unpacker()

        async def unpack(collected: CollectedRetour) -> None:
            await unpacker.unpack(collected)

        return RetourCollector(
            self.store,
            self.store.outbox,
            self.insurer_links(),
            self.layouts(),
            now=self.now,
            run_in_thread=self.run_in_thread,
            metrics=self._metrics,
            on_retour=unpack,
            follow_up={
                i.uzovi: i.link.follow_up
                for i in self._linked()
                if i.link is not None and i.link.follow_up is not None
            },
            new_id=self.new_id,
        )

    # --- the administrator's workplace -----------------------------------------------------

    def _after_change(self) -> Callable[[], Awaitable[object]] | None:
        return self.bundle_now if self._bundle_after_change else None

    @built_once
    def admin_service(self) -> AdminService:
        """Accounts, audit and single cases, for the site, the JSON API and the command
        lines."""
        metrics = self._metrics
        return AdminService(
            admin=self.store.admin,
            messages=self.store,
            layouts=self.layouts(),
            clock=self.now,
            session_lifetime=timedelta(minutes=self.config.admin.session_lifetime_minutes),
            metrics=AdminMetrics(metrics.registry) if metrics is not None else None,
            run_in_thread=self.run_in_thread,
            resolver=self.resolver(),
            after_change=self._after_change(),
            search_store=self.store.search,
            names=self.admin_names(),
        )

    @built_once
    def bulk_service(self) -> BulkService:
        """Bulk actions, for the site, the batch runner and ``igo-gateway cases``; single
        cases' effects are prepared by :meth:`admin_service`."""
        metrics = self._metrics
        return BulkService(
            self.store.admin,
            self.store.batches,
            self.now,
            BulkMetrics(metrics.registry) if metrics is not None else None,
            self.admin_service(),
        )

    @built_once
    def reprocessor(self) -> Reprocessor:
        return Reprocessor(
            self.store,
            self.store.reprocess,
            self.layouts(),
            now=self.now,
            run_in_thread=self.run_in_thread,
            after_change=self._after_change(),
        )

    @built_once
    def admin_site(self) -> AdminSite:
        """The admin site (not yet listening) on :meth:`admin_service`, with bulk actions
        and reprocessing."""
        from adapters.admin.site import build_admin_site  # noqa: PLC0415 - site imports us

        return build_admin_site(
            self.admin_service(),
            self.config.admin,
            bulk=self.bulk_service(),
            reprocessor=self.reprocessor(),
        )

    @built_once
    def notifier(self) -> Notifier:
        """Digests of new cases over the configured channels, one process at a time."""
        notices = self.config.notices
        metrics = self._metrics
        return Notifier(
            self.store.notices,
            self.store.admin.cases,
            [(channel, transport_for(channel, self._network())) for channel in notices.channels],
            JobLock(self.store.leases, NOTICES_JOB, self.reactor, seconds=notices.lease_seconds),
            now=self.now,
            admin_url=admin_url(self.config),
            max_listed=notices.max_listed,
            metrics=NoticeMetrics(metrics.registry) if metrics is not None else None,
        )


def admin_names(config: GatewayConfig, catalogue: Catalogue) -> Names:
    """The names the admin site shows beside codes: the config's participants and
    insurers, the catalogue's prestaties and code descriptions."""
    return Names(
        participants={p.agb: p.name for p in config.participants},
        insurers={i.uzovi: i.name for i in config.insurers},
        prestaties={**catalogue.descriptions, **{p.code: p.name for p in catalogue.prestaties}},
        birth_codes=frozenset(
            code for (_, code), rule in catalogue.rules.items() if rule.event is Event.BIRTH
        ),
    )


def admin_url(config: GatewayConfig) -> str:
    """The admin site's address for links in notices: as configured, else [admin]'s."""
    if config.notices.admin_url is not None:
        return config.notices.admin_url
    admin = config.admin
    scheme = "https" if admin.tls is not None else "http"
    host = f"[{admin.host}]" if ":" in admin.host else admin.host
    return f"{scheme}://{host}:{admin.port}"
