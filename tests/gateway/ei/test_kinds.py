"""Which kind of standard a party may send: a file of the other kind gets 0010 first."""

from __future__ import annotations

import pytest

from gateway.ei import validate_bytes
from gateway.ei.kinds import require_kind
from gateway.loading import load_layouts
from tests.gateway.ei.fixture_table import MESSAGES

REGISTRY = load_layouts()


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("kz301-kraamzorg-33001234", "declaration"),
        ("vk302-retour-verloskunde-02001234", "retour"),
        ("zh309-retour-ziekenhuis-06001234", "retour"),
    ],
)
def test_a_file_of_the_expected_kind_is_left_as_it_is(name: str, kind: str) -> None:
    result = validate_bytes(REGISTRY, (MESSAGES / f"{name}.asc").read_bytes())
    assert require_kind(result, kind) is result  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("kz302-retour-kraamzorg-33001234", "declaration"),
        ("zh308-ziekenhuis-06001234", "retour"),
    ],
)
def test_a_file_of_the_other_kind_gets_0010_on_its_standard_code(name: str, expected: str) -> None:
    data = (MESSAGES / f"{name}.asc").read_bytes()
    result = require_kind(validate_bytes(REGISTRY, data), expected)  # type: ignore[arg-type]
    assert not result.valid
    first = result.findings[0]
    assert (first.retourcode, first.record, first.field) == ("0010", 1, "0102")
    assert first.value == data[2:5].decode()


def test_an_unreadable_file_keeps_its_own_findings() -> None:
    result = validate_bytes(REGISTRY, b"not an EI file")
    assert require_kind(result, "declaration") is result
