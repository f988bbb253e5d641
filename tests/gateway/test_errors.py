"""The one error tree: every error class of the core derives from GatewayError, and
every HTTP adapter has a status for every kind."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterator, Mapping
from types import ModuleType

import pytest

import adapters
import gateway
from adapters.admin import errors as admin_site
from adapters.epd_api import resource as epd_api
from adapters.http_errors import HttpError
from adapters.insurer_sim import resource as insurer_sim
from adapters.portal import resource as portal
from gateway.admin.cases import ActionRefusedError
from gateway.cli.admin import EXIT_FAILED, EXIT_USAGE, exit_status
from gateway.ei import EIError
from gateway.errors import ErrorKind, GatewayError, NotFoundError
from gateway.ports.admin import LoginRefusedError
from gateway.ports.insurer import InsurerLinkError, LinkErrorReason
from gateway.ports.intake import IntakeRefusedError
from gateway.ports.messages import StoreUnavailableError
from gateway.xmlsafe import XMLError

TABLES: Mapping[str, Mapping[ErrorKind, int]] = {
    "epd_api": epd_api.STATUS_BY_KIND,
    "admin": admin_site.STATUS_BY_KIND,
    "portal": portal.STATUS_BY_KIND,
    "insurer_sim": insurer_sim.STATUS_BY_KIND,
}


def _modules(package: ModuleType) -> Iterator[ModuleType]:
    yield package
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        yield importlib.import_module(info.name)


def _exception_classes(package: ModuleType) -> list[type[BaseException]]:
    found = {
        cls
        for module in _modules(package)
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__.startswith(package.__name__ + ".")
    }
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


GATEWAY_ERRORS = _exception_classes(gateway)


def test_the_walk_finds_the_core_errors() -> None:
    names = {cls.__name__ for cls in GATEWAY_ERRORS}
    assert {"EIError", "ConfigError", "IntakeRefusedError", "StoreUnavailableError"} <= names
    assert len(GATEWAY_ERRORS) >= 25


@pytest.mark.parametrize("cls", GATEWAY_ERRORS, ids=lambda cls: cls.__qualname__)
def test_every_core_error_is_a_gateway_error(cls: type[BaseException]) -> None:
    assert issubclass(cls, GatewayError), f"{cls.__module__}.{cls.__qualname__}"
    assert isinstance(cls.kind, ErrorKind)
    assert cls.code
    assert cls.code == cls.code.strip()


@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_kind_has_a_status_in_each_http_adapter(name: str) -> None:
    table = TABLES[name]
    assert set(table) == set(ErrorKind)
    assert all(400 <= status <= 599 for status in table.values())


def test_the_statuses_answered_before_kinds_stay_the_same() -> None:
    admin = admin_site.STATUS_BY_KIND
    assert [admin[k] for k in (ErrorKind.INVALID, ErrorKind.NOT_ALLOWED)] == [400, 403]
    assert [admin[k] for k in (ErrorKind.CONFLICT, ErrorKind.UNAVAILABLE)] == [409, 503]
    assert admin[ErrorKind.NOT_FOUND] == 404
    assert [admin[k] for k in (ErrorKind.UNAUTHENTICATED, ErrorKind.THROTTLED)] == [401, 429]
    for table in (epd_api.STATUS_BY_KIND, portal.STATUS_BY_KIND, insurer_sim.STATUS_BY_KIND):
        assert (table[ErrorKind.INVALID], table[ErrorKind.CONFLICT]) == (422, 422)
        assert table[ErrorKind.UNAVAILABLE] == 503


def test_code_and_kind_default_to_the_class_and_may_be_given() -> None:
    plain = ActionRefusedError("past-niet", "Past niet.")
    assert (plain.code, plain.kind, str(plain)) == ("past-niet", ErrorKind.CONFLICT, "Past niet.")
    given = ActionRefusedError("reden-ontbreekt", "Vul een reden in.", kind=ErrorKind.INVALID)
    assert given.kind is ErrorKind.INVALID
    assert ActionRefusedError.kind is ErrorKind.CONFLICT  # the instance's, not the class's
    store = StoreUnavailableError("down")
    assert (store.code, store.kind, store.args) == (
        "tijdelijk-niet-beschikbaar",
        ErrorKind.UNAVAILABLE,
        ("down",),
    )


def test_refusals_carry_a_kind_and_no_status() -> None:
    refused = IntakeRefusedError(ErrorKind.CONFLICT, "traceerid-hergebruikt", "used", "x")
    assert (refused.kind, refused.code, refused.field) == (
        ErrorKind.CONFLICT,
        "traceerid-hergebruikt",
        "x",
    )
    for error in (refused, ActionRefusedError("a", "b")):
        assert not hasattr(error, "status")


def test_extra_bases_stay_for_callers_that_catch_them() -> None:
    with pytest.raises(LookupError):
        raise NotFoundError("batch:1")
    assert issubclass(EIError, ValueError)
    assert issubclass(XMLError, ValueError)


def test_a_login_refusal_is_unauthenticated_or_throttled() -> None:
    assert LoginRefusedError(throttled=False).kind is ErrorKind.UNAUTHENTICATED
    assert LoginRefusedError(throttled=True).kind is ErrorKind.THROTTLED


@pytest.mark.parametrize("reason", list(LinkErrorReason))
def test_every_link_reason_has_a_kind(reason: LinkErrorReason) -> None:
    error = InsurerLinkError(reason, "detail", status=502)
    assert error.reason is reason
    assert error.code == f"link-{reason.value}"
    assert isinstance(error.kind, ErrorKind)
    assert error.status == 502  # what the insurer answered, kept as data


def test_the_cli_maps_kinds_to_exit_statuses() -> None:
    assert exit_status(ErrorKind.INVALID) == EXIT_USAGE
    assert {exit_status(k) for k in ErrorKind if k is not ErrorKind.INVALID} == {EXIT_FAILED}


def test_http_error_is_defined_once() -> None:
    defined = {
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in _exception_classes(adapters)
        if cls.__name__.lstrip("_") == "HttpError"
    }
    assert defined == {f"{HttpError.__module__}.{HttpError.__qualname__}"}
