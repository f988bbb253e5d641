"""Every error's status is decided in one place: by its kind, in the site's one table (the
site's own refusals and the core's errors alike); a method a route does not declare is
HTTP's own 405, anything unknown an internal error."""

from __future__ import annotations

import pytest

from adapters.admin.errors import STATUS_BY_KIND, Problem, SiteError, problem
from adapters.admin.routes import MethodNotAllowedError
from gateway.admin.accounts import Permission
from gateway.admin.cases import ActionRefusedError
from gateway.admin.search import SearchRefusedError
from gateway.errors import ErrorKind, NotFoundError
from gateway.ports.admin import NotAllowedError
from gateway.ports.messages import StoreUnavailableError

NO_RIGHT = "Uw rol geeft geen toegang tot deze pagina of actie."


def test_every_kind_has_a_status() -> None:
    assert set(STATUS_BY_KIND) == set(ErrorKind)
    assert SiteError(ErrorKind.NOT_FOUND, "onbekend", "Weg.").status == 404


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            SiteError(ErrorKind.INVALID, "kop", "Fout."),
            Problem(400, "kop", "Fout.", ErrorKind.INVALID),
        ),
        (
            ActionRefusedError("past-niet", "Past niet."),
            Problem(409, "past-niet", "Past niet.", ErrorKind.CONFLICT),
        ),
        (
            ActionRefusedError("geen-recht", "Mag niet.", kind=ErrorKind.NOT_ALLOWED),
            Problem(403, "geen-recht", "Mag niet.", ErrorKind.NOT_ALLOWED),
        ),
        (
            SearchRefusedError("bsn", "Geen BSN."),
            Problem(400, "bsn", "Geen BSN.", ErrorKind.INVALID),
        ),
        (
            NotAllowedError(Permission.VIEW_AUDIT),
            Problem(403, "geen-recht", NO_RIGHT, ErrorKind.NOT_ALLOWED),
        ),
        (
            NotFoundError("batch: 7"),
            Problem(404, "onbekend", "Deze batch bestaat niet.", ErrorKind.NOT_FOUND),
        ),
        (
            LookupError("batch: 7"),
            Problem(404, "onbekend", "Deze batch bestaat niet.", ErrorKind.NOT_FOUND),
        ),
        (
            KeyError("parked:t1"),
            Problem(404, "onbekend", "Deze zaak bestaat niet.", ErrorKind.NOT_FOUND),
        ),
        (
            MethodNotAllowedError(["GET", "HEAD"]),
            Problem(
                405, "methode", "Deze methode kan hier niet; wel: GET, HEAD.", ErrorKind.INVALID
            ),
        ),
    ],
)
def test_what_the_site_answers(exc: Exception, expected: Problem) -> None:
    assert problem(exc) == expected


def test_an_unreachable_store_and_anything_else() -> None:
    unavailable = problem(StoreUnavailableError("disk full"))
    assert (unavailable.status, unavailable.kind) == (503, ErrorKind.UNAVAILABLE)
    assert unavailable.code == "tijdelijk-niet-beschikbaar"
    assert "disk" not in unavailable.message  # the store's words stay in the log
    internal = problem(RuntimeError("secret detail"))
    assert (internal.status, internal.code, internal.kind) == (
        500,
        "interne-fout",
        ErrorKind.INTERNAL,
    )
    assert "secret" not in internal.message
