"""The intake port, driven from outside: what the EPD API and the portal hand the gateway
(:class:`Upload`), what they get back (:class:`Receipt`) or the refusal
(:class:`IntakeRefusedError`), through :class:`UploadIntake` — implemented by
:class:`gateway.intake.Intake`, which holds the rules. The intake may have a file's checks
run in worker processes (:class:`FileChecks`, :mod:`adapters.check_workers`).
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from gateway.ei import Finding, ValidationResult
from gateway.errors import ErrorKind, GatewayError
from gateway.lines import DeclaredLine
from gateway.ports.messages import MessageStatus
from gateway.vsp import BerichtMetadata

__all__ = [
    "CheckedFile",
    "FileCheckUnavailableError",
    "FileChecks",
    "IntakeRefusedError",
    "Receipt",
    "Upload",
    "UploadIntake",
]


class IntakeRefusedError(GatewayError):
    """The upload is refused outright and nothing was stored. ``field`` is the part of
    the upload the refusal is about (a berichtMetadata path, or ``payload``); ``kind``
    is INVALID for an upload that contradicts itself or its certificate, CONFLICT for a
    traceerId that was used before for something else."""

    kind = ErrorKind.INVALID

    def __init__(self, kind: ErrorKind, code: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail, code=code, kind=kind)
        self.detail = detail
        self.field = field


@dataclass(frozen=True, slots=True)
class Upload:
    participant: str  # the authenticated participant's AGB code
    discipline: str
    metadata: BerichtMetadata
    payload: bytes
    filename: str | None = None


@dataclass(frozen=True, slots=True)
class Receipt:
    traceer_id: str
    conversatie_id: str
    created: bool
    status: MessageStatus
    code: str | None
    findings: tuple[Finding, ...] = ()
    standard: str | None = None


class UploadIntake(Protocol):
    """What an adapter that takes uploads calls (:class:`gateway.intake.Intake`)."""

    def receive(self, upload: Upload) -> Awaitable[Receipt]:
        """Check, journal and acknowledge ``upload``: the receipt once it is durable, or
        :class:`IntakeRefusedError` with nothing stored."""
        ...


@dataclass(frozen=True)
class CheckedFile:
    """What the intake checks found in one upload's payload (as
    :func:`gateway.upload_checks.check_upload` gives it) and the payload's SHA-256 (hex)."""

    result: ValidationResult
    lines: list[DeclaredLine]
    sha256: str


class FileCheckUnavailableError(GatewayError):
    """The file's checks could not be run elsewhere (no worker, or the worker failed):
    the intake runs them itself."""


class FileChecks(Protocol):
    """Runs the intake checks of an upload's payload outside the gateway's own process
    (:mod:`adapters.check_workers`): the same checks, the same findings and lines."""

    def check(self, payload: bytes, traceer_id: str, participant: str) -> Awaitable[CheckedFile]:
        """The checks of ``payload``; fails with :class:`FileCheckUnavailableError` when
        they could not be run there."""
        ...
