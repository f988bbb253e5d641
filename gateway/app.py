"""The composition root: reads nothing itself, wires a checked config into a running gateway.

:func:`start` opens the store (applying migrations, refusing a newer database), loads the
EI layouts, builds the intake and the EPD API, and listens with mutual TLS. It returns a
:class:`RunningGateway` whose :meth:`~RunningGateway.stop` stops accepting connections,
lets requests in progress finish their database work, and closes the store.

Log lines name routes, status codes, sizes and ids, never the content of a file or any
client data (BSNs, names, amounts).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, DeferredList, DeferredLock
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.web import server

from adapters import cert_expiry
from adapters.admin.site import build_admin_site, build_bulk_service
from adapters.epd_api.http import MeteredSite, limited_request_factory
from adapters.epd_api.resource import INSURER, ApiSettings, Caller, EpdApi, route_name
from adapters.insurer_link.directory import DirectoryInsurerLink
from adapters.insurer_link.rest import RestInsurerLink
from adapters.metrics.resource import OperationsRoot
from adapters.metrics.watch import OperationsWatch, watch_operations
from adapters.notices import transport_for
from adapters.portal.resource import PortalResource, PortalSettings, portal_route_name, with_portal
from adapters.storage import SqlMessageStore, open_store
from adapters.storage.admin import SqlAdminStore
from adapters.storage.batches import SqlBatchStore
from adapters.storage.keys import check_store_keys
from adapters.storage.lock import StoreLock
from adapters.storage.notices import SqlNoticeStore
from adapters.storage.resolution import SqlResolutionStore
from adapters.tls import (
    Identities,
    client_identity,
    plain_server_context_factory,
    server_context_factory,
)
from gateway.admin.bulk import BatchRunner, BulkService
from gateway.admin.labels import Names
from gateway.admin.service import AdminService
from gateway.bundler import BUNDLING_JOB, Bundler
from gateway.collector import CollectedRetour, RetourCollector
from gateway.config import GatewayConfig, InsurerConfig, LinkKind, RetryConfig
from gateway.crypto import Keyring
from gateway.ei import LayoutRegistry
from gateway.forwarder import Forwarder
from gateway.insurer import InsurerLink, RetryPolicy
from gateway.intake import Intake
from gateway.jobs import JobBusyError, JobLock
from gateway.loading import load_layouts
from gateway.metrics import Metrics
from gateway.notices import NOTICES_JOB, NoticeMetrics, Notifier
from gateway.pausepoints import pause_point_from_environment
from gateway.resolution import Resolver
from gateway.resources import schemas_dir
from gateway.rules.catalogue import Catalogue, Event
from gateway.schedule import PerInsurer
from gateway.store import MessageStore, StoreUnavailableError
from gateway.terms import load_catalogue, terms_from_config
from gateway.unpacker import Unpacker

__all__ = ["RunningGateway", "access_log_line", "prune_expired", "start"]

log = Logger()
T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


def _versions(registry: LayoutRegistry) -> dict[str, tuple[int, int]]:
    """Each standard's version and subversion, as a berichtstroom names them."""
    versions: dict[str, tuple[int, int]] = {}
    for layout in registry.standards():
        try:
            versions[layout.standard] = (int(layout.version), int(layout.subversion))
        except ValueError:
            continue
    return versions


def api_settings(config: GatewayConfig, registry: LayoutRegistry) -> ApiSettings:
    """What the EPD API says about the messages it offers, and the document it serves."""
    return ApiSettings(
        igo_agb=config.igo.agb,
        berichtstroom=config.epd_api.berichtstroom,
        versions=_versions(registry),
        public_url=config.epd_api.public_url,
        openapi=(schemas_dir() / "epd-api.openapi.json").read_bytes(),
    )


def served_route(request: server.Request) -> str:
    """The route of a request to the EPD API's listener (the API or the participant
    portal), without ids: for logs and metrics."""
    return portal_route_name(request) or route_name(request)


def access_log_line(timestamp: str, request: server.Request) -> str:
    """One access-log line: method, route without ids or query string, status and size —
    nothing of the client's data."""
    route = served_route(request)
    method = (request.method or b"-").decode("ascii", "replace")
    length = request.sentLength
    return f"{timestamp} {method} {route} {request.code} {length}"


@dataclass
class RunningGateway:
    config: GatewayConfig
    store: MessageStore
    registry: LayoutRegistry
    metrics: Metrics
    epd_port: IListeningPort
    ops_port: IListeningPort | None
    store_lock: StoreLock | None = None
    admin_port: IListeningPort | None = None
    background: list[LoopingCall] = field(default_factory=list)
    schedules: list[PerInsurer] = field(default_factory=list)
    finishing: list[Deferred[Any]] = field(default_factory=list)
    bundling_lock: DeferredLock | None = None
    """The Deferreds of the background tasks' ``start()``: each fires once its task is
    stopped *and* a run in progress has ended, so a stop waits for them before it closes
    the store (a bundling run cut off by a closed store would fail half-way)."""
    _stopping: Deferred[None] | None = None

    @property
    def epd_address(self) -> tuple[str, int]:
        return _address(self.epd_port)

    @property
    def ops_address(self) -> tuple[str, int] | None:
        return _address(self.ops_port) if self.ops_port is not None else None

    def stop(self) -> Deferred[None]:
        """Stop listening, then close the store. Idempotent."""
        if self._stopping is None:
            self._stopping = Deferred.fromCoroutine(self._stop())
        return self._stopping

    async def _stop(self) -> None:
        log.info("stopping: no new connections")
        await _stop_listening(self.epd_port, self.ops_port, self.admin_port)
        in_progress = [task.deferred for task in self.background if task.running and task.deferred]
        for task in self.background:
            if task.running:
                task.stop()
        for schedule in self.schedules:
            schedule.stop()
        running = [*self.finishing, *in_progress, *(s.finished for s in self.schedules)]
        await DeferredList(running, consumeErrors=True)
        if self.bundling_lock is not None:
            # A bundling run an administrator's action started: let it finish, and keep
            # the lock, so that none starts on a store about to close.
            await self.bundling_lock.acquire()
        await self.store.close()
        _release(self.store_lock)
        log.info("stopped; the store is closed")


def _address(port: IListeningPort) -> tuple[str, int]:
    address: Any = port.getHost()  # an IPv4Address or IPv6Address
    return str(address.host), int(address.port)


async def _stop_listening(*ports: IListeningPort | None) -> None:
    for port in ports:
        stopped = port.stopListening() if port is not None else None
        if stopped is not None:
            await stopped


def _version() -> str:
    try:
        return importlib.metadata.version("igo-gateway")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _keyring(config: GatewayConfig) -> Keyring | None:
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


def _retry_policy(retry: RetryConfig) -> RetryPolicy:
    return RetryPolicy(
        first_delay=timedelta(seconds=retry.first_delay_seconds),
        factor=retry.factor,
        max_delay=timedelta(seconds=max(retry.max_delay_seconds, retry.first_delay_seconds)),
        max_attempts=retry.max_attempts,
        give_up_after=timedelta(hours=retry.give_up_after_hours),
    )


def _insurer_link(
    config: GatewayConfig,
    insurer: InsurerConfig,
    registry: LayoutRegistry,
    reactor: Any,
    run: Any,
) -> InsurerLink | None:
    link = insurer.link
    if link is None:
        return None
    if link.kind is LinkKind.DIRECTORY:
        assert link.outbox is not None
        assert link.inbox is not None
        return DirectoryInsurerLink(link.outbox, link.inbox, run=run)
    assert link.base_url is not None
    assert link.tls is not None
    return RestInsurerLink.with_certificate(
        reactor,
        link.base_url,
        cert=str(link.tls.cert),
        key=str(link.tls.key),
        ca=str(link.tls.trust),
        crl=str(link.tls.crl) if link.tls.crl is not None else None,
        sender=config.igo.agb,
        insurer=insurer.uzovi,
        timeout=link.timeout_seconds,
        versions=_versions(registry),
    )


def build_unpacker(
    config: GatewayConfig,
    store: SqlMessageStore,
    registry: LayoutRegistry,
    metrics: Metrics | None,
    run: Any,
) -> Unpacker:
    """The return unpacker as the config says (distribution model, shares, overheads)."""
    disciplines = {p.agb: p.discipline for p in config.participants}
    overheads = {
        i.uzovi: max(i.contracts, key=lambda c: c.year).overhead_percent
        for i in config.insurers
        if i.contracts
    }
    return Unpacker(
        store,
        store.outcomes,
        registry,
        now=_now,
        model=config.bundling.distribution,
        shares=config.bundling.shares,
        discipline_of=disciplines.get,
        overhead_of=lambda insurer: overheads.get(insurer, 0.0),
        metrics=metrics,
        run_in_thread=run,
    )


def build_resolver(
    config: GatewayConfig,
    store: SqlMessageStore,
    registry: LayoutRegistry,
    catalogue: Catalogue,
    metrics: Metrics | None,
    run: Any,
) -> Resolver:
    """The effects of the administrator's actions on rejected lines, as the config says."""
    return Resolver(
        store,
        SqlResolutionStore(store.database, store.codec),
        store.bundles.reserve,
        registry,
        catalogue,
        terms_from_config(config),
        build_unpacker(config, store, registry, metrics, run),
        now=_now,
        run_in_thread=run,
    )


async def _unpack(unpacker: Unpacker, collected: CollectedRetour) -> None:
    await unpacker.unpack(collected)


@dataclass
class _Exchange:
    """Sending to and fetching from the linked insurers, and taking pushed retours."""

    forwarder: Forwarder
    collector: RetourCollector
    intervals: dict[str, float]

    def start(self, gateway: RunningGateway, reactor: Any) -> None:
        if not self.intervals:
            return
        for schedule in (
            PerInsurer("sending", self.forwarder.run_once),
            PerInsurer("fetching retours", self.collector.run_once),
        ):
            schedule.start(reactor, self.intervals)
            gateway.schedules.append(schedule)
        log.info("insurer links: {insurers}", insurers=", ".join(sorted(self.intervals)))


def _insurer_exchange(
    config: GatewayConfig,
    store: MessageStore,
    registry: LayoutRegistry,
    metrics: Metrics,
    reactor: Any,
    run: Any,
    states: dict[str, str],
) -> _Exchange | None:
    if not isinstance(store, SqlMessageStore):
        return None
    links: dict[str, InsurerLink] = {}
    for insurer in config.insurers:
        link = _insurer_link(config, insurer, registry, reactor, run)
        if link is not None:
            links[insurer.uzovi] = link
    linked = [i for i in config.insurers if i.uzovi in links]
    forwarder = Forwarder(
        store.outbox,
        links,
        now=_now,
        policies={i.uzovi: _retry_policy(i.link.retry) for i in linked if i.link is not None},
        leases={
            i.uzovi: timedelta(seconds=i.link.lease_seconds) for i in linked if i.link is not None
        },
        metrics=metrics,
        states=states,
    )
    unpacker = build_unpacker(config, store, registry, metrics, run)
    collector = RetourCollector(
        store,
        store.outbox,
        links,
        registry,
        now=_now,
        run_in_thread=run,
        metrics=metrics,
        on_retour=lambda collected: _unpack(unpacker, collected),
        follow_up={
            i.uzovi: i.link.follow_up
            for i in linked
            if i.link is not None and i.link.follow_up is not None
        },
    )
    intervals = {i.uzovi: i.link.poll_seconds for i in linked if i.link is not None}
    return _Exchange(forwarder, collector, intervals)


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


def _listen_admin(
    config: GatewayConfig,
    store: MessageStore,
    registry: LayoutRegistry,
    keyring: Keyring | None,
    metrics: Metrics,
    reactor: Any,
    run: Any,
    catalogue: Catalogue,
    bundle_now: Callable[[], Awaitable[object]] | None,
    bulk: BulkService | None = None,
) -> tuple[IListeningPort, AdminService] | None:
    """The administrator's site on its own address (never the EPD API's), and the service
    behind it."""
    admin = config.admin
    if not admin.enabled or not isinstance(store, SqlMessageStore):
        return None
    resolver = build_resolver(config, store, registry, catalogue, metrics, run)
    site = build_admin_site(
        store,
        SqlAdminStore(store.database, store.codec),
        registry,
        keyring,
        _now,
        config=admin,
        metrics_registry=metrics.registry,
        run_in_thread=run,
        resolver=resolver,
        after_change=bundle_now,
        bulk=bulk,
        names=admin_names(config, catalogue),
    )
    if admin.tls is None:
        listening: IListeningPort = reactor.listenTCP(admin.port, site, interface=admin.host)
        return listening, site.service
    tls = admin.tls
    if tls.client_ca is not None:
        options = server_context_factory(tls.cert, tls.key, tls.client_ca, tls.crl)
    else:
        options = plain_server_context_factory(tls.cert, tls.key)
    listening = reactor.listenSSL(admin.port, site, options, interface=admin.host)
    return listening, site.service


CASE_METRICS_SECONDS = 60.0


def _refresh_case_metrics(service: AdminService, reactor: Any) -> LoopingCall:
    """Open cases and the oldest one's age per kind, every minute, for the alerts (the
    queue page refreshes them too)."""

    async def refresh() -> None:
        try:
            await service.refresh_metrics()
        except StoreUnavailableError as unavailable:
            log.warn("counting the open cases waits for the store: {error}", error=str(unavailable))
        except Exception:
            log.failure("counting the open cases failed")

    task = LoopingCall(lambda: Deferred.fromCoroutine(refresh()))
    task.clock = reactor
    task.start(CASE_METRICS_SECONDS, now=True).addErrback(
        lambda f: log.warn("counting the open cases stopped: {error}", error=f.getErrorMessage())
    )
    return task


BATCH_INTERVAL_SECONDS = 1.0


def _bulk_service(
    config: GatewayConfig, store: MessageStore, metrics: Metrics
) -> BulkService | None:
    """Bulk actions, for the admin site and the batch runner (with the site only)."""
    if not config.admin.enabled or not isinstance(store, SqlMessageStore):
        return None
    return build_bulk_service(
        SqlAdminStore(store.database, store.codec),
        SqlBatchStore(store.database, store.codec),
        _now,
        metrics.registry,
    )


def _run_batches(bulk: BulkService, reactor: Any) -> LoopingCall:
    """Work through the running bulk-action batches every second, a few cases a time, each
    its own transaction: a batch made before a restart goes on after it."""
    runner = BatchRunner(bulk)
    task = LoopingCall(lambda: Deferred.fromCoroutine(runner.run_once()))
    task.clock = reactor
    task.start(BATCH_INTERVAL_SECONDS, now=True).addErrback(
        lambda f: log.warn("the bulk batch runner stopped: {error}", error=f.getErrorMessage())
    )
    return task


def _pushing_insurers(config: GatewayConfig) -> dict[str, str]:
    """Certificate fingerprint → UZOVI of the insurers that push their retours."""
    return {
        fingerprint: insurer.uzovi
        for insurer in config.insurers
        if insurer.link is not None
        for fingerprint in insurer.link.push_certificates
    }


CERTIFICATE_CHECK_SECONDS = 24 * 3600


def _watch_certificates(gateway: RunningGateway, reactor: Any) -> LoopingCall:
    """Publish every configured certificate's and CRL's expiry as a metric, and warn about
    the ones running out: now and daily."""
    watched = cert_expiry.watched_files(gateway.config)
    cert_expiry.publish(watched, gateway.metrics)
    settings = gateway.config.certificates

    def check() -> None:
        cert_expiry.warn_expiring(
            watched,
            _now(),
            certificate_days=settings.expiry_warning_days,
            crl_hours=settings.crl_warning_hours,
        )

    task = LoopingCall(check)
    task.clock = reactor
    task.start(CERTIFICATE_CHECK_SECONDS, now=True)
    return task


def _bundling(
    config: GatewayConfig,
    store: SqlMessageStore,
    registry: LayoutRegistry,
    catalogue: Catalogue,
    metrics: Metrics,
    reactor: Any,
    lock: DeferredLock,
) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    """A bundling run on demand (an administrator's action: it waits its turn) and one on
    schedule (it leaves the work to another process that bundles now). One run at a time
    in this process (under ``lock``, which a stop waits for) and over every process on the
    store (the store's bundling lease); and a run whose lines changed before it recorded
    them is decided again (:class:`~gateway.bundler.Bundler`)."""
    bundler = Bundler(
        store,
        store.bundles,
        registry,
        catalogue,
        terms_from_config(config),
        now=_now,
        metrics=metrics,
        run_in_thread=lambda work: deferToThreadPool(reactor, reactor.getThreadPool(), work),
        distribution=config.bundling.distribution,
        lock=JobLock(store.leases, BUNDLING_JOB, reactor, seconds=config.bundling.lease_seconds),
        checkpoint=pause_point_from_environment(),
    )

    async def run(wait: bool) -> None:
        await lock.acquire()
        try:
            await bundler.run(wait=wait)
        finally:
            lock.release()

    async def on_demand() -> None:
        await run(True)

    async def scheduled() -> None:
        try:
            await run(False)
        except JobBusyError as exc:
            log.info("bundling skipped this time: {why}", why=str(exc))

    return on_demand, scheduled


def _bundle_on_schedule(
    gateway: RunningGateway, bundle_now: Callable[[], Awaitable[None]], reactor: Any
) -> LoopingCall:
    """Run the bundler now and every ``[bundling] interval_seconds``; a failed run is
    logged and the next one runs anyway (nothing of a failed run is stored)."""

    async def run() -> None:
        try:
            await bundle_now()
        except StoreUnavailableError as exc:  # an outage, not a fault: one line
            log.warn("a bundling run failed, the store is unavailable ({error})", error=str(exc))
        except Exception:
            log.failure("a bundling run failed; nothing of it was stored")

    task = LoopingCall(lambda: Deferred.fromCoroutine(run()))
    task.clock = reactor
    gateway.finishing.append(task.start(gateway.config.bundling.interval_seconds, now=True))
    return task


async def prune_expired(store: SqlMessageStore, days: int, metrics: Metrics | None = None) -> int:
    """Prune every expired payload, give the space back; how many were pruned."""
    now = _now()
    cutoff = now - timedelta(days=days)
    retention = store.retention
    pruned = 0
    while (result := await retention.prune(cutoff, now)).payloads:
        pruned += result.payloads
    if pruned:
        await retention.reclaim()
        log.info("pruned {count} expired stored file(s)", count=pruned)
    if metrics is not None:
        metrics.pruned_payloads.inc(pruned)
        metrics.store_bytes.set(await retention.size())
    return pruned


def _prune_on_schedule(
    gateway: RunningGateway, store: SqlMessageStore, reactor: Any
) -> LoopingCall:
    retention = gateway.config.retention

    async def run() -> None:
        try:
            await prune_expired(store, retention.payload_days, gateway.metrics)
        except StoreUnavailableError as exc:
            log.warn(
                "pruning expired files failed, the store is unavailable ({error}); it is "
                "tried again next time",
                error=str(exc),
            )
        except Exception:
            log.failure("pruning expired files failed; it is tried again next time")

    task = LoopingCall(lambda: Deferred.fromCoroutine(run()))
    task.clock = reactor
    gateway.finishing.append(task.start(retention.interval_seconds, now=True))
    return task


REENCRYPT_BATCH = 100
REENCRYPT_PAUSE_SECONDS = 0.5


def _reencrypt_in_background(store: SqlMessageStore, reactor: Any) -> LoopingCall:
    """Re-seal, a batch at a time, what older keys (or no key) sealed; stops when nothing
    is left. Each batch is one transaction, so a stop in between loses nothing."""
    done = {"rows": 0}

    async def step() -> None:
        try:
            count = await store.reencrypt(REENCRYPT_BATCH)
        except StoreUnavailableError as exc:  # an outage: the next step tries again
            log.warn("re-encryption waits, the store is unavailable ({error})", error=str(exc))
            return
        done["rows"] += count
        if count == 0 and task.running:
            task.stop()
            if done["rows"]:
                log.info(
                    "re-encryption done: {rows} sealed rows resealed (journal and declaration "
                    "lines); `igo-gateway keys status` shows what each key still seals",
                    rows=done["rows"],
                )

    task = LoopingCall(lambda: Deferred.fromCoroutine(step()))
    task.clock = reactor
    running = task.start(REENCRYPT_PAUSE_SECONDS, now=True)
    running.addErrback(
        lambda f: log.warn("re-encryption stopped: {error}", error=f.getErrorMessage())
    )
    return task


def admin_url(config: GatewayConfig) -> str:
    """The admin site's address for links in notices: as configured, else [admin]'s."""
    if config.notices.admin_url is not None:
        return config.notices.admin_url
    admin = config.admin
    scheme = "https" if admin.tls is not None else "http"
    host = f"[{admin.host}]" if ":" in admin.host else admin.host
    return f"{scheme}://{host}:{admin.port}"


def build_notifier(
    config: GatewayConfig, store: SqlMessageStore, reactor: Any, metrics: Metrics | None = None
) -> Notifier:
    """Digests of new cases over the configured channels, one process at a time."""
    notices = config.notices
    return Notifier(
        SqlNoticeStore(store.database),
        SqlAdminStore(store.database, store.codec).cases,
        [(channel, transport_for(channel, reactor)) for channel in notices.channels],
        JobLock(store.leases, NOTICES_JOB, reactor, seconds=notices.lease_seconds),
        now=_now,
        admin_url=admin_url(config),
        max_listed=notices.max_listed,
        metrics=NoticeMetrics(metrics.registry) if metrics is not None else None,
    )


def _notices_on_schedule(
    gateway: RunningGateway, store: SqlMessageStore, reactor: Any
) -> LoopingCall:
    """A digest of new cases every ``[notices] interval_seconds``; a failed run is logged
    and its cases go in the next one."""
    notifier = build_notifier(gateway.config, store, reactor, gateway.metrics)

    async def run() -> None:
        try:
            await notifier.run_once()
        except StoreUnavailableError as exc:
            log.warn("notices wait, the store is unavailable ({error})", error=str(exc))
        except Exception:
            log.failure("a notices run failed; its cases go in the next one")

    task = LoopingCall(lambda: Deferred.fromCoroutine(run()))
    task.clock = reactor
    gateway.finishing.append(task.start(gateway.config.notices.interval_seconds, now=True))
    return task


def _lock_embedded_store(url: str) -> StoreLock | None:
    """Hold the embedded store's lock file while running (None for PostgreSQL)."""
    if not url.startswith("sqlite:///") or url == "sqlite:///:memory:":
        return None
    lock = StoreLock(Path(url.removeprefix("sqlite:///")))
    lock.acquire()
    return lock


def _release(lock: StoreLock | None) -> None:
    if lock is not None:
        lock.release()


def make_data_dirs(config: GatewayConfig) -> None:
    """The data directory, and the embedded database's directory, owner-only."""
    config.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    url = config.store.url
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(mode=0o700, parents=True, exist_ok=True)


async def start(config: GatewayConfig, reactor: Any) -> RunningGateway:
    """Open the store and start serving ``config``. Raises
    :class:`~gateway.store.SchemaVersionError`, :class:`~gateway.store.StoreUnavailableError`,
    :class:`~adapters.tls.TLSSetupError`, :class:`~gateway.ei.LayoutError` or
    :class:`twisted.internet.error.CannotListenError` when it cannot."""
    registry = load_layouts()
    catalogue = load_catalogue(config.bundling.catalogue)
    if catalogue.is_example:
        log.warn(
            "the prestatie catalogue is the shipped EXAMPLE ({source}): its integral "
            "prestatie codes are placeholders; set [bundling] catalogue to the IGO's own",
            source=catalogue.source,
        )
    api_config = config.epd_api
    tls_files = api_config.tls
    context_factory = server_context_factory(
        tls_files.cert, tls_files.key, tls_files.trust, tls_files.crl
    )
    identities = Identities.from_config(config)
    keyring = _keyring(config)
    make_data_dirs(config)
    lock = _lock_embedded_store(config.store.url)
    try:
        store = await open_store(config.store.url, reactor, keyring)
    except BaseException:
        _release(lock)
        raise
    try:  # a key file that lacks a key the store needs, or is another store's, stops here
        await check_store_keys(store)
        if await SqlAdminStore(store.database).key_audit_chain(_now()):
            log.info("the audit log is keyed from now on (an audit_keyed entry marks where)")
    except BaseException:
        await store.close()
        _release(lock)
        raise
    metrics = Metrics(version=_version())
    if isinstance(store, SqlMessageStore):
        store.database.observe = lambda kind, seconds: metrics.store_seconds.labels(kind).observe(
            seconds
        )
    ops_port: IListeningPort | None = None
    port: IListeningPort | None = None
    insurer_states = {i.uzovi: "unknown" for i in config.insurers if i.link is not None}
    try:
        if config.metrics.enabled:
            ops = server.Site(OperationsRoot(metrics, store.ping, insurer_states), reactor=reactor)
            ops.noisy = False
            ops_port = reactor.listenTCP(config.metrics.port, ops, interface=config.metrics.host)
        pool = reactor.getThreadPool()

        def run_in_thread(f: Callable[[], T]) -> Deferred[T]:
            return deferToThreadPool(reactor, pool, f)

        intake = Intake(
            store,
            registry,
            clock=_now,
            run_in_thread=run_in_thread,
            metrics=metrics,
            berichtstroom=api_config.berichtstroom,
        )

        exchange = _insurer_exchange(
            config, store, registry, metrics, reactor, run_in_thread, insurer_states
        )
        pushing = _pushing_insurers(config)

        def authenticate(request: server.Request) -> Caller | None:
            peer_certificate = client_identity(request)
            if peer_certificate is not None and peer_certificate.fingerprint_sha256 in pushing:
                return Caller(pushing[peer_certificate.fingerprint_sha256], INSURER)
            participant = identities.identify(request)
            if participant is None:
                peer = client_identity(request)
                log.warn(
                    "refused a verified client certificate that belongs to no participant "
                    "(sha256 {fingerprint})",
                    fingerprint=peer.fingerprint_sha256 if peer else "-",
                )
                return None
            return Caller(participant.agb, participant.discipline.value)

        api = EpdApi(
            intake,
            store,
            authenticate,
            _now,
            receive_retour=exchange.collector.keep if exchange is not None else None,
            settings=api_settings(config, registry),
        )
        portal = PortalResource(
            intake,
            store,
            registry,
            authenticate,
            _now,
            PortalSettings(
                berichtstroom=api_config.berichtstroom,
                names={p.agb: p.name for p in config.participants},
            ),
        )
        site = MeteredSite(
            with_portal(api, portal),
            metrics,
            served_route,
            logFormatter=access_log_line,
            reactor=reactor,
        )
        site.requestFactory = limited_request_factory(
            api_config.max_upload_bytes, api_config.request_deadline_seconds, reactor
        )
        site.timeOut = api_config.idle_timeout_seconds
        site.displayTracebacks = False
        port = reactor.listenSSL(api_config.port, site, context_factory, interface=api_config.host)
        bundling_lock = DeferredLock()
        bundle_now, bundle_scheduled = (
            _bundling(config, store, registry, catalogue, metrics, reactor, bundling_lock)
            if isinstance(store, SqlMessageStore)
            else (None, None)
        )
        bulk = _bulk_service(config, store, metrics)
        admin = _listen_admin(
            config,
            store,
            registry,
            keyring,
            metrics,
            reactor,
            run_in_thread,
            catalogue,
            bundle_now,
            bulk,
        )
    except BaseException:
        await _stop_listening(ops_port, port)
        await store.close()
        _release(lock)
        raise
    gateway = RunningGateway(config, store, registry, metrics, port, ops_port, lock)
    admin_port = admin[0] if admin is not None else None
    gateway.admin_port = admin_port
    gateway.bundling_lock = bundling_lock
    if admin is not None:
        gateway.background.append(_refresh_case_metrics(admin[1], reactor))
    gateway.background.append(_watch_certificates(gateway, reactor))
    outbox = store.outbox if isinstance(store, SqlMessageStore) else None
    gateway.background.append(
        watch_operations(OperationsWatch(metrics, store.ping, _now, outbox), reactor)
    )
    if keyring is not None and isinstance(store, SqlMessageStore):
        gateway.background.append(_reencrypt_in_background(store, reactor))
    if exchange is not None:
        exchange.start(gateway, reactor)
    if isinstance(store, SqlMessageStore) and bundle_scheduled is not None:
        gateway.background.append(_bundle_on_schedule(gateway, bundle_scheduled, reactor))
        gateway.background.append(_prune_on_schedule(gateway, store, reactor))
    if bulk is not None and admin_port is not None:
        gateway.background.append(_run_batches(bulk, reactor))
    if isinstance(store, SqlMessageStore) and config.notices.channels:
        gateway.background.append(_notices_on_schedule(gateway, store, reactor))
    host, number = gateway.epd_address
    log.info(
        "EPD API listening on https://{host}:{port} ({participants} participants)",
        host=host,
        port=number,
        participants=len(config.participants),
    )
    if admin_port is not None:
        admin_host, admin_number = _address(admin_port)
        log.info(
            "admin site on {scheme}://{host}:{port}/",
            scheme="https" if config.admin.tls else "http",
            host=admin_host,
            port=admin_number,
        )
    if gateway.ops_address is not None:
        log.info(
            "operations endpoint on http://{host}:{port}/metrics (/healthz, /readyz)",
            host=gateway.ops_address[0],
            port=gateway.ops_address[1],
        )
    return gateway
