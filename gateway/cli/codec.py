"""``igo-gateway validate`` and ``igo-gateway show``: the codec as a user runs it.

Whatever a file holds — garbage, an unknown standard, nothing at all — these commands
report it and exit with a status; they never end in a traceback. Output never shows a
full BSN unless ``--unmask`` is given: BSN fields are masked, and so is any nine-digit
stretch that passes the eleven-proof in a quoted line or free text (a BSN shifted out
of its field by a broken record is still a BSN).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from gateway.ei import (
    BadLine,
    EIError,
    FieldLayout,
    Finding,
    Layout,
    LayoutError,
    LayoutRegistry,
    Reader,
    Record,
    ValidationResult,
    Validator,
)
from gateway.loading import describe, load_layouts
from gateway.masking import mask_bsns_in, mask_field

__all__ = ["finding_json", "register", "result_json"]

CHUNK = 1 << 16
EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def register(sub: Any) -> None:
    p = sub.add_parser(
        "validate",
        help="check EI declaration and retour files as an insurer's intake would",
        description="Check EI declaration and retour files as an insurer's intake would. "
        "Exit status: 0 all valid, 1 any invalid, 2 usage error (e.g. a missing file).",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    p.add_argument("--unmask", action="store_true", help="show BSN values in full")
    p.set_defaults(handler=_validate)

    p = sub.add_parser(
        "show",
        help="a readable view of an EI file, record by record",
        description="A readable, aligned view of an EI file, record by record, with field "
        "names. Exit status: 0 shown, 1 the file cannot be read as an EI file, 2 usage error.",
    )
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--unmask", action="store_true", help="show BSNs in full")
    p.add_argument("--all", action="store_true", help="also show empty and reserve fields")
    p.set_defaults(handler=_show)


# --- masking (the policy is gateway.masking's) ---------------------------------------------


class _Masker:
    """Masks the values of findings, knowing which fields of which records are BSNs."""

    def __init__(self, registry: LayoutRegistry, layout: Layout | None) -> None:
        self._layouts = [layout] if layout is not None else registry.standards()

    def fields(self, kind: str, field_id: str) -> list[FieldLayout]:
        return [
            f
            for lay in self._layouts
            if (rec := lay.records.get(kind)) is not None
            for f in rec.fields
            if f.id == field_id
        ]

    def _bsn_spans(self, kind: str) -> set[tuple[int, int]]:
        """Where BSNs stand in a record of ``kind`` (in any record type when ``kind`` is
        not a record type of the layout), as 1-based inclusive positions."""
        known = [lay.records[kind] for lay in self._layouts if kind in lay.records]
        records = known or [rec for lay in self._layouts for rec in lay.records.values()]
        return {(f.start, f.end) for rec in records for f in rec.fields if f.check == "bsn"}

    def finding(self, f: Finding) -> Finding:
        if f.value is None:
            return f
        if f.field is not None:
            fields = self.fields(f.kind, f.field)
            if any(fl.check == "bsn" for fl in fields):
                return replace(f, value=mask_field(f.value))
            return replace(f, value=mask_bsns_in(f.value))
        # A quoted line: hide its BSN positions, and any BSN pushed out of them.
        offset = (f.start or 1) - 1
        spans = [(s - 1 - offset, e - offset) for s, e in self._bsn_spans(f.kind)]
        return replace(f, value=mask_bsns_in(f.value, spans))


# --- output --------------------------------------------------------------------------------


def _robust_stdout() -> None:
    """Never fail on a terminal that cannot print a character (e.g. LC_ALL=C, or
    PYTHONIOENCODING=ascii): escape it instead."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")


def _printable(text: str) -> str:
    """Control characters from a file escaped, so a garbage file cannot drive the terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def finding_json(f: Finding) -> dict[str, object]:
    """A finding as ``--json`` prints it."""
    return {
        "record": f.record,
        "kind": f.kind,
        "field": f.field,
        "start": f.start,
        "end": f.end,
        "value": f.value,
        "retourcode": f.retourcode,
        "message": f.message,
    }


def result_json(file: str, result: ValidationResult) -> dict[str, object]:
    """A file's validation result as ``--json`` prints it (one object per file)."""
    layout = result.layout
    return {
        "file": file,
        "standard": layout.standard if layout else None,
        "version": f"{int(layout.version)}.{int(layout.subversion)}" if layout else None,
        "valid": result.valid,
        "records": result.records,
        "findings": [finding_json(f) for f in result.findings],
    }


def _registry() -> LayoutRegistry | None:
    try:
        return load_layouts()
    except LayoutError as exc:
        print(f"igo-gateway: {exc}", file=sys.stderr)
        return None


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def _not_a_file(command: str, path: Path) -> str | None:
    if path.is_file():
        return None
    why = "is a directory" if path.is_dir() else "no such file"
    return f"igo-gateway {command}: {path}: {why}"


# --- validate ------------------------------------------------------------------------------


def _validate(args: argparse.Namespace) -> int:
    _robust_stdout()
    registry = _registry()
    if registry is None:
        return EXIT_USAGE
    problems = [m for p in args.files if (m := _not_a_file("validate", p)) is not None]
    if problems:
        for message in problems:
            print(message, file=sys.stderr)
        return EXIT_USAGE
    status = EXIT_OK
    for path in args.files:
        validator = Validator(registry)
        try:
            for chunk in _chunks(path):
                validator.feed(chunk)
        except OSError as exc:
            print(f"igo-gateway validate: {path}: {exc.strerror or exc}", file=sys.stderr)
            status = EXIT_USAGE
            continue
        result = validator.close()
        masker = _Masker(registry, result.layout)
        if not args.unmask:
            result.findings[:] = [masker.finding(f) for f in result.findings]
        if not result.valid and status == EXIT_OK:
            status = EXIT_INVALID
        if args.json:
            print(json.dumps(result_json(str(path), result)))
            continue
        what = result.layout.label if result.layout else "unknown standard"
        count = len(result.findings)
        verdict = "valid" if result.valid else f"INVALID ({count} finding{'s' * (count != 1)})"
        print(f"{path}: {what}, {result.records} records: {verdict}")
        for f in result.findings:
            print("  " + _describe_finding(f, masker))
        if result.truncated:
            print("  (more findings left out)")
    return status


def _describe_finding(f: Finding, masker: _Masker) -> str:
    where = f"record {f.record}" + (f" ({_printable(f.kind)})" if f.kind else "")
    if f.field:
        name = f.field_name
        if name is None:
            name = next((fl.label for fl in masker.fields(f.kind, f.field)), None)
        where += f", field {f.field}" + (f" {name!r}" if name else "")
    if f.start is not None:
        where += f", positions {f.start}-{f.end}"
    value = f", value {f.value!r}" if f.value is not None else ""
    meaning = describe(f.retourcode)
    return f"{where}{value}: retourcode {f.retourcode} ({meaning}) {_printable(f.message)}"


# --- show ----------------------------------------------------------------------------------


def _show(args: argparse.Namespace) -> int:
    _robust_stdout()
    registry = _registry()
    if registry is None:
        return EXIT_USAGE
    path: Path = args.file
    problem = _not_a_file("show", path)
    if problem is not None:
        print(problem, file=sys.stderr)
        return EXIT_USAGE
    reader = Reader(registry)
    out = sys.stdout
    announced = False
    try:
        for chunk in [*_chunks(path), None]:
            if chunk is None:
                reader.close()
            else:
                reader.feed(chunk)
            for event in reader.events():
                if not announced and reader.layout is not None:
                    lay = reader.layout
                    out.write(f"{path}: {lay.label} — {lay.title} (layout {lay.status})\n")
                    announced = True
                if isinstance(event, BadLine):
                    f = event.finding
                    out.write(
                        f"\nline {event.number}: unreadable: {_printable(f.message)} "
                        f"(retourcode {f.retourcode})\n"
                    )
                else:
                    out.write(_render(event, unmask=args.unmask, show_all=args.all))
    except EIError as exc:
        f = exc.finding
        print(
            f"igo-gateway show: {path}: {_printable(str(exc))} (retourcode {f.retourcode})",
            file=sys.stderr,
        )
        return EXIT_INVALID
    except OSError as exc:
        print(f"igo-gateway show: {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    if reader.lines_read == 0:
        print(f"igo-gateway show: {path}: the file is empty (retourcode 0001)", file=sys.stderr)
        return EXIT_INVALID
    return EXIT_OK


def _render(rec: Record, *, unmask: bool, show_all: bool) -> str:
    lines = [f"\nrecord {rec.number} · {rec.type} {rec.layout.name}"]
    for f in rec.layout.fields:
        raw = rec.raw[f.slice]
        if not show_all and (f.kind == "reserve" or (f.kind != "kenmerk" and f.is_empty(raw))):
            continue
        try:
            value: object = f.decode(raw)
        except EIError:
            value = f"{raw.decode('latin-1')!r} (malformed)"
        text = "" if value is None else str(value)
        if f.kind == "amount" and isinstance(value, int):
            text = f"{value / 100:.2f}"
        if not unmask:
            text = mask_field(text) if f.check == "bsn" else mask_bsns_in(text)
        label = f.label[:44]
        lines.append(f"  {f.id:>4} {label:<44} {f.start:>3}-{f.end:<3} {_printable(text)}")
    return "\n".join(lines) + "\n"
