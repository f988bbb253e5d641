"""Which kind of standard each party may send: participants declarations, insurers retours.

A file of the other kind is refused as a whole, technically, with retourcode 0010 on the
01 record's standard code (field 0102, "code externe-integratiebericht"). COD954 confirms
0010 as "code externe-integratiebericht missing or wrong"; that a well-formed code of a
retour standard is *wrong* in a declaration upload (and the reverse) is this gateway's
reading of it — modelled, not a rule found in Vektis' text. The insurer simulator uses the
same code for a file in a standard it does not take.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final, Literal

from gateway.ei.findings import Finding
from gateway.ei.validate import ValidationResult

__all__ = ["WRONG_KIND_CODE", "require_kind"]

WRONG_KIND_CODE: Final = "0010"
_WHO: Final = {"declaration": "a participant sends", "retour": "an insurer sends"}


def require_kind(
    result: ValidationResult, kind: Literal["declaration", "retour"]
) -> ValidationResult:
    """``result``, with a 0010 finding first when its file is a standard of another kind
    than ``kind`` (a file whose standard could not be read keeps its own findings)."""
    layout = result.layout
    if layout is None or layout.kind == kind:
        return result
    header = result.header
    value = None
    if header is not None and header.layout.has("standard_code"):
        value = header.raw_field("standard_code").decode("latin-1")
    finding = Finding(
        record=1,
        kind="01",
        retourcode=WRONG_KIND_CODE,
        message=f"{layout.standard} is a {layout.kind} standard; {_WHO[kind]} "
        f"{kind} standards only",
        field="0102",
        field_name="code externe-integratiebericht",
        start=3,
        end=5,
        value=value,
    )
    return replace(result, findings=[finding, *result.findings])
