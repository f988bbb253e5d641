"""The retourcode list (COD954) as data: every code the fixtures raise has a meaning."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.ei.retourcodes import RetourcodeError
from gateway.loading import describe, load_layouts, load_retourcodes
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


# Codes seen in a public list (real-codes.md section 5): the Vektis COD954 page, Vektis's
# "retourinformatie" page, and the 2008 copy of the whole list.
PUBLISHED = {
    "0001", "0002", "0010", "0011", "0013", "0014", "0016", "0017", "0018", "0020", "0021",
    "0025", "0030", "0031", "0150", "0151", "0153", "0156", "0157", "0158", "0320", "0435",
    "0559", "0581", "0582", "0587", "0611", "0613", "0631", "0801", "0804", "8007", "8021",
    "8026", "8027", "8028", "8029", "8062", "8084", "8095", "8176", "8177", "8178",
}  # fmt: skip


def test_confirmed_means_published_and_0802_is_not_used() -> None:
    codes = load_retourcodes()
    confirmed = {code for code, entry in codes.items() if entry.status == "confirmed"}
    assert confirmed <= PUBLISHED
    assert "0802" not in codes  # in no public list
    # every code the gateway writes itself is in the list: published, or said not to be
    modelled = {code for code, entry in codes.items() if entry.status == "modelled"}
    assert modelled == {"0040", "0612", "0803", "0806", "0807", "9001", "9002"}
    for code in modelled:
        assert "gepubliceerde" in codes[code].meaning or code in ("9001", "9002")


def test_every_code_in_the_layouts_is_in_the_list() -> None:
    codes = load_retourcodes()
    registry = load_layouts()
    used = {
        f.retourcode
        for layout in registry.standards()
        for rec in layout.records.values()
        for f in rec.fields
        if f.retourcode
    }
    assert used <= set(codes)
    assert {"0150", "0151", "0156", "0158"} <= used  # the 99 counts and totals
