"""``igo-gateway validate`` and ``igo-gateway show``: the codec as a user runs it."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway.ei import (
    BadLine,
    EIError,
    Finding,
    LayoutError,
    LayoutRegistry,
    Reader,
    Record,
    Validator,
    describe,
    load_layouts,
)

__all__ = ["register"]

CHUNK = 1 << 16
EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def register(sub: Any) -> None:
    p = sub.add_parser(
        "validate",
        help="check EI declaration and retour files as an insurer's intake would",
        description="Check EI declaration and retour files as an insurer's intake would. "
        "Exit status: 0 all valid, 1 any invalid, 2 usage error.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    p.add_argument("--unmask", action="store_true", help="show BSN values in full")
    p.set_defaults(handler=_validate)

    p = sub.add_parser("show", help="a readable view of an EI file, record by record")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--unmask", action="store_true", help="show BSNs in full")
    p.add_argument("--all", action="store_true", help="also show empty and reserve fields")
    p.set_defaults(handler=_show)


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


def mask_bsn(value: str) -> str:
    """Hide all but the last three digits of a BSN."""
    return "*" * max(0, len(value) - 3) + value[-3:] if value.strip("0 ") else value


def _masked(finding: Finding, registry: LayoutRegistry, unmask: bool) -> Finding:
    if unmask or finding.value is None or finding.field is None:
        return finding
    for layout in registry.standards():
        rec = layout.records.get(finding.kind)
        if rec is None:
            continue
        for f in rec.fields:
            if f.id == finding.field and f.check == "bsn":
                return Finding(**{**_as_kwargs(finding), "value": mask_bsn(finding.value)})
    return finding


def _as_kwargs(finding: Finding) -> dict[str, Any]:
    return {name: getattr(finding, name) for name in Finding.__slots__}


def _validate(args: argparse.Namespace) -> int:
    registry = _registry()
    if registry is None:
        return EXIT_USAGE
    missing = [p for p in args.files if not p.is_file()]
    if missing:
        for p in missing:
            print(f"igo-gateway validate: {p}: no such file", file=sys.stderr)
        return EXIT_USAGE
    all_valid = True
    for path in args.files:
        validator = Validator(registry)
        for chunk in _chunks(path):
            validator.feed(chunk)
        result = validator.close()
        result.findings[:] = [_masked(f, registry, args.unmask) for f in result.findings]
        all_valid &= result.valid
        if args.json:
            print(json.dumps(result.as_json(str(path)), ensure_ascii=False))
            continue
        what = result.layout.label if result.layout else "unknown standard"
        verdict = "valid" if result.valid else f"INVALID ({len(result.findings)} findings)"
        print(f"{path}: {what}, {result.records} records: {verdict}")
        for f in result.findings:
            print("  " + _describe_finding(f))
        if result.truncated:
            print("  (more findings left out)")
    return EXIT_OK if all_valid else EXIT_INVALID


def _describe_finding(f: Finding) -> str:
    where = f"record {f.record}" + (f" ({f.kind})" if f.kind else "")
    if f.field:
        where += f", field {f.field} {f.field_name!r}"
    if f.start is not None:
        where += f", positions {f.start}-{f.end}"
    value = f", value {f.value!r}" if f.value is not None else ""
    return f"{where}{value}: retourcode {f.retourcode} ({describe(f.retourcode)}) {f.message}"


def _show(args: argparse.Namespace) -> int:
    registry = _registry()
    if registry is None:
        return EXIT_USAGE
    path: Path = args.file
    if not path.is_file():
        print(f"igo-gateway show: {path}: no such file", file=sys.stderr)
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
                        f"\nline {event.number}: unreadable: {f.message} "
                        f"(retourcode {f.retourcode})\n"
                    )
                else:
                    out.write(_render(event, unmask=args.unmask, show_all=args.all))
    except EIError as exc:
        print(f"igo-gateway show: {path}: {exc}", file=sys.stderr)
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
        if f.check == "bsn" and not unmask:
            text = mask_bsn(text)
        if f.kind == "amount" and isinstance(value, int):
            text = f"{value / 100:.2f}"
        lines.append(f"  {f.id:>4} {f.label[:44]:<44} {f.start:>3}-{f.end:<3} {text}")
    return "\n".join(lines) + "\n"
