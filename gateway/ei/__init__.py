"""The Vektis EI codec: bytes in, frozen records out, and back, byte for byte.

Pure: no reactor, no database, no file system — the composition root reads the layout
and retourcode documents (:mod:`gateway.loading`) and the codec is built from them.
The public surface:

* :func:`build_layouts` / :class:`LayoutRegistry` — the standards, from their documents;
* :class:`Reader` — incremental parsing into :class:`Record` objects;
* :class:`Validator` / :func:`validate_bytes` — the insurer-side intake checks, each
  finding mapped to a retourcode;
* :func:`build_record`, :func:`build_retour`, :func:`build_technical_rejection` — writing;
* :func:`prestatie_groups`, :func:`line_amount` — a prestatie line with the records under
  it (ZH308's 06 tariefrecords carry its amounts);
* :class:`EIError` — the codec's one error type.
"""

from gateway.ei.findings import EIError, Finding
from gateway.ei.groups import line_amount, prestatie_groups
from gateway.ei.layout import (
    FieldLayout,
    FieldValue,
    Layout,
    LayoutError,
    LayoutRegistry,
    RecordLayout,
    build_layouts,
)
from gateway.ei.reader import END, NEED_DATA, BadLine, Reader, read_records, records_of
from gateway.ei.record import CRLF, Record, build_record
from gateway.ei.retour import Outcome, build_retour, build_technical_rejection
from gateway.ei.retourcodes import Retourcode, RetourcodeError, build_retourcodes, describe_in
from gateway.ei.validate import ValidationResult, Validator, bsn_is_valid, validate_bytes
from gateway.ei.writer import FileWriter

__all__ = [
    "CRLF",
    "END",
    "NEED_DATA",
    "BadLine",
    "EIError",
    "FieldLayout",
    "FieldValue",
    "FileWriter",
    "Finding",
    "Layout",
    "LayoutError",
    "LayoutRegistry",
    "Outcome",
    "Reader",
    "Record",
    "RecordLayout",
    "Retourcode",
    "RetourcodeError",
    "ValidationResult",
    "Validator",
    "bsn_is_valid",
    "build_layouts",
    "build_record",
    "build_retour",
    "build_retourcodes",
    "build_technical_rejection",
    "describe_in",
    "line_amount",
    "prestatie_groups",
    "read_records",
    "records_of",
    "validate_bytes",
]
