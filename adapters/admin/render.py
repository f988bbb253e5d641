"""The admin site's answers as bytes: HTML pages from the Jinja2 templates in
``adapters/admin/templates`` (autoescaped, undefined names an error) and JSON.

:class:`Renderer` holds the template environment with the filters the templates use:
labels (:mod:`gateway.admin.labels`), names for codes (the service's :class:`~gateway.
admin.labels.Names`, read when a page is shown), a case's history grouped as a person
reads it (:func:`group_history`) and a few words on what a case or a search hit is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final
from urllib.parse import quote

import jinja2
from twisted.web import server

from gateway.admin import labels
from gateway.admin.accounts import Actor, Permission, csrf_token
from gateway.admin.audit import AuditEntry
from gateway.admin.batches import NEEDS_CASE_INPUT, BatchControl
from gateway.admin.cases import KINDS, Case, CaseAction, CaseKind, allowed_actions
from gateway.admin.detail import LineView
from gateway.admin.labels import FIELD_LABELS, ClientView, Names, dutch
from gateway.admin.search import HitKind, SearchHit
from gateway.loading import describe
from gateway.ports.resolution import Field as CorrectionField
from gateway.rules.model import Settings

__all__ = [
    "HistoryRow",
    "Renderer",
    "case_subject",
    "case_url",
    "group_history",
    "hit_state",
]

EXPECTED_BIRTH_DAYS: Final = Settings("").expected_birth_days  # modelled, as the rules have it

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


def hit_state(hit: SearchHit) -> str:
    """A search hit's state in words: the insurer's verdict where there is one (a line's,
    or a claimed line's from the lines it absorbed), else where it stands."""
    if hit.outcome:
        return labels.SEARCH_OUTCOMES.get(hit.outcome, dutch(hit.outcome))
    state = hit.state or ""
    if hit.kind is HitKind.LINE:
        return labels.LINE_STATE_LABELS.get(state, dutch(state) or "—")
    if hit.kind in (HitKind.CLAIM, HitKind.OUTBOUND):
        return labels.OUTBOUND_STATE_LABELS.get(state, state or "—")
    return state.replace("_", " ") or "—"  # a message's status is Dutch already


def _bulk_actions(cases: list[Case]) -> list[CaseAction]:
    """The actions that fit at least one of ``cases`` and may run in bulk, in button order."""
    fitting: dict[CaseAction, None] = {}
    for case in cases:
        for action in allowed_actions(case):
            if action not in NEEDS_CASE_INPUT:
                fitting[action] = None
    return list(fitting)


def _field_label(name: str) -> str:
    if name in CorrectionField.__members__.values():
        return FIELD_LABELS.get(CorrectionField(name), name)
    return name


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("adapters.admin", "templates"),
        autoescape=True,  # every value is escaped, whatever the template's name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        age=labels.age_text,
        when=labels.local_time,  # local time (Europe/Amsterdam), as the administrator's clock
        case_url=case_url,
        describe=describe,
        kind_label=lambda kind: KINDS[kind].label,
        state_label=lambda state: labels.STATE_LABELS[state],
        action_label=lambda action: labels.ACTION_LABELS[action],
        role_label=lambda role: labels.ROLE_LABELS[role],
        audit_label=lambda action: labels.AUDIT_LABELS.get(action, action),
        euro=labels.euro_text,
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
        outcome_label=lambda outcome: labels.OUTCOME_LABELS.get(outcome or "", outcome or "—"),
        field_label=_field_label,
        bulk_actions=_bulk_actions,
        batch_state_label=lambda state: labels.BATCH_STATE_LABELS[state],
        item_outcome_label=lambda outcome: (
            "nog te doen" if outcome is None else labels.ITEM_OUTCOME_LABELS[outcome]
        ),
        control_label=lambda control: labels.CONTROL_LABELS[control],
        controls=list(BatchControl),
    )
    return env


class Renderer:
    """Pages and JSON for the site's answers. ``names`` gives the names for codes when a
    page is shown (the gateway may set them after the site is built); ``bulk`` says
    whether the site offers bulk actions (the menu shows them)."""

    def __init__(self, names: Callable[[], Names], *, bulk: bool) -> None:
        self._names = names
        self._bulk = bulk
        self._env = _environment()
        self._env.globals.update(
            participant=lambda agb: self._names().participant(agb),
            insurer=lambda uzovi: self._names().insurer(uzovi),
            prestatie=lambda code: self._names().prestatie(code),
            pregnancy_label=self._pregnancy_label,
            say=self._say,
        )

    def page(
        self,
        request: server.Request,
        template: str,
        *,
        status: int = 200,
        actor: Actor | None = None,
        token: str | None = None,
        **context: Any,
    ) -> bytes:
        """``template`` as the answer, for ``actor`` (its menu) with the CSRF token of
        session ``token`` for its forms."""
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        page = self._env.get_template(template).render(
            actor=actor,
            csrf=csrf_token(token) if token else "",
            may_audit=actor is not None and actor.may(Permission.VIEW_AUDIT),
            may_manage_users=actor is not None and actor.may(Permission.MANAGE_USERS),
            may_resolve=actor is not None and actor.may(Permission.RESOLVE_CASES),
            may_unmask=actor is not None and actor.may(Permission.UNMASK),
            may_bulk=self._bulk and actor is not None and actor.may(Permission.BULK_ACTIONS),
            notice=context.pop("notice", None),
            **context,
        )
        return page.encode("utf-8")

    @staticmethod
    def json(request: server.Request, value: object, status: int = 200) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(value, ensure_ascii=False).encode("utf-8")

    def _say(self, text: str | None) -> str:
        """A case text in Dutch with names beside the codes it mentions: "verzekeraar
        3311" and the participants' AGB codes."""
        names = self._names()
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
            ln.prestatie_date for ln in lines if ln.prestatiecode in self._names().birth_codes
        ]
        own = [ln.prestatie_date for ln in lines]
        expected = min(own) + timedelta(days=EXPECTED_BIRTH_DAYS) if own and not births else None
        return labels.pregnancy_text(client, pregnancy, min(births, default=None), expected)
