"""The error answer that the EPD API and the insurer simulator raise inside a request
handler.

A handler raises :class:`HttpError` for what the protocol itself refuses (a malformed
parameter, an unknown path, a method not allowed); the adapter's one error handler
turns it into its problem+json body. (The admin site's own refusals are
:class:`adapters.admin.errors.SiteError`, which carry a kind like the core's.) Errors of the
core (:class:`gateway.errors.GatewayError`) are not wrapped by hand: each adapter maps
their kinds to statuses in its own ``STATUS_BY_KIND`` table, once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["HttpError"]


class HttpError(Exception):
    """An answer with ``status``, the reason ``code``, a ``detail`` for people and, for a
    ValidationProblemDetails body, the ``errors`` per field."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        errors: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.errors = status, code, detail, errors
