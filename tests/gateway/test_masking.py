"""The one BSN masking policy and its named variants."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.masking import (
    HIDDEN_FIELD,
    PAGE_FILL,
    TEXT_FILL,
    mask_bsns_in,
    mask_field,
    mask_value,
)

VALID_BSN = "111222333"  # passes the eleven-proof
INVALID_BSN = "123456789"  # does not


def test_a_value_keeps_its_last_three_characters() -> None:
    assert mask_value(VALID_BSN) == "••••••333"
    assert mask_value("AB12345") == "••••345"
    assert mask_value(VALID_BSN, fill=TEXT_FILL) == "******333"


def test_short_and_empty_values_are_shown_as_they_are() -> None:
    assert mask_value("") == ""
    assert mask_value("12") == "12"
    assert mask_value("123") == "123"


def test_an_empty_ei_field_is_not_masked() -> None:
    assert mask_field("000000000") == "000000000"
    assert mask_field("         ") == "         "
    assert mask_field(VALID_BSN) == "******333"


def test_bsns_in_text_are_found_by_the_eleven_proof() -> None:
    text = f"BSN {VALID_BSN} and {INVALID_BSN}."
    assert mask_bsns_in(text) == f"BSN ******333 and {INVALID_BSN}."
    assert mask_bsns_in(text, fill=PAGE_FILL) == f"BSN ••••••333 and {INVALID_BSN}."


def test_positions_are_hidden_but_spaces_kept() -> None:
    assert mask_bsns_in("ab cd ef", [(0, 5)]) == "** ** ef"
    assert mask_bsns_in("abc", [(-4, 99)]) == "***"


def test_text_without_a_bsn_is_returned_unchanged() -> None:
    text = f"factuur {INVALID_BSN}"
    assert mask_bsns_in(text) is text


def test_the_hidden_field_shows_no_character_of_the_value() -> None:
    assert set(HIDDEN_FIELD) == {PAGE_FILL}


@given(st.text(alphabet="0123456789 ", max_size=40))
def test_masking_keeps_the_length_and_never_shows_a_valid_bsn(text: str) -> None:
    masked = mask_bsns_in(text)
    assert len(masked) == len(text)
    assert VALID_BSN not in masked


@given(st.text(max_size=20))
def test_a_masked_value_shows_at_most_three_characters(value: str) -> None:
    masked = mask_value(value)
    assert len(masked) == len(value)
    assert masked.endswith(value[-3:] if value else "")
    assert set(masked[:-3]) <= {PAGE_FILL}
