"""Serving: :func:`start` opens the store, builds the gateway through the composition root
and listens.

The building — every store, service and scheduled job's work, and the reading of the EI
layouts, the prestatie catalogue and the key file — is :class:`gateway.builder.GatewayBuilder`'s;
this module reads the TLS files (through :mod:`adapters.tls`) and the OpenAPI document it
serves, opens the store (applying migrations, refusing a newer database), listens on the EPD
API's, the admin site's and the operations endpoint's addresses, and starts the scheduled
jobs (each a :class:`~gateway.repeating.Repeating`). It returns a :class:`RunningGateway`
whose :meth:`~RunningGateway.stop` stops accepting connections, stops the jobs and waits for
a run in progress, lets requests in progress finish their database work, and closes the
store.

Log lines name routes, status codes, sizes and ids, never the content of a file or any
client data (BSNs, names, amounts)."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IListeningPort
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.web import server

from adapters import cert_expiry
from adapters.epd_api.http import MeteredSite, limited_request_factory
from adapters.epd_api.resource import INSURER, ApiSettings, Caller, EpdApi, route_name
from adapters.metrics.resource import OperationsRoot
from adapters.metrics.watch import STORE_CHECK_SECONDS, OperationsWatch
from adapters.portal.resource import PortalResource, PortalSettings, portal_route_name, with_portal
from adapters.storage import SqlMessageStore, open_store
from adapters.storage.keys import check_store_keys
from adapters.storage.lock import StoreLock
from adapters.tls import (
    Identities,
    client_identity,
    plain_server_context_factory,
    server_context_factory,
)
from gateway.admin.bulk import BatchRunner
from gateway.builder import GatewayBuilder, GatewayReactor, layout_versions, load_keyring, utc_now
from gateway.config import GatewayConfig
from gateway.ei import LayoutRegistry
from gateway.metrics import Metrics
from gateway.ports.jobs import JobBusyError
from gateway.ports.messages import StoreUnavailableError
from gateway.repeating import Repeating
from gateway.resources import schemas_dir
from gateway.schedule import PerInsurer

__all__ = ["RunningGateway", "access_log_line", "prune_expired", "start"]

log = Logger()
T = TypeVar("T")


def api_settings(config: GatewayConfig, registry: LayoutRegistry) -> ApiSettings:
    """What the EPD API says about the messages it offers, and the document it serves."""
    return ApiSettings(
        igo_agb=config.igo.agb,
        berichtstroom=config.epd_api.berichtstroom,
        versions=layout_versions(registry),
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
    builder: GatewayBuilder
    epd_port: IListeningPort
    ops_port: IListeningPort | None
    store_lock: StoreLock | None = None
    admin_port: IListeningPort | None = None
    background: list[Repeating] = field(default_factory=list)
    """The scheduled jobs: a stop stops each and waits until a run in progress has ended
    before it closes the store (a bundling run cut off by a closed store would fail
    half-way)."""
    schedules: list[PerInsurer] = field(default_factory=list)
    _stopping: Deferred[None] | None = None

    @property
    def store(self) -> SqlMessageStore:
        return self.builder.store

    @property
    def registry(self) -> LayoutRegistry:
        return self.builder.layouts()

    @property
    def metrics(self) -> Metrics:
        metrics = self.builder.metrics()
        assert metrics is not None  # serve always counts
        return metrics

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
        for job in self.background:
            job.stop()
        for schedule in self.schedules:
            schedule.stop()
        running = [*(j.finished for j in self.background), *(s.finished for s in self.schedules)]
        await DeferredList(running, consumeErrors=True)
        await _stop_workers(self.builder)
        # A bundling run an administrator's action started: let it finish, and keep the
        # lock, so that none starts on a store about to close.
        await self.builder.bundling_lock().acquire()
        bundle_workers = self.builder.bundle_workers()
        if bundle_workers is not None:
            bundle_workers.stop()  # no run goes on: it closes its store and ends
        await self.store.close()
        _release(self.store_lock)
        log.info("stopped; the store is closed")


async def _stop_workers(builder: GatewayBuilder) -> None:
    """Stop the check workers, if any (after the EPD API: no upload waits on them)."""
    workers = builder.check_workers()
    if workers is not None:
        await workers.stop()


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


def _listen_admin(builder: GatewayBuilder, reactor: GatewayReactor) -> IListeningPort | None:
    """The administrator's site on its own address (never the EPD API's)."""
    admin = builder.config.admin
    if not admin.enabled:
        return None
    site = builder.admin_site()
    if admin.tls is None:
        return reactor.listenTCP(admin.port, site, interface=admin.host)
    tls = admin.tls
    if tls.client_ca is not None:
        options = server_context_factory(tls.cert, tls.key, tls.client_ca, tls.crl)
    else:
        options = plain_server_context_factory(tls.cert, tls.key)
    return reactor.listenSSL(admin.port, site, options, interface=admin.host)


def _pushing_insurers(config: GatewayConfig) -> dict[str, str]:
    """Certificate fingerprint → UZOVI of the insurers that push their retours."""
    return {
        fingerprint: insurer.uzovi
        for insurer in config.insurers
        if insurer.link is not None
        for fingerprint in insurer.link.push_certificates
    }


async def prune_expired(
    store: SqlMessageStore,
    days: int,
    metrics: Metrics | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> int:
    """Prune every expired payload (older than ``days`` by ``clock``), give the space back;
    how many were pruned."""
    now = clock()
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


CASE_METRICS_SECONDS = 60.0
BATCH_INTERVAL_SECONDS = 1.0
CERTIFICATE_CHECK_SECONDS = 24 * 3600
REENCRYPT_BATCH = 100
REENCRYPT_PAUSE_SECONDS = 0.5


def _scheduled_jobs(builder: GatewayBuilder, metrics: Metrics, admin: bool) -> list[Repeating]:
    """Every job ``serve`` runs on a timer (not yet started); ``admin``: the admin site
    listens, so its case metrics and bulk batches run too. A failed run is logged and
    counted (``igo_gateway_job_failures_total{job}``), and the next one runs anyway."""
    config, store, clock = builder.config, builder.store, builder.reactor

    def job(label: str, name: str, work: Callable[[], object], interval: float) -> Repeating:
        return Repeating(name, work, interval, clock, failures=metrics.job_failures.labels(label))

    watched = cert_expiry.watched_files(config)
    cert_expiry.publish(watched, metrics)

    def check_certificates() -> None:
        cert_expiry.warn_expiring(
            watched,
            builder.now(),
            certificate_days=config.certificates.expiry_warning_days,
            crl_hours=config.certificates.crl_warning_hours,
        )

    async def bundle() -> None:
        try:
            await builder.bundle_if_free()
        except JobBusyError as exc:
            log.info("bundling skipped this time: {why}", why=str(exc))

    async def prune() -> None:
        await prune_expired(store, config.retention.payload_days, metrics, builder.now)

    watch = OperationsWatch(metrics, store.ping, builder.now, store.outbox)
    jobs = [
        job(
            "certificate check",
            "checking certificates",
            check_certificates,
            CERTIFICATE_CHECK_SECONDS,
        ),
        job("operations watch", "the operations watch", watch.run_once, STORE_CHECK_SECONDS),
    ]
    if builder.keyring() is not None:
        jobs.append(_reencryption(builder, metrics))
    jobs.append(job("bundling", "a bundling run", bundle, config.bundling.interval_seconds))
    jobs.append(job("pruning", "pruning expired files", prune, config.retention.interval_seconds))
    if admin:
        jobs.append(
            job(
                "case metrics",
                "counting the open cases",
                builder.admin_service().refresh_metrics,
                CASE_METRICS_SECONDS,
            )
        )
        runner = BatchRunner(builder.bulk_service())
        jobs.append(
            job("bulk batches", "the bulk batch runner", runner.run_once, BATCH_INTERVAL_SECONDS)
        )
    if config.notices.channels:
        jobs.append(
            job(
                "notices",
                "a notices run",
                builder.notifier().run_once,
                config.notices.interval_seconds,
            )
        )
    return jobs


def _reencryption(builder: GatewayBuilder, metrics: Metrics) -> Repeating:
    """Re-seal, a batch at a time, what older keys (or no key) sealed; stops when nothing
    is left. Each batch is one transaction, so a stop in between loses nothing; a fault
    other than an outage stops it (logged)."""
    done = {"rows": 0}

    async def step() -> None:
        try:
            count = await builder.store.reencrypt(REENCRYPT_BATCH)
        except StoreUnavailableError:
            raise  # an outage: logged, and the next step tries again
        except Exception as exc:
            log.warn("re-encryption stopped: {error}", error=str(exc))
            job.stop()
            return
        done["rows"] += count
        if count == 0:
            job.stop()
            if done["rows"]:
                log.info(
                    "re-encryption done: {rows} sealed rows resealed (journal and declaration "
                    "lines); `igo-gateway keys status` shows what each key still seals",
                    rows=done["rows"],
                )

    job = Repeating(
        "re-encryption",
        step,
        REENCRYPT_PAUSE_SECONDS,
        builder.reactor,
        failures=metrics.job_failures.labels("re-encryption"),
    )
    return job


def _insurer_schedules(builder: GatewayBuilder, metrics: Metrics) -> list[PerInsurer]:
    """Sending to and fetching from each linked insurer, each on its own timer."""
    if not builder.poll_intervals():
        return []
    return [
        PerInsurer("sending", builder.forwarder().run_once, metrics.job_failures.labels("sending")),
        PerInsurer(
            "fetching retours",
            builder.collector().run_once,
            metrics.job_failures.labels("fetching retours"),
        ),
    ]


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


async def start(config: GatewayConfig, reactor: GatewayReactor) -> RunningGateway:
    """Open the store and start serving ``config``. Raises
    :class:`~gateway.ports.messages.SchemaVersionError`,
    :class:`~gateway.ports.messages.StoreUnavailableError`,
    :class:`~adapters.tls.TLSSetupError`, :class:`~gateway.ei.LayoutError` or
    :class:`twisted.internet.error.CannotListenError` when it cannot."""
    api_config = config.epd_api
    tls_files = api_config.tls
    context_factory = server_context_factory(
        tls_files.cert, tls_files.key, tls_files.trust, tls_files.crl
    )
    identities = Identities.from_config(config)
    keyring = load_keyring(config)
    make_data_dirs(config)
    lock = _lock_embedded_store(config.store.url)
    try:
        store = await open_store(config.store.url, reactor, keyring)
    except BaseException:
        _release(lock)
        raise
    metrics = Metrics(version=_version())
    pool = reactor.getThreadPool()

    def run_in_thread(f: Callable[[], T]) -> Deferred[T]:
        return deferToThreadPool(reactor, pool, f)

    builder = GatewayBuilder(
        config,
        reactor,
        store,
        keyring=keyring,
        metrics=metrics,
        run_in_thread=run_in_thread,
        bundle_after_change=True,
    )
    try:
        registry = builder.layouts()
        catalogue = builder.catalogue()
        if catalogue.is_example:
            log.warn(
                "the prestatie catalogue is the shipped EXAMPLE ({source}): its integral "
                "prestatie codes are placeholders; set [bundling] catalogue to the IGO's own",
                source=catalogue.source,
            )
        # A key file that lacks a key the store needs, or is another store's, stops here.
        await check_store_keys(store)
        if await builder.store.admin.key_audit_chain(builder.now()):
            log.info("the audit log is keyed from now on (an audit_keyed entry marks where)")
    except BaseException:
        await store.close()
        _release(lock)
        raise
    store.database.observe = lambda kind, seconds: metrics.store_seconds.labels(kind).observe(
        seconds
    )
    ops_port: IListeningPort | None = None
    port: IListeningPort | None = None
    admin_port: IListeningPort | None = None
    try:
        if config.metrics.enabled:
            ops = server.Site(
                OperationsRoot(metrics, store.ping, builder.insurer_states()), reactor=reactor
            )
            ops.noisy = False
            ops_port = reactor.listenTCP(config.metrics.port, ops, interface=config.metrics.host)
        intake = builder.intake()
        workers = builder.check_workers()
        if workers is not None:
            workers.start()
        schedules = _insurer_schedules(builder, metrics)
        pushing = _pushing_insurers(config)

        def authenticate(request: server.Request) -> Caller | None:
            peer = client_identity(request)
            if peer is not None and peer.fingerprint_sha256 in pushing:
                return Caller(pushing[peer.fingerprint_sha256], INSURER)
            participant = identities.participant_for(peer)
            if participant is None:
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
            builder.now,
            receive_retour=builder.collector().keep,
            settings=api_settings(config, registry),
        )
        portal = PortalResource(
            intake,
            store,
            registry,
            authenticate,
            builder.now,
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
        admin_port = _listen_admin(builder, reactor)
        jobs = _scheduled_jobs(builder, metrics, admin=admin_port is not None)
    except BaseException:
        await _stop_listening(ops_port, port, admin_port)
        await _stop_workers(builder)
        await store.close()
        _release(lock)
        raise
    gateway = RunningGateway(config, builder, port, ops_port, lock, admin_port, jobs, schedules)
    for job in jobs:
        job.start()
    for schedule in schedules:
        schedule.start(reactor, builder.poll_intervals())
    if schedules:
        log.info("insurer links: {insurers}", insurers=", ".join(sorted(builder.poll_intervals())))
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
