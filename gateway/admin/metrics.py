"""The admin workplace's metrics, on a registry given to it (the gateway's own:
``Metrics().registry``). Labels are codes only: outcomes, kinds, actions — never a user's
or a client's name."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["AdminMetrics", "BulkMetrics"]

NAMESPACE = "igo_gateway_admin"


class AdminMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.logins = Counter(
            f"{NAMESPACE}_logins",
            "Logins to the admin site, by outcome (ok, refused: wrong name or password, "
            "throttled: too many failures in a row).",
            ["outcome"],
            registry=registry,
        )
        self.actions = Counter(
            f"{NAMESPACE}_case_actions",
            "Actions done on cases (retry, resubmit, pass_on, break_bundle, close_phase, "
            "write_off, reopen, note), by case kind.",
            ["kind", "action"],
            registry=registry,
        )
        self.refused = Counter(
            f"{NAMESPACE}_case_actions_refused",
            "Actions on cases refused (no permission, does not fit the case), by reason code.",
            ["code"],
            registry=registry,
        )
        self.open_cases = Gauge(
            f"{NAMESPACE}_open_cases",
            "Open cases per kind, as last computed (every minute in serve, and for the queue).",
            ["kind"],
            registry=registry,
        )
        self.oldest_open_case = Gauge(
            f"{NAMESPACE}_oldest_open_case_age_seconds",
            "Age of the oldest open case per kind (0: none open), as last computed.",
            ["kind"],
            registry=registry,
        )
        self.audit_entries = Counter(
            f"{NAMESPACE}_audit_entries",
            "Entries appended to the audit log by the admin site, by action.",
            ["action"],
            registry=registry,
        )


class BulkMetrics:
    """Bulk actions (:mod:`gateway.admin.batches`): batches made and steered, and what each
    batch did to each case."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.batches = Counter(
            f"{NAMESPACE}_batches",
            "Batches of bulk actions created, by case action.",
            ["action"],
            registry=registry,
        )
        self.controls = Counter(
            f"{NAMESPACE}_batch_controls",
            "Batches paused, resumed or cancelled, by control.",
            ["control"],
            registry=registry,
        )
        self.cases = Counter(
            f"{NAMESPACE}_batch_cases",
            "Cases handled by batches, by case kind, action and outcome (done, skipped: no "
            "longer fitted the action, failed: the action broke).",
            ["kind", "action", "outcome"],
            registry=registry,
        )
        self.finished = Counter(
            f"{NAMESPACE}_batches_finished",
            "Batches that reached their end (every case done, skipped or failed).",
            registry=registry,
        )
