"""The prestatie catalogue and phase mapping: data, read from a TOML file.

The catalogue lists the integral prestaties (code, phase, kind, valid period); the mapping
tells, per standard, which phase a monodisciplinary prestatie code belongs to, whether it
makes the phase complex, which event it dates (a birth; an early end of the pregnancy) and
which extra integral prestatie it adds on top. The shipped file
(``schemas/catalogue/example.toml``) is an EXAMPLE with illustrative codes: the real NZa
codes are not confirmed here.
"""

from __future__ import annotations

import enum
import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.config import ConfigError, ConfigProblem
from gateway.resources import schemas_dir

__all__ = [
    "Catalogue",
    "Event",
    "IntegralPrestatie",
    "Kind",
    "Phase",
    "PhaseRule",
    "load_catalogue",
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


class Event(enum.StrEnum):
    BIRTH = "birth"
    EARLY_END = "early-end"


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

    def valid_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_until is None or day <= self.valid_until
        )


class _Mapping(_Model):
    standard: str
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

    @model_validator(mode="after")
    def _consistent(self) -> _File:
        codes = [p.code for p in self.integral]
        if len(codes) != len(set(codes)):
            raise ValueError("an integral prestatie code is listed twice")
        for p in self.integral:
            if p.repeatable and p.phase is not Phase.POSTNATAL:
                raise ValueError(f"{p.code}: only a postnatal prestatie may be repeatable")
        known = set(codes)
        seen: set[tuple[str, str]] = set()
        for m in self.mapping:
            if m.extra is not None and m.extra not in known:
                raise ValueError(f"mapping names unknown integral prestatie {m.extra}")
            for code in m.codes:
                if (m.standard, code) in seen:
                    raise ValueError(f"{m.standard} code {code} is mapped twice")
                seen.add((m.standard, code))
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
    rules: dict[tuple[str, str], PhaseRule]

    @property
    def is_example(self) -> bool:
        return self.status == "example"

    def rule(self, standard: str, code: str) -> PhaseRule | None:
        return self.rules.get((standard, code))

    def prestatie(self, phase: Phase, kind: Kind, on: date) -> IntegralPrestatie | None:
        for p in self.prestaties:
            if p.phase is phase and p.kind is kind and p.valid_on(on):
                return p
        return None

    def by_code(self, code: str) -> IntegralPrestatie | None:
        return next((p for p in self.prestaties if p.code == code), None)


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Read and check the catalogue at ``path`` (default: the shipped example); every
    problem raises :class:`~gateway.config.ConfigError` with its path in the file."""
    path = path or schemas_dir() / "catalogue" / "example.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(path, [ConfigProblem("", f"cannot read: {exc.strerror}")]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [ConfigProblem("", f"not valid TOML: {exc}")]) from None
    try:
        data = _File.model_validate(raw)
    except ValidationError as exc:
        problems = [
            ConfigProblem(
                ".".join(str(p) for p in error["loc"]),
                error["msg"].removeprefix("Value error, "),
            )
            for error in exc.errors(include_url=False, include_input=False)
        ]
        raise ConfigError(path, problems) from None
    rules = {
        (m.standard, code): PhaseRule(m.phase, m.complex, m.event, m.extra)
        for m in data.mapping
        for code in m.codes
    }
    return Catalogue(str(path), data.status, data.codelijst, data.integral, rules)
