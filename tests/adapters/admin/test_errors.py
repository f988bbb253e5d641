"""Every error's status is decided in one place: the site's own kinds by one table, the
core's refusals by their own status, the rest by their type."""

from __future__ import annotations

import pytest

from adapters.admin.errors import STATUS, Kind, Problem, SiteError, problem
from gateway.admin.accounts import Permission
from gateway.admin.cases import ActionRefusedError
from gateway.admin.search import SearchRefusedError
from gateway.admin.service import NotAllowedError
from gateway.ports.messages import StoreUnavailableError

NO_RIGHT = "Uw rol geeft geen toegang tot deze pagina of actie."


def test_every_kind_has_a_status() -> None:
    assert set(STATUS) == set(Kind)
    assert SiteError(Kind.NOT_FOUND, "onbekend", "Weg.").status == 404


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            SiteError(Kind.BAD_REQUEST, "kop", "Fout."),
            Problem(400, "kop", "Fout.", Kind.BAD_REQUEST),
        ),
        (
            ActionRefusedError("past-niet", "Past niet.", status=422),
            Problem(422, "past-niet", "Past niet."),
        ),
        (SearchRefusedError("bsn", "Geen BSN."), Problem(400, "bsn", "Geen BSN.")),
        (
            NotAllowedError(Permission.VIEW_AUDIT),
            Problem(403, "geen-recht", NO_RIGHT, Kind.FORBIDDEN),
        ),
        (
            LookupError("batch: 7"),
            Problem(404, "onbekend", "Deze batch bestaat niet.", Kind.NOT_FOUND),
        ),
        (
            KeyError("parked:t1"),
            Problem(404, "onbekend", "Deze zaak bestaat niet.", Kind.NOT_FOUND),
        ),
    ],
)
def test_what_the_site_answers(exc: Exception, expected: Problem) -> None:
    assert problem(exc) == expected


def test_an_unreachable_store_and_anything_else() -> None:
    unavailable = problem(StoreUnavailableError("disk full"))
    assert (unavailable.status, unavailable.kind) == (503, Kind.UNAVAILABLE)
    assert "disk" not in unavailable.message  # the store's words stay in the log
    internal = problem(RuntimeError("secret detail"))
    assert (internal.status, internal.code, internal.kind) == (500, "interne-fout", Kind.INTERNAL)
    assert "secret" not in internal.message
