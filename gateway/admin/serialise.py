"""The admin JSON: the admin models as JSON objects (camelCase keys, ISO dates), as the
admin API answers them (``schemas/admin-api.openapi.json``) and the command line prints
them with ``--json``. A model in, a ``dict`` out, nothing else done: no store, no clock
(the time a case's age is counted from is given). Texts for people are in Dutch
(:mod:`gateway.admin.labels`); retourcodes carry their meaning, from the shipped list
(:func:`gateway.loading.describe`, read once)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from gateway.admin.accounts import Actor, Permission
from gateway.admin.audit import ChainReport, entry_json
from gateway.admin.batches import Batch, BatchPreview, filter_json
from gateway.admin.cases import KINDS, Case
from gateway.admin.consequences import bulk_consequence
from gateway.admin.detail import CaseDetail, ClaimView, DecisionView, LineView, PregnancyView
from gateway.admin.fileview import FileView
from gateway.admin.labels import PHASE_LABELS, dutch
from gateway.admin.search import SearchHit, SearchResult
from gateway.loading import describe
from gateway.ports.admin import CaseView, Queue, UserView
from gateway.ports.reprocess import ReprocessResult

__all__ = [
    "batch_json",
    "case_json",
    "case_view_json",
    "claim_json",
    "decision_json",
    "detail_json",
    "file_json",
    "hit_json",
    "line_json",
    "me_json",
    "pregnancy_json",
    "preview_json",
    "queue_json",
    "report_json",
    "reprocess_json",
    "search_result_json",
    "user_json",
]


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
            k: PHASE_LABELS.get(v, dutch(v)) if k == "fase" else dutch(v)
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


def file_json(file: FileView | None) -> dict[str, Any] | None:
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
        "file": file_json(view.file),
        "detail": detail_json(view.detail),
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


def line_json(line: LineView) -> dict[str, Any]:
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


def claim_json(claim: ClaimView) -> dict[str, Any]:
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


def decision_json(decision: DecisionView) -> dict[str, Any]:
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


def detail_json(detail: CaseDetail) -> dict[str, Any]:
    return {
        "claim": claim_json(detail.claim) if detail.claim else None,
        "versions": [claim_json(v) for v in detail.versions],
        "lines": [line_json(ln) for ln in detail.lines],
        "decisions": [decision_json(d) for d in detail.decisions],
        "pregnancy": detail.pregnancy,
    }


def pregnancy_json(view: PregnancyView) -> dict[str, Any]:
    return {
        "pregnancy": view.pregnancy,
        "lines": [line_json(ln) for ln in view.lines],
        "claims": [claim_json(c) for c in view.claims],
        "decisions": [decision_json(d) for d in view.decisions],
    }


def queue_json(queue: Queue) -> dict[str, Any]:
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


def report_json(report: ChainReport) -> dict[str, Any]:
    return {
        "intact": report.intact,
        "entries": report.entries,
        "headHash": report.head_hash,
        "firstBadSeq": report.first_bad_seq,
        "problem": report.problem,
    }


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


def me_json(actor: Actor) -> dict[str, Any]:
    """Who is asking (``GET /api/me``): name, role and what the role may."""
    permissions = sorted(p.value for p in Permission if actor.may(p))
    return {"name": actor.name, "role": actor.role.value, "permissions": permissions}
