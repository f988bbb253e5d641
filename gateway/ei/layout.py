"""Record layouts: the data that tells the codec where every field sits.

Layouts are XML files in ``schemas/layouts/`` validated against ``schemas/ei-layout.xsd``.
A layout may inherit records from another one (a frame such as the generic 310-position
declaration, or the declaration a retour answers) and add a retour *tail* to them. The
loader checks that every record is covered by its fields exactly once, from position 1 to
the record length, so a broken layout file is a clear start-up error rather than a
misread field later.

Everything here is immutable once loaded; decoding a field is a slice of the record's
bytes plus one conversion, done only when a field is asked for.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Literal

from lxml import etree

from gateway.ei.findings import EIError, Finding
from gateway.errors import ErrorKind, GatewayError
from gateway.xmlsafe import XMLError, parse_xml

__all__ = [
    "FieldLayout",
    "FieldValue",
    "Layout",
    "LayoutError",
    "LayoutRegistry",
    "RecordLayout",
    "build_layouts",
]

NS = "{urn:igo-gateway:ei-layout:1}"
FieldKind = Literal[
    "kenmerk", "code", "number", "date", "amount", "dc", "text", "reserve", "opaque"
]
FieldValue = str | int | date | None

# AN fields hold printable ISO 8859-1 text; N fields hold ASCII digits.
_AN_CLASS = rb"[\x20-\x7e\xa0-\xff]"
_ZERO_DATE = b"00000000"


class LayoutError(GatewayError):
    """A layout file is missing, malformed, or inconsistent."""

    code = "layout-invalid"
    kind = ErrorKind.MISCONFIGURED


@dataclass(frozen=True, slots=True)
class FieldLayout:
    """One field of a record: where it is, how it is typed and how it is decoded."""

    id: str
    code: str
    name: str
    type: Literal["N", "AN"]
    kind: FieldKind
    start: int  # 1-based, inclusive
    length: int
    required: Literal["M", "C", "O", "S"]
    label: str
    check: str | None = None
    retourcode: str | None = None
    total: str | None = None
    parent_key: bool = False  # must equal the same field of the parent record
    # Where the field's bytes are in its record (0-based): computed once, as every
    # record read or written slices its fields by it.
    slice: builtins.slice = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "slice", builtins.slice(self.start - 1, self.end))

    @property
    def end(self) -> int:
        """1-based inclusive end position."""
        return self.start + self.length - 1

    def pattern(self) -> bytes:
        """A regular expression (bytes) that a well-typed value of this field matches."""
        if self.kind == "amount":
            return rb"[0-9]{%d}[DC]" % (self.length - 1)
        if self.kind == "dc":
            return rb"[DC ]"
        if self.type == "N":
            return rb"[0-9]{%d}" % self.length
        return _AN_CLASS + rb"{%d}" % self.length

    def is_empty(self, raw: bytes) -> bool:
        """True when the field carries no value: spaces for AN, zeros for codes and dates."""
        if self.type == "AN" or self.kind == "dc":
            return raw.strip(b" ") == b""
        if self.kind in ("code", "date"):
            return raw.strip(b"0") == b""
        return False

    def decode(self, raw: bytes) -> FieldValue:
        """Decode this field's bytes (exactly ``length`` of them) into a Python value.

        Raises :class:`EIError` when the bytes do not fit the field's type.
        """
        kind = self.kind
        try:
            if kind in ("text", "reserve", "opaque"):
                return (
                    raw.decode("latin-1").rstrip(" ") if kind == "text" else raw.decode("latin-1")
                )
            if kind in ("code", "kenmerk"):
                if not raw.isdigit():
                    raise ValueError
                return raw.decode("ascii")
            if kind == "number":
                if not raw.isdigit():
                    raise ValueError
                return int(raw)
            if kind == "date":
                if raw == _ZERO_DATE:
                    return None
                if not raw.isdigit():
                    raise ValueError
                return date(int(raw[:4]), int(raw[4:6]), int(raw[6:8]))
            if kind == "amount":
                digits, sign = raw[:-1], raw[-1:]
                if not digits.isdigit() or sign not in (b"D", b"C"):
                    raise ValueError
                value = int(digits)
                return -value if sign == b"C" else value
            # dc
            if raw not in (b"D", b"C", b" "):
                raise ValueError
            return raw.decode("ascii").strip() or None
        except ValueError:
            raise EIError(
                Finding(
                    record=0,
                    kind="",
                    retourcode=self.retourcode or "0806",
                    message=f"{self.label}: value does not match its type ({self.type} {kind})",
                    field=self.id,
                    field_name=self.label,
                    start=self.start,
                    end=self.end,
                    value=raw.decode("latin-1"),
                )
            ) from None

    def encode(self, value: FieldValue) -> bytes:
        """Encode ``value`` into exactly ``length`` bytes; :class:`EIError` if it does not fit."""
        kind = self.kind
        out: bytes
        try:
            if value is None or value == "":
                if kind == "amount":
                    out = b"0" * (self.length - 1) + b"D"
                elif self.type == "N":
                    out = b"0" * self.length
                else:
                    out = b" " * self.length
            elif kind == "date":
                if not isinstance(value, date):
                    raise ValueError("a date is needed")
                out = value.strftime("%Y%m%d").encode("ascii")
            elif kind == "amount":
                if not isinstance(value, int):
                    raise ValueError("an int amount in eurocents is needed")
                digits = str(abs(value)).rjust(self.length - 1, "0")
                out = (digits + ("C" if value < 0 else "D")).encode("ascii")
            elif self.type == "N":
                text = str(value)
                if not text.isdigit():
                    raise ValueError("digits are needed")
                out = text.rjust(self.length, "0").encode("ascii")
            else:
                out = str(value).ljust(self.length, " ").encode("latin-1")
        except (ValueError, UnicodeEncodeError) as exc:
            raise self._encode_error(value, str(exc)) from None
        if len(out) != self.length:
            raise self._encode_error(value, f"longer than {self.length} positions")
        return out

    def _encode_error(self, value: object, why: str) -> EIError:
        return EIError(
            Finding(
                record=0,
                kind="",
                retourcode=self.retourcode or "0806",
                message=f"{self.label}: cannot write value ({why})",
                field=self.id,
                field_name=self.label,
                start=self.start,
                end=self.end,
                value=str(value),
            )
        )


@dataclass(frozen=True, slots=True)
class RecordLayout:
    """The fields of one record type within one standard."""

    type: str
    name: str
    status: str
    position: Literal["first", "detail", "last"]
    parent: str | None
    length: int
    fields: tuple[FieldLayout, ...]
    by_name: Mapping[str, FieldLayout] = field(repr=False, compare=False)
    pattern: bytes = field(repr=False, compare=False)  # what a well-typed record matches
    blank: bytes = field(repr=False, compare=False)
    # Fields that need more than a type check, precomputed for the validator.
    checked: tuple[FieldLayout, ...] = field(repr=False, compare=False)
    # Fields that must equal the same field of the parent record (see ei-layout.xsd).
    parent_keys: tuple[FieldLayout, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def create(
        cls,
        type_: str,
        name: str,
        status: str,
        position: Literal["first", "detail", "last"],
        parent: str | None,
        length: int,
        fields: Iterable[FieldLayout],
        source: str,
    ) -> RecordLayout:
        ordered = tuple(sorted(fields, key=lambda f: f.start))
        expected = 1
        for f in ordered:
            if f.start != expected:
                raise LayoutError(
                    f"{source}: record {type_}: field {f.id} ({f.name}) starts at {f.start}, "
                    f"expected {expected} (gap or overlap)"
                )
            expected = f.end + 1
        if expected != length + 1:
            raise LayoutError(
                f"{source}: record {type_}: fields end at {expected - 1}, record length is {length}"
            )
        by_name: dict[str, FieldLayout] = {}
        for f in ordered:
            if f.name in by_name:
                raise LayoutError(f"{source}: record {type_}: field name {f.name!r} used twice")
            by_name[f.name] = f
        if "kenmerk" not in by_name or by_name["kenmerk"].slice != slice(0, 2):
            raise LayoutError(f"{source}: record {type_}: positions 1-2 must be the kenmerk field")
        if position == "detail" and "record_id" not in by_name:
            raise LayoutError(f"{source}: record {type_}: a detail record needs a record_id field")
        pattern = b"".join(f.pattern() for f in ordered)
        blank = b"".join(
            type_.encode("ascii") if f.kind == "kenmerk" else f.encode(None) for f in ordered
        )
        checked = tuple(
            f for f in ordered if f.required == "M" or f.check or f.kind in ("date", "amount", "dc")
        )
        return cls(
            type=type_,
            name=name,
            status=status,
            position=position,
            parent=parent,
            length=length,
            fields=ordered,
            by_name=MappingProxyType(by_name),
            pattern=pattern,
            blank=blank,
            checked=checked,
            parent_keys=tuple(f for f in ordered if f.parent_key),
        )

    @property
    def regex(self) -> re.Pattern[bytes]:
        """:attr:`pattern` compiled, when first needed (compiling every record type of
        every standard would cost each command's start-up tens of milliseconds); later
        calls find it in :mod:`re`'s cache."""
        return re.compile(self.pattern)

    def field(self, name: str) -> FieldLayout:
        try:
            return self.by_name[name]
        except KeyError:
            raise KeyError(f"record {self.type} has no field {name!r}") from None

    def has(self, name: str) -> bool:
        return name in self.by_name


@dataclass(frozen=True, slots=True)
class Layout:
    """One EI standard and version (or a frame that standards inherit from)."""

    id: str
    kind: Literal["frame", "declaration", "retour"]
    standard: str
    code: str
    code_status: str
    version: str
    subversion: str
    record_length: int
    status: str
    title: str
    provenance: str
    retour: str | None
    answers: str | None
    records: Mapping[str, RecordLayout]
    source: str

    @property
    def label(self) -> str:
        """E.g. ``KZ301 v3.2``."""
        return f"{self.standard} v{int(self.version)}.{int(self.subversion)}"

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.code, self.version, self.subversion)

    def record(self, type_: str) -> RecordLayout:
        try:
            return self.records[type_]
        except KeyError:
            raise KeyError(f"{self.label} has no record type {type_}") from None

    def totals(self, total: str) -> tuple[tuple[str, FieldLayout], ...]:
        """The (record type, field) pairs whose amounts add up into the 99 total ``total``."""
        return tuple(
            (t, f) for t, rec in self.records.items() for f in rec.fields if f.total == total
        )


class LayoutRegistry:
    """All loaded layouts, found by id or by what a file's 01 record says."""

    def __init__(self, layouts: Iterable[Layout]) -> None:
        self._by_id: dict[str, Layout] = {}
        self._by_key: dict[tuple[str, str, str], Layout] = {}
        for layout in layouts:
            self._by_id[layout.id] = layout
            if layout.kind != "frame":
                if layout.key in self._by_key:
                    other = self._by_key[layout.key]
                    raise LayoutError(
                        f"{layout.source}: code {layout.code} version {layout.version}."
                        f"{layout.subversion} is also claimed by {other.source}"
                    )
                self._by_key[layout.key] = layout
        self._codes = {key[0] for key in self._by_key}

    def __iter__(self) -> Iterator[Layout]:
        return iter(self.standards())

    def standards(self) -> list[Layout]:
        """Every declaration and retour layout (frames left out), sorted by id."""
        return sorted(self._by_key.values(), key=lambda lay: lay.id)

    def by_id(self, layout_id: str) -> Layout:
        try:
            return self._by_id[layout_id]
        except KeyError:
            raise KeyError(f"no layout {layout_id!r}") from None

    def by_standard(self, standard: str, version: str | None = None) -> Layout:
        """The layout of a standard name, e.g. ``ZH308``: of ``version`` (e.g. ``08``) when
        given, else the newest version the gateway knows."""
        found = [
            lay
            for lay in self._by_key.values()
            if lay.standard == standard and version in (None, lay.version)
        ]
        if not found:
            raise KeyError(f"no layout for standard {standard!r} version {version or 'any'}")
        return max(found, key=lambda lay: (lay.version, lay.subversion))

    def lookup(self, code: str, version: str, subversion: str) -> Layout | None:
        return self._by_key.get((code, version, subversion))

    def knows_code(self, code: str) -> bool:
        return code in self._codes

    def retour_of(self, declaration: Layout) -> Layout:
        if declaration.retour is None:
            raise KeyError(f"{declaration.label} has no retour layout")
        return self.by_id(declaration.retour)


# --- loading -------------------------------------------------------------------------------


def _attr(el: etree._Element, name: str, default: str | None = None) -> str | None:
    value = el.get(name)
    return default if value is None else str(value)


def _field(el: etree._Element) -> FieldLayout:
    def req(name: str) -> str:
        value = el.get(name)
        assert value is not None  # the XSD makes it required
        return str(value)

    return FieldLayout(
        id=req("id"),
        code=req("code"),
        name=req("name"),
        type=req("type"),  # type: ignore[arg-type]
        kind=req("kind"),  # type: ignore[arg-type]
        start=int(req("start")),
        length=int(req("length")),
        required=req("required"),  # type: ignore[arg-type]
        label=req("label"),
        check=_attr(el, "check"),
        retourcode=_attr(el, "retourcode"),
        total=_attr(el, "total"),
        parent_key=_attr(el, "parent-key") in ("true", "1"),
    )


@dataclass(slots=True)
class _RawLayout:
    root: etree._Element
    source: str


def _build(
    layout_id: str,
    raws: Mapping[str, _RawLayout],
    built: dict[str, Layout],
    stack: tuple[str, ...],
) -> Layout:
    if layout_id in built:
        return built[layout_id]
    if layout_id in stack:
        raise LayoutError(f"layouts inherit from each other in a cycle: {' -> '.join(stack)}")
    raw = raws.get(layout_id)
    if raw is None:
        raise LayoutError(
            f"{stack[-1] if stack else '?'}: inherits from unknown layout {layout_id!r}"
        )
    root, source = raw.root, raw.source
    length = int(str(root.get("record-length")))
    records: dict[str, RecordLayout] = {}
    parts: dict[str, tuple[str, str, str, str | None, list[FieldLayout]]] = {}
    for inherit in root.iterfind(f"{NS}inherit"):
        base = _build(str(inherit.get("layout")), raws, built, (*stack, layout_id))
        for type_ in str(inherit.get("records")).split():
            if type_ not in base.records:
                raise LayoutError(f"{source}: {base.id} has no record {type_} to inherit")
            rec = base.records[type_]
            parts[type_] = (rec.name, rec.status, rec.position, rec.parent, list(rec.fields))
    for rec_el in root.iterfind(f"{NS}record"):
        type_ = str(rec_el.get("type"))
        if type_ in parts:
            raise LayoutError(f"{source}: record {type_} is both inherited and defined")
        parts[type_] = (
            str(rec_el.get("name")),
            str(rec_el.get("status")),
            str(rec_el.get("position")),
            _attr(rec_el, "parent"),
            [_field(f) for f in rec_el.iterfind(f"{NS}field")],
        )
    for tail in root.iterfind(f"{NS}tail"):
        type_ = str(tail.get("record"))
        if type_ not in parts:
            raise LayoutError(
                f"{source}: a tail for record {type_}, which the layout does not have"
            )
        name, status, position, parent, fields = parts[type_]
        tail_status = str(tail.get("status"))
        merged_status = "modelled" if "modelled" in (status, tail_status) else "confirmed"
        parts[type_] = (
            name,
            merged_status,
            position,
            parent,
            fields + [_field(f) for f in tail.iterfind(f"{NS}field")],
        )
    for type_, (name, status, position, parent, fields) in parts.items():
        records[type_] = RecordLayout.create(
            type_,
            name,
            status,
            position,  # type: ignore[arg-type]
            parent,
            length,
            fields,
            source,
        )
    kind = str(root.get("kind"))
    if kind != "frame":
        positions = [r.position for r in records.values()]
        if positions.count("first") != 1 or positions.count("last") != 1:
            raise LayoutError(f"{source}: a standard needs exactly one first and one last record")
        for rec in records.values():
            if rec.parent not in (None, "*") and rec.parent not in records:
                raise LayoutError(f"{source}: record {rec.type} has unknown parent {rec.parent}")
            for f in rec.parent_keys:
                parent_rec = records.get(rec.parent or "")
                if parent_rec is None or not parent_rec.has(f.name):
                    raise LayoutError(
                        f"{source}: record {rec.type}: parent-key field {f.name!r} is not "
                        f"in its parent record {rec.parent}"
                    )
        for needed in ("code", "version", "subversion", "standard"):
            if root.get(needed) is None:
                raise LayoutError(f"{source}: a {kind} layout needs the attribute {needed!r}")
    title = root.find(f"{NS}title")
    provenance = root.find(f"{NS}provenance")
    layout = Layout(
        id=layout_id,
        kind=kind,  # type: ignore[arg-type]
        standard=str(root.get("standard", layout_id)),
        code=str(root.get("code", "")),
        code_status=str(root.get("code-status", root.get("status"))),
        version=str(root.get("version", "")),
        subversion=str(root.get("subversion", "")),
        record_length=length,
        status=str(root.get("status")),
        title=(title.text or "") if title is not None else "",
        provenance=(provenance.text or "") if provenance is not None else "",
        retour=_attr(root, "retour"),
        answers=_attr(root, "answers"),
        records=MappingProxyType(records),
        source=source,
    )
    built[layout_id] = layout
    return layout


def build_layouts(
    documents: Iterable[tuple[str, bytes]], schema: etree.XMLSchema
) -> LayoutRegistry:
    """The registry of the layout ``documents`` (``(source, bytes)`` each, as read by the
    composition root: :func:`gateway.loading.load_layouts`), each checked against the
    layout ``schema``. Reads nothing itself.

    Raises :class:`LayoutError` naming the source and what is wrong with it.
    """
    raws: dict[str, _RawLayout] = {}
    for source, data in documents:
        try:
            root = parse_xml(data, source=source)
        except XMLError as exc:
            raise LayoutError(str(exc)) from None
        if not schema.validate(root):
            errors = "; ".join(f"line {e.line}: {e.message}" for e in schema.error_log)
            raise LayoutError(f"{source}: does not match ei-layout.xsd: {errors}")
        layout_id = str(root.get("id"))
        if layout_id in raws:
            raise LayoutError(
                f"{source}: layout id {layout_id!r} also used by {raws[layout_id].source}"
            )
        raws[layout_id] = _RawLayout(root, source)
    if not raws:
        raise LayoutError("no layout documents")
    built: dict[str, Layout] = {}
    for layout_id in raws:
        _build(layout_id, raws, built, ())
    registry = LayoutRegistry(built.values())
    for layout in registry.standards():
        for ref in (layout.retour, layout.answers):
            if ref is not None and ref not in built:
                raise LayoutError(f"{layout.source}: refers to unknown layout {ref!r}")
    return registry
