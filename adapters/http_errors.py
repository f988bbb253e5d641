"""The error answer that the EPD API and the insurer simulator raise inside a request
handler.

A handler raises :class:`HttpError` for what the protocol itself refuses (a malformed
parameter, an unknown path, a method not allowed); the adapter's one error handler
turns it into its problem+json body. (The admin site's own refusals are
:class:`adapters.admin.errors.SiteError`, which carry a kind like the core's.) Errors of the
core (:class:`gateway.errors.GatewayError`) are not wrapped by hand: each adapter maps
their kinds to statuses in its own ``STATUS_BY_KIND`` table, once; the adapters that
speak VECOZO's REST API (the EPD API, the portal's uploads, the insurer simulator) share
:data:`VSP_STATUS_BY_KIND`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final

from gateway.errors import ErrorKind

__all__ = ["VSP_STATUS_BY_KIND", "HttpError"]

# VECOZO's API answers a file or message it will not take with 422, whether it contradicts
# itself (INVALID) or reuses an id (CONFLICT); the client certificate is the only
# credential, so an unknown caller is 403.
VSP_STATUS_BY_KIND: Final[Mapping[ErrorKind, int]] = MappingProxyType(
    {
        ErrorKind.INVALID: 422,
        ErrorKind.CONFLICT: 422,
        ErrorKind.NOT_FOUND: 404,
        ErrorKind.NOT_ALLOWED: 403,
        ErrorKind.UNAUTHENTICATED: 403,
        ErrorKind.THROTTLED: 429,
        ErrorKind.UNAVAILABLE: 503,
        ErrorKind.BUSY: 503,
        ErrorKind.MISCONFIGURED: 500,
        ErrorKind.INTERNAL: 500,
    }
)


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
