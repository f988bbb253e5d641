"""The admin site's JSON API under ``/api/``, documented in
``schemas/admin-api.openapi.json``: the same operations as the pages, for an API client
(``Authorization: Bearer <token>`` from ``igo-gateway admin create-token``, or the
session cookie plus an ``X-CSRF-Token`` header). Answers are the core's JSON
(:mod:`gateway.admin.serialise`); errors are ``application/problem+json``
(:mod:`adapters.admin.errors`). The handler for each route is named in
:data:`adapters.admin.routes.ADMIN_ROUTES`."""

from __future__ import annotations

import json

from twisted.web import server

from adapters.admin import forms
from adapters.admin.errors import SiteError, problem
from adapters.admin.forms import (
    ActionRequest,
    BatchRequest,
    Params,
    SearchRequest,
    UserRequest,
    arg,
    int_arg,
    param,
)
from adapters.admin.handlers import Handlers
from adapters.epd_api.http import problem_bytes
from gateway.admin.accounts import Actor, Permission
from gateway.admin.audit import entry_json, parse_recorded_head
from gateway.admin.batches import BatchControl
from gateway.admin.cases import CaseAction
from gateway.admin.serialise import (
    batch_json,
    case_json,
    case_view_json,
    me_json,
    pregnancy_json,
    preview_json,
    queue_json,
    report_json,
    reprocess_json,
    search_result_json,
    user_json,
)
from gateway.errors import ErrorKind
from gateway.ports.admin import NotAllowedError, SelectionChangedError

__all__ = ["Api"]


class Api(Handlers):
    """The API's handlers: ``(request, params, actor)``, the actor already known."""

    async def api_me(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        return self.render.json(request, me_json(actor))

    async def api_queue(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        queue = await self.service.queue(actor, forms.case_filter(request))
        return self.render.json(request, queue_json(queue))

    async def api_case(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        view = await self.service.case(actor, str(params["case"]))
        return self.render.json(request, case_view_json(view))

    async def api_unmask(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        view = await self.service.case(actor, str(params["case"]), unmask=True)
        return self.render.json(request, case_view_json(view))

    async def api_act(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        action = param(params, "action", CaseAction)
        body = forms.body(request, ActionRequest)
        case = await self.service.act(actor, str(params["case"]), action, body.reason, body.fields)
        return self.render.json(request, case_json(case, self.service.clock()))

    async def api_pregnancy(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        view = await self.service.pregnancy(actor, str(params["pregnancy"]))
        return self.render.json(request, pregnancy_json(view))

    async def api_reprocess(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        reprocessor = self.reprocessing(actor)
        traceer = str(params["traceer"])
        await self.upload(traceer)
        body = forms.body(request, ActionRequest)
        if body.fields:
            raise SiteError(
                ErrorKind.INVALID, "velden-niet-verwacht", "Reprocessing takes no fields."
            )
        result = await reprocessor.reprocess(traceer, actor, body.reason)
        return self.render.json(request, reprocess_json(result))

    async def api_search(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        # POST only (the route says so): the keys, a BSN among them, go in the body.
        wanted = forms.body(request, SearchRequest)
        result = await self.service.search(
            actor, wanted.query(), limit=wanted.limit, unmask=wanted.unmask
        )
        return self.render.json(request, search_result_json(result))

    async def api_audit(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        after = int_arg(request, "after") or 0
        limit = min(int_arg(request, "limit") or 500, 5000)
        entries = await self.service.audit_log(actor, after_seq=after, limit=limit)
        return self.render.json(request, {"entries": [entry_json(e) for e in entries]})

    async def api_audit_verify(
        self, request: server.Request, params: Params, actor: Actor
    ) -> bytes:
        if not actor.may(Permission.VIEW_AUDIT):
            raise NotAllowedError(Permission.VIEW_AUDIT)
        recorded = arg(request, "head")
        try:
            expected = parse_recorded_head(recorded) if recorded else None
        except ValueError as exc:
            raise SiteError(ErrorKind.INVALID, "kop", str(exc)) from None
        report = await self.service.verify_audit(
            incremental=arg(request, "full") not in ("1", "true") and expected is None,
            expected=expected,
        )
        return self.render.json(request, report_json(report))

    # accounts (administrators) ---------------------------------------------------------

    async def api_users(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        users = await self.service.users(actor)
        return self.render.json(request, {"users": [user_json(view) for view in users]})

    async def api_user_operation(
        self, request: server.Request, params: Params, actor: Actor
    ) -> bytes:
        name, operation = str(params["name"]), str(params["operation"])
        body = forms.body(request, UserRequest)
        ended = await self.user_operation(
            actor, name, operation, password=body.password, role=body.role, what=body.what
        )
        return self.render.json(request, {"user": name, "operation": operation, "ended": ended})

    # bulk actions ---------------------------------------------------------------------

    async def api_batches(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        batches = await self.bulk_service().list(actor)
        return self.render.json(request, {"batches": [batch_json(b) for b in batches]})

    async def api_batch_preview(
        self, request: server.Request, params: Params, actor: Actor
    ) -> bytes:
        bulk = self.bulk_service()
        body = forms.body(request, BatchRequest)
        preview = await bulk.preview(actor, body.query(), forms.action(body.action), body.reason)
        return self.render.json(request, preview_json(preview))

    async def api_batch_create(
        self, request: server.Request, params: Params, actor: Actor
    ) -> bytes:
        bulk = self.bulk_service()
        body = forms.body(request, BatchRequest)
        query, action = body.query(), forms.action(body.action)
        if body.selection is None:
            raise SiteError(
                ErrorKind.INVALID,
                "selectie-ontbreekt",
                "Give the selection (the preview's digest) that was confirmed.",
            )
        try:
            batch = await bulk.create(actor, query, action, body.reason, body.selection)
        except SelectionChangedError as changed:
            # The problem, with the preview as it is now (for a new confirmation).
            answer = problem(changed)
            request.setResponseCode(answer.status)
            request.setHeader(b"content-type", b"application/problem+json")
            body = json.loads(problem_bytes(answer.status, answer.code, answer.message))
            body["preview"] = preview_json(changed.preview)
            return json.dumps(body, ensure_ascii=False).encode("utf-8")
        request.setHeader(b"location", f"/api/batches/{batch.id}".encode("ascii"))
        return self.render.json(request, batch_json(batch), status=201)

    async def api_batch(self, request: server.Request, params: Params, actor: Actor) -> bytes:
        batch = await self.bulk_service().batch(actor, param(params, "batch", int))
        return self.render.json(request, batch_json(batch, items=True))

    async def api_batch_control(
        self, request: server.Request, params: Params, actor: Actor
    ) -> bytes:
        batch = await self.bulk_service().control(
            actor, param(params, "batch", int), param(params, "control", BatchControl)
        )
        return self.render.json(request, batch_json(batch))
