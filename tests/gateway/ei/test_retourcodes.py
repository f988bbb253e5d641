"""The retourcode list (COD954) as data: every code the fixtures raise has a meaning."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.ei import describe, load_retourcodes
from gateway.ei.retourcodes import RetourcodeError
from tests.gateway.ei.fixture_table import ROWS


def test_every_code_the_fixtures_raise_is_in_the_list() -> None:
    codes = load_retourcodes()
    raised = set().union(*(row.codes for row in ROWS))
    assert raised
    assert raised <= set(codes)


def test_a_code_has_its_dutch_meaning() -> None:
    entry = load_retourcodes()["0435"]
    assert entry.status == "confirmed"
    assert "Burgerservicenummer" in entry.meaning
    assert describe("0435") == entry.meaning
    assert describe("9999") == "Onbekende retourcode 9999."


def test_a_broken_list_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "retourcodes.xml"
    path.write_text(
        '<retourcodes xmlns="urn:igo-gateway:retourcodes:1"><code value="1"/></retourcodes>',
        encoding="utf-8",
    )
    with pytest.raises(RetourcodeError, match=r"retourcodes\.xml: does not match"):
        load_retourcodes(path)
