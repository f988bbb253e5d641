"""The admin site's HTML pages: the queue, a case and its actions, a pregnancy,
reprocessing an upload, the search, the audit log, the accounts, and bulk actions with
their batches (the list of routes is in :mod:`adapters.admin.site`; each route names its
handler in :data:`adapters.admin.routes.ADMIN_ROUTES`).

A form is answered by a redirect (303) to the page that shows what it did, or by the
form again with what was wrong. The pages are rendered by :class:`~adapters.admin.render.
Renderer` from ``adapters/admin/templates``, with no JavaScript.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any, Final

from twisted.web import server

from adapters.admin import forms
from adapters.admin.errors import STATUS_BY_KIND, RedirectError, SiteError
from adapters.admin.forms import Params, arg, param
from adapters.admin.handlers import Handlers
from adapters.admin.render import case_url
from gateway.admin.accounts import Actor, Permission, Role
from gateway.admin.audit import AuditEntry, entry_json
from gateway.admin.batches import BatchControl, BatchPreview
from gateway.admin.cases import KINDS, NEEDS_REASON, ActionRefusedError, CaseAction, CaseFilter
from gateway.admin.consequences import bulk_consequence, consequence
from gateway.admin.labels import ACTION_LABELS, FIELD_LABELS
from gateway.admin.search import SearchQuery, SearchRefusedError, SearchResult, parse_day
from gateway.errors import ErrorKind
from gateway.ports.admin import (
    CaseView,
    LoginRefusedError,
    NotAllowedError,
    SelectionChangedError,
)

__all__ = ["BULK_NOTICES", "USER_NOTICES", "Pages"]

USER_NOTICES: Final = {
    "disable": "Gebruiker uitgeschakeld; sessies en API-tokens ingetrokken. Vastgelegd.",
    "enable": "Gebruiker ingeschakeld. Vastgelegd.",
    "password": "Nieuw wachtwoord gezet; sessies en API-tokens ingetrokken. Vastgelegd.",
    "role": "Rol gewijzigd. Vastgelegd.",
    "revoke": "Sessies en API-tokens ingetrokken. Vastgelegd.",
}
BULK_NOTICES: Final = {
    BatchControl.PAUSE.value: "De batch is gepauzeerd; er wordt niets meer gedaan tot u hervat.",
    BatchControl.RESUME.value: "De batch gaat weer verder.",
    BatchControl.CANCEL.value: "De batch is gestopt; wat nog niet gedaan was, blijft ongedaan.",
}
_SEARCH_FIELDS: Final = (
    "factuurnummer",
    "reference",
    "traceer_id",
    "participant",
    "insurer",
    "retourcode",
    "date_from",
    "date_to",
)


class Pages(Handlers):
    """The pages' handlers: ``(request, params)`` for the public ones, ``(request,
    params, token, actor)`` for a logged-in browser (its session token, for the forms'
    CSRF tokens)."""

    # public ---------------------------------------------------------------------------

    async def static_css(self, request: server.Request, params: Params) -> bytes:
        request.setHeader(b"content-type", b"text/css; charset=utf-8")
        request.setHeader(b"cache-control", b"public, max-age=3600")
        return _css()

    async def login_page(self, request: server.Request, params: Params) -> bytes:
        return self._login_form(request)

    async def login(self, request: server.Request, params: Params) -> bytes:
        self.sessions.check_login_csrf(request, arg(request, "csrf"))
        name = arg(request, "name")
        # Whatever session the browser brought ends here: the login gets a new id
        # (no session fixation).
        old = forms.cookie(request, self.sessions.cookie)
        try:
            token, _actor = await self.service.login(
                name, arg(request, "password"), forms.origin(request)
            )
        except LoginRefusedError as refused:
            message = (
                "Te veel mislukte pogingen; wacht even en probeer het opnieuw."
                if refused.throttled
                else "Onjuiste gebruikersnaam of wachtwoord."
            )
            status = STATUS_BY_KIND[refused.kind]  # throttled or unauthenticated
            return self._login_form(request, error=message, name=name[:64], status=status)
        if old:
            await self.service.forget_session(old)
        self.sessions.start(request, token)
        raise RedirectError("/cases")

    def _login_form(
        self,
        request: server.Request,
        *,
        error: str | None = None,
        name: str = "",
        status: int = 200,
    ) -> bytes:
        return self.render.page(
            request,
            "login.html",
            status=status,
            login_csrf=self.sessions.login_csrf(request),
            error=error,
            name=name,
        )

    # cases ----------------------------------------------------------------------------

    async def home(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        raise RedirectError("/cases")

    async def logout(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        await self.service.logout(token, actor)
        self.sessions.end(request)
        raise RedirectError("/login")

    async def queue_page(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        query = forms.case_filter(request)
        queue = await self.service.queue(actor, query)
        form = {
            "kind": arg(request, "kind"),
            "insurer": arg(request, "insurer"),
            "participant": arg(request, "participant"),
            "retourcode": arg(request, "retourcode"),
            "min_age_days": arg(request, "min_age_days"),
            "all": query.include_closed,
        }
        return self.render.page(
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

    async def case_page(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        view = await self.service.case(actor, str(params["case"]))
        done = arg(request, "done")
        notice = None
        if done in CaseAction.__members__.values():
            notice = f"{ACTION_LABELS[done]}: gedaan en vastgelegd."
        return self.render.page(
            request, "case.html", actor=actor, token=token, view=view, notice=notice
        )

    async def unmask_page(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        view = await self.service.case(actor, str(params["case"]), unmask=True)
        return self.render.page(request, "case.html", actor=actor, token=token, view=view)

    async def confirm_page(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        action = param(params, "action", CaseAction)
        view = await self.service.case(actor, str(params["case"]))
        return self._confirm(request, actor, token, view, action, "", None)

    async def act(self, request: server.Request, params: Params, token: str, actor: Actor) -> bytes:
        case = str(params["case"])
        action = param(params, "action", CaseAction)
        reason = arg(request, "reason")
        fields = forms.correction_fields(request) if action is CaseAction.RESUBMIT else {}
        try:
            await self.service.act(actor, case, action, reason, fields)
        except ActionRefusedError as refused:
            if refused.kind is ErrorKind.NOT_ALLOWED:
                raise
            view = await self.service.case(actor, case)
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
        raise RedirectError(f"{case_url(case)}?done={action.value}")

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
        return self.render.page(
            request,
            "confirm.html",
            status=status,
            actor=actor,
            token=token,
            view=view,
            action=action,
            consequence=consequence(action, view.case),
            reason=reason,
            reason_required=action in NEEDS_REASON,
            error=error,
            fields=dict(fields or {}),
            field_labels={f.value: label for f, label in FIELD_LABELS.items()},
        )

    async def pregnancy_page(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        pregnancy = await self.service.pregnancy(actor, str(params["pregnancy"]))
        client = await self.service.pregnancy_client(pregnancy)
        return self.render.page(
            request, "pregnancy.html", actor=actor, token=token, view=pregnancy, client=client
        )

    # reprocessing an upload (gateway.reprocess) ----------------------------------------

    async def reprocess_page(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        self.reprocessing(actor)
        message = await self.upload(str(params["traceer"]))
        return self.render.page(
            request,
            "reprocess.html",
            actor=actor,
            token=token,
            message=message,
            reason="",
            error=None,
            result=None,
        )

    async def reprocess(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        reprocessor = self.reprocessing(actor)
        traceer = str(params["traceer"])
        await self.upload(traceer)
        reason = arg(request, "reason")
        try:
            result = await reprocessor.reprocess(traceer, actor, reason)
        except ActionRefusedError as refused:
            if refused.kind is ErrorKind.NOT_ALLOWED:
                raise
            return self.render.page(
                request,
                "reprocess.html",
                status=STATUS_BY_KIND[refused.kind],
                actor=actor,
                token=token,
                message=await self.upload(traceer),
                reason=reason,
                error=str(refused),
                result=None,
            )
        return self.render.page(
            request,
            "reprocess.html",
            actor=actor,
            token=token,
            message=await self.upload(traceer),
            result=result,
            reason="",
            error=None,
        )

    # search and audit -----------------------------------------------------------------

    async def search_page(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        """The search form; a POST (CSRF checked by the dispatch) runs it. The BSN field is
        never filled in again on the answer: the number is not repeated anywhere."""
        form: dict[str, Any] = {name: arg(request, name)[:64] for name in _SEARCH_FIELDS}
        form["unmask"] = arg(request, "unmask") in ("1", "on")
        bsn = arg(request, "bsn") if request.method == b"POST" else ""
        result: SearchResult | None = None
        error = None
        status = 200
        if request.method == b"POST":
            try:
                query = SearchQuery(
                    **{n: form[n] or None for n in _SEARCH_FIELDS if not n.startswith("date_")},
                    date_from=parse_day("date_from", form["date_from"]),
                    date_to=parse_day("date_to", form["date_to"]),
                    bsn=bsn or None,
                )
                result = await self.service.search(actor, query, unmask=form["unmask"])
            except SearchRefusedError as refused:
                error, status = str(refused), STATUS_BY_KIND[refused.kind]
        return self.render.page(
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

    async def audit_page(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        if not actor.may(Permission.VIEW_AUDIT):  # before any work on the chain
            raise NotAllowedError(Permission.VIEW_AUDIT)
        report = await self.service.verify_audit(incremental=True)
        after = forms.int_arg(request, "after")
        if after is None:
            after = max(0, report.entries - 200)
        entries: list[AuditEntry] = await self.service.audit_log(actor, after_seq=after, limit=201)
        more = len(entries) > 200
        return self.render.page(
            request,
            "audit.html",
            actor=actor,
            token=token,
            report=report,
            entries=entries[:200],
            more=more,
        )

    async def audit_export(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        entries = await self.service.audit_log(actor, limit=None, export=True)
        request.setHeader(b"content-type", b"application/x-ndjson; charset=utf-8")
        request.setHeader(b"content-disposition", b'attachment; filename="igo-gateway-audit.jsonl"')
        return "".join(
            json.dumps(entry_json(e), ensure_ascii=False) + "\n" for e in entries
        ).encode("utf-8")

    # accounts (administrators) ---------------------------------------------------------

    async def users_route(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        done = USER_NOTICES.get(arg(request, "done"))
        return await self._users_page(request, actor, token, notice=done)

    async def user_operation_route(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        operation = str(params["operation"])
        try:
            await self.user_operation(
                actor,
                str(params["name"]),
                operation,
                password=arg(request, "password"),
                role=arg(request, "role"),
                what=arg(request, "what") or "all",
            )
        except SiteError as refused:
            if refused.kind is not ErrorKind.INVALID:
                raise
            return await self._users_page(
                request, actor, token, error=refused.message, status=refused.status
            )
        raise RedirectError(f"/users?done={operation}")

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
        users = await self.service.users(actor)
        return self.render.page(
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

    # bulk actions ---------------------------------------------------------------------

    async def bulk_preview_page(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        bulk = self.bulk_service()
        query = forms.case_filter(request)
        action = forms.action(arg(request, "action"))
        preview = await bulk.preview(actor, query, action, None)
        return self._bulk_page(request, actor, token, preview, arg(request, "reason"), None)

    async def bulk_create(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        bulk = self.bulk_service()
        query = forms.case_filter(request)
        action = forms.action(arg(request, "action"))
        reason = arg(request, "reason")
        try:
            batch = await bulk.create(actor, query, action, reason, arg(request, "selection"))
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
        raise RedirectError(f"/batches/{batch.id}")

    async def batches_page(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        batches = await self.bulk_service().list(actor)
        return self.render.page(request, "batches.html", actor=actor, token=token, batches=batches)

    async def batch_page(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        batch = await self.bulk_service().batch(actor, param(params, "batch", int))
        notice = BULK_NOTICES.get(arg(request, "done"))
        return self.render.page(
            request,
            "batch.html",
            actor=actor,
            token=token,
            batch=batch,
            consequence=bulk_consequence(
                batch.action, batch.progress.total, [], confirmation=False
            ),
            notice=notice,
            now=self.service.clock(),
        )

    async def batch_control(
        self, request: server.Request, params: Params, token: str, actor: Actor
    ) -> bytes:
        batch_id = param(params, "batch", int)
        control = param(params, "control", BatchControl)
        await self.bulk_service().control(actor, batch_id, control)
        raise RedirectError(f"/batches/{batch_id}?done={control.value}")

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
        return self.render.page(
            request,
            "bulk.html",
            status=status,
            actor=actor,
            token=token,
            preview=preview,
            form=forms.filter_form(preview.query),
            consequence=bulk_consequence(preview.action, len(preview.cases), preview.cases),
            insurers=insurers,
            reason=reason,
            reason_required=preview.action in NEEDS_REASON,
            error=error,
        )


@cache
def _css() -> bytes:
    return resources.files("adapters.admin").joinpath("static/admin.css").read_bytes()
