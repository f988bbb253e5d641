"""The gateway's one error tree.

Every exception the core raises on purpose derives from :class:`GatewayError`, which
carries two things besides its message:

- ``code``: a short, stable reason code for machines (``"reden-ontbreekt"``,
  ``"traceerid-hergebruikt"``, ``"config-invalid"``); answers, logs and metrics name it.
- ``kind``: an :class:`ErrorKind`, what sort of failure it is. The core says *what* went
  wrong, never *how a protocol answers it*: each HTTP adapter maps kinds to status codes
  once, in its own table (``STATUS_BY_KIND`` in ``adapters/epd_api/resource.py``,
  ``adapters/admin/errors.py``, ``adapters/portal/resource.py`` and
  ``adapters/insurer_sim/resource.py``), and the CLI maps them to exit statuses.

An error class sets its usual ``code`` and ``kind`` as class attributes; one that is
raised for several reasons (:class:`~gateway.admin.cases.ActionRefusedError`) takes
them per instance. Classes that callers catch as a built-in type keep that base too
(``EIError`` and ``XMLError`` are ``ValueError``\\ s, ``NotFoundError`` a
``LookupError``).
"""

from __future__ import annotations

import enum

__all__ = ["ErrorKind", "GatewayError", "NotFoundError"]


class ErrorKind(enum.StrEnum):
    """What sort of failure an error is; the adapters' status tables are keyed by it."""

    INVALID = "invalid"  # the request or input is wrong as it is: change it and ask again
    NOT_FOUND = "not_found"  # no such case, upload, user or batch
    CONFLICT = "conflict"  # it does not fit the state things are in now (reused id, changed line)
    NOT_ALLOWED = "not_allowed"  # the actor is known but may not do this
    UNAUTHENTICATED = "unauthenticated"  # the caller is not known (wrong name or password)
    THROTTLED = "throttled"  # too many attempts: wait before trying again
    UNAVAILABLE = "unavailable"  # the store or the other side cannot be reached now: retry later
    BUSY = "busy"  # another process holds what this needs (a job lease, the embedded store)
    MISCONFIGURED = "misconfigured"  # the operator's files or settings cannot be used
    INTERNAL = "internal"  # the gateway's own data or code is at fault; no caller can fix it


class GatewayError(Exception):
    """The base of every error the gateway raises on purpose.

    ``code`` and ``kind`` default to the class's; pass them to override per instance.
    The positional arguments are the exception's arguments, as for :class:`Exception`.
    """

    code: str = "gateway-error"
    kind: ErrorKind = ErrorKind.INTERNAL

    def __init__(
        self, *args: object, code: str | None = None, kind: ErrorKind | None = None
    ) -> None:
        super().__init__(*args)
        if code is not None:
            self.code = code
        if kind is not None:
            self.kind = kind


class NotFoundError(GatewayError, LookupError):
    """No such thing (case, pregnancy, upload, user, batch); the argument names what was
    looked for (``batch:…`` for a batch)."""

    code = "onbekend"
    kind = ErrorKind.NOT_FOUND
