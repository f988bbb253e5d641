"""What a request brings, read and checked: fields, filters and JSON bodies, refused in
Dutch without repeating the input."""

from __future__ import annotations

import io

import pytest
from twisted.web import server
from twisted.web.test.requesthelper import DummyChannel

from adapters.admin import forms
from adapters.admin.errors import SiteError
from gateway.admin.cases import CaseFilter, CaseKind
from gateway.errors import ErrorKind


def request(body: bytes = b"", /, **args: str) -> server.Request:
    req = server.Request(DummyChannel())
    req.args = {k.encode(): [v.encode()] for k, v in args.items()}
    req.content = io.BytesIO(body)
    return req


def test_a_filter_from_the_query() -> None:
    got = forms.case_filter(request(kind="parked", insurer="3311", min_age_days="2", all="1"))
    assert got == CaseFilter(
        kinds=frozenset({CaseKind.PARKED}), insurer="3311", min_age_days=2, include_closed=True
    )
    assert forms.case_filter(request()) == CaseFilter()
    assert forms.filter_form(got) == {
        "kind": "parked",
        "insurer": "3311",
        "min_age_days": "2",
        "all": "1",
    }


@pytest.mark.parametrize(
    "args", [{"kind": "nonsense"}, {"insurer": "33a1"}, {"min_age_days": "-1"}]
)
def test_a_bad_filter_is_a_bad_request(args: dict[str, str]) -> None:
    with pytest.raises(SiteError) as refused:
        forms.case_filter(request(**args))
    assert (refused.value.kind, refused.value.code) == (ErrorKind.INVALID, "ongeldig-filter")


def test_a_body_is_read_as_its_model() -> None:
    got = forms.body(
        request(b'{"password": "geheim-en-lang", "what": "tokens"}'), forms.UserRequest
    )
    assert (got.password, got.what, got.role) == ("geheim-en-lang", "tokens", "")
    assert forms.body(request(), forms.ActionRequest) == forms.ActionRequest()


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b'{"bsn": "1234567890123"}', "Ongeldige inhoud: bsn: te lang."),
        (b'{"nonsense": "123456789"}', "Ongeldige inhoud: nonsense: dit veld bestaat niet."),
        (b"[1", "Ongeldige inhoud: geen geldige JSON."),
    ],
)
def test_a_bad_body_says_where_and_what_but_not_the_input(body: bytes, said: str) -> None:
    with pytest.raises(SiteError) as refused:
        forms.body(request(body), forms.SearchRequest)
    assert (refused.value.kind, refused.value.message) == (ErrorKind.INVALID, said)
    assert b"123456789" not in refused.value.message.encode()


def test_an_unknown_action_is_not_found() -> None:
    with pytest.raises(SiteError) as refused:
        forms.action("explode")
    assert refused.value.kind is ErrorKind.NOT_FOUND
