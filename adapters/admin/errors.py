"""How the admin site answers what went wrong: every error's HTTP status is decided here,
in :func:`problem`, and nowhere else.

The site's own refusals are :class:`SiteError` with a :class:`Kind` (what went wrong, not
how HTTP says it); :data:`STATUS` turns a kind into a status. The core's refusals
(:class:`~gateway.admin.cases.ActionRefusedError`, :class:`~gateway.admin.search.
SearchRefusedError`) bring their status along; a missing right, a missing case or batch
and an unreachable store are mapped by their type. Anything else is an internal error.
The site shows the answer as a page, the API as ``application/problem+json``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from gateway.admin.cases import ActionRefusedError
from gateway.admin.search import SearchRefusedError
from gateway.admin.service import NotAllowedError
from gateway.ports.messages import StoreUnavailableError

__all__ = ["STATUS", "Kind", "Problem", "RedirectError", "SiteError", "problem"]


class Kind(enum.Enum):
    """What went wrong with a request, whoever noticed it."""

    BAD_REQUEST = "bad_request"  # a field, a filter or a body that is not valid
    UNAUTHENTICATED = "unauthenticated"  # no (valid) session or token, a wrong password
    THROTTLED = "throttled"  # too many failed logins
    FORBIDDEN = "forbidden"  # the role may not, or the form is not this site's
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"  # the action no longer fits what is there
    UNAVAILABLE = "unavailable"  # the store cannot be reached; nothing changed
    INTERNAL = "internal"


STATUS: Final[Mapping[Kind, int]] = {
    Kind.BAD_REQUEST: 400,
    Kind.UNAUTHENTICATED: 401,
    Kind.THROTTLED: 429,
    Kind.FORBIDDEN: 403,
    Kind.NOT_FOUND: 404,
    Kind.METHOD_NOT_ALLOWED: 405,
    Kind.CONFLICT: 409,
    Kind.UNAVAILABLE: 503,
    Kind.INTERNAL: 500,
}


class SiteError(Exception):
    """A request the site refuses: ``code`` for machines, ``message`` (Dutch) for people."""

    def __init__(self, kind: Kind, code: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.code, self.message = kind, code, message

    @property
    def status(self) -> int:
        return STATUS[self.kind]


class RedirectError(Exception):
    """Not an error: ends a request with 303 See Other."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


@dataclass(frozen=True, slots=True)
class Problem:
    """An error as the site answers it; ``kind`` is None for a core refusal (its status
    is its own)."""

    status: int
    code: str
    message: str
    kind: Kind | None = None


def problem(exc: object) -> Problem:
    """The answer to ``exc``, raised while handling a request."""
    if isinstance(exc, SiteError):
        return Problem(exc.status, exc.code, exc.message, exc.kind)
    if isinstance(exc, NotAllowedError):
        message = "Uw rol geeft geen toegang tot deze pagina of actie."
        return _problem(Kind.FORBIDDEN, "geen-recht", message)
    if isinstance(exc, (ActionRefusedError, SearchRefusedError)):
        return Problem(exc.status, exc.code, str(exc))
    if isinstance(exc, LookupError):
        what = "batch" if str(exc).startswith("batch:") else "zaak"
        return _problem(Kind.NOT_FOUND, "onbekend", f"Deze {what} bestaat niet.")
    if isinstance(exc, StoreUnavailableError):
        message = "De opslag is nu niet bereikbaar; er is niets veranderd. Probeer het later."
        return _problem(Kind.UNAVAILABLE, "tijdelijk-niet-beschikbaar", message)
    return _problem(Kind.INTERNAL, "interne-fout", "Er ging iets onverwachts mis.")


def _problem(kind: Kind, code: str, message: str) -> Problem:
    return Problem(STATUS[kind], code, message, kind)
