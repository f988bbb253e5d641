"""The gateway's configuration file: TOML, read once at start-up, checked whole.

Every section is its own frozen pydantic model, so later sections (insurers, contracts,
the insurer link) are added as new fields of :class:`GatewayConfig` without touching the
others. :func:`load_config` reports *every* problem of a file at once, each with its path in
the file (``participants[1].agb: must be 8 digits``; list indexes count from 0), before
anything starts. Relative file paths in the file are resolved against the directory of the
config file, so the gateway can be started from anywhere.

An example::

    data_dir = "data"

    [igo]
    name = "Geboortezorg Voorbeeldstad"
    agb = "53001234"

    [store]
    url = "sqlite:///data/gateway.db"

    [epd_api]
    host = "127.0.0.1"
    port = 8443

    [epd_api.tls]
    cert = "pki/server.pem"
    key = "pki/server.key"
    trust = "pki/ca.pem"

    [[participants]]
    agb = "02001234"
    name = "Verloskundigenpraktijk De Wieg"
    discipline = "midwifery"
    variant = "A"
    certificates = ["3a:7f:..."]

The JSON Schema of the format (:func:`config_json_schema`, ``igo-gateway config schema``)
is committed as ``schemas/config.schema.json`` for editors and reviewers.
"""

from __future__ import annotations

import enum
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from gateway.admin.cases import CaseKind
from gateway.errors import ErrorKind, GatewayError
from gateway.rules.model import Discipline, Distribution, RuleSet, Variant

__all__ = [
    "AdminConfig",
    "AdminTLS",
    "BerichtstroomConfig",
    "BundlingConfig",
    "CertificatesConfig",
    "ConfigError",
    "ConfigProblem",
    "ContractConfig",
    "EncryptionConfig",
    "EpdApiConfig",
    "GatewayConfig",
    "IgoConfig",
    "InsurerConfig",
    "InsurerLinkConfig",
    "LinkKind",
    "LogFormat",
    "LoggingConfig",
    "MetricsConfig",
    "ParticipantConfig",
    "Participation",
    "RetentionConfig",
    "RetryConfig",
    "StoreConfig",
    "TLSFiles",
    "config_json_schema",
    "identity_conflicts",
    "load_config",
    "normalise_fingerprint",
]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
DEFAULT_DATA_DIR = "data"
# VECOZO's own limit is 20 MB per upload; taken as 20 * 10**6 bytes, the stricter reading.
DEFAULT_MAX_UPLOAD_BYTES = 20_000_000
IGO_ZORGVERLENERSOORT = "53"  # integrale geboortezorg

_AGB = re.compile(r"\d{8}")
_HEX = re.compile(r"[0-9a-f]{64}")
_STORE_SCHEMES = ("sqlite:///", "postgresql://", "postgres://")


# --- errors -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a config file. ``path`` is where, in the file's own terms
    (``participants[1].agb``); empty for the file as a whole."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(GatewayError):
    """A config file that cannot be used; ``problems`` lists everything wrong with it."""

    code = "config-invalid"
    kind = ErrorKind.MISCONFIGURED

    def __init__(self, source: str | Path, problems: Sequence[ConfigProblem]) -> None:
        self.source = str(source)
        self.problems = tuple(problems)
        count = len(self.problems)
        lines = [f"{self.source}: {count} problem{'s' if count != 1 else ''}"]
        lines += [f"  {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))


# --- field types ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    """What validation needs to know about the file being read."""

    base_dir: Path | None  # relative paths resolve against this
    check_files: bool  # whether named files must exist now
    check_identities: bool  # False while load_config collects conflicts itself


def _context(info: ValidationInfo) -> _Context:
    ctx = info.context
    if isinstance(ctx, _Context):
        return ctx
    return _Context(base_dir=None, check_files=False, check_identities=True)


def _agb(value: str) -> str:
    if not _AGB.fullmatch(value):
        raise PydanticCustomError("agb", "must be 8 digits (an AGB code)")
    return value


def _igo_agb(value: str) -> str:
    if not value.startswith(IGO_ZORGVERLENERSOORT):
        raise PydanticCustomError(
            "igo_agb",
            "must start with 53, the zorgverlenersoort of integrale geboortezorg",
        )
    return value


def normalise_fingerprint(value: str) -> str:
    """A SHA-256 certificate fingerprint as lowercase hex without colons (or spaces).

    Raises ``ValueError`` when the value is not 32 bytes of hex."""
    text = value.strip().lower().replace(":", "").replace(" ", "")
    if not _HEX.fullmatch(text):
        raise ValueError("not a SHA-256 fingerprint")
    return text


def _fingerprint(value: str) -> str:
    try:
        return normalise_fingerprint(value)
    except ValueError:
        raise PydanticCustomError(
            "fingerprint",
            "must be a SHA-256 fingerprint: 64 hex digits, with or without colons",
        ) from None


def _non_blank(value: str) -> str:
    value = value.strip()
    if not value:
        raise PydanticCustomError("blank", "must not be empty")
    return value


def _resolve(value: Path, info: ValidationInfo) -> Path:
    base = _context(info).base_dir
    value = value.expanduser()
    if base is not None and not value.is_absolute():
        value = base / value
    return value


def _existing_file(value: Path, info: ValidationInfo) -> Path:
    value = _resolve(value, info)
    if _context(info).check_files and not value.is_file():
        raise PydanticCustomError("no_file", "no such file: {file}", {"file": str(value)})
    return value


def _optional_existing_file(value: Path | None, info: ValidationInfo) -> Path | None:
    return None if value is None else _existing_file(value, info)


# The schema states the same rules as the validators, which word their own errors.
Agb = Annotated[
    str, AfterValidator(_agb), WithJsonSchema({"type": "string", "pattern": r"^\d{8}$"})
]
IgoAgb = Annotated[
    str,
    AfterValidator(_agb),
    AfterValidator(_igo_agb),
    WithJsonSchema({"type": "string", "pattern": r"^53\d{6}$"}),
]
Fingerprint = Annotated[
    str,
    AfterValidator(_fingerprint),
    WithJsonSchema({"type": "string", "pattern": r"^\s*([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}\s*$"}),
]
Name = Annotated[
    str, AfterValidator(_non_blank), WithJsonSchema({"type": "string", "pattern": r"\S"})
]
DirPath = Annotated[Path, AfterValidator(_resolve)]
FilePath = Annotated[Path, AfterValidator(_existing_file)]
OptionalFilePath = Annotated[Path | None, AfterValidator(_optional_existing_file)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- sections -------------------------------------------------------------------------------


class IgoConfig(_Section):
    """The IGO itself: the legal entity the gateway declares for."""

    name: Name = Field(description="The IGO's name, as on its contracts.")
    agb: IgoAgb = Field(
        description="The IGO's AGB code: 8 digits, zorgverlenersoort 53 (integrale geboortezorg)."
    )


class StoreConfig(_Section):
    """Where messages and state are kept."""

    url: str = Field(
        default="sqlite:///gateway.db",
        validate_default=True,
        description="sqlite:///PATH (the embedded default; PATH relative to the config file's "
        "directory) or postgresql://USER@HOST:PORT/DB. When left out: "
        "sqlite:///<data_dir>/gateway.db.",
    )
    url_file: Path | None = Field(
        default=None,
        description="Instead of url: a file holding the URL (one line), read at start-up — "
        "a mounted Kubernetes or compose secret, when the URL carries a password. Relative "
        "to the config file's directory; url and url_file exclude each other.",
    )

    @model_validator(mode="before")
    @classmethod
    def _url_from_file(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, Mapping) or data.get("url_file") is None:
            return data
        if "url" in data:
            raise PydanticCustomError("store_url_file", "give url or url_file, not both")
        if not isinstance(data["url_file"], str | Path):
            return data  # reported by the field itself
        path = _resolve(Path(data["url_file"]), info)
        try:
            url = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise PydanticCustomError(
                "store_url_file",
                "cannot read the store URL from {file}: {reason}",
                {"file": str(path), "reason": getattr(exc, "strerror", None) or "not text"},
            ) from None
        if not url:
            raise PydanticCustomError(
                "store_url_file", "{file} holds no store URL", {"file": str(path)}
            )
        return {**data, "url": url, "url_file": path}

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str, info: ValidationInfo) -> str:
        if not url.startswith(_STORE_SCHEMES):
            raise PydanticCustomError(
                "store_url", "must be sqlite:///PATH or postgresql://USER@HOST/DB"
            )
        path = url.removeprefix("sqlite:///")
        if path == url or path in ("", ":memory:"):
            return url
        return f"sqlite:///{_resolve(Path(path), info)}"


class TLSFiles(_Section):
    """The files of one TLS endpoint that authenticates its peers by certificate."""

    cert: FilePath = Field(
        description="PEM certificate of this side (first the certificate, then any "
        "intermediate CA certificates)."
    )
    key: FilePath = Field(description="PEM private key of that certificate.")
    trust: FilePath = Field(
        description="PEM bundle of the CA certificates that issue the peers' certificates; "
        "only peers with a certificate issued by one of them are accepted."
    )
    crl: OptionalFilePath = Field(
        default=None,
        description="Optional PEM file of certificate revocation lists, one for every CA in "
        "trust; when given, revoked certificates are refused.",
    )


class BerichtstroomConfig(_Section):
    """Which VECOZO berichtstroom values the EPD API accepts, and what it names its own
    messages with. VECOZO's values for Vektis EI declarations are not confirmed: these are
    settings, not facts."""

    berichttypen: list[str] = Field(
        default_factory=list,
        description="The berichttype values an upload may carry (empty: any). A berichttype "
        "that names a Vektis standard (its name, as ZH308, KZ301, VK301, in any case, or a "
        "key of standaarden) must name the file's own standard, else the upload is refused "
        "(422).",
    )
    acties: list[str] = Field(
        default_factory=list, description="The actie values an upload may carry (empty: any)."
    )
    standaarden: dict[str, str] = Field(
        default_factory=dict,
        description="Further berichttype values that name a Vektis standard, e.g. "
        '{ "EI-KZ301" = "KZ301" }.',
    )
    retour_actie: str = Field(
        default="Retourneren",
        min_length=1,
        max_length=60,
        description="The actie in the berichtstroom of the messages the gateway offers an EPD "
        "(retours, technical rejections); their berichttype is the retour standard's name "
        "(ZH309, KZ302, VK302) and the version the layout's.",
    )
    afzender_rol: str = Field(
        default="IGO",
        min_length=1,
        max_length=100,
        description="The rol of the gateway as afzender of those messages (its code is the "
        "IGO's AGB code).",
    )
    geadresseerde_rol: str = Field(
        default="Zorgaanbieder",
        min_length=1,
        max_length=100,
        description="The rol of the participant as geadresseerde of those messages.",
    )


class EpdApiConfig(_Section):
    """The VECOZO-style REST server the participants' EPD systems talk to (mutual TLS)."""

    host: str = Field(default="127.0.0.1", min_length=1, description="Address to listen on.")
    port: int = Field(
        default=8443, ge=0, le=65535, description="TCP port (0: any free port, for tests)."
    )
    tls: TLSFiles
    max_upload_bytes: int = Field(
        default=DEFAULT_MAX_UPLOAD_BYTES,
        ge=1,
        description="Largest accepted request body, in bytes (default 20 MB, as VECOZO's "
        "own limit per upload); a larger upload is refused with 413 before it is read.",
    )
    idle_timeout_seconds: float = Field(
        default=30,
        gt=0,
        description="A connection that sends nothing for this long is closed (slow clients).",
    )
    request_deadline_seconds: float = Field(
        default=300,
        gt=0,
        description="A request not received whole within this time is answered 408 and the "
        "connection closed (slow-loris clients that trickle bytes).",
    )
    public_url: str | None = Field(
        default=None,
        pattern=r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?$",
        description="The base URL EPDs reach the API at (https://HOST[:PORT]), used in the "
        "payload URLs of pulled messages. When left out: the Host the request was sent to.",
    )
    check_processes: int = Field(
        default=1,
        ge=0,
        le=64,
        description="Worker processes that run the intake checks of uploads beside the "
        "gateway's own process, so that it takes more uploads a second on a machine of two "
        "cores or more (docs/benchmarks.md: one was best on two cores); 0 runs the checks "
        "on a thread of the gateway's process (for a machine of one core). A worker that "
        "fails is started again; meanwhile its uploads are checked in the gateway's process.",
    )
    berichtstroom: BerichtstroomConfig = Field(default_factory=BerichtstroomConfig)


class MetricsConfig(_Section):
    """The operations endpoint: /metrics (Prometheus), /healthz and /readyz, plain HTTP."""

    enabled: bool = Field(default=True, description="Serve the operations endpoint.")
    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address to listen on; loopback by default (no client data is exposed, "
        "but nothing there needs to be public).",
    )
    port: int = Field(
        default=9464, ge=0, le=65535, description="TCP port (0: any free port, for tests)."
    )


DEFAULT_FOLLOW_UP_SECONDS = 900.0


class LinkKind(enum.StrEnum):
    REST = "rest"  # VECOZO-style REST over mutual TLS
    DIRECTORY = "directory"  # outbox / inbox folders


class RetryConfig(_Section):
    """How failed deliveries are retried: exponential backoff with jitter, then parked."""

    first_delay_seconds: float = Field(default=30, gt=0, description="Wait after the 1st failure.")
    factor: float = Field(default=2.0, ge=1, description="Each next wait is this much longer.")
    max_delay_seconds: float = Field(default=3600, gt=0, description="The longest wait.")
    max_attempts: int = Field(default=12, ge=1, description="Parked after this many attempts.")
    give_up_after_hours: float = Field(
        default=48, gt=0, description="Parked when still failing this long after the first."
    )


class InsurerLinkConfig(_Section):
    """How the gateway reaches one insurer."""

    kind: LinkKind = Field(default=LinkKind.REST, description="rest or directory.")
    base_url: str | None = Field(
        default=None,
        pattern=r"^https://",
        description="rest: the insurer's (or VECOZO's) message exchange, https://….",
    )
    tls: TLSFiles | None = Field(
        default=None,
        description="rest: the IGO's client certificate and key, and the CA that issues the "
        "insurer's server certificate (trust).",
    )
    outbox: DirPath | None = Field(default=None, description="directory: where files go.")
    inbox: DirPath | None = Field(default=None, description="directory: where retours come.")
    timeout_seconds: float = Field(default=60, gt=0, description="Per request.")
    poll_seconds: float = Field(
        default=60, gt=0, description="How often to send what is due and fetch retours."
    )
    lease_seconds: float = Field(
        default=300,
        gt=0,
        description="How long one attempt holds a file: a gateway that dies mid-attempt "
        "leaves it 'sending', and it is sent again (with the same id) this long after the "
        "attempt began. Keep it above timeout_seconds.",
    )
    follow_up_seconds: float | None = Field(
        default=None,
        gt=0,
        description="rest: how often a delivered file still without a retour is asked "
        f"after (default {DEFAULT_FOLLOW_UP_SECONDS:g}): first for its retours "
        "(zoeken by alsAntwoordOp), then for its status at the exchange service "
        "(berichtstatussen); a file the service rejected is parked. Over all gateway "
        "instances sharing the store together, each file at most this often.",
    )
    retry: RetryConfig = Field(default_factory=RetryConfig)
    push_certificates: tuple[Fingerprint, ...] = Field(
        default=(),
        description="SHA-256 fingerprints of client certificates with which this insurer "
        "pushes its retour files to the gateway (POST /berichten on the EPD API), for "
        "insurers that push rather than being fetched from.",
    )

    @model_validator(mode="after")
    def _complete(self) -> InsurerLinkConfig:
        if self.kind is LinkKind.REST and (self.base_url is None or self.tls is None):
            raise ValueError("a rest link needs base_url and [tls]")
        if self.kind is LinkKind.DIRECTORY and (self.outbox is None or self.inbox is None):
            raise ValueError("a directory link needs outbox and inbox")
        if self.kind is LinkKind.DIRECTORY and self.follow_up_seconds is not None:
            raise ValueError("follow_up_seconds is for a rest link")
        return self

    @property
    def follow_up(self) -> timedelta | None:
        """How often delivered files without a retour are asked after; None: never."""
        if self.kind is not LinkKind.REST:
            return None
        return timedelta(seconds=self.follow_up_seconds or DEFAULT_FOLLOW_UP_SECONDS)


# The handreiking's example list of parallel prestaties (DOMAIN.md 4.2).
DEFAULT_PARALLEL_CODES = (
    "1603", "1604", "1605", "1606", "1607", "1401", "196202", "196203", "196205",
    "39485", "88770", "159999030", "159999027", "150101011",
)  # fmt: skip


class ContractConfig(_Section):
    """The integral contract with an insurer for one calendar year."""

    year: int = Field(ge=2017, le=2100, description="The calendar year it covers.")
    rule_set: RuleSet = Field(
        description="experiment-2017 (bundle breakers apply) or regular-2023 (they do not)."
    )
    tariffs: dict[str, int] = Field(
        description="Tariff in eurocents per integral prestatie code of the catalogue."
    )
    overhead_percent: float = Field(
        default=0, ge=0, le=100, description="The IGO's overhead, added to every tariff."
    )
    parallel_codes: tuple[str, ...] = Field(
        default=DEFAULT_PARALLEL_CODES,
        description="Monodisciplinary codes that non-affiliated providers may declare "
        "beside an integral claim (default: the handreiking's example list). A 9-digit code "
        "is a DBC zorgproduct code, compared with a hospital line's zorgproduct; any other "
        "code is compared with the prestatiecode (or DBC declaratiecode) and with a hospital "
        "line's zorgactiviteit codes.",
    )
    forward_monodisciplinary: bool = Field(
        default=False,
        description="Whether the IGO may forward monodisciplinary declarations of its "
        "participants to this insurer (else they are returned to declare themselves).",
    )


class InsurerConfig(_Section):
    """An insurer the IGO declares to, how to reach it, and its contracts per year."""

    uzovi: str = Field(pattern=r"^\d{4}$", description="The insurer's UZOVI code (4 digits).")
    name: Name
    link: InsurerLinkConfig | None = Field(
        default=None, description="How to reach it; without a link nothing is sent to it."
    )
    contracts: tuple[ContractConfig, ...] = Field(
        default=(),
        description="Integral contracts by year; a year without one is declared "
        "monodisciplinarily.",
    )
    forward_monodisciplinary: bool = Field(
        default=False,
        description="In years without a contract: whether the IGO may forward its "
        "participants' declarations (else they are returned to declare themselves).",
    )

    @model_validator(mode="after")
    def _one_contract_a_year(self) -> InsurerConfig:
        years = [c.year for c in self.contracts]
        if len(years) != len(set(years)):
            raise ValueError("more than one contract for a year")
        return self


class BundlingConfig(_Section):
    """When and how lines are bundled into integral claims."""

    catalogue: FilePath | None = Field(
        default=None,
        description="The prestatie catalogue and phase mapping (TOML). Default: the shipped "
        "EXAMPLE catalogue (schemas/catalogue/example.toml), whose integral prestatie codes "
        "are placeholders (the codes of list 069 are not public).",
    )
    grace_days: int = Field(
        default=30,
        ge=0,
        description="Days after the event that closes a phase during which late "
        "declarations are still awaited before it is claimed.",
    )
    postnatal_days: int = Field(
        default=42, ge=1, description="The postnatal period ends this many days after birth."
    )
    trajectory_days: int = Field(
        default=336,
        ge=100,
        description="A woman's lines further apart than this from the first line of a "
        "pregnancy belong to a next pregnancy.",
    )
    interval_seconds: float = Field(
        default=3600, gt=0, description="How often serve runs the bundler."
    )
    lease_seconds: float = Field(
        default=60,
        ge=1,
        description="The length of the bundling lease that lets one run at a time bundle over "
        "every gateway process on the store; renewed every third of it while the run goes "
        "on. A process that died holding it is waited for this long (on its own host, not "
        "at all).",
    )
    worker_processes: int = Field(
        default=1,
        ge=0,
        le=1,
        description="1: a worker process reads, decides and builds each batch of serve's "
        "bundling runs beside the gateway's own process, which then only records the "
        "batches: a run takes less time on a machine of two cores or more, and the "
        "gateway's process keeps its interpreter for the EPD API meanwhile "
        "(docs/benchmarks.md). 0 does it all in the gateway's process (for a machine of "
        "one core). A batch the worker cannot prepare is prepared in the gateway's process; "
        "after a worker failed, a new one is started for the next batch. The bundle "
        "command and its dry run, which show each batch's plan, prepare in their own "
        "process; so does a gateway whose store is in memory.",
    )
    distribution: Distribution = Field(
        default=Distribution.DECLARED,
        description="How a granted integral amount is shared out: declared (each participant "
        "gets what it declared, the monodisciplinary equivalent) or shares (a percentage per "
        "discipline of the granted amount minus the IGO's overhead).",
    )
    shares: dict[Discipline, float] = Field(
        default_factory=dict,
        description="With distribution = shares: percent per discipline (midwifery, "
        "kraamzorg, hospital), together 100.",
    )

    @model_validator(mode="after")
    def _shares_add_up(self) -> BundlingConfig:
        if self.distribution is Distribution.SHARES and abs(sum(self.shares.values()) - 100) > 0.01:
            raise ValueError("shares must add up to 100 (percent)")
        return self


class EncryptionConfig(_Section):
    """Encryption at rest of the stored files (AES-256-GCM)."""

    key_file: OptionalFilePath = Field(
        default=None,
        description="The key file (igo-gateway keys init FILE; owner-readable only). Without "
        "one, stored files are kept unencrypted and the gateway says so at start-up.",
    )


class AdminTLS(_Section):
    """The admin site's own server certificate (HTTPS). With ``client_ca``, browsers must
    also present a client certificate issued by it (on top of the password login)."""

    cert: FilePath = Field(
        description="PEM certificate of the admin site (then any intermediates)."
    )
    key: FilePath = Field(description="PEM private key of that certificate.")
    client_ca: OptionalFilePath = Field(
        default=None,
        description="Optional PEM bundle of CA certificates; when given, only browsers with a "
        "client certificate issued by one of them can connect.",
    )
    crl: OptionalFilePath = Field(
        default=None,
        description="Optional PEM file of certificate revocation lists for the CAs in "
        "client_ca; when given, revoked browser certificates are refused.",
    )

    @model_validator(mode="after")
    def _crl_needs_client_ca(self) -> AdminTLS:
        if self.crl is not None and self.client_ca is None:
            raise ValueError("crl needs client_ca (it revokes client certificates)")
        return self


class CertificatesConfig(_Section):
    """Warnings about the configured certificates and revocation lists (every one is also
    a metric with its expiry time)."""

    expiry_warning_days: float = Field(
        default=30,
        ge=0,
        description="Log a warning at start-up, and daily, for every configured certificate "
        "that expires within this many days.",
    )
    crl_warning_hours: float = Field(
        default=24,
        ge=0,
        description="Log a warning, at start-up and daily, for every configured CRL whose "
        "nextUpdate is within this many hours (past it, OpenSSL refuses every certificate of "
        "that CA).",
    )


class AdminConfig(_Section):
    """The IGO administrator's workplace: a web site and JSON API on its own address,
    apart from the EPD API (no EPD certificate reaches it)."""

    enabled: bool = Field(default=True, description="Serve the admin site.")
    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address to listen on; loopback by default (reach it through an SSH "
        "tunnel or a reverse proxy).",
    )
    port: int = Field(
        default=8444, ge=0, le=65535, description="TCP port (0: any free port, for tests)."
    )
    session_lifetime_minutes: int = Field(
        default=480,
        ge=5,
        le=7 * 24 * 60,
        description="How long a login lasts (absolute, from the login), in minutes.",
    )
    secure_cookies: bool | None = Field(
        default=None,
        description="Mark the session cookie Secure (sent over HTTPS only). Default: when "
        "tls is set. Set true when a reverse proxy terminates HTTPS in front of the site.",
    )
    tls: AdminTLS | None = Field(
        default=None, description="Serve HTTPS with these files; plain HTTP without."
    )

    @property
    def cookies_secure(self) -> bool:
        return self.secure_cookies if self.secure_cookies is not None else self.tls is not None


class RetentionConfig(_Section):
    """How long stored files are kept. The metadata (messages, statuses, lines,
    factuurnummers) is kept: the audit trail and invoice-number uniqueness need it."""

    payload_days: int = Field(
        default=400,
        ge=1,
        description="A stored file is pruned this many days after it arrived, once nothing "
        "still needs it (no open, unanswered or reviewed line; no unfetched retour; no "
        "unanswered claim).",
    )
    interval_seconds: float = Field(
        default=86400, gt=0, description="How often serve prunes and gives the space back."
    )


class LogFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


class LoggingConfig(_Section):
    """What the gateway writes to standard error. Log lines carry ids, codes and routes,
    never client data."""

    format: LogFormat = Field(
        default=LogFormat.TEXT,
        description="text: readable lines (default); json: one JSON object per line, for a "
        "log collector.",
    )
    level: str = Field(
        default="info",
        pattern="^(debug|info|warn|error|critical)$",
        description="The least severe level written: debug, info, warn, error or critical.",
    )


class Participation(_Section):
    """A period in which a participant takes part (dates inclusive; open-ended when left
    out), and whether its lines are bundled then or it declares for itself."""

    joined: date | None = Field(default=None, description="First day (default: always).")
    left: date | None = Field(default=None, description="Last day (default: still in).")
    bundled: bool = Field(
        default=True,
        description="false: the participant declares for itself in this period (often "
        "kraamzorg); its lines are passed on monodisciplinarily.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Participation:
        if self.joined and self.left and self.left < self.joined:
            raise ValueError("left is before joined")
        return self


class ParticipantConfig(_Section):
    """A care provider whose EPD sends its declarations through the gateway, and the client
    certificates its EPD presents. A participant without certificates or subjects cannot
    connect."""

    agb: Agb = Field(description="The participant's AGB code (8 digits).")
    name: Name
    discipline: Discipline
    variant: Variant = Field(
        description="A: member of the IGO; B: delivers care for it under an agreement of "
        "mutual services."
    )
    certificates: tuple[Fingerprint, ...] = Field(
        default=(),
        description="SHA-256 fingerprints of the client certificates that identify this "
        "participant (hex, with or without colons).",
    )
    subjects: tuple[Name, ...] = Field(
        default=(),
        description="Subject common names (CN) of client certificates that identify this "
        "participant; checked after the fingerprints. Any certificate issued by a trusted CA "
        "with this CN is accepted, so prefer fingerprints where the CA is not your own.",
    )
    participation: tuple[Participation, ...] = Field(
        default=(Participation(),),
        description="When it takes part and whether its lines are bundled then (default: "
        "always, bundled). Care on days outside every period is outside participation.",
    )


class EmailNotices(_Section):
    """Notices by e-mail (SMTP)."""

    host: str = Field(min_length=1, description="The SMTP server (relay) to hand mail to.")
    port: int = Field(default=25, ge=1, le=65535, description="Its TCP port.")
    sender: str = Field(
        pattern=r"^[^@\s]+@[^@\s]+$", description="The From address (envelope and header)."
    )
    recipients: tuple[str, ...] = Field(
        min_length=1, description="The administrators' addresses the digest goes to."
    )
    require_tls: bool = Field(
        default=False,
        description="Refuse to send unless the server offers STARTTLS (always true when "
        "username is set: a password never goes in the clear).",
    )
    username: str | None = Field(default=None, description="Log in with this name (AUTH).")
    password_file: OptionalFilePath = Field(
        default=None,
        description="A file holding the SMTP password (one line), read at start-up; "
        "relative to the config file's directory.",
    )
    timeout_seconds: float = Field(default=60, gt=0, description="Per digest sent.")

    @field_validator("recipients")
    @classmethod
    def _check_recipients(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+", address):
                raise PydanticCustomError("email", "not an e-mail address: {a}", {"a": address})
        return value

    @model_validator(mode="after")
    def _password_with_username(self) -> EmailNotices:
        if (self.username is None) != (self.password_file is None):
            raise ValueError("username and password_file go together")
        return self


class WebhookNotices(_Section):
    """Notices by webhook: the digest as JSON in an HTTP POST."""

    url: str = Field(
        pattern=r"^https?://\S+$", description="Where the digest is POSTed (http or https)."
    )
    timeout_seconds: float = Field(default=30, gt=0, description="Per digest sent.")


class NoticeChannel(_Section):
    """One way of telling the administrator: e-mail or a webhook, for the kinds named."""

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$",
        description="The channel's name (lowercase letters, digits, - and _): what it has "
        "sent is remembered under it, so renaming it sends every open case again.",
    )
    kinds: tuple[CaseKind, ...] = Field(
        default=tuple(CaseKind),
        min_length=1,
        description="The case kinds it notices: intake_rejected, parked, unmatched_retour, "
        "rejected_line, bundle_broken, waiting_phase (default: all).",
    )
    email: EmailNotices | None = Field(default=None, description="Send by e-mail.")
    webhook: WebhookNotices | None = Field(default=None, description="Send by webhook.")

    @model_validator(mode="after")
    def _one_way(self) -> NoticeChannel:
        if (self.email is None) == (self.webhook is None):
            raise ValueError("a channel has either email or webhook")
        return self


class NoticesConfig(_Section):
    """Digests of new cases (new open cases in the queue, parked files among them) for the
    administrator, per channel. A notice holds case ids, kinds, counts and links, never
    client data; a case is noticed once per channel (remembered in the store); a digest
    that could not be delivered is tried again with the next one. With several gateway
    processes on one database, one at a time sends (a job lease)."""

    interval_seconds: float = Field(
        default=900, ge=1, description="How often a digest is made (if there is news)."
    )
    lease_seconds: float = Field(
        default=300,
        gt=0,
        description="Length of the notices lease that lets one gateway process at a time send.",
    )
    admin_url: str | None = Field(
        default=None,
        pattern=r"^https?://\S+$",
        description="The admin site's address as the administrator reaches it, for the links "
        "in a notice (default: the [admin] host and port).",
    )
    max_listed: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="At most this many cases are listed one by one in a digest; the counts "
        "cover them all.",
    )
    channels: tuple[NoticeChannel, ...] = Field(default=(), description="Nothing is sent without.")

    @model_validator(mode="after")
    def _unique_names(self) -> NoticesConfig:
        names = [channel.name for channel in self.channels]
        if len(set(names)) != len(names):
            raise ValueError("every notice channel needs a name of its own")
        return self


class GatewayConfig(_Section):
    """The whole config file."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="IGO declaration gateway configuration",
        json_schema_extra={"$schema": JSON_SCHEMA_DIALECT},
    )

    data_dir: DirPath = Field(
        default=Path(DEFAULT_DATA_DIR),
        validate_default=True,
        description="Directory of the gateway's own files (the embedded database by default). "
        "In TOML, top-level keys come before the first [section].",
    )
    igo: IgoConfig
    store: StoreConfig = Field(
        default_factory=StoreConfig, description="Default: SQLite in data_dir."
    )
    epd_api: EpdApiConfig
    metrics: MetricsConfig = Field(
        default_factory=MetricsConfig, description="Default: on, at 127.0.0.1:9464."
    )
    participants: tuple[ParticipantConfig, ...] = Field(default=())
    insurers: tuple[InsurerConfig, ...] = Field(default=())
    bundling: BundlingConfig = Field(default_factory=BundlingConfig)
    logging: LoggingConfig = Field(
        default_factory=LoggingConfig, description="Default: readable text, level info."
    )
    admin: AdminConfig = Field(
        default_factory=AdminConfig, description="Default: on, at http://127.0.0.1:8444."
    )
    retention: RetentionConfig = Field(
        default_factory=RetentionConfig, description="Default: files kept 400 days."
    )
    encryption: EncryptionConfig = Field(
        default_factory=EncryptionConfig, description="Default: no key file, not encrypted."
    )
    certificates: CertificatesConfig = Field(
        default_factory=CertificatesConfig,
        description="Default: warn 30 days before a certificate expires, 24 hours before a "
        "CRL's nextUpdate.",
    )

    notices: NoticesConfig = Field(
        default_factory=NoticesConfig, description="Default: no notices are sent."
    )

    @model_validator(mode="before")
    @classmethod
    def _default_store(cls, data: Any, info: ValidationInfo) -> Any:
        """The store's default lives in ``data_dir``, which only this level knows."""
        if not isinstance(data, Mapping):
            return data
        store = data.get("store", {})
        if not isinstance(store, Mapping) or "url" in store or "url_file" in store:
            return data
        data_dir = data.get("data_dir", DEFAULT_DATA_DIR)
        if not isinstance(data_dir, str | Path):
            return data  # reported by the field itself
        base = _context(info).base_dir
        directory = Path(data_dir).expanduser()
        if base is not None and not directory.is_absolute():
            directory = base / directory
        return {**data, "store": {**store, "url": f"sqlite:///{directory / 'gateway.db'}"}}

    @model_validator(mode="after")
    def _check_insurers(self) -> GatewayConfig:
        seen: set[str] = set()
        for insurer in self.insurers:
            if insurer.uzovi in seen:
                raise ValueError(f"insurer {insurer.uzovi} is configured twice")
            seen.add(insurer.uzovi)
        return self

    @model_validator(mode="after")
    def _check_identities(self, info: ValidationInfo) -> GatewayConfig:
        if _context(info).check_identities:
            problems = identity_conflicts(enumerate(self.participants))
            if problems:
                raise ValueError("; ".join(str(p) for p in problems))
        return self


# --- cross-checks ---------------------------------------------------------------------------


def identity_conflicts(
    participants: Iterable[tuple[int, ParticipantConfig]],
) -> list[ConfigProblem]:
    """Problems where an AGB code, certificate fingerprint or subject would not point at
    exactly one participant. ``participants`` are (index in the file, participant)."""
    problems: list[ConfigProblem] = []
    seen_agb: dict[str, int] = {}
    seen_fingerprint: dict[str, int] = {}
    seen_subject: dict[str, int] = {}
    for index, participant in participants:
        here = f"participants[{index}]"
        first = seen_agb.setdefault(participant.agb, index)
        if first != index:
            problems.append(
                ConfigProblem(f"{here}.agb", f"{participant.agb} is also participants[{first}]")
            )
        for key, values, seen in (
            ("certificates", participant.certificates, seen_fingerprint),
            ("subjects", participant.subjects, seen_subject),
        ):
            for n, value in enumerate(values):
                first = seen.setdefault(value, index)
                if first != index:
                    problems.append(
                        ConfigProblem(
                            f"{here}.{key}[{n}]",
                            f"{value} also identifies participants[{first}]; "
                            "it must identify exactly one participant",
                        )
                    )
    return problems


# --- loading --------------------------------------------------------------------------------


def load_config(path: str | Path, *, check_files: bool = True) -> GatewayConfig:
    """Read and check the config file at ``path``.

    Raises :class:`ConfigError` listing every problem found. ``check_files=False`` skips
    checking that the files it names exist (for tools that are about to create them)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(path, [ConfigProblem("", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError(path, [ConfigProblem("", "not UTF-8 text")]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [ConfigProblem("", f"not valid TOML: {exc}")]) from None

    context = _Context(
        base_dir=path.resolve().parent, check_files=check_files, check_identities=False
    )
    problems: list[ConfigProblem] = []
    config: GatewayConfig | None = None
    try:
        config = GatewayConfig.model_validate(raw, context=context)
    except ValidationError as exc:
        problems += _problems(exc)
    if config is not None:
        problems += identity_conflicts(enumerate(config.participants))
    else:
        # Conflicts among the participants that are themselves valid are worth reporting
        # in the same run, so that one edit fixes everything.
        problems += identity_conflicts(_valid_participants(raw.get("participants"), context))
    if problems:
        raise ConfigError(path, problems)
    assert config is not None
    return config


def _valid_participants(raw: object, context: _Context) -> list[tuple[int, ParticipantConfig]]:
    if not isinstance(raw, list):
        return []
    valid = []
    for index, item in enumerate(raw):
        try:
            valid.append((index, ParticipantConfig.model_validate(item, context=context)))
        except ValidationError:
            continue
    return valid


_MESSAGES = {
    "missing": "required but missing",
    "path_type": "must be a path (a string)",
    "extra_forbidden": "unknown setting",
}


def _problems(exc: ValidationError) -> list[ConfigProblem]:
    return [
        ConfigProblem(
            _path(error["loc"]),
            _MESSAGES.get(error["type"], _lower_first(error["msg"].removeprefix("Value error, "))),
        )
        for error in exc.errors(include_url=False, include_input=False)
    ]


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


# --- schema ---------------------------------------------------------------------------------


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the config file, as the file is written."""
    return GatewayConfig.model_json_schema(mode="validation")
