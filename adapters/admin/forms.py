"""What a request to the admin site brings, read and checked: query and form fields, the
queue's filters, route parameters and the JSON API's bodies (pydantic models, as
``schemas/admin-api.openapi.json`` documents them). What is wrong is a
:class:`~adapters.admin.errors.SiteError` of kind ``BAD_REQUEST`` (or ``NOT_FOUND`` for an
unknown action), worded in Dutch, never repeating the input: it may be a password or a
BSN."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from twisted.web import server

from adapters.admin.errors import SiteError
from gateway.admin.cases import CaseAction, CaseFilter, CaseKind
from gateway.admin.search import DEFAULT_LIMIT, MAX_LIMIT, SearchQuery, parse_day
from gateway.errors import ErrorKind
from gateway.ports.resolution import Field as CorrectionField

__all__ = [
    "ActionRequest",
    "BatchRequest",
    "FilterModel",
    "Params",
    "SearchRequest",
    "UserRequest",
    "action",
    "arg",
    "body",
    "body_problem",
    "case_filter",
    "code_arg",
    "cookie",
    "correction_fields",
    "filter_form",
    "int_arg",
    "origin",
    "param",
]

Params = Mapping[str, object]  # a route's parameters, made by its converters


def arg(request: server.Request, name: str) -> str:
    """A query or form field (the first, if it is given twice); "" when it is not given."""
    values = (request.args or {}).get(name.encode("ascii"), [])
    if not values:
        return ""
    return bytes(values[0]).decode("utf-8", "replace")


def origin(request: server.Request) -> str:
    address = request.getClientAddress()
    return str(getattr(address, "host", "") or "")


def cookie(request: server.Request, name: str) -> str | None:
    raw = request.getCookie(name.encode("ascii"))
    return None if raw is None else raw.decode("ascii", "replace")


def int_arg(request: server.Request, name: str) -> int | None:
    text = arg(request, name).strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        raise SiteError(ErrorKind.INVALID, "ongeldig-filter", f"{name} moet een geheel getal zijn.")
    return int(text)


def code_arg(request: server.Request, name: str, length: int) -> str | None:
    text = arg(request, name).strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > length:
        raise SiteError(
            ErrorKind.INVALID, "ongeldig-filter", f"{name}: alleen cijfers, hoogstens {length}."
        )
    return text


def case_filter(request: server.Request) -> CaseFilter:
    """The queue's filters from the query string (the queue page, ``GET /api/cases``)."""
    kind_text = arg(request, "kind").strip()
    kinds: frozenset[CaseKind] = frozenset()
    if kind_text:
        try:
            kinds = frozenset({CaseKind(kind_text)})
        except ValueError:
            raise SiteError(ErrorKind.INVALID, "ongeldig-filter", "Onbekende soort zaak.") from None
    return CaseFilter(
        kinds=kinds,
        insurer=code_arg(request, "insurer", 4),
        participant=code_arg(request, "participant", 8),
        retourcode=code_arg(request, "retourcode", 4),
        min_age_days=int_arg(request, "min_age_days"),
        max_age_days=int_arg(request, "max_age_days"),
        include_closed=arg(request, "all") in ("1", "true", "on"),
    )


def correction_fields(request: server.Request) -> dict[str, str]:
    """The correction form's fields that were filled in."""
    return {f.value: value for f in CorrectionField if (value := arg(request, f.value).strip())}


P = TypeVar("P")


def param(params: Params, name: str, kind: type[P]) -> P:
    """A route parameter its converter made (see :mod:`adapters.admin.routes`)."""
    value = params[name]
    if not isinstance(value, kind):  # pragma: no cover - the route table guarantees it
        raise TypeError(f"route parameter {name} is no {kind.__name__}")
    return value


def action(text: str) -> CaseAction:
    """A case action named in a field (the bulk forms and bodies)."""
    try:
        return CaseAction(text)
    except ValueError:
        raise SiteError(ErrorKind.NOT_FOUND, "onbekend", "Deze actie bestaat niet.") from None


# What is wrong with a request body, by pydantic's error type, in Dutch.
_BODY_PROBLEMS: Final = {
    "missing": "dit veld ontbreekt",
    "extra_forbidden": "dit veld bestaat niet",
    "json_invalid": "geen geldige JSON",
    "json_type": "geen JSON-object",
    "model_type": "geen JSON-object",
    "dict_type": "geen object",
    "string_type": "geen tekst",
    "string_too_long": "te lang",
    "string_too_short": "te kort",
    "int_type": "geen geheel getal",
    "int_parsing": "geen geheel getal",
    "bool_type": "geen ja/nee (true/false)",
    "bool_parsing": "geen ja/nee (true/false)",
    "too_long": "te veel",
    "greater_than_equal": "te klein",
    "less_than_equal": "te groot",
}


def body_problem(exc: ValidationError) -> str:
    """The first problem of a request body: where and what, in Dutch, never the input (it
    may be a password or a BSN)."""
    first = exc.errors(include_input=False)[0]
    where = ".".join(str(p) for p in first["loc"])
    what = _BODY_PROBLEMS.get(first["type"], "ongeldige waarde")
    return f"Ongeldige inhoud: {where}: {what}." if where else f"Ongeldige inhoud: {what}."


class UserRequest(BaseModel):
    """Body of ``POST /api/users/{name}/{operation}``: ``password`` for ``password``,
    ``role`` for ``role``, ``what`` for ``revoke``; nothing for the others."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    password: str = Field(default="", max_length=1024)
    role: str = Field(default="", max_length=20)
    what: str = Field(default="all", max_length=10)


class ActionRequest(BaseModel):
    """Body of ``POST /api/cases/{id}/actions/{action}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(default="", max_length=2000)
    fields: dict[str, Annotated[str, Field(max_length=40)]] = Field(
        default_factory=dict,
        max_length=10,
        description="resubmit only: the corrected fields (member_number, uzovi, first_day, "
        "last_day, prestatie); those left out keep their value",
    )


class SearchRequest(BaseModel):
    """Body of ``POST /api/search``: the keys (every one given must match), camelCase as
    the rest of the API. The BSN travels only in a body, never in a URL."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    factuurnummer: str | None = Field(default=None, max_length=64)
    reference: str | None = Field(default=None, max_length=64)
    traceer_id: str | None = Field(default=None, alias="traceerId", max_length=64)
    participant: str | None = Field(default=None, max_length=8)
    insurer: str | None = Field(default=None, max_length=4)
    retourcode: str | None = Field(default=None, max_length=4)
    date_from: str | None = Field(default=None, alias="dateFrom", max_length=10)
    date_to: str | None = Field(default=None, alias="dateTo", max_length=10)
    bsn: str | None = Field(default=None, max_length=9, repr=False)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    unmask: bool = False

    def query(self) -> SearchQuery:
        return SearchQuery(
            factuurnummer=self.factuurnummer,
            reference=self.reference,
            traceer_id=self.traceer_id,
            participant=self.participant,
            insurer=self.insurer,
            retourcode=self.retourcode,
            date_from=parse_day("date_from", self.date_from),
            date_to=parse_day("date_to", self.date_to),
            bsn=self.bsn,
        )


def filter_form(query: CaseFilter) -> dict[str, str]:
    """A filter as the queue's form fields (for hidden fields and links)."""
    form = {
        "kind": next(iter(query.kinds)).value if len(query.kinds) == 1 else "",
        "insurer": query.insurer or "",
        "participant": query.participant or "",
        "retourcode": query.retourcode or "",
        "min_age_days": "" if query.min_age_days is None else str(query.min_age_days),
        "max_age_days": "" if query.max_age_days is None else str(query.max_age_days),
        "all": "1" if query.include_closed else "",
    }
    return {name: value for name, value in form.items() if value}


class FilterModel(BaseModel):
    """The queue's filters in a JSON body (``CaseFilter`` in the OpenAPI file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kinds: list[CaseKind] = Field(default_factory=list, max_length=20)
    insurer: str | None = Field(default=None, pattern=r"^\d{1,4}$")
    participant: str | None = Field(default=None, pattern=r"^\d{1,8}$")
    retourcode: str | None = Field(default=None, pattern=r"^\d{1,4}$")
    minAgeDays: int | None = Field(default=None, ge=0, le=999_999)
    maxAgeDays: int | None = Field(default=None, ge=0, le=999_999)
    includeClosed: bool = False


class BatchRequest(BaseModel):
    """Body of ``POST /api/batches/preview`` and ``POST /api/batches``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    filter: FilterModel = Field(default_factory=FilterModel)
    action: str = Field(max_length=40)
    reason: str = Field(default="", max_length=2000)
    selection: str | None = Field(default=None, max_length=64)

    def query(self) -> CaseFilter:
        f = self.filter
        return CaseFilter(
            kinds=frozenset(f.kinds),
            insurer=f.insurer,
            participant=f.participant,
            retourcode=f.retourcode,
            min_age_days=f.minAgeDays,
            max_age_days=f.maxAgeDays,
            include_closed=f.includeClosed,
        )


Body = TypeVar("Body", bound=BaseModel)


def body(request: server.Request, model: type[Body]) -> Body:
    """The request's JSON body as ``model`` (an empty body is ``{}``)."""
    content = request.content
    raw = content.read() if content is not None else b""
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        # Where and what only, never the input: it may be a password or a BSN.
        raise SiteError(ErrorKind.INVALID, "ongeldig-verzoek", body_problem(exc)) from None
