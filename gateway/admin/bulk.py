"""The bulk-action service: previews, batches and their controls, each checked against the
actor's role (:attr:`~gateway.admin.accounts.Permission.BULK_ACTIONS` to make or steer a
batch, :attr:`~gateway.admin.accounts.Permission.VIEW_CASES` to see one) and audited;
and :class:`BatchRunner`, which does the running batches' cases in the background.

The site, the JSON API and the command line all go through :class:`BulkService`, as
they go through :class:`~gateway.admin.service.AdminService` for single cases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from twisted.logger import Logger

from gateway.admin.accounts import Actor, Permission
from gateway.admin.batches import (
    MAX_BATCH_CASES,
    Batch,
    BatchControl,
    BatchPreview,
    ItemOutcome,
    NewBatch,
    NextStep,
    StepResult,
    batch_subject,
    preview_batch,
)
from gateway.admin.cases import ActionRefusedError, CaseAction, CaseFilter
from gateway.admin.metrics import BulkMetrics
from gateway.admin.service import AdminService
from gateway.errors import ErrorKind, NotFoundError
from gateway.ports.admin import AdminStore, BatchStore, NotAllowedError, SelectionChangedError
from gateway.ports.messages import StoreUnavailableError
from gateway.ports.resolution import Effect

__all__ = ["BatchRunner", "BulkService"]

log = Logger()

STEPS_PER_RUN: Final = 25


@dataclass
class BulkService:
    admin: AdminStore
    batches: BatchStore
    clock: Callable[[], datetime]
    metrics: BulkMetrics | None = None
    # The admin service of single cases: prepares the effects that some actions need
    # (breaking a bundle, passing a rejection on, closing a phase) and re-decides after.
    cases: AdminService | None = None

    async def preview(
        self, actor: Actor, query: CaseFilter, action: CaseAction, reason: str | None
    ) -> BatchPreview:
        """What a batch would do now (nothing is stored or changed); ``reason`` None: not
        asked yet, so not checked."""
        self._require(actor, Permission.BULK_ACTIONS)
        every = await self.admin.cases()
        return preview_batch(every, query, action, reason, self.clock())

    async def create(
        self, actor: Actor, query: CaseFilter, action: CaseAction, reason: str, digest: str
    ) -> Batch:
        """Store a batch of what the preview with ``digest`` showed, to run in the
        background; raises :class:`SelectionChangedError` if the selection is another now."""
        preview = await self.preview(actor, query, action, reason)
        if preview.digest != digest:
            raise SelectionChangedError(preview)
        if not preview.cases:
            raise ActionRefusedError(
                "lege-selectie",
                "Er is geen zaak waar deze actie bij past.",
                kind=ErrorKind.CONFLICT,
            )
        if preview.too_many:
            raise ActionRefusedError(
                "te-veel-zaken",
                f"Een batch heeft hoogstens {MAX_BATCH_CASES} zaken; verfijn het filter.",
                kind=ErrorKind.INVALID,
            )
        now = self.clock()
        batch = await self.batches.create_batch(
            NewBatch(
                action=action,
                reason=preview.reason,
                query=query,
                case_ids=tuple(preview.case_ids),
                kinds=preview.kinds,
                created_at=now,
                created_by=actor.name,
                role=actor.role.value,
                origin=actor.origin,
            )
        )
        if self.metrics is not None:
            self.metrics.batches.labels(action.value).inc()
        log.info(
            "bulk batch {batch} created: {action} on {count} cases",
            batch=batch.id,
            action=action.value,
            count=batch.progress.total,
        )
        return batch

    async def batch(self, actor: Actor, batch_id: int) -> Batch:
        """One batch with its cases and their outcomes (NotFoundError if there is none)."""
        self._require(actor, Permission.VIEW_CASES)
        found = await self.batches.batch(batch_id, items=True)
        if found is None:
            raise NotFoundError(batch_subject(batch_id))
        return found

    async def list(self, actor: Actor, limit: int = 100) -> list[Batch]:
        self._require(actor, Permission.VIEW_CASES)
        return await self.batches.batches(limit)

    async def control(self, actor: Actor, batch_id: int, control: BatchControl) -> Batch:
        """Pause, resume or cancel a batch (audited)."""
        self._require(actor, Permission.BULK_ACTIONS)
        batch = await self.batches.control_batch(batch_id, control, actor, self.clock())
        if self.metrics is not None:
            self.metrics.controls.labels(control.value).inc()
        log.info("bulk batch {batch}: {control}", batch=batch_id, control=control.value)
        return batch

    async def step(self) -> StepResult | None:
        """Do the next case of the oldest running batch (the runner's work)."""
        taken = await self.batches.next_step(self.clock())
        if taken is None or isinstance(taken, StepResult):
            result = taken
        else:
            effect, refused = await self._prepare(taken)
            result = await self.batches.do_step(taken, effect, refused, self.clock())
            if result.outcome is ItemOutcome.DONE and self.cases is not None and effect is not None:
                await self.cases.after_batch_action(taken.action)
        if result is not None and self.metrics is not None:
            if result.finished:
                self.metrics.finished.inc()
            elif result.outcome is not None:
                kind = result.kind.value if result.kind is not None else "unknown"
                self.metrics.cases.labels(kind, result.action.value, result.outcome.value).inc()
        if result is not None and result.finished:
            log.info("bulk batch {batch} finished", batch=result.batch_id)
        return result

    async def _prepare(self, step: NextStep) -> tuple[Effect | None, str | None]:
        """The effect the step's action needs, or why it cannot be prepared (the case is
        then skipped with that reason)."""
        if self.cases is None:
            return None, None  # actions that need an effect refuse themselves in the store
        try:
            effect = await self.cases.prepare_for_batch(
                step.actor, step.case_id, step.action, step.reason
            )
        except ActionRefusedError as refused:
            return None, str(refused)
        except LookupError:
            return None, "De zaak bestaat niet meer."
        except StoreUnavailableError:
            raise  # the whole step is tried again when the store is back
        except Exception as error:  # the case cannot be prepared: skipped, the batch goes on
            log.warn(
                "bulk batch {batch}: preparing case action {action} failed ({error})",
                batch=step.batch_id,
                action=step.action.value,
                error=type(error).__name__,
            )
            return None, f"Kon niet worden voorbereid ({type(error).__name__})."
        return effect, None

    @staticmethod
    def _require(actor: Actor, permission: Permission) -> None:
        if not actor.may(permission):
            raise NotAllowedError(permission)


@dataclass
class BatchRunner:
    """Works through the running batches: up to ``steps`` cases per :meth:`run_once` (a
    :class:`~gateway.repeating.Repeating` job in ``serve`` and the dev server), each its
    own transaction. Nothing is held in memory between runs: after a restart it goes on
    from the store."""

    service: BulkService
    steps: int = STEPS_PER_RUN

    async def run_once(self) -> int:
        """How many steps were done (0: no batch runs)."""
        done = 0
        try:
            while done < self.steps:
                result = await self.service.step()
                if result is None:
                    break
                done += 1
        except StoreUnavailableError as unavailable:
            log.warn("bulk batches wait for the store: {error}", error=str(unavailable))
        except Exception:
            log.failure("a bulk step failed; nothing of it was stored, it is tried again")
        return done
