"""What the admin site's pages (:mod:`adapters.admin.pages`) and its JSON API
(:mod:`adapters.admin.api`) share: the services behind them, known only by their ports
(:class:`~gateway.ports.admin.Administration`, :class:`~gateway.ports.admin.BulkActions`,
:class:`~gateway.ports.reprocess.UploadReprocessing`; the composition root,
:mod:`adapters.admin.site`, hands in the real ones), how they answer, and the operations
both offer (an account operation, reprocessing an upload, bulk actions where the site has
them)."""

from __future__ import annotations

from typing import Final

from adapters.admin.errors import SiteError
from adapters.admin.render import Renderer
from adapters.admin.session import Sessions
from gateway.admin.accounts import AccountError, Actor, Permission, Role
from gateway.errors import ErrorKind
from gateway.ports.admin import Administration, BulkActions, NotAllowedError
from gateway.ports.messages import Direction, Message
from gateway.ports.reprocess import UploadReprocessing

__all__ = ["USER_OPERATIONS", "Handlers"]

USER_OPERATIONS: Final = ("disable", "enable", "password", "role", "revoke")
_REVOKE_KINDS: Final = {
    "all": frozenset({"session", "token"}),
    "sessions": frozenset({"session"}),
    "tokens": frozenset({"token"}),
}


class Handlers:
    """The route handlers' common ground. Every decision is the service's."""

    def __init__(
        self,
        service: Administration,
        render: Renderer,
        sessions: Sessions,
        bulk: BulkActions | None = None,
        reprocessor: UploadReprocessing | None = None,
    ) -> None:
        self.service = service
        self.render = render
        self.sessions = sessions
        self.bulk = bulk
        self.reprocessor = reprocessor

    def bulk_service(self) -> BulkActions:
        if self.bulk is None:
            raise SiteError(
                ErrorKind.NOT_FOUND, "onbekend", "Bulkacties zijn hier niet beschikbaar."
            )
        return self.bulk

    def reprocessing(self, actor: Actor) -> UploadReprocessing:
        """The reprocessor (:class:`~gateway.ports.reprocess.UploadReprocessing`), if
        ``actor`` may use it."""
        if self.reprocessor is None:
            raise SiteError(ErrorKind.NOT_FOUND, "onbekend", "Opnieuw verwerken kan hier niet.")
        if not actor.may(Permission.RESOLVE_CASES):
            raise NotAllowedError(Permission.RESOLVE_CASES)
        return self.reprocessor

    async def upload(self, traceer_id: str) -> Message:
        """A participant's upload, by its traceerId."""
        message = await self.service.messages.get_message(traceer_id)
        if message is None or message.direction is not Direction.FROM_PARTICIPANT:
            raise SiteError(ErrorKind.NOT_FOUND, "onbekend", "Dit bestand bestaat niet.")
        return message

    async def user_operation(
        self, actor: Actor, name: str, operation: str, *, password: str, role: str, what: str
    ) -> int:
        """One account operation of the site or the API; the sessions and tokens ended.
        The role is checked first (by the service), before anything is read or hashed."""
        service = self.service
        if operation not in USER_OPERATIONS:
            raise SiteError(ErrorKind.NOT_FOUND, "onbekend", "Deze gebruikersactie bestaat niet.")
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
                    raise SiteError(ErrorKind.INVALID, "rol", "Kies een bestaande rol.") from None
                await service.change_role(actor, name, new_role)
                return 0
            kinds = _REVOKE_KINDS.get(what)
            if kinds is None:
                raise SiteError(
                    ErrorKind.INVALID, "intrekken", "Trek 'all', 'sessions' of 'tokens' in."
                )
            return await service.revoke_sessions(actor, name, kinds)
        except LookupError:
            raise SiteError(
                ErrorKind.NOT_FOUND, "onbekend", "Deze gebruiker bestaat niet."
            ) from None
        except AccountError as exc:
            raise SiteError(ErrorKind.INVALID, "account", str(exc)) from None
