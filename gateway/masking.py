"""One masking policy for BSNs and other numbers that identify a client.

Pure functions over strings. The policy: **the last three characters stay visible, every
one before them is hidden**, and a value that cannot be a number is never partly shown
(the admin file view hides such fields whole, with :data:`HIDDEN_FIELD`). Free text (a
finding's message, a field that is not a BSN field) is searched for BSNs: every run of
nine digits that passes the eleven-proof is masked the same way.

Variants of that one policy, and why they differ:

- the fill character: :data:`PAGE_FILL` (``•``) on the administrator's pages and in the
  admin JSON API, where the text is HTML/UTF-8 and the dots read as "hidden";
  :data:`TEXT_FILL` (``*``) in plain-text output (the codec CLI, ``explain``), which may
  end up in a terminal, a log or a ticket where only ASCII is sure to survive;
- :func:`mask_field` for a fixed-width EI field: a field of only zeros and spaces holds no
  BSN (it is empty in EI terms), so it is shown as it is; masking it would suggest a
  number that is not there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from gateway.ei.validate import bsn_is_valid

__all__ = [
    "HIDDEN_FIELD",
    "PAGE_FILL",
    "SHOWN",
    "TEXT_FILL",
    "mask_bsns_in",
    "mask_field",
    "mask_value",
]

SHOWN: Final = 3  # trailing characters that stay visible
PAGE_FILL: Final = "•"
TEXT_FILL: Final = "*"
HIDDEN_FIELD: Final = "•••"  # a personal field (name, address) in the file view: all hidden
_BSN_LENGTH: Final = 9


def mask_value(value: str, *, fill: str = PAGE_FILL) -> str:
    """``value`` with every character but the last three replaced by ``fill`` (``""``
    stays ``""``)."""
    hidden = max(len(value) - SHOWN, 0)
    return fill * hidden + value[hidden:]


def mask_field(value: str) -> str:
    """A fixed-width BSN field's value, masked as plain text; an empty field (zeros and
    spaces only) as it is."""
    if not value.strip("0 "):
        return value
    return mask_value(value, fill=TEXT_FILL)


def mask_bsns_in(
    text: str, positions: Iterable[tuple[int, int]] = (), *, fill: str = TEXT_FILL
) -> str:
    """``text`` with every nine-digit stretch that passes the eleven-proof masked, and
    everything but spaces at ``positions`` (0-based, end exclusive) hidden as well."""
    hidden = [False] * len(text)
    for begin, end in positions:
        for i in range(max(0, begin), min(len(text), end)):
            hidden[i] = text[i] != " "
    for i in range(len(text) - _BSN_LENGTH + 1):
        window = text[i : i + _BSN_LENGTH]
        if window.isdigit() and window.isascii() and bsn_is_valid(window):
            for j in range(i, i + _BSN_LENGTH - SHOWN):
                hidden[j] = True
    if not any(hidden):
        return text
    return "".join(fill if h else c for c, h in zip(text, hidden, strict=True))
