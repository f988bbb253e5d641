"""The prestatie catalogue and phase mapping: data, parsed from TOML text (the composition
root reads the file: :func:`gateway.loading.load_catalogue`).

The catalogue lists the integral prestaties (code, phase, kind, valid period); the mapping
tells, per standard, which phase a monodisciplinary code belongs to, whether it makes the
phase complex, which event it dates (a birth; an early end of the pregnancy) and which
extra integral prestatie it adds on top. A mapping names the field that carries its codes:
the prestatiecode (or DBC declaratiecode) by default, or, for hospital lines, the DBC
zorgproduct code or a zorgactiviteit code. The shipped file
(``schemas/catalogue/example.toml``) is an EXAMPLE: its monodisciplinary codes are real
codes with their published meanings, but the integral prestatie codes (list 069) are
placeholders — the real ones are not public.
"""

from __future__ import annotations

import enum
import tomllib
from dataclasses import dataclass, field
from datetime import date

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.errors import ErrorKind, GatewayError
from gateway.lines import DeclaredLine

__all__ = [
    "Catalogue",
    "CatalogueError",
    "CodeField",
    "Event",
    "IntegralPrestatie",
    "Kind",
    "Phase",
    "PhaseRule",
    "codes_of",
    "parse_catalogue",
    "same_code",
]


class Phase(enum.StrEnum):
    PRENATAL = "prenatal"
    NATAL = "natal"
    POSTNATAL = "postnatal"


class Kind(enum.StrEnum):
    NON_COMPLEX = "non-complex"
    COMPLEX = "complex"
    EARLY_END = "early-end"  # care ending before 16 weeks (experiment years)
    EXTRA = "extra"  # on top of another in the same phase (prestatie 9)
    # A further prestatie of the phase whose criterion is not public (the natal phase has
    # two non-complex ones): listed for completeness, never chosen by the rules.
    VARIANT = "variant"


class Event(enum.StrEnum):
    BIRTH = "birth"
    EARLY_END = "early-end"


class CodeField(enum.StrEnum):
    """Which field of a line carries a mapping's codes."""

    PRESTATIECODE = "prestatiecode"  # prestatiecode / DBC declaratiecode (record 04)
    ZORGPRODUCT = "zorgproduct"  # DBC zorgproduct code, 9 digits (ZH308)
    ZORGACTIVITEIT = "zorgactiviteit"  # zorgactiviteit code (ZH308)


def same_code(a: str, b: str) -> bool:
    """Two codes are the same; numeric codes also without their leading zeros (a
    zorgactiviteit is written 039485 as well as 39485)."""
    a, b = a.strip(), b.strip()
    if a.isdigit() and b.isdigit():
        return int(a) == int(b)
    return a == b


def codes_of(line: DeclaredLine, which: CodeField) -> tuple[str, ...]:
    """The codes ``line`` carries in field ``which``."""
    if which is CodeField.PRESTATIECODE:
        return (line.prestatiecode,) if line.prestatiecode else ()
    if which is CodeField.ZORGPRODUCT:
        return (line.zorgproduct,) if line.zorgproduct else ()
    return line.zorgactiviteiten


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IntegralPrestatie(_Model):
    code: str = Field(min_length=1, max_length=6)
    name: str = Field(min_length=1)
    phase: Phase
    kind: Kind
    valid_from: date | None = None
    valid_until: date | None = None
    repeatable: bool = False
    placeholder: bool = False  # the code stands in for one not known here

    def valid_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_until is None or day <= self.valid_until
        )


class _Mapping(_Model):
    standard: str
    field: CodeField = CodeField.PRESTATIECODE
    codes: tuple[str, ...] = Field(min_length=1)
    phase: Phase
    complex: bool = False
    event: Event | None = None
    extra: str | None = None


class _File(_Model):
    status: str = "example"
    codelijst: str = Field(min_length=1, max_length=3)
    integral: tuple[IntegralPrestatie, ...] = Field(min_length=1)
    mapping: tuple[_Mapping, ...] = ()
    # What a monodisciplinary code means, for people (the admin site): code → description.
    descriptions: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> _File:
        codes = [p.code for p in self.integral]
        if len(codes) != len(set(codes)):
            raise ValueError("an integral prestatie code is listed twice")
        for p in self.integral:
            if p.repeatable and p.phase is not Phase.POSTNATAL:
                raise ValueError(f"{p.code}: only a postnatal prestatie may be repeatable")
        known = set(codes)
        seen: set[tuple[str, CodeField, str]] = set()
        for m in self.mapping:
            if m.extra is not None and m.extra not in known:
                raise ValueError(f"mapping names unknown integral prestatie {m.extra}")
            for code in m.codes:
                key = (m.standard, m.field, code.lstrip("0") if code.isdigit() else code)
                if key in seen:
                    raise ValueError(f"{m.standard} {m.field.value} {code} is mapped twice")
                seen.add(key)
        return self


@dataclass(frozen=True, slots=True)
class PhaseRule:
    phase: Phase
    complex: bool
    event: Event | None
    extra: str | None


@dataclass(frozen=True)
class Catalogue:
    source: str
    status: str
    codelijst: str
    prestaties: tuple[IntegralPrestatie, ...]
    rules: dict[tuple[str, str], PhaseRule]  # (standard, prestatiecode)
    # Rules on the other fields: (standard, field) → [(code, rule)].
    other_rules: dict[tuple[str, CodeField], tuple[tuple[str, PhaseRule], ...]] = field(
        default_factory=dict
    )
    descriptions: dict[str, str] = field(default_factory=dict)  # code → what it means

    @property
    def is_example(self) -> bool:
        return self.status == "example"

    def rule(self, standard: str, code: str) -> PhaseRule | None:
        return self.rules.get((standard, code))

    def rule_of(self, line: DeclaredLine) -> PhaseRule | None:
        """The rule for ``line``: by its prestatiecode first, then by the other codes it
        carries (zorgproduct, zorgactiviteiten), each against its own mapping."""
        found = self.rules.get((line.standard, line.prestatiecode))
        if found is not None:
            return found
        for code_field in (CodeField.ZORGPRODUCT, CodeField.ZORGACTIVITEIT):
            mapped = self.other_rules.get((line.standard, code_field), ())
            for code in codes_of(line, code_field):
                for known, rule in mapped:
                    if same_code(known, code):
                        return rule
        return None

    def prestatie(self, phase: Phase, kind: Kind, on: date) -> IntegralPrestatie | None:
        for p in self.prestaties:
            if p.phase is phase and p.kind is kind and p.valid_on(on):
                return p
        return None

    def by_code(self, code: str) -> IntegralPrestatie | None:
        return next((p for p in self.prestaties if p.code == code), None)

    def describe(self, code: str) -> str | None:
        """What ``code`` means: an integral prestatie's name, else the description of a
        monodisciplinary code (None when the catalogue gives none)."""
        found = self.by_code(code)
        return found.name if found is not None else self.descriptions.get(code)


class CatalogueError(GatewayError):
    """A catalogue that cannot be used; ``problems`` lists each as (where, what)."""

    code = "catalogue-invalid"
    kind = ErrorKind.MISCONFIGURED

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__(
            "; ".join(f"{where}: {what}" if where else what for where, what in problems)
        )


def parse_catalogue(text: str, source: str) -> Catalogue:
    """The catalogue in TOML ``text`` (read by the composition root:
    :func:`gateway.loading.load_catalogue`); every problem raises
    :class:`CatalogueError` with its path in the file."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError([("", f"not valid TOML: {exc}")]) from None
    try:
        data = _File.model_validate(raw)
    except ValidationError as exc:
        raise CatalogueError(
            [
                (
                    ".".join(str(p) for p in error["loc"]),
                    error["msg"].removeprefix("Value error, "),
                )
                for error in exc.errors(include_url=False, include_input=False)
            ]
        ) from None
    rules = {
        (m.standard, code): PhaseRule(m.phase, m.complex, m.event, m.extra)
        for m in data.mapping
        if m.field is CodeField.PRESTATIECODE
        for code in m.codes
    }
    other: dict[tuple[str, CodeField], list[tuple[str, PhaseRule]]] = {}
    for m in data.mapping:
        if m.field is not CodeField.PRESTATIECODE:
            other.setdefault((m.standard, m.field), []).extend(
                (code, PhaseRule(m.phase, m.complex, m.event, m.extra)) for code in m.codes
            )
    return Catalogue(
        source,
        data.status,
        data.codelijst,
        data.integral,
        rules,
        {key: tuple(value) for key, value in other.items()},
        dict(data.descriptions),
    )
