"""The insurer simulator's own config file (TOML), separate from the gateway's.

Example (``fixtures/insurer-sim.example.toml`` is a complete one)::

    host = "127.0.0.1"
    port = 9443            # 0: any free port; the log line names the one chosen
    uzovi = "3311"

    [tls]
    cert = "pki/server.pem"
    key = "pki/server.key"
    trust = "pki/ca.pem"   # CAs whose client certificates may connect

    [rules]
    not_insured = ["123456782"]                           # 0320
    overlap = [{ bsn = "999999990", from = 2026-01-01 }]  # 0587
    tariffs = { "196202" = 12000 }                        # 0611 when the tariff differs
    reject_invoices = ["F2026-0099"]                      # whole file, 0001

    [faults]
    fail_first = 2         # the first two uploads answer 503 and store nothing
    stall_first = 1        # the next one is stored, but its answer never comes in time
    cut_first = 1          # the next one is stored, then its connection is cut unanswered
    service_reject_first = 1  # the next one is taken (204), then rejected by the service

Relative paths are resolved against the config file's directory. Every problem of a file
is reported at once, each with its path in the file.
"""

from __future__ import annotations

import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from gateway.config import ConfigError, ConfigProblem

__all__ = [
    "OverlapRule",
    "SimConfig",
    "SimFaults",
    "SimRules",
    "SimTLS",
    "load_sim_config",
]

_BSN = re.compile(r"\d{9}")
_UZOVI = re.compile(r"\d{4}")
_MELDING_CODE = re.compile(r"[0-9A-Za-z_-]{1,20}")
_PRESTATIECODE = re.compile(r"[0-9A-Za-z]{1,6}")


def _bsn(value: str) -> str:
    if not _BSN.fullmatch(value):
        raise PydanticCustomError("bsn", "must be 9 digits (a BSN)")
    return value


def _uzovi(value: str) -> str:
    if not _UZOVI.fullmatch(value):
        raise PydanticCustomError("uzovi", "must be 4 digits (a UZOVI code)")
    return value


def _file(value: Path, info: ValidationInfo) -> Path:
    context = info.context if isinstance(info.context, dict) else {}
    base = context.get("base_dir")
    value = value.expanduser()
    if isinstance(base, Path) and not value.is_absolute():
        value = base / value
    if context.get("check_files", False) and not value.is_file():
        raise PydanticCustomError("no_file", "no such file: {file}", {"file": str(value)})
    return value


def _melding_code(value: str) -> str:
    if not _MELDING_CODE.fullmatch(value):
        raise PydanticCustomError("code", "must be 1-20 letters, digits, '-' or '_'")
    return value


Bsn = Annotated[str, AfterValidator(_bsn)]
MeldingCode = Annotated[str, AfterValidator(_melding_code)]
Uzovi = Annotated[str, AfterValidator(_uzovi)]
FilePath = Annotated[Path, AfterValidator(_file)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimTLS(_Section):
    """The simulator's server certificate and the CAs of the clients it accepts."""

    cert: FilePath
    key: FilePath
    trust: FilePath
    crl: FilePath | None = None


class OverlapRule(_Section):
    """Lines of this BSN (with a prestatie date from ``from`` up to ``to``, when given)
    were already declared by someone else: one pregnancy's care, answered 0587."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    bsn: Bsn
    from_date: date | None = Field(default=None, alias="from")
    to_date: date | None = Field(default=None, alias="to")

    def matches(self, bsn: str, on: date | None) -> bool:
        if bsn != self.bsn:
            return False
        if on is None:
            return self.from_date is None and self.to_date is None
        return (self.from_date is None or on >= self.from_date) and (
            self.to_date is None or on <= self.to_date
        )


class SimRules(_Section):
    """How the simulated insurer judges a file that passed the technical checks.

    A line without any matching rule is granted at its declared amount.
    """

    not_insured: tuple[Bsn, ...] = Field(
        default=(), description="BSNs not insured with this insurer: their lines get 0320."
    )
    members: dict[Bsn, str] = Field(
        default_factory=dict,
        description="The insurer's member number (verzekerdennummer) per BSN: a 02 record "
        "for such a BSN with another member number gets 0320 (the insurer does not find "
        "that member), and so does every line of that insured.",
    )
    overlap: tuple[OverlapRule, ...] = Field(
        default=(), description="Care already declared by someone else: 0587."
    )
    tariffs: dict[str, int] = Field(
        default_factory=dict,
        description="Agreed tariff in eurocents per prestatiecode; a line with another "
        "tariff gets 0611. Codes not listed are granted at what was declared.",
    )
    reject_invoices: tuple[str, ...] = Field(
        default=(),
        description="Factuurnummers whose files are rejected whole (0001), for rehearsing.",
    )
    reject_all: bool = Field(default=False, description="Reject every file whole (0001).")

    @field_validator("tariffs")
    @classmethod
    def _check_tariffs(cls, tariffs: dict[str, int]) -> dict[str, int]:
        for code, tariff in tariffs.items():
            if not _PRESTATIECODE.fullmatch(code):
                raise ValueError(f"{code!r} is not a prestatiecode")
            if tariff < 0:
                raise ValueError(f"the tariff of {code} must not be negative")
        return tariffs


class SimFaults(_Section):
    """Misbehaviour on purpose, counted over uploads (``POST /berichten``) from the start.

    Uploads 1..``fail_first`` answer ``fail_status`` and store nothing; the next
    ``stall_first`` uploads are stored (and answered in the queue) but their HTTP answer is
    held back ``stall_seconds`` — longer than a client waits, so it sees a timeout for a
    file the insurer has; the next ``cut_first`` uploads are stored too, and then the
    connection is cut (aborted) instead of answered, so the client sees the connection
    drop for a file the insurer has; the next ``service_reject_first`` uploads are taken
    (``204``) and then rejected by the exchange service itself, as VECOZO may reject a
    message before the insurer sees it: no claim is booked and no retour will come, and
    the message's status is ``AfgekeurdDoorDienst`` with ``service_reject_codes`` in its
    ``meldingen``. Later uploads behave.
    """

    fail_first: int = Field(default=0, ge=0)
    fail_status: int = Field(default=503, ge=500, le=599)
    stall_first: int = Field(default=0, ge=0)
    stall_seconds: float = Field(default=120.0, gt=0)
    cut_first: int = Field(default=0, ge=0)
    service_reject_first: int = Field(default=0, ge=0)
    service_reject_codes: tuple[MeldingCode, ...] = Field(
        default=("SIM001",),
        min_length=1,
        max_length=100,
        description="The codes in the meldingen of a message rejected by the service. Which "
        "codes VECOZO uses is not confirmed: the default SIM001 is the simulator's own.",
    )
    response_delay_seconds: float = Field(
        default=0.0, ge=0, description="Every answer (any route) waits this long."
    )
    retour_delay_seconds: float = Field(
        default=0.0, ge=0, description="A retour appears in the queue this long after upload."
    )


class SimConfig(_Section):
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=9443, ge=0, le=65535)
    uzovi: Uzovi
    name: str = Field(default="Gesimuleerde zorgverzekeraar", min_length=1)
    tls: SimTLS
    rules: SimRules = Field(default_factory=SimRules)
    faults: SimFaults = Field(default_factory=SimFaults)


def load_sim_config(path: str | Path, *, check_files: bool = True) -> SimConfig:
    """Read and check the simulator's config file; :class:`ConfigError` lists every problem."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise ConfigError(path, [ConfigProblem("", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError(path, [ConfigProblem("", "not UTF-8 text")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [ConfigProblem("", f"not valid TOML: {exc}")]) from None
    context = {"base_dir": path.resolve().parent, "check_files": check_files}
    try:
        return SimConfig.model_validate(raw, context=context)
    except ValidationError as exc:
        raise ConfigError(path, _problems(exc)) from None


def _problems(exc: ValidationError) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ""
        for part in error["loc"]:
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else part)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "required but missing"
        elif error["type"] == "extra_forbidden":
            message = "unknown setting"
        problems.append(ConfigProblem(where, message))
    return problems
