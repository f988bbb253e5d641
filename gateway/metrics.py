"""Every metric of the gateway, defined once, with its help text and unit suffix.

:class:`Metrics` owns a :class:`~prometheus_client.CollectorRegistry` of its own (one per
running gateway, so tests do not share state) with the process, platform and garbage
collector collectors.
Labels carry codes only — standards, participant AGB codes (public provider codes),
retourcodes, routes, statuses — never a BSN, a name or any other client data.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

__all__ = ["LATENCY_BUCKETS", "Metrics"]

# Seconds: from a fast request to a slow group commit on a busy disk.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Seconds: bundling waits for phases to complete, so from minutes up to months.
DAY_BUCKETS = (
    60.0,
    600.0,
    3600.0,
    6 * 3600.0,
    86400.0,
    7 * 86400.0,
    30 * 86400.0,
    90 * 86400.0,
    365 * 86400.0,
)
NAMESPACE = "igo_gateway"


class Metrics:
    def __init__(self, version: str = "0") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.info = Gauge(
            f"{NAMESPACE}_build_info", "The running gateway's version.", ["version"], registry=r
        )
        self.info.labels(version).set(1)
        self.uploads = Counter(
            f"{NAMESPACE}_uploads",
            "Declaration files received from participants, by outcome "
            "(accepted, rejected, repeated: the same bytes again).",
            ["standard", "participant", "outcome"],
            registry=r,
        )
        self.upload_bytes = Counter(
            f"{NAMESPACE}_upload_bytes",
            "Bytes of declaration files received from participants.",
            ["participant"],
            registry=r,
        )
        self.rejections = Counter(
            f"{NAMESPACE}_upload_rejections",
            "Uploads rejected at intake, by the retourcode of the rejection.",
            ["retourcode"],
            registry=r,
        )
        self.refusals = Counter(
            f"{NAMESPACE}_upload_refusals",
            "Uploads refused outright, nothing stored (e.g. sender is not the certificate's "
            "participant), by problem code.",
            ["code"],
            registry=r,
        )
        self.http_requests = Counter(
            f"{NAMESPACE}_http_requests",
            "Requests to the EPD API, by route, method and status code.",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            f"{NAMESPACE}_http_request_duration_seconds",
            "Time from a request's arrival to its answer, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.store_available = Gauge(
            f"{NAMESPACE}_store_up",
            "1 when the last store check succeeded, 0 when it failed (checked by the "
            "gateway every few seconds, and by each /readyz).",
            registry=r,
        )

        self.outbound_attempts = Counter(
            f"{NAMESPACE}_outbound_attempts",
            "Attempts to send a file to an insurer, by outcome (delivered; repeated: the "
            "insurer already had it; failed: to be retried; parked: no more attempts; "
            "rejected: delivered, then rejected by the exchange service and parked).",
            ["insurer", "outcome"],
            registry=r,
        )
        self.outbound_files = Gauge(
            f"{NAMESPACE}_outbound_files",
            "Files for insurers by state (queued, sending, delivered, answered, parked).",
            ["insurer", "state"],
            registry=r,
        )

        self.outbound_oldest_unanswered = Gauge(
            f"{NAMESPACE}_outbound_oldest_unanswered_age_seconds",
            "Age of the oldest file for an insurer that has no retour yet (queued, sending "
            "or delivered; parked files are counted apart), 0 when none; refreshed by the "
            "gateway every few seconds.",
            ["insurer"],
            registry=r,
        )

        self.retours_received = Counter(
            f"{NAMESPACE}_retours_received",
            "Retour files fetched from insurers, by how they were matched (matched: to the "
            "file they answer; unmatched: to none, for the administrator; malformed).",
            ["insurer", "outcome"],
            registry=r,
        )

        self.store_bytes = Gauge(
            f"{NAMESPACE}_store_bytes", "Size of the store (database) in bytes.", registry=r
        )
        self.pruned_payloads = Counter(
            f"{NAMESPACE}_pruned_payloads",
            "Stored files pruned after their retention period.",
            registry=r,
        )

        self.job_failures = Counter(
            f"{NAMESPACE}_job_failures",
            "Failed runs of a scheduled job (bundling, pruning, notices, sending, fetching "
            "retours, ...); the next run comes anyway.",
            ["job"],
            registry=r,
        )

        self.store_seconds = Histogram(
            f"{NAMESPACE}_store_transaction_seconds",
            "Store transactions: a group-committed write batch (until durable) or a read.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.lines_decided = Counter(
            f"{NAMESPACE}_lines_decided",
            "Original lines settled by bundling, by where they ended (absorbed, forwarded, "
            "returned, cancelled).",
            ["place"],
            registry=r,
        )
        self.integral_claims = Counter(
            f"{NAMESPACE}_integral_claims",
            "Integral lines claimed (debits; credits are counted apart), by insurer.",
            ["insurer"],
            registry=r,
        )
        self.integral_amount = Counter(
            f"{NAMESPACE}_integral_claimed_eurocents",
            "Amounts of integral lines claimed (debits), in eurocents, by insurer.",
            ["insurer"],
            registry=r,
        )
        self.integral_credits = Counter(
            f"{NAMESPACE}_integral_credits",
            "Integral credit lines (corrections of an earlier claim), by insurer.",
            ["insurer"],
            registry=r,
        )
        self.integral_credited = Counter(
            f"{NAMESPACE}_integral_credited_eurocents",
            "Amounts of integral credit lines, in eurocents (positive), by insurer.",
            ["insurer"],
            registry=r,
        )
        self.bundling_conflicts = Counter(
            f"{NAMESPACE}_bundling_conflicts",
            "Bundling runs not stored because their lines changed before they were "
            "recorded, or their lease was taken over; each is decided again.",
            registry=r,
        )
        self.check_workers = Gauge(
            f"{NAMESPACE}_check_workers",
            "Check workers running ([epd_api] check_processes).",
            registry=r,
        )
        self.bundle_batches_here = Counter(
            f"{NAMESPACE}_bundle_batches_in_gateway",
            "Batches of bundling runs the gateway prepared in its own process because its "
            "bundle worker could not (it failed, or ended).",
            registry=r,
        )
        self.checks_here = Counter(
            f"{NAMESPACE}_checks_in_gateway",
            "Uploads the gateway checked in its own process because the check workers "
            "could not (none running, a worker ended, failed or gave an unusable reply).",
            registry=r,
        )
        self.bundling_seconds = Histogram(
            f"{NAMESPACE}_bundling_latency_seconds",
            "From the upload of an original line to the integral claim that absorbed it.",
            buckets=DAY_BUCKETS,
            registry=r,
        )
        self.end_to_end_seconds = Histogram(
            f"{NAMESPACE}_end_to_end_seconds",
            "From a participant's upload to the retour file that answers it.",
            buckets=DAY_BUCKETS,
            registry=r,
        )

        self.certificate_expiry = Gauge(
            f"{NAMESPACE}_certificate_expiry_timestamp_seconds",
            "When a configured certificate expires (its notAfter, unix seconds), by its use "
            "(epd_server, epd_trust, admin_server, admin_client_ca, insurer_client, "
            "insurer_trust; _chain for intermediates) and subject (CN, or the start of its "
            "SHA-256 fingerprint). Infrastructure certificates only: participants' are "
            "known by fingerprint, not by file.",
            ["use", "subject"],
            registry=r,
        )
        self.crl_next_update = Gauge(
            f"{NAMESPACE}_crl_next_update_timestamp_seconds",
            "When a configured CRL is due to be replaced (its nextUpdate, unix seconds); "
            "past it every certificate of its CA is refused. By use (epd_crl, admin_crl, "
            "insurer_crl) and issuer (the CA's CN).",
            ["use", "issuer"],
            registry=r,
        )

    def count_integral_line(self, insurer: str, amount: int) -> None:
        """One integral line of a claim file: a debit counts as claimed, a credit (a
        negative amount) as credited — counters only go up."""
        if amount < 0:
            self.integral_credits.labels(insurer).inc()
            self.integral_credited.labels(insurer).inc(-amount)
        else:
            self.integral_claims.labels(insurer).inc()
            self.integral_amount.labels(insurer).inc(amount)

    def exposition(self) -> bytes:
        """The text exposition format of every metric."""
        return generate_latest(self.registry)
