"""The admin site: server-rendered pages for the IGO administrator and a JSON API with the
same operations, on a Twisted ``Site`` of its own (its own port, apart from the EPD API).

Every route, with the methods it answers, is declared in :data:`adapters.admin.routes.
ADMIN_ROUTES`; any other method is answered 405 with an ``Allow`` header and runs nothing.
Pages (HTML, Jinja2 with autoescaping, no JavaScript):

=======  ==================================  ===============================================
GET      /login, POST /login                 log in (a fresh session id on every login)
POST     /logout                             log out
GET      /cases                              the queue: counts per kind, filters, open cases
GET      /cases/{id}                         a case: facts, retourcodes, history, the file
POST     /cases/{id}/unmask                  the same with client data shown (audited)
GET      /cases/{id}/{action}                what the action will do, and its form
POST     /cases/{id}/{action}                do it (retry, write_off, reopen, note)
GET      /audit, GET /audit/export           the audit log (administrators)
GET      /search, POST /search               search by business keys (the form posts, so
                                            a BSN never lands in a URL or access log)
GET      /bulk?{filters}&action=…            bulk action: exactly what it will do, and its form
POST     /bulk                               make the batch (administrators), runs in the back
GET      /batches, GET /batches/{id}         batches and their progress, case by case
POST     /batches/{id}/{control}             pause, resume or cancel a batch
=======  ==================================  ===============================================

JSON API (``Authorization: Bearer <token>`` from ``igo-gateway admin create-token``, or
the session cookie plus an ``X-CSRF-Token`` header on POST), documented in
``schemas/admin-api.openapi.json``: ``GET /api/me``, ``GET /api/cases``,
``GET /api/cases/{id}``, ``POST /api/cases/{id}/unmask``,
``POST /api/cases/{id}/actions/{action}``, ``GET /api/audit``, ``GET /api/audit/verify``.
The search is ``POST /api/search`` (its keys, a BSN among them, in the body).
``POST /api/cases/{id}/actions/{action}``, ``GET /api/audit``, ``GET /api/audit/verify``;
bulk actions: ``GET /api/batches``, ``POST /api/batches/preview``, ``POST /api/batches``,
``GET /api/batches/{id}``, ``POST /api/batches/{id}/{pause|resume|cancel}``.

Safety: the session cookie is HttpOnly and SameSite=Strict (and Secure over HTTPS); every
form carries a CSRF token derived from the session, checked on every method but GET and
HEAD (which only read); every answer carries a strict CSP (no
inline script or style), ``X-Frame-Options: DENY`` and ``Cache-Control: no-store``. The
resource is thin: every decision is :class:`~gateway.admin.service.AdminService`'s.
"""

from __future__ import annotations

import hmac
import io
import json
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from importlib import resources
from types import MappingProxyType
from typing import Annotated, Any, Final, TypeVar
from urllib.parse import quote

import jinja2
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, resource, server

from adapters.admin.config import AdminConfig
from adapters.admin.routes import ADMIN_ROUTES, READ_METHODS, MethodNotAllowedError, Router
from adapters.epd_api.http import problem_bytes
from adapters.http_errors import HttpError as _HttpError  # the name the site's raises use
from adapters.storage.messages import SqlMessageStore
from adapters.storage.reprocess import SqlReprocessStore
from adapters.storage.search import SqlSearchStore
from gateway.admin import labels
from gateway.admin.accounts import (
    AccountError,
    Actor,
    PasswordHasher,
    Permission,
    Role,
    csrf_token,
)
from gateway.admin.audit import AuditEntry, ChainReport, entry_json, parse_recorded_head
from gateway.admin.batches import (
    NEEDS_CASE_INPUT,
    Batch,
    BatchControl,
    BatchPreview,
    BatchState,
    BatchStore,
    ItemOutcome,
    filter_json,
)
from gateway.admin.bulk import BulkService, SelectionChangedError
from gateway.admin.cases import (
    KINDS,
    NEEDS_REASON,
    ActionRefusedError,
    Case,
    CaseAction,
    CaseFilter,
    CaseKind,
    CaseState,
    allowed_actions,
)
from gateway.admin.detail import CaseDetail, ClaimView, DecisionView, LineView, PregnancyView
from gateway.admin.fileview import FileView
from gateway.admin.labels import ClientView, Names, dutch, local_time
from gateway.admin.metrics import AdminMetrics, BulkMetrics
from gateway.admin.ports import AdminStore
from gateway.admin.search import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    HitKind,
    SearchHit,
    SearchQuery,
    SearchRefusedError,
    SearchResult,
    parse_day,
)
from gateway.admin.service import (
    AdminService,
    CaseView,
    LoginRefusedError,
    NotAllowedError,
    Queue,
    RunInThread,
    UserView,
)
from gateway.crypto import Keyring
from gateway.ei import LayoutRegistry
from gateway.errors import ErrorKind
from gateway.loading import describe
from gateway.reprocess import Reprocessor, ReprocessResult
from gateway.resolution import FIELD_LABELS, Resolver
from gateway.resolution import Field as CorrectionField
from gateway.rules.model import Settings
from gateway.store import Direction, Message, MessageStore, StoreUnavailableError

__all__ = ["AdminResource", "build_admin_site", "build_bulk_service"]

log = Logger()

MAX_BODY_BYTES: Final = 64 * 1024
EXPECTED_BIRTH_DAYS: Final = Settings("").expected_birth_days  # modelled, as the rules have it
Params = Mapping[str, object]  # a route's parameters, made by its converters
LOGIN_COOKIE: Final = "igo_admin_login"
_CSP: Final = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_SECURITY_HEADERS: Final = {
    b"content-security-policy": _CSP.encode("ascii"),
    b"x-frame-options": b"DENY",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"cache-control": b"no-store",
    b"cross-origin-opener-policy": b"same-origin",
}

ROLE_LABELS: Final = {
    Role.VIEWER: "alleen lezen",
    Role.OPERATOR: "operator",
    Role.ADMINISTRATOR: "beheerder",
}
STATE_LABELS: Final = {
    CaseState.OPEN: "open",
    CaseState.RETRIED: "opnieuw aangeboden",
    CaseState.WRITTEN_OFF: "afgeboekt",
    CaseState.RESOLVED: "opgelost",
    CaseState.RESUBMITTED: "verbeterd ingediend",
    CaseState.BROKEN: "bundel gebroken",
    CaseState.PASSED_ON: "doorgegeven aan deelnemers",
    CaseState.PHASE_CLOSED: "fase gesloten",
}
ACTION_LABELS: Final = {
    CaseAction.RETRY: "Opnieuw aanbieden",
    CaseAction.RESUBMIT: "Verbeteren en opnieuw indienen",
    CaseAction.BREAK_BUNDLE: "Bundel breken",
    CaseAction.PASS_ON: "Afwijzing doorgeven",
    CaseAction.CLOSE_PHASE: "Fase sluiten",
    CaseAction.WRITE_OFF: "Afboeken",
    CaseAction.REOPEN: "Heropenen",
    CaseAction.NOTE: "Notitie toevoegen",
}
AUDIT_LABELS: Final = {
    "login": "aangemeld",
    "login_failed": "aanmelding mislukt",
    "logout": "afgemeld",
    "user_created": "gebruiker aangemaakt",
    "token_created": "API-token aangemaakt",
    "view_queue": "zaken bekeken",
    "view_case": "zaak bekeken",
    "unmask": "persoonsgegevens getoond",
    "retry": "opnieuw aangeboden",
    "write_off": "afgeboekt",
    "reopen": "heropend",
    "note": "notitie",
    "resubmit": "verbeterd en opnieuw ingediend",
    "break_bundle": "bundel gebroken",
    "pass_on": "afwijzing doorgegeven",
    "close_phase": "fase met de hand gesloten",
    "view_pregnancy": "zwangerschap bekeken",
    "view_audit": "auditlog bekeken",
    "export_audit": "auditlog geëxporteerd",
    "search": "gezocht",
    "batch_created": "bulkactie gestart",
    "batch_paused": "bulkactie gepauzeerd",
    "batch_resumed": "bulkactie hervat",
    "batch_cancelled": "bulkactie gestopt",
    "batch_finished": "bulkactie klaar",
}


def _consequence(action: CaseAction, case: Case) -> str:
    insurer = case.facts.insurer or "de verzekeraar"
    return {
        CaseAction.RETRY: f"Het bestand gaat terug in de wachtrij en wordt direct opnieuw "
        f"aangeboden aan verzekeraar {insurer}, met hetzelfde kenmerk en factuurnummer: de "
        "verzekeraar ziet geen tweede declaratie.",
        CaseAction.WRITE_OFF: "De zaak wordt afgeboekt en verdwijnt uit de wachtrij. Er wordt "
        "niets verstuurd of teruggemeld. Vermeld waarom.",
        CaseAction.REOPEN: "De zaak komt terug in de wachtrij van open zaken.",
        CaseAction.NOTE: "De notitie komt bij de zaak te staan; de toestand van de zaak "
        "verandert niet.",
        CaseAction.RESUBMIT: "De integrale prestatie gaat met de verbeterde gegevens opnieuw "
        "naar de verzekeraar, in een eigen declaratiebestand met een nieuw factuurnummer. De "
        "afgewezen regel blijft bewaard en wordt aan de nieuwe gekoppeld; de verzekeraar "
        "boekte de afgewezen regel niet, dus er gaat geen creditregel mee. De deelnemers "
        "krijgen hun retour als de verzekeraar de verbeterde regel beoordeelt.",
        CaseAction.BREAK_BUNDLE: "De bundel van deze fase wordt gebroken: de oorspronkelijke "
        "regels gaan monodisciplinair — doorgestuurd onder de eigen AGB-code van de "
        "deelnemer waar het contract dat toestaat, anders terug naar de deelnemer met "
        "retourcode 9001 (zelf declareren). Dit geldt ook voor later ingediende regels van "
        "deze fase. Vermeld waarom.",
        CaseAction.PASS_ON: "Elke deelnemer krijgt een retourbestand waarin zijn regels zijn "
        f"afgewezen met de retourcodes van verzekeraar {insurer}. De IGO declareert deze "
        "fase niet opnieuw.",
        CaseAction.CLOSE_PHASE: "De fase wordt als compleet beschouwd: de volgende "
        "bundelronde (direct na het bevestigen) declareert wat er nu is.",
    }[action]


def age_text(age: timedelta) -> str:
    days = age.days
    if days >= 2:
        return f"{days} dagen"
    hours = int(age.total_seconds() // 3600)
    if hours >= 1:
        return f"{hours} uur"
    return f"{int(age.total_seconds() // 60)} min"


def _when(moment: datetime) -> str:
    """Local time (Europe/Amsterdam), as the administrator's clock shows it."""
    return local_time(moment)


# Entries that only say someone looked: consecutive ones by the same person are one row.
_VIEWS: Final = frozenset({"view_case", "view_queue", "view_pregnancy"})


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One row of a case's history: an entry, or a run of views by one person."""

    at: datetime
    actor: str
    action: str
    detail: str
    count: int = 1
    until: datetime | None = None  # the last view of a run


def group_history(entries: Sequence[AuditEntry]) -> list[HistoryRow]:
    """The history as a person reads it: every action on its own row, but a run of views
    by the same person (with nothing done in between) as one row with its count."""
    rows: list[HistoryRow] = []
    for e in entries:
        action = str(e.action)
        last = rows[-1] if rows else None
        if (
            action in _VIEWS
            and last is not None
            and last.action == action
            and last.actor == e.actor
        ):
            rows[-1] = HistoryRow(last.at, last.actor, action, last.detail, last.count + 1, e.at)
        else:
            rows.append(HistoryRow(e.at, e.actor, action, dutch(e.detail)))
    return rows


def case_url(case_id: str) -> str:
    return "/cases/" + quote(case_id, safe=":")


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("adapters.admin", "templates"),
        autoescape=True,  # every value is escaped, whatever the template's name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        age=age_text,
        when=_when,
        case_url=case_url,
        describe=describe,
        kind_label=lambda kind: KINDS[kind].label,
        state_label=lambda state: STATE_LABELS[state],
        action_label=lambda action: ACTION_LABELS[action],
        role_label=lambda role: ROLE_LABELS[role],
        audit_label=lambda action: AUDIT_LABELS.get(action, action),
        euro=euro_text,
        nl=dutch,
        history=group_history,
        hit_state=hit_state,
        case_subject=case_subject,
        iso_day=lambda text: labels.day_text(date.fromisoformat(text)),
        day=labels.day_text,
        phase_label=lambda phase: labels.PHASE_LABELS.get(phase or "", dutch(phase or "—")),
        line_state=lambda state: labels.LINE_STATE_LABELS.get(state, dutch(state)),
        decision_kind=lambda kind: labels.DECISION_KIND_LABELS.get(kind, kind),
        outbound_state=lambda state: labels.OUTBOUND_STATE_LABELS.get(state or "", state or "—"),
        pregnancy_url=lambda pregnancy: "/pregnancies/" + quote(pregnancy, safe=""),
        outcome_label=lambda outcome: OUTCOME_LABELS.get(outcome or "", outcome or "—"),
        field_label=lambda name: (
            FIELD_LABELS.get(CorrectionField(name), name)
            if name in CorrectionField.__members__.values()
            else name
        ),
    )
    return env


def case_subject(case: Case) -> str:
    """What a case is about, in a few words for the queue: its file, else its integral
    line or its phase and pregnancy (never a key or an engine word)."""
    facts = case.facts
    if facts.filename:
        return facts.filename
    phase = labels.PHASE_LABELS.get(facts.details.get("fase", ""), "")
    if case.kind is CaseKind.REJECTED_LINE:
        return f"integrale regel {facts.ref}" + (f", {phase}" if phase else "")
    pregnancy = facts.details.get("zwangerschap", "")
    start = pregnancy[-10:] if re.fullmatch(r".+-\d{4}-\d\d-\d\d", pregnancy) else ""
    if phase or start:
        since = f"zwangerschap met zorg vanaf {labels.day_text(date.fromisoformat(start))}"
        return ", ".join(p for p in (phase, since if start else "") if p)
    return facts.ref


SEARCH_OUTCOMES: Final = {
    "granted": "toegekend",
    "rejected": "afgewezen (doorgegeven)",
    "review": "afgewezen, in behandeling bij de IGO",
    "replaced": "afgewezen, vervangen door een verbetering",
    "returned": "terug: zelf declareren",
}


def hit_state(hit: SearchHit) -> str:
    """A search hit's state in words: the insurer's verdict where there is one (a line's,
    or a claimed line's from the lines it absorbed), else where it stands."""
    if hit.outcome:
        return SEARCH_OUTCOMES.get(hit.outcome, dutch(hit.outcome))
    state = hit.state or ""
    if hit.kind is HitKind.LINE:
        return labels.LINE_STATE_LABELS.get(state, dutch(state) or "—")
    if hit.kind in (HitKind.CLAIM, HitKind.OUTBOUND):
        return labels.OUTBOUND_STATE_LABELS.get(state, state or "—")
    return state.replace("_", " ") or "—"  # a message's status is Dutch already


def euro_text(cents: int | None) -> str:
    """``€ 1.010,00`` (:func:`gateway.admin.labels.euro_text`)."""
    return labels.euro_text(cents)


OUTCOME_LABELS: Final = {
    "granted": "toegekend",
    "rejected": "afgewezen (doorgegeven)",
    "review": "in behandeling bij de IGO",
    "returned": "terug: zelf declareren",
    "": "nog geen antwoord",
}


# The site's one mapping of the core's error kinds to statuses (pages and JSON API alike).
STATUS_BY_KIND: Final[Mapping[ErrorKind, int]] = MappingProxyType(
    {
        ErrorKind.INVALID: 400,
        ErrorKind.NOT_FOUND: 404,
        ErrorKind.CONFLICT: 409,
        ErrorKind.NOT_ALLOWED: 403,
        ErrorKind.UNAUTHENTICATED: 401,
        ErrorKind.THROTTLED: 429,
        ErrorKind.UNAVAILABLE: 503,
        ErrorKind.BUSY: 503,
        ErrorKind.MISCONFIGURED: 500,
        ErrorKind.INTERNAL: 500,
    }
)


class _RedirectError(Exception):
    """Not an error: ends a request with 303 See Other."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


USER_OPERATIONS: Final = ("disable", "enable", "password", "role", "revoke")
USER_NOTICES: Final = {
    "disable": "Gebruiker uitgeschakeld; sessies en API-tokens ingetrokken. Vastgelegd.",
    "enable": "Gebruiker ingeschakeld. Vastgelegd.",
    "password": "Nieuw wachtwoord gezet; sessies en API-tokens ingetrokken. Vastgelegd.",
    "role": "Rol gewijzigd. Vastgelegd.",
    "revoke": "Sessies en API-tokens ingetrokken. Vastgelegd.",
}
_REVOKE_KINDS: Final = {
    "all": frozenset({"session", "token"}),
    "sessions": frozenset({"session"}),
    "tokens": frozenset({"token"}),
}


class UserRequest(BaseModel):
    """Body of ``POST /api/users/{name}/{operation}``: ``password`` for ``password``,
    ``role`` for ``role``, ``what`` for ``revoke``; nothing for the others."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    password: str = Field(default="", max_length=1024)
    role: str = Field(default="", max_length=20)
    what: str = Field(default="all", max_length=10)


def user_json(view: UserView) -> dict[str, Any]:
    user = view.user
    return {
        "name": user.name,
        "role": user.role.value,
        "disabled": user.disabled,
        "createdAt": _iso(user.created_at),
        "failedLogins": user.failed_logins,
        "sessions": view.sessions,
        "tokens": view.tokens,
    }


class ActionRequest(BaseModel):
    """Body of ``POST /api/cases/{id}/actions/{action}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(default="", max_length=2000)
    fields: dict[str, Annotated[str, Field(max_length=40)]] = Field(
        default_factory=dict,
        max_length=10,
        description="resubmit only: the corrected fields (member_number, uzovi, first_day, "
        "last_day, prestatie); those left out keep their value",
    )


class SearchRequest(BaseModel):
    """Body of ``POST /api/search``: the keys (every one given must match), camelCase as
    the rest of the API. The BSN travels only in a body, never in a URL."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    factuurnummer: str | None = Field(default=None, max_length=64)
    reference: str | None = Field(default=None, max_length=64)
    traceer_id: str | None = Field(default=None, alias="traceerId", max_length=64)
    participant: str | None = Field(default=None, max_length=8)
    insurer: str | None = Field(default=None, max_length=4)
    retourcode: str | None = Field(default=None, max_length=4)
    date_from: str | None = Field(default=None, alias="dateFrom", max_length=10)
    date_to: str | None = Field(default=None, alias="dateTo", max_length=10)
    bsn: str | None = Field(default=None, max_length=9, repr=False)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    unmask: bool = False

    def query(self) -> SearchQuery:
        return SearchQuery(
            factuurnummer=self.factuurnummer,
            reference=self.reference,
            traceer_id=self.traceer_id,
            participant=self.participant,
            insurer=self.insurer,
            retourcode=self.retourcode,
            date_from=parse_day("date_from", self.date_from),
            date_to=parse_day("date_to", self.date_to),
            bsn=self.bsn,
        )


# --- JSON --------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def case_json(case: Case, now: datetime) -> dict[str, Any]:
    facts = case.facts
    record = case.record
    return {
        "id": case.id,
        "kind": case.kind.value,
        "kindLabel": KINDS[case.kind].label,
        "state": case.state.value,
        "open": case.is_open,
        "since": _iso(facts.since),
        "ageSeconds": int(case.age(now).total_seconds()),
        "traceerId": facts.ref,
        "party": facts.party,
        "insurer": facts.insurer,
        "participant": facts.participant,
        "participants": list(facts.participants),
        "retourcodes": [{"code": c, "meaning": describe(c)} for c in facts.retourcodes],
        "summary": dutch(facts.summary),
        "filename": facts.filename,
        "standard": facts.standard,
        "details": {
            k: labels.PHASE_LABELS.get(v, dutch(v)) if k == "fase" else dutch(v)
            for k, v in facts.details.items()
        },
        "record": None
        if record is None
        else {
            "state": record.state.value,
            "reason": record.reason,
            "changedAt": _iso(record.changed_at),
            "changedBy": record.changed_by,
        },
    }


def _file_json(file: FileView | None) -> dict[str, Any] | None:
    if file is None:
        return None
    return {
        "title": file.title,
        "masked": file.masked,
        "truncated": file.truncated,
        "records": [
            {
                "number": r.number,
                "type": r.type,
                "name": r.name,
                "problem": r.problem,
                "fields": [
                    {"id": f.id, "label": f.label, "value": f.value, "masked": f.masked}
                    for f in r.fields
                ],
            }
            for r in file.records
        ],
    }


def case_view_json(view: CaseView) -> dict[str, Any]:
    return {
        "case": case_json(view.case, view.now),
        "explanation": view.spec.explanation,
        "actions": [a.value for a in view.actions],
        "retourcodes": [{"code": c, "meaning": m} for c, m in view.retourcodes],
        "notes": [{"at": _iso(n.at), "author": n.author, "text": n.text} for n in view.notes],
        "history": [entry_json(e) for e in view.history],
        "statuses": [
            {
                "at": _iso(s.at),
                "status": s.status.value,
                "code": s.code,
                "description": s.description,
            }
            for s in view.statuses
        ],
        "file": _file_json(view.file),
        "detail": _detail_json(view.detail),
        "prestaties": [{"code": c, "name": dutch(n)} for c, n in view.prestaties],
        "client": None
        if view.client is None
        else {
            "name": view.client.name,
            "birthDate": _day_iso(view.client.birth_date),
            "bsn": view.client.bsn,
            "memberNumber": view.client.member_number,
            "masked": view.client.masked,
        },
        "current": dict(view.current),
    }


def _day_iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _line_json(line: LineView) -> dict[str, Any]:
    return {
        "traceerId": line.traceer_id,
        "recordNumber": line.record_number,
        "participant": line.participant,
        "standard": line.standard,
        "filename": line.filename,
        "prestatiecode": line.prestatiecode,
        "prestatieDate": line.prestatie_date.isoformat(),
        "amount": line.amount,
        "reference": line.reference,
        "state": line.state,
        "reason": line.reason,
        "outcome": line.outcome,
        "granted": line.granted,
        "retourcodes": list(line.codes),
        "claimReference": line.claim_reference,
        "phase": line.phase,
        "insurer": line.insurer,
    }


def _claim_json(claim: ClaimView) -> dict[str, Any]:
    return {
        "reference": claim.reference,
        "factuurnummer": claim.invoice_number,
        "recordNumber": claim.record_number,
        "insurer": claim.insurer,
        "pregnancy": claim.pregnancy,
        "phase": claim.phase,
        "prestatie": claim.prestatie,
        "amount": claim.amount,
        "createdAt": _iso(claim.created_at),
        "outbound": claim.outbound,
        "corrects": claim.corrects,
        "changes": {k: {"was": v[0], "is": v[1]} for k, v in claim.changes.items()},
        "createdBy": claim.created_by,
    }


def _decision_json(decision: DecisionView) -> dict[str, Any]:
    return {
        "pregnancy": decision.pregnancy,
        "phase": decision.phase,
        "insurer": decision.insurer,
        "kind": decision.kind,
        "rule": decision.rule,
        "ruleText": dutch(decision.rule),
        "reasons": list(decision.reasons),
        "reasonsText": [dutch(r) for r in decision.reasons],
        "waitingFor": decision.waiting_for,
        "waitingForText": dutch(decision.waiting_for) if decision.waiting_for else None,
        "until": decision.until.isoformat() if decision.until else None,
        "overdueOn": decision.overdue_on.isoformat() if decision.overdue_on else None,
        "decidedAt": _iso(decision.decided_at),
    }


def _detail_json(detail: CaseDetail) -> dict[str, Any]:
    return {
        "claim": _claim_json(detail.claim) if detail.claim else None,
        "versions": [_claim_json(v) for v in detail.versions],
        "lines": [_line_json(ln) for ln in detail.lines],
        "decisions": [_decision_json(d) for d in detail.decisions],
        "pregnancy": detail.pregnancy,
    }


def pregnancy_json(view: PregnancyView) -> dict[str, Any]:
    return {
        "pregnancy": view.pregnancy,
        "lines": [_line_json(ln) for ln in view.lines],
        "claims": [_claim_json(c) for c in view.claims],
        "decisions": [_decision_json(d) for d in view.decisions],
    }


def _queue_json(queue: Queue) -> dict[str, Any]:
    return {
        "now": _iso(queue.now),
        "counts": {kind.value: n for kind, n in queue.counts.items()},
        "cases": [case_json(c, queue.now) for c in queue.cases],
    }


def hit_json(hit: SearchHit) -> dict[str, Any]:
    return {
        "kind": hit.kind.value,
        "kindLabel": hit.label,
        "traceerId": hit.traceer_id,
        "recordNumber": hit.record_number,
        "date": hit.on.isoformat(),
        "storedAt": _iso(hit.at),
        "participant": hit.participant,
        "insurer": hit.insurer,
        "state": hit.state,
        "outcome": hit.outcome,
        "retourcodes": [{"code": c, "meaning": describe(c)} for c in hit.retourcodes],
        "factuurnummer": hit.factuurnummer,
        "reference": hit.reference,
        "pregnancy": hit.pregnancy,
        "caseId": hit.case_id,
        "filename": hit.filename,
        "prestatiecode": hit.prestatiecode,
        "amount": hit.amount,
        "bsn": hit.bsn,
    }


def search_result_json(result: SearchResult) -> dict[str, Any]:
    return {
        "limit": result.limit,
        "more": result.more,
        "unmasked": result.unmasked,
        "hits": [hit_json(h) for h in result.hits],
    }


def _report_json(report: ChainReport) -> dict[str, Any]:
    return {
        "intact": report.intact,
        "entries": report.entries,
        "headHash": report.head_hash,
        "firstBadSeq": report.first_bad_seq,
        "problem": report.problem,
    }


# --- requests ----------------------------------------------------------------------------


class _AdminRequest(server.Request):
    """A request whose body may not exceed :data:`MAX_BODY_BYTES` (forms and small JSON),
    announced or chunked, kept in memory: twisted.web would spool a body of unknown length
    to an unencrypted temporary file, and a search form carries a BSN."""

    _received = 0
    _refused = False

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > MAX_BODY_BYTES:
            self._refuse()
            return
        self.content = io.BytesIO()

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > MAX_BODY_BYTES:
            self.content = io.BytesIO()
            self._refuse()
            return
        super().handleContentChunk(data)  # type: ignore[no-untyped-call]

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:
            return
        super().requestReceived(command, path, version)  # type: ignore[no-untyped-call]

    def _refuse(self) -> None:
        # Written raw: the request line is not parsed into the request yet, and what is
        # left of the body is not read.
        self._refused = True
        transport = self.channel.transport if self.channel is not None else None
        if transport is None:
            return
        body = b"Request too large.\n"
        transport.write(
            b"HTTP/1.1 413 Request Entity Too Large\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        transport.loseConnection()


def _arg(request: server.Request, name: str) -> str:
    values = (request.args or {}).get(name.encode("ascii"), [])
    if not values:
        return ""
    return bytes(values[0]).decode("utf-8", "replace")


def _origin(request: server.Request) -> str:
    address = request.getClientAddress()
    return str(getattr(address, "host", "") or "")


def _cookie(request: server.Request, name: str) -> str | None:
    raw = request.getCookie(name.encode("ascii"))
    return None if raw is None else raw.decode("ascii", "replace")


def _int_arg(request: server.Request, name: str) -> int | None:
    text = _arg(request, name).strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        raise _HttpError(400, "ongeldig-filter", f"{name} moet een geheel getal zijn.")
    return int(text)


def _code_arg(request: server.Request, name: str, length: int) -> str | None:
    text = _arg(request, name).strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > length:
        raise _HttpError(400, "ongeldig-filter", f"{name}: alleen cijfers, hoogstens {length}.")
    return text


def _filter(request: server.Request) -> CaseFilter:
    kind_text = _arg(request, "kind").strip()
    kinds: frozenset[CaseKind] = frozenset()
    if kind_text:
        try:
            kinds = frozenset({CaseKind(kind_text)})
        except ValueError:
            raise _HttpError(400, "ongeldig-filter", "Onbekende soort zaak.") from None
    return CaseFilter(
        kinds=kinds,
        insurer=_code_arg(request, "insurer", 4),
        participant=_code_arg(request, "participant", 8),
        retourcode=_code_arg(request, "retourcode", 4),
        min_age_days=_int_arg(request, "min_age_days"),
        max_age_days=_int_arg(request, "max_age_days"),
        include_closed=_arg(request, "all") in ("1", "true", "on"),
    )


# --- the resource ------------------------------------------------------------------------


class AdminResource(resource.Resource):
    isLeaf = True

    def __init__(
        self,
        service: AdminService,
        config: AdminConfig,
        bulk: BulkService | None = None,
        reprocessor: Reprocessor | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._service = service
        self._bulk = bulk
        self._reprocessor = reprocessor
        self._config = config
        self._env = _templates()
        self._env.globals.update(_BULK_GLOBALS)
        self._env.globals.update(
            participant=self._participant,
            insurer=self._insurer,
            prestatie=self._prestatie,
            pregnancy_label=self._pregnancy_label,
            say=self._say,
        )
        self._css = resources.files("adapters.admin").joinpath("static/admin.css").read_bytes()
        secure = config.cookies_secure
        self._secure = secure
        # __Host- cookies are only accepted over HTTPS, for this host and path /.
        self._session_cookie = "__Host-igo_admin_session" if secure else "igo_admin_session"
        self._lifetime = timedelta(minutes=config.session_lifetime_minutes)
        self._router = Router(ADMIN_ROUTES)
        missing = [r.handler for r in ADMIN_ROUTES if not hasattr(self, "_" + r.handler)]
        if missing:
            raise TypeError(f"routes without a handler: {', '.join(missing)}")

    # The service's names (read when shown: the gateway may set them after the site).
    def _participant(self, agb: str | None) -> str:
        return self._service.names.participant(agb)

    def _insurer(self, uzovi: str | None) -> str:
        return self._service.names.insurer(uzovi)

    def _prestatie(self, code: str | None) -> str:
        return self._service.names.prestatie(code)

    def _say(self, text: str | None) -> str:
        """A case text in Dutch with names beside the codes it mentions: "verzekeraar
        3311" and the participants' AGB codes."""
        names = self._service.names
        said = dutch(text)
        said = re.sub(r"\b(verzekeraar) (\d{4})\b", lambda m: f"{m[1]} {names.insurer(m[2])}", said)
        return re.sub(
            r"(?<![-\w])(\d{8})(?![-\w])",
            lambda m: names.participant(m[1]) if m[1] in names.participants else m[1],
            said,
        )

    def _pregnancy_label(
        self, pregnancy: str, lines: Sequence[LineView], client: ClientView | None = None
    ) -> str:
        """ "Woman, birth date" (or the expected one) for a pregnancy's key. The birth is the
        first line of a code that dates it; the expected date is modelled: the first care
        day plus 280 days (as the waiting-phase case counts)."""
        births = [
            ln.prestatie_date for ln in lines if ln.prestatiecode in self._service.names.birth_codes
        ]
        own = [ln.prestatie_date for ln in lines]
        expected = min(own) + timedelta(days=EXPECTED_BIRTH_DAYS) if own and not births else None
        return labels.pregnancy_text(client, pregnancy, min(births, default=None), expected)

    # twisted.web entry point ----------------------------------------------------------

    def render(self, request: server.Request) -> bytes | int:
        for name, value in _SECURITY_HEADERS.items():
            request.setHeader(name, value)
        if self._secure:
            request.setHeader(b"strict-transport-security", b"max-age=31536000")
        d = ensureDeferred(self._dispatch(request))
        d.addCallbacks(
            lambda body: self._finish(request, body),
            lambda failure: self._fail(request, failure),
        )
        return server.NOT_DONE_YET

    def _finish(self, request: server.Request, body: bytes) -> None:
        if request._disconnected or request.finished:
            return
        request.write(body)
        request.finish()

    def _is_api(self, request: server.Request) -> bool:
        return (request.postpath or [b""])[0] == b"api"

    def _fail(self, request: server.Request, failure: Failure) -> None:
        exc = failure.value
        if isinstance(exc, _RedirectError):
            request.setResponseCode(303)
            request.setHeader(b"location", exc.location.encode("ascii"))
            self._finish(request, b"")
            return
        if isinstance(exc, _HttpError):
            status, code, message = exc.status, exc.code, exc.detail
        elif isinstance(exc, NotAllowedError):
            status, code = STATUS_BY_KIND[exc.kind], exc.code
            message = "Uw rol geeft geen toegang tot deze pagina of actie."
        elif isinstance(exc, (ActionRefusedError, SearchRefusedError)):
            status, code, message = STATUS_BY_KIND[exc.kind], exc.code, str(exc)
        elif isinstance(exc, LookupError):
            what = "batch" if str(exc).startswith("batch:") else "zaak"
            status, code = STATUS_BY_KIND[ErrorKind.NOT_FOUND], "onbekend"
            message = f"Deze {what} bestaat niet."
        elif isinstance(exc, StoreUnavailableError):
            log.warn("store unavailable for the admin site")
            request.setHeader(b"retry-after", b"30")
            status, code = STATUS_BY_KIND[exc.kind], exc.code
            message = "De opslag is nu niet bereikbaar; er is niets veranderd. Probeer het later."
        else:
            log.failure("unexpected error in the admin site", failure)
            status, code, message = 500, "interne-fout", "Er ging iets onverwachts mis."
        if self._is_api(request):
            request.setResponseCode(status)
            request.setHeader(b"content-type", b"application/problem+json")
            body = problem_bytes(status, code, message)
        else:
            heading = http.RESPONSES.get(status, b"Fout").decode("ascii")
            body = self._page(
                request, "error.html", status=status, heading=heading, message=message
            )
        self._finish(request, body)

    # rendering ------------------------------------------------------------------------

    def _page(
        self,
        request: server.Request,
        template: str,
        *,
        status: int = 200,
        actor: Actor | None = None,
        token: str | None = None,
        **context: Any,
    ) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        page = self._env.get_template(template).render(
            actor=actor,
            csrf=csrf_token(token) if token else "",
            may_audit=actor is not None and actor.may(Permission.VIEW_AUDIT),
            may_manage_users=actor is not None and actor.may(Permission.MANAGE_USERS),
            may_resolve=actor is not None and actor.may(Permission.RESOLVE_CASES),
            may_unmask=actor is not None and actor.may(Permission.UNMASK),
            may_bulk=self._bulk is not None
            and actor is not None
            and actor.may(Permission.BULK_ACTIONS),
            notice=context.pop("notice", None),
            **context,
        )
        return page.encode("utf-8")

    @staticmethod
    def _json(request: server.Request, value: object, status: int = 200) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(value, ensure_ascii=False).encode("utf-8")

    # dispatch -------------------------------------------------------------------------

    async def _dispatch(self, request: server.Request) -> bytes:
        segments = [s.decode("utf-8", "replace") for s in request.postpath or []]
        while segments and segments[-1] == "":
            segments.pop()
        method = request.method.decode("ascii", "replace")
        try:
            match = self._router.resolve(method, segments)
        except MethodNotAllowedError as refused:
            allowed = ", ".join(refused.allowed)
            request.setHeader(b"allow", allowed.encode("ascii"))
            message = f"Deze methode kan hier niet; wel: {allowed}."
            raise _HttpError(405, "methode", message) from None
        if match is None:
            if self._is_api(request):
                raise _HttpError(404, "onbekend", "Deze API-route bestaat niet.")
            raise _HttpError(404, "onbekend", "Deze pagina bestaat niet.")
        route, params = match.route, match.params
        handler = getattr(self, "_" + route.handler)
        if route.access == "public":
            body: bytes = await handler(request, params)
            return body
        if route.access == "api":
            actor = await self._api_actor(request)
            body = await handler(request, params, actor)
            return body
        token, session_actor = await self._session(request)
        if session_actor is None or token is None:
            if method in READ_METHODS:
                raise _RedirectError("/login")
            raise _HttpError(403, "niet-aangemeld", "U bent niet (meer) aangemeld.")
        if method not in READ_METHODS:
            # Every method that may change something; the routes declare POST only.
            self._check_csrf(token, _arg(request, "csrf"))
        body = await handler(request, params, token, session_actor)
        return body

    # public ---------------------------------------------------------------------------

    async def _static_css(self, request: server.Request, params: Params) -> bytes:
        request.setHeader(b"content-type", b"text/css; charset=utf-8")
        request.setHeader(b"cache-control", b"public, max-age=3600")
        return self._css

    async def _login_page(self, request: server.Request, params: Params) -> bytes:
        return self._login_form(request)

    # pages ----------------------------------------------------------------------------

    async def _home(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        raise _RedirectError("/cases")

    async def _logout(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        await self._service.logout(token, actor)
        self._clear_session_cookie(request)
        raise _RedirectError("/login")

    async def _queue_page(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        query = _filter(request)
        queue = await self._service.queue(actor, query)
        form = {
            "kind": _arg(request, "kind"),
            "insurer": _arg(request, "insurer"),
            "participant": _arg(request, "participant"),
            "retourcode": _arg(request, "retourcode"),
            "min_age_days": _arg(request, "min_age_days"),
            "all": query.include_closed,
        }
        return self._page(
            request,
            "queue.html",
            actor=actor,
            token=token,
            kinds=list(KINDS.values()),
            counts=queue.counts,
            cases=queue.cases,
            now=queue.now,
            form=form,
            filtered=query != CaseFilter(),
        )

    async def _case_page(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        view = await self._service.case(actor, str(params["case"]))
        done = _arg(request, "done")
        notice = None
        if done in CaseAction.__members__.values():
            notice = f"{ACTION_LABELS[CaseAction(done)]}: gedaan en vastgelegd."
        return self._page(request, "case.html", actor=actor, token=token, view=view, notice=notice)

    async def _unmask_page(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        view = await self._service.case(actor, str(params["case"]), unmask=True)
        return self._page(request, "case.html", actor=actor, token=token, view=view)

    async def _confirm_page(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        action = _param(params, "action", CaseAction)
        view = await self._service.case(actor, str(params["case"]))
        return self._confirm(request, actor, token, view, action, "", None)

    async def _act(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        case = str(params["case"])
        action = _param(params, "action", CaseAction)
        reason = _arg(request, "reason")
        fields = _correction_fields(request) if action is CaseAction.RESUBMIT else {}
        try:
            await self._service.act(actor, case, action, reason, fields)
        except ActionRefusedError as refused:
            if refused.kind is ErrorKind.NOT_ALLOWED:
                raise
            view = await self._service.case(actor, case)
            return self._confirm(
                request,
                actor,
                token,
                view,
                action,
                reason,
                str(refused),
                status=STATUS_BY_KIND[refused.kind],
                fields=fields,
            )
        raise _RedirectError(f"{case_url(case)}?done={action.value}")

    async def _pregnancy_page(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        pregnancy = await self._service.pregnancy(actor, str(params["pregnancy"]))
        client = await self._service.pregnancy_client(pregnancy)
        return self._page(
            request, "pregnancy.html", actor=actor, token=token, view=pregnancy, client=client
        )

    # reprocessing an upload (gateway.reprocess) ----------------------------------------

    def _reprocessing(self, actor: Actor) -> Reprocessor:
        if self._reprocessor is None:
            raise _HttpError(404, "onbekend", "Opnieuw verwerken kan hier niet.")
        if not actor.may(Permission.RESOLVE_CASES):
            raise NotAllowedError(Permission.RESOLVE_CASES)
        return self._reprocessor

    async def _upload(self, traceer_id: str) -> Message:
        message = await self._service.messages.get_message(traceer_id)
        if message is None or message.direction is not Direction.FROM_PARTICIPANT:
            raise _HttpError(404, "onbekend", "Dit bestand bestaat niet.")
        return message

    async def _reprocess_page(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        self._reprocessing(actor)
        message = await self._upload(str(params["traceer"]))
        return self._page(
            request,
            "reprocess.html",
            actor=actor,
            token=token,
            message=message,
            reason="",
            error=None,
            result=None,
        )

    async def _reprocess(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        reprocessor = self._reprocessing(actor)
        traceer = str(params["traceer"])
        await self._upload(traceer)
        reason = _arg(request, "reason")
        try:
            result = await reprocessor.reprocess(traceer, actor, reason)
        except ActionRefusedError as refused:
            if refused.kind is ErrorKind.NOT_ALLOWED:
                raise
            return self._page(
                request,
                "reprocess.html",
                status=STATUS_BY_KIND[refused.kind],
                actor=actor,
                token=token,
                message=await self._upload(traceer),
                reason=reason,
                error=str(refused),
                result=None,
            )
        return self._page(
            request,
            "reprocess.html",
            actor=actor,
            token=token,
            message=await self._upload(traceer),
            result=result,
            reason="",
            error=None,
        )

    async def _api_reprocess(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        reprocessor = self._reprocessing(actor)
        traceer = str(params["traceer"])
        await self._upload(traceer)
        body = _action_request(request)
        if body.fields:
            raise _HttpError(400, "velden-niet-verwacht", "Reprocessing takes no fields.")
        result = await reprocessor.reprocess(traceer, actor, body.reason)
        return self._json(request, reprocess_json(result))

    async def _audit_export(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        entries = await self._service.audit_log(actor, limit=None, export=True)
        request.setHeader(b"content-type", b"application/x-ndjson; charset=utf-8")
        request.setHeader(b"content-disposition", b'attachment; filename="igo-gateway-audit.jsonl"')
        return "".join(
            json.dumps(entry_json(e), ensure_ascii=False) + "\n" for e in entries
        ).encode("utf-8")

    def _confirm(
        self,
        request: server.Request,
        actor: Actor,
        token: str,
        view: CaseView,
        action: CaseAction,
        reason: str,
        error: str | None,
        *,
        status: int = 200,
        fields: Mapping[str, str] | None = None,
    ) -> bytes:
        if action not in view.actions and error is None:
            raise ActionRefusedError(
                "actie-past-niet",
                f"{ACTION_LABELS[action]} past niet bij deze zaak of bij uw rol.",
                kind=ErrorKind.NOT_ALLOWED if not view.actions else ErrorKind.CONFLICT,
            )
        return self._page(
            request,
            "confirm.html",
            status=status,
            actor=actor,
            token=token,
            view=view,
            action=action,
            consequence=_consequence(action, view.case),
            reason=reason,
            reason_required=action in NEEDS_REASON,
            error=error,
            fields=dict(fields or {}),
            field_labels={f.value: label for f, label in FIELD_LABELS.items()},
        )

    async def _search_page(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        """The search form; a POST (CSRF checked by the dispatch) runs it. The BSN field is
        never filled in again on the answer: the number is not repeated anywhere."""
        names = (
            "factuurnummer",
            "reference",
            "traceer_id",
            "participant",
            "insurer",
            "retourcode",
            "date_from",
            "date_to",
        )
        form: dict[str, Any] = {name: _arg(request, name)[:64] for name in names}
        form["unmask"] = _arg(request, "unmask") in ("1", "on")
        bsn = _arg(request, "bsn") if request.method == b"POST" else ""
        result: SearchResult | None = None
        error = None
        status = 200
        if request.method == b"POST":
            try:
                query = SearchQuery(
                    **{n: form[n] or None for n in names if not n.startswith("date_")},
                    date_from=parse_day("date_from", form["date_from"]),
                    date_to=parse_day("date_to", form["date_to"]),
                    bsn=bsn or None,
                )
                result = await self._service.search(actor, query, unmask=form["unmask"])
            except SearchRefusedError as refused:
                error, status = str(refused), STATUS_BY_KIND[refused.kind]
        return self._page(
            request,
            "search.html",
            status=status,
            actor=actor,
            token=token,
            form=form,
            result=result,
            error=error,
            bsn_given=bool(bsn.strip()) and error is None,
        )

    async def _audit_page(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        if not actor.may(Permission.VIEW_AUDIT):  # before any work on the chain
            raise NotAllowedError(Permission.VIEW_AUDIT)
        report = await self._service.verify_audit(incremental=True)
        after = _int_arg(request, "after")
        if after is None:
            after = max(0, report.entries - 200)
        entries: list[AuditEntry] = await self._service.audit_log(actor, after_seq=after, limit=201)
        more = len(entries) > 200
        return self._page(
            request,
            "audit.html",
            actor=actor,
            token=token,
            report=report,
            entries=entries[:200],
            more=more,
        )

    # sessions and CSRF ----------------------------------------------------------------

    async def _session(self, request: server.Request) -> tuple[str | None, Actor | None]:
        token = _cookie(request, self._session_cookie)
        actor = await self._service.authenticate(token, _origin(request))
        return token, actor

    @staticmethod
    def _check_csrf(token: str, given: str) -> None:
        if not given or not hmac.compare_digest(csrf_token(token), given):
            raise _HttpError(
                403,
                "csrf",
                "Het formulier is verlopen of komt niet van deze site; laad de pagina opnieuw.",
            )

    def _set_cookie(self, request: server.Request, name: str, value: str, max_age: int) -> None:
        request.addCookie(
            name.encode("ascii"),
            value.encode("ascii"),
            path=b"/",
            max_age=str(max_age).encode("ascii"),
            secure=self._secure,
            httpOnly=True,
            sameSite=b"strict",
        )

    def _clear_session_cookie(self, request: server.Request) -> None:
        self._set_cookie(request, self._session_cookie, "", 0)

    def _login_form(
        self,
        request: server.Request,
        *,
        error: str | None = None,
        name: str = "",
        status: int = 200,
    ) -> bytes:
        login_csrf = _cookie(request, LOGIN_COOKIE)
        if not login_csrf or len(login_csrf) > 100:
            login_csrf = secrets.token_urlsafe(24)
            self._set_cookie(request, LOGIN_COOKIE, login_csrf, 3600)
        return self._page(
            request, "login.html", status=status, login_csrf=login_csrf, error=error, name=name
        )

    async def _login(self, request: server.Request, params: Params) -> bytes:
        cookie = _cookie(request, LOGIN_COOKIE)
        given = _arg(request, "csrf")
        if not cookie or not given or not hmac.compare_digest(cookie, given):
            raise _HttpError(
                403, "csrf", "Het aanmeldformulier is verlopen; laad de pagina opnieuw."
            )
        name = _arg(request, "name")
        # Whatever session the browser brought ends here: the login gets a new id
        # (no session fixation).
        old = _cookie(request, self._session_cookie)
        try:
            token, _actor = await self._service.login(
                name, _arg(request, "password"), _origin(request)
            )
        except LoginRefusedError as refused:
            message = (
                "Te veel mislukte pogingen; wacht even en probeer het opnieuw."
                if refused.throttled
                else "Onjuiste gebruikersnaam of wachtwoord."
            )
            return self._login_form(
                request, error=message, name=name[:64], status=STATUS_BY_KIND[refused.kind]
            )
        if old:
            await self._service.forget_session(old)
        self._set_cookie(request, self._session_cookie, token, int(self._lifetime.total_seconds()))
        self._set_cookie(request, LOGIN_COOKIE, "", 0)
        raise _RedirectError("/cases")

    # the JSON API ---------------------------------------------------------------------

    async def _api_actor(self, request: server.Request) -> Actor:
        raw_auth = request.getHeader(b"authorization")
        auth = None if raw_auth is None else raw_auth.decode("latin-1")
        origin = _origin(request)
        if auth is not None:
            scheme, _, token = auth.partition(" ")
            actor = await self._service.authenticate(
                token.strip() if scheme.lower() == "bearer" else None, origin
            )
        else:
            session = _cookie(request, self._session_cookie)
            actor = await self._service.authenticate(session, origin)
            method = request.method.decode("ascii", "replace")
            if actor is not None and session is not None and method not in READ_METHODS:
                header = request.getHeader(b"x-csrf-token") or b""
                self._check_csrf(session, header.decode("latin-1"))
        if actor is None:
            request.setHeader(b"www-authenticate", b'Bearer realm="igo-gateway-admin"')
            raise _HttpError(
                401, "niet-aangemeld", "Een geldig API-token of een geldige sessie is nodig."
            )
        return actor

    async def _api_me(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        permissions = sorted(p.value for p in Permission if actor.may(p))
        return self._json(
            request, {"name": actor.name, "role": actor.role.value, "permissions": permissions}
        )

    async def _api_queue(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        return self._json(request, _queue_json(await self._service.queue(actor, _filter(request))))

    async def _api_case(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        view = await self._service.case(actor, str(params["case"]))
        return self._json(request, case_view_json(view))

    async def _api_unmask(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        view = await self._service.case(actor, str(params["case"]), unmask=True)
        return self._json(request, case_view_json(view))

    async def _api_act(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        action = _param(params, "action", CaseAction)
        body = _action_request(request)
        case = await self._service.act(actor, str(params["case"]), action, body.reason, body.fields)
        return self._json(request, case_json(case, self._service.clock()))

    async def _api_pregnancy(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        view = await self._service.pregnancy(actor, str(params["pregnancy"]))
        return self._json(request, pregnancy_json(view))

    async def _api_search(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        # POST only (the route says so): the keys, a BSN among them, go in the body.
        wanted = _search_request(request)
        result = await self._service.search(
            actor, wanted.query(), limit=wanted.limit, unmask=wanted.unmask
        )
        return self._json(request, search_result_json(result))

    async def _api_audit(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        after = _int_arg(request, "after") or 0
        limit = min(_int_arg(request, "limit") or 500, 5000)
        entries = await self._service.audit_log(actor, after_seq=after, limit=limit)
        return self._json(request, {"entries": [entry_json(e) for e in entries]})

    async def _api_audit_verify(
        self, request: server.Request, params: Params, actor: Actor
    ) -> bytes:
        if not actor.may(Permission.VIEW_AUDIT):
            raise NotAllowedError(Permission.VIEW_AUDIT)
        recorded = _arg(request, "head")
        try:
            expected = parse_recorded_head(recorded) if recorded else None
        except ValueError as exc:
            raise _HttpError(400, "kop", str(exc)) from None
        report = await self._service.verify_audit(
            incremental=_arg(request, "full") not in ("1", "true") and expected is None,
            expected=expected,
        )
        return self._json(request, _report_json(report))

    # accounts (administrators) ---------------------------------------------------------

    async def _users_route(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        done = USER_NOTICES.get(_arg(request, "done"))
        return await self._users_page(request, actor, token, notice=done)

    async def _user_operation_route(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        operation = str(params["operation"])
        try:
            await self._user_operation(
                actor,
                str(params["name"]),
                operation,
                password=_arg(request, "password"),
                role=_arg(request, "role"),
                what=_arg(request, "what") or "all",
            )
        except _HttpError as refused:
            if refused.status != 400:
                raise
            return await self._users_page(request, actor, token, error=refused.detail, status=400)
        raise _RedirectError(f"/users?done={operation}")

    async def _users_page(
        self,
        request: server.Request,
        actor: Actor,
        token: str,
        *,
        notice: str | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> bytes:
        users = await self._service.users(actor)
        return self._page(
            request,
            "users.html",
            status=status,
            actor=actor,
            token=token,
            users=users,
            roles=list(Role),
            notice=notice,
            error=error,
        )

    async def _api_users(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        return self._json(
            request, {"users": [user_json(view) for view in await self._service.users(actor)]}
        )

    async def _api_user_operation(
        self, request: server.Request, params: Params, actor: Actor
    ) -> bytes:
        name, operation = str(params["name"]), str(params["operation"])
        body = _user_request(request)
        ended = await self._user_operation(
            actor, name, operation, password=body.password, role=body.role, what=body.what
        )
        return self._json(request, {"user": name, "operation": operation, "ended": ended})

    async def _user_operation(
        self, actor: Actor, name: str, operation: str, *, password: str, role: str, what: str
    ) -> int:
        """One account operation of the site or the API; the sessions and tokens ended.
        The role is checked first (by the service), before anything is read or hashed."""
        service = self._service
        if operation not in USER_OPERATIONS:
            raise _HttpError(404, "onbekend", "Deze gebruikersactie bestaat niet.")
        if not actor.may(Permission.MANAGE_USERS):
            raise NotAllowedError(Permission.MANAGE_USERS)
        try:
            if operation == "disable":
                return await service.disable_user(actor, name)
            if operation == "enable":
                await service.enable_user(actor, name)
                return 0
            if operation == "password":
                return await service.reset_password(actor, name, password)
            if operation == "role":
                try:
                    new_role = Role(role)
                except ValueError:
                    raise _HttpError(400, "rol", "Kies een bestaande rol.") from None
                await service.change_role(actor, name, new_role)
                return 0
            kinds = _REVOKE_KINDS.get(what)
            if kinds is None:
                raise _HttpError(400, "intrekken", "Trek 'all', 'sessions' of 'tokens' in.")
            return await service.revoke_sessions(actor, name, kinds)
        except LookupError:
            raise _HttpError(404, "onbekend", "Deze gebruiker bestaat niet.") from None
        except AccountError as exc:
            raise _HttpError(400, "account", str(exc)) from None

    # bulk actions ---------------------------------------------------------------------

    def _bulk_service(self) -> BulkService:
        if self._bulk is None:
            raise _HttpError(404, "onbekend", "Bulkacties zijn hier niet beschikbaar.")
        return self._bulk

    async def _bulk_preview_page(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        bulk = self._bulk_service()
        query = _filter(request)
        action = _action(_arg(request, "action"))
        preview = await bulk.preview(actor, query, action, None)
        return self._bulk_page(request, actor, token, preview, _arg(request, "reason"), None)

    async def _bulk_create(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        bulk = self._bulk_service()
        query = _filter(request)
        action = _action(_arg(request, "action"))
        reason = _arg(request, "reason")
        try:
            batch = await bulk.create(actor, query, action, reason, _arg(request, "selection"))
        except SelectionChangedError as changed:
            return self._bulk_page(
                request,
                actor,
                token,
                changed.preview,
                reason,
                str(changed),
                status=STATUS_BY_KIND[changed.kind],
            )
        except ActionRefusedError as refused:
            if refused.kind is ErrorKind.NOT_ALLOWED:
                raise
            preview = await bulk.preview(actor, query, action, None)
            return self._bulk_page(
                request,
                actor,
                token,
                preview,
                reason,
                str(refused),
                status=STATUS_BY_KIND[refused.kind],
            )
        raise _RedirectError(f"/batches/{batch.id}")

    async def _batches_page(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        batches = await self._bulk_service().list(actor)
        return self._page(request, "batches.html", actor=actor, token=token, batches=batches)

    async def _batch_page(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        batch = await self._bulk_service().batch(actor, _param(params, "batch", int))
        notice = BULK_NOTICES.get(_arg(request, "done"))
        return self._page(
            request,
            "batch.html",
            actor=actor,
            token=token,
            batch=batch,
            consequence=bulk_consequence(
                batch.action, batch.progress.total, [], confirmation=False
            ),
            notice=notice,
            now=self._service.clock(),
        )

    async def _batch_control(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        batch_id = _param(params, "batch", int)
        control = _param(params, "control", BatchControl)
        await self._bulk_service().control(actor, batch_id, control)
        raise _RedirectError(f"/batches/{batch_id}?done={control.value}")

    def _bulk_page(
        self,
        request: server.Request,
        actor: Actor,
        token: str,
        preview: BatchPreview,
        reason: str,
        error: str | None,
        *,
        status: int = 200,
    ) -> bytes:
        insurers = sorted({c.facts.insurer for c in preview.cases if c.facts.insurer})
        return self._page(
            request,
            "bulk.html",
            status=status,
            actor=actor,
            token=token,
            preview=preview,
            form=_filter_form(preview.query),
            consequence=bulk_consequence(preview.action, len(preview.cases), preview.cases),
            insurers=insurers,
            reason=reason,
            reason_required=preview.action in NEEDS_REASON,
            error=error,
        )

    async def _api_batches(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        batches = await self._bulk_service().list(actor)
        return self._json(request, {"batches": [batch_json(b) for b in batches]})

    async def _api_batch_preview(
        self, request: server.Request, params: Params, actor: Actor
    ) -> bytes:
        bulk = self._bulk_service()
        body = _batch_request(request)
        preview = await bulk.preview(actor, body.query(), _action(body.action), body.reason)
        return self._json(request, preview_json(preview))

    async def _api_batch_create(
        self, request: server.Request, params: Params, actor: Actor
    ) -> bytes:
        bulk = self._bulk_service()
        body = _batch_request(request)
        query, action = body.query(), _action(body.action)
        if body.selection is None:
            raise _HttpError(
                400,
                "selectie-ontbreekt",
                "Give the selection (the preview's digest) that was confirmed.",
            )
        try:
            batch = await bulk.create(actor, query, action, body.reason, body.selection)
        except SelectionChangedError as changed:
            request.setResponseCode(409)
            request.setHeader(b"content-type", b"application/problem+json")
            problem = json.loads(problem_bytes(409, changed.code, str(changed)))
            problem["preview"] = preview_json(changed.preview)
            return json.dumps(problem, ensure_ascii=False).encode("utf-8")
        request.setHeader(b"location", f"/api/batches/{batch.id}".encode("ascii"))
        return self._json(request, batch_json(batch), status=201)

    async def _api_batch(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        batch = await self._bulk_service().batch(actor, _param(params, "batch", int))
        return self._json(request, batch_json(batch, items=True))

    async def _api_batch_control(
        self, request: server.Request, params: Params, actor: Actor
    ) -> bytes:
        batch = await self._bulk_service().control(
            actor, _param(params, "batch", int), _param(params, "control", BatchControl)
        )
        return self._json(request, batch_json(batch))


P = TypeVar("P")


def _param(params: Params, name: str, kind: type[P]) -> P:
    """A route parameter its converter made (see :mod:`adapters.admin.routes`)."""
    value = params[name]
    if not isinstance(value, kind):  # pragma: no cover - the route table guarantees it
        raise TypeError(f"route parameter {name} is no {kind.__name__}")
    return value


def _action(text: str) -> CaseAction:
    try:
        return CaseAction(text)
    except ValueError:
        raise _HttpError(404, "onbekend", "Deze actie bestaat niet.") from None


def _correction_fields(request: server.Request) -> dict[str, str]:
    """The correction form's fields that were filled in."""
    return {f.value: value for f in CorrectionField if (value := _arg(request, f.value).strip())}


def _action_request(request: server.Request) -> ActionRequest:
    content = request.content
    raw = content.read() if content is not None else b""
    try:
        return ActionRequest.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise _HttpError(400, "ongeldig-verzoek", body_problem(exc)) from None


# What is wrong with a request body, by pydantic's error type, in Dutch.
_BODY_PROBLEMS: Final = {
    "missing": "dit veld ontbreekt",
    "extra_forbidden": "dit veld bestaat niet",
    "json_invalid": "geen geldige JSON",
    "json_type": "geen JSON-object",
    "model_type": "geen JSON-object",
    "dict_type": "geen object",
    "string_type": "geen tekst",
    "string_too_long": "te lang",
    "string_too_short": "te kort",
    "int_type": "geen geheel getal",
    "int_parsing": "geen geheel getal",
    "bool_type": "geen ja/nee (true/false)",
    "bool_parsing": "geen ja/nee (true/false)",
    "too_long": "te veel",
    "greater_than_equal": "te klein",
    "less_than_equal": "te groot",
}


def body_problem(exc: ValidationError) -> str:
    """The first problem of a request body: where and what, in Dutch, never the input (it
    may be a password or a BSN)."""
    first = exc.errors(include_input=False)[0]
    where = ".".join(str(p) for p in first["loc"])
    what = _BODY_PROBLEMS.get(first["type"], "ongeldige waarde")
    return f"Ongeldige inhoud: {where}: {what}." if where else f"Ongeldige inhoud: {what}."


def _user_request(request: server.Request) -> UserRequest:
    content = request.content
    raw = content.read() if content is not None else b""
    try:
        return UserRequest.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        # Where and what only, never the input: it may be a password.
        raise _HttpError(400, "ongeldig-verzoek", body_problem(exc)) from None


def _search_request(request: server.Request) -> SearchRequest:
    content = request.content
    raw = content.read() if content is not None else b""
    try:
        return SearchRequest.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        # Only where and what, never the input: it may be a BSN.
        raise _HttpError(400, "ongeldig-verzoek", body_problem(exc)) from None


# --- bulk actions ------------------------------------------------------------------------

BATCH_STATE_LABELS: Final = {
    BatchState.RUNNING: "bezig",
    BatchState.PAUSED: "gepauzeerd",
    BatchState.CANCELLED: "gestopt",
    BatchState.FINISHED: "klaar",
}
ITEM_OUTCOME_LABELS: Final = {
    ItemOutcome.DONE: "gedaan",
    ItemOutcome.SKIPPED: "overgeslagen",
    ItemOutcome.FAILED: "mislukt",
}
CONTROL_LABELS: Final = {
    BatchControl.PAUSE: "Pauzeren",
    BatchControl.RESUME: "Hervatten",
    BatchControl.CANCEL: "Stoppen",
}
BULK_NOTICES: Final = {
    BatchControl.PAUSE.value: "De batch is gepauzeerd; er wordt niets meer gedaan tot u hervat.",
    BatchControl.RESUME.value: "De batch gaat weer verder.",
    BatchControl.CANCEL.value: "De batch is gestopt; wat nog niet gedaan was, blijft ongedaan.",
}
_BULK_EFFECTS: Final = {
    CaseAction.RETRY: "gaat het bestand terug in de wachtrij en wordt het direct opnieuw "
    "aangeboden aan de verzekeraar, met hetzelfde kenmerk en factuurnummer: de verzekeraar "
    "ziet geen tweede declaratie",
    CaseAction.WRITE_OFF: "wordt de zaak afgeboekt met de reden hieronder en verdwijnt ze uit "
    "de wachtrij; er wordt niets verstuurd of teruggemeld",
    CaseAction.REOPEN: "komt de zaak terug in de wachtrij van open zaken",
    CaseAction.NOTE: "komt de notitie hieronder bij de zaak te staan; de toestand van de zaak "
    "verandert niet",
    CaseAction.BREAK_BUNDLE: "wordt de bundel van de fase gebroken: de oorspronkelijke regels "
    "gaan monodisciplinair — doorgestuurd onder de eigen AGB-code van de deelnemer waar het "
    "contract dat toestaat, anders terug naar de deelnemer met retourcode 9001 (zelf "
    "declareren); de reden hieronder geldt voor alle zaken",
    CaseAction.PASS_ON: "krijgt elke deelnemer een retourbestand waarin zijn regels zijn "
    "afgewezen met de retourcodes van de verzekeraar; de IGO declareert die fase niet opnieuw",
    CaseAction.CLOSE_PHASE: "wordt de fase als compleet beschouwd: de bundelronde na elke zaak "
    "declareert wat er dan is",
}


def bulk_consequence(
    action: CaseAction, count: int, cases: list[Case], *, confirmation: bool = True
) -> str:
    """What a batch of ``action`` on ``count`` cases does, in Dutch (``confirmation``: as
    the confirmation says it, before the batch exists). An action without a bulk text of
    its own (a later kind's) is told by its single-case consequence."""
    effect = _BULK_EFFECTS.get(action)
    if effect is None:
        single = _consequence(action, cases[0]) if cases else ACTION_LABELS.get(action, "")
        effect = f"gebeurt dit: {single}"
    zaken = "zaak" if count == 1 else "zaken"
    if not confirmation:
        return (
            f"Voor elk van deze {count} {zaken} {effect}. Elke zaak is apart gedaan en "
            "vastgelegd in het auditlog; een zaak waar de actie niet meer bij paste, is "
            "overgeslagen (met de reden)."
        )
    return (
        f"Voor elk van deze {count} {zaken} {effect}. De gateway doet de zaken één voor één "
        "op de achtergrond, elke zaak apart vastgelegd in het auditlog. Een zaak waar de "
        "actie dan niet meer bij past, wordt overgeslagen (met de reden); zaken die na deze "
        "bevestiging bijkomen, horen er niet bij. U kunt de batch pauzeren, hervatten of "
        "stoppen."
    )


def _bulk_actions(cases: list[Case]) -> list[CaseAction]:
    """The actions that fit at least one of ``cases`` and may run in bulk, in button order."""
    fitting: dict[CaseAction, None] = {}
    for case in cases:
        for action in allowed_actions(case):
            if action not in NEEDS_CASE_INPUT:
                fitting[action] = None
    return list(fitting)


_BULK_GLOBALS: Final[dict[str, Any]] = {
    "bulk_actions": _bulk_actions,
    "batch_state_label": lambda state: BATCH_STATE_LABELS[state],
    "item_outcome_label": lambda outcome: (
        "nog te doen" if outcome is None else ITEM_OUTCOME_LABELS[outcome]
    ),
    "control_label": lambda control: CONTROL_LABELS[control],
    "controls": list(BatchControl),
}


def _filter_form(query: CaseFilter) -> dict[str, str]:
    """A filter as the queue's form fields (for hidden fields and links)."""
    form = {
        "kind": next(iter(query.kinds)).value if len(query.kinds) == 1 else "",
        "insurer": query.insurer or "",
        "participant": query.participant or "",
        "retourcode": query.retourcode or "",
        "min_age_days": "" if query.min_age_days is None else str(query.min_age_days),
        "max_age_days": "" if query.max_age_days is None else str(query.max_age_days),
        "all": "1" if query.include_closed else "",
    }
    return {name: value for name, value in form.items() if value}


class FilterModel(BaseModel):
    """The queue's filters in a JSON body (``CaseFilter`` in the OpenAPI file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kinds: list[CaseKind] = Field(default_factory=list, max_length=20)
    insurer: str | None = Field(default=None, pattern=r"^\d{1,4}$")
    participant: str | None = Field(default=None, pattern=r"^\d{1,8}$")
    retourcode: str | None = Field(default=None, pattern=r"^\d{1,4}$")
    minAgeDays: int | None = Field(default=None, ge=0, le=999_999)
    maxAgeDays: int | None = Field(default=None, ge=0, le=999_999)
    includeClosed: bool = False


class BatchRequest(BaseModel):
    """Body of ``POST /api/batches/preview`` and ``POST /api/batches``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    filter: FilterModel = Field(default_factory=FilterModel)
    action: str = Field(max_length=40)
    reason: str = Field(default="", max_length=2000)
    selection: str | None = Field(default=None, max_length=64)

    def query(self) -> CaseFilter:
        f = self.filter
        return CaseFilter(
            kinds=frozenset(f.kinds),
            insurer=f.insurer,
            participant=f.participant,
            retourcode=f.retourcode,
            min_age_days=f.minAgeDays,
            max_age_days=f.maxAgeDays,
            include_closed=f.includeClosed,
        )


def _batch_request(request: server.Request) -> BatchRequest:
    content = request.content
    raw = content.read() if content is not None else b""
    try:
        return BatchRequest.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise _HttpError(400, "ongeldig-verzoek", body_problem(exc)) from None


def preview_json(preview: BatchPreview) -> dict[str, Any]:
    return {
        "filter": filter_json(preview.query),
        "action": preview.action.value,
        "reason": preview.reason,
        "count": len(preview.cases),
        "kinds": {kind.value: n for kind, n in preview.kinds.items()},
        "leftOut": preview.left_out,
        "leftOutKinds": {kind.value: n for kind, n in preview.left_out_kinds.items()},
        "selection": preview.digest,
        "consequence": bulk_consequence(preview.action, len(preview.cases), preview.cases),
        "cases": [
            {
                "id": c.id,
                "kind": c.kind.value,
                "insurer": c.facts.insurer,
                "participant": c.facts.participant,
                "filename": c.facts.filename,
                "since": _iso(c.facts.since),
                "ageSeconds": int(c.age(preview.now).total_seconds()),
            }
            for c in preview.cases
        ],
    }


def batch_json(batch: Batch, *, items: bool = False) -> dict[str, Any]:
    """A batch; with its cases (``items``) when it was read with them."""
    progress = batch.progress
    value: dict[str, Any] = {
        "id": batch.id,
        "action": batch.action.value,
        "reason": batch.reason,
        "filter": filter_json(batch.query),
        "state": batch.state.value,
        "createdAt": _iso(batch.created_at),
        "createdBy": batch.created_by,
        "updatedAt": _iso(batch.updated_at),
        "progress": {
            "done": progress.done,
            "skipped": progress.skipped,
            "failed": progress.failed,
            "remaining": progress.remaining,
            "total": progress.total,
        },
    }
    if items:
        value["items"] = [
            {
                "position": item.position,
                "caseId": item.case_id,
                "outcome": None if item.outcome is None else item.outcome.value,
                "detail": item.detail,
                "at": _iso(item.at),
            }
            for item in batch.items
        ]
    return value


def build_bulk_service(
    admin_store: AdminStore,
    batch_store: BatchStore,
    clock: Callable[[], datetime],
    metrics_registry: CollectorRegistry | None = None,
    cases: AdminService | None = None,
) -> BulkService:
    """The bulk service for :func:`build_admin_site` and the batch runner (one for both:
    its metrics are registered once). ``cases`` prepares the actions that need a prepared
    effect; :func:`build_admin_site` gives it its own service when it is None."""
    metrics = BulkMetrics(metrics_registry) if metrics_registry is not None else None
    return BulkService(admin_store, batch_store, clock, metrics, cases)


# --- the site ----------------------------------------------------------------------------


def reprocess_json(result: ReprocessResult) -> dict[str, Any]:
    """What reprocessing an upload did (``POST /api/uploads/{traceerId}/reprocess``)."""
    return {
        "traceerId": result.traceer_id,
        "outcome": result.outcome.value,
        "code": result.code,
        "message": result.message,
        "linesAdded": result.lines_added,
        "linesRefreshed": result.lines_refreshed,
        "linesReopened": result.lines_reopened,
        "linesKept": result.lines_kept,
    }


class AdminSite(server.Site):
    """The admin site, with the service behind it (for the gateway's background jobs)."""

    def __init__(
        self,
        service: AdminService,
        config: AdminConfig,
        bulk: BulkService | None = None,
        reprocessor: Reprocessor | None = None,
    ) -> None:
        super().__init__(AdminResource(service, config, bulk, reprocessor))  # type: ignore[no-untyped-call]
        self.service = service
        self.bulk = bulk


async def _run_here(work: Callable[[], Any]) -> Any:
    return work()


def build_admin_site(
    store: MessageStore,
    admin_store: AdminStore,
    registry: LayoutRegistry | None,
    keyring: Keyring | None,
    clock: Callable[[], datetime],
    *,
    config: AdminConfig | None = None,
    metrics_registry: CollectorRegistry | None = None,
    run_in_thread: RunInThread | None = None,
    hasher: PasswordHasher | None = None,
    resolver: Resolver | None = None,
    after_change: Callable[[], Awaitable[object]] | None = None,
    bulk: BulkService | None = None,
    names: Names | None = None,
) -> AdminSite:
    """The admin site on ``store`` (the messages) and ``admin_store`` (accounts, audit,
    cases), with ``registry`` (the EI layouts) to show files, ``clock`` for "now".

    ``keyring`` is for looking up clients by BSN through its keyed index (for the case
    kinds built on declaration lines); ``metrics_registry`` is the gateway's Prometheus
    registry (``Metrics().registry``); ``run_in_thread`` runs password hashing and file
    rendering off the reactor (``deferToThread`` in production); ``bulk`` offers bulk
    actions (:func:`build_bulk_service`; without it the site has none)."""
    config = config or AdminConfig()
    service = AdminService(
        admin=admin_store,
        messages=store,
        layouts=registry,
        clock=clock,
        session_lifetime=timedelta(minutes=config.session_lifetime_minutes),
        metrics=AdminMetrics(metrics_registry) if metrics_registry is not None else None,
    )
    service.resolver = resolver
    service.after_change = after_change
    if names is not None:
        service.names = names
    if hasher is not None:
        service.hasher = hasher
    if run_in_thread is not None:
        service.run_in_thread = run_in_thread
    if isinstance(store, SqlMessageStore):
        service.search_store = SqlSearchStore(store.database, store.codec)
    site = AdminSite(service, config)
    if bulk is not None and bulk.cases is None:
        bulk.cases = service  # the same resolver and re-bundling as single cases
    reprocessor = None
    if isinstance(store, SqlMessageStore) and registry is not None:
        reprocessor = Reprocessor(
            store,
            SqlReprocessStore(store.database, store.codec),
            registry,
            now=clock,
            run_in_thread=run_in_thread or _run_here,
            after_change=after_change,
        )
    site = AdminSite(service, config, bulk, reprocessor)
    site.requestFactory = _AdminRequest
    site.displayTracebacks = False
    return site
