"""The intake checks of an upload's payload, and its prestatie lines (pure: bytes in,
findings and lines out). The intake (:mod:`gateway.intake`) runs them on a thread or has
a check worker (:mod:`adapters.check_workers`) run them; reprocessing runs them again."""

from __future__ import annotations

from gateway.ei import LayoutRegistry, Record, ValidationResult, validate_bytes
from gateway.ei.kinds import require_kind
from gateway.lines import DeclaredLine, declared_lines

__all__ = ["MAX_FINDINGS_KEPT", "check_upload"]

MAX_FINDINGS_KEPT = 50


def check_upload(
    registry: LayoutRegistry, payload: bytes, traceer_id: str, participant: str
) -> tuple[ValidationResult, list[DeclaredLine]]:
    """The intake checks and, for a valid declaration, its prestatie lines — one pass over
    the file. Also what reprocessing an upload runs again."""
    records: list[Record] = []
    result = require_kind(
        validate_bytes(registry, payload, max_findings=MAX_FINDINGS_KEPT, on_record=records.append),
        "declaration",
    )
    layout = result.layout
    if not result.valid or layout is None or layout.kind != "declaration":
        return result, []
    lines = declared_lines(
        records, traceer_id=traceer_id, participant=participant, standard=layout.standard
    )
    return result, lines
