"""The fixture table: ``fixtures/messages/INDEX.md`` read as data, and chunking helpers.

The manifest is the one place that says what each fixture file must raise; the tests read
it here rather than repeating it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MESSAGES = Path(__file__).resolve().parents[3] / "fixtures" / "messages"
INDEX = MESSAGES / "INDEX.md"


@dataclass(frozen=True, slots=True)
class Row:
    file: str
    standard: str
    valid: bool
    codes: frozenset[str]
    shows: str

    @property
    def path(self) -> Path:
        return MESSAGES / self.file

    def read(self) -> bytes:
        return self.path.read_bytes()


def load_index() -> list[Row]:
    rows = []
    for line in INDEX.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        file, standard, valid, codes, shows = cells[0], cells[1], cells[2], cells[3], cells[4]
        rows.append(
            Row(
                file=file.strip("`"),
                standard=standard,
                valid={"yes": True, "no": False}[valid],
                codes=frozenset() if codes == "—" else frozenset(codes.split(", ")),
                shows=shows,
            )
        )
    return rows


ROWS = load_index()
VALID = [row for row in ROWS if row.valid]
INVALID = [row for row in ROWS if not row.valid]


def chunked(data: bytes, size: int | None) -> Iterator[bytes]:
    """``data`` in pieces of ``size`` bytes (``None``: in one piece)."""
    if size is None:
        yield data
        return
    for i in range(0, len(data), size):
        yield data[i : i + size]
