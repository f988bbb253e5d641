"""VECOZO's VSP-Koppeling message exchange: its shapes, paths and status values.

The EPD-facing API (``adapters/epd_api/``), the reference EPD client and the insurer side
speak the interface VECOZO publishes for its message exchange (REST Push v1, REST Pull v1,
Berichtstatus REST Pull v2 and v3; see ``schemas/epd-api.openapi.json``). The models here
are those documents' schemas: the same field names, limits and ``additionalProperties:
false``. They are strict: a number sent as a string, or a string as a number, is refused
as the schema refuses it.

The mapping from the gateway's own message states to VECOZO's ``berichtstatus`` values is
the gateway's to define (VECOZO publishes the values, not what a third party maps to them);
:data:`BERICHTSTATUS_V3` is that mapping.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
    model_validator,
)

from gateway.ports.messages import MessageStatus

__all__ = [
    "BERICHTSTATUS_V2",
    "BERICHTSTATUS_V3",
    "PULL_V1",
    "PUSH_V1",
    "STATUS_V2",
    "STATUS_V3",
    "BerichtMetadata",
    "Berichtstatus",
    "Berichtstroom",
    "Referentiegegevens",
    "Relatie",
    "Routeringgegevens",
    "SleutelWaardePaar",
    "Zoekpad",
    "ZoekpadOpAlsAntwoordOp",
    "ZoekpadOpBerichtstroom",
    "ZoekpadOpConversatieId",
    "as_uuid",
    "is_uuid",
    "matches",
    "pull_entry",
    "retour_reference",
    "send_metadata",
    "service_path",
    "zoekpad_adapter",
]

# The services' paths below the base URL (VECOZO's production base is
# https://api.vecozo.nl; its test environments put /acc or /tst before berichtenservice).
PUSH_V1 = "/berichtenservice/berichten/rest-push/v1"
PULL_V1 = "/berichtenservice/berichten/rest-pull/v1"
STATUS_V3 = "/berichtenservice/berichtstatus/rest-pull/v3"
STATUS_V2 = "/berichtenservice/berichtstatus/rest-pull/v2"

MAX_PULL = 250  # GET /berichten and zoeken: limit 1-250, default 250
MAX_STATUSES = 250

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_uuid(value: str | None) -> bool:
    """True for a UUID in its canonical text form (8-4-4-4-12 hex digits)."""
    return value is not None and _UUID.match(value) is not None


def as_uuid(value: str) -> str:
    """``value`` itself when it is a canonical UUID (lower case), else a UUID derived from
    it (stable: the same text gives the same UUID) — for ids the gateway made before it
    spoke VECOZO's shape, or that an insurer gave in another form."""
    if is_uuid(value):
        return value.lower()
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "igo-gateway:" + value))


Uuid = Annotated[
    str,
    StringConstraints(pattern=_UUID.pattern),
    AfterValidator(str.lower),
    Field(json_schema_extra={"format": "uuid"}),
]


Text60 = Annotated[str, StringConstraints(min_length=1, max_length=60)]
Text100 = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Text150 = Annotated[str, StringConstraints(min_length=1, max_length=150)]
Text250 = Annotated[str, StringConstraints(min_length=1, max_length=250)]
Version = Annotated[int, Field(ge=0, le=999)]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # The documents' optional fields are left out, never null.
        if value is None:
            raise ValueError("null is not allowed here; leave the field out")
        return value


class _ZoekpadSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # (a field validator may not run before the discriminator is read)
        if isinstance(value, dict):
            nulls = sorted(str(k) for k, v in value.items() if v is None)
            if nulls:
                raise ValueError(f"null is not allowed for {', '.join(nulls)}; leave it out")
        return value


class Relatie(_Schema):
    rol: Text100
    code: Text100 | None = None


class Berichtstroom(_Schema):
    berichttype: Text60
    berichtsubtype: Text60 | None = None
    berichtversie: Version
    berichtsubversie: Version
    actie: Text60


class Routeringgegevens(_Schema):
    afzender: Relatie
    geadresseerden: Annotated[list[Relatie], Field(max_length=100)]
    berichtstroom: Berichtstroom


class Referentiegegevens(_Schema):
    traceerId: Uuid
    conversatieId: Uuid
    alsAntwoordOp: Uuid | None = None
    referentieId: Text150 | None = None


class SleutelWaardePaar(_Schema):
    sleutel: Text100
    waarde: Annotated[list[Text250], Field(min_length=1, max_length=100)]


class BerichtMetadata(_Schema):
    """The ``berichtMetadata`` part of ``POST /berichten`` (REST Push v1)."""

    routeringgegevens: Routeringgegevens
    referentiegegevens: Referentiegegevens
    verwerkingscontext: (
        Annotated[list[SleutelWaardePaar], Field(min_length=1, max_length=100)] | None
    ) = None

    @property
    def traceer_id(self) -> str:
        return self.referentiegegevens.traceerId

    def recorded(self) -> dict[str, Any]:
        """As it is kept with the message (JSON values, absent fields left out)."""
        return self.model_dump(mode="json", exclude_none=True)


class ZoekpadOpBerichtstroom(_ZoekpadSchema):
    zoekpadType: Literal["ZoekpadOpBerichtstroom"]
    berichttype: Text60
    berichtsubtype: Text60 | None = None
    berichtversie: Version | None = None
    berichtsubversie: Version | None = None
    actie: Text60 | None = None
    geadresseerdeRol: Text100 | None = None
    geadresseerdeCode: Text100 | None = None


class ZoekpadOpConversatieId(_ZoekpadSchema):
    zoekpadType: Literal["ZoekpadOpConversatieId"]
    conversatieId: Uuid


class ZoekpadOpAlsAntwoordOp(_ZoekpadSchema):
    zoekpadType: Literal["ZoekpadOpAlsAntwoordOp"]
    alsAntwoordOp: Uuid


Zoekpad = Annotated[
    ZoekpadOpBerichtstroom | ZoekpadOpConversatieId | ZoekpadOpAlsAntwoordOp,
    Field(discriminator="zoekpadType"),
]


def zoekpad_adapter() -> TypeAdapter[Any]:
    return TypeAdapter(Zoekpad)


class Berichtstatus(enum.StrEnum):
    """VECOZO's berichtstatus values (Berichtstatus REST Pull v3)."""

    ONTVANGEN = "Ontvangen"
    DEELS_ONTVANGEN = "DeelsOntvangen"
    DEELBERICHT_AFGEKEURD = "DeelberichtAanleveringAfgekeurd"
    WORDT_VERWERKT = "WordtVerwerkt"
    AFGEKEURD_DOOR_DIENST = "AfgekeurdDoorDienst"
    VERWERKING_VOLTOOID = "VerwerkingVoltooid"
    WORDT_AANGEBODEN = "WordtAangeboden"
    BEZORGD = "Bezorgd"
    AANBIEDEN_MISLUKT = "AanbiedenMislukt"
    BEZORGING_AFGEBROKEN = "BezorgingAfgebroken"


# The gateway's states as VECOZO's berichtstatus (the gateway's own mapping; see README).
# A participant's upload: received and checked -> Ontvangen; rejected at intake (or its
# lines rejected as a whole) -> AfgekeurdDoorDienst with the retourcodes in meldingen;
# bundled or forwarded, waiting for the insurer -> WordtVerwerkt; answered (its retour is
# ready) -> VerwerkingVoltooid. A message for the participant (a retour or a technical
# rejection): waiting to be fetched -> WordtAangeboden; confirmed with DELETE -> Bezorgd.
BERICHTSTATUS_V3: dict[MessageStatus, Berichtstatus] = {
    MessageStatus.RECEIVED: Berichtstatus.ONTVANGEN,
    MessageStatus.REJECTED: Berichtstatus.AFGEKEURD_DOOR_DIENST,
    MessageStatus.PROCESSING: Berichtstatus.WORDT_VERWERKT,
    MessageStatus.FORWARDED: Berichtstatus.WORDT_VERWERKT,
    MessageStatus.PROCESSED: Berichtstatus.VERWERKING_VOLTOOID,
    MessageStatus.ANSWERED: Berichtstatus.VERWERKING_VOLTOOID,
    MessageStatus.DELIVERED: Berichtstatus.WORDT_AANGEBODEN,
    MessageStatus.CONFIRMED: Berichtstatus.BEZORGD,
}

# v2 knows "Aangeboden" where v3 says "WordtAangeboden", and has no failed-delivery values
# (the gateway uses none of them).
BERICHTSTATUS_V2: dict[Berichtstatus, str] = {
    **{s: s.value for s in Berichtstatus},
    Berichtstatus.WORDT_AANGEBODEN: "Aangeboden",
}


# The actie an EPD's upload of an EI declaration carries by default (VECOZO's value is not
# confirmed; the gateway accepts any unless [epd_api.berichtstroom] acties says otherwise).
DEFAULT_ACTIE = "Declareren"
PARTICIPANT_ROLE = "Zorgaanbieder"


def send_metadata(
    afzender: str,
    berichttype: str,
    *,
    versie: int = 0,
    subversie: int = 0,
    actie: str = DEFAULT_ACTIE,
    rol: str = PARTICIPANT_ROLE,
    geadresseerden: Sequence[tuple[str, str]] = (),
    traceer_id: str | None = None,
    conversatie_id: str | None = None,
    als_antwoord_op: str | None = None,
    referentie_id: str | None = None,
) -> BerichtMetadata:
    """A send form ``BerichtMetadata`` with a new traceerId (and conversatieId) unless
    given."""
    references: dict[str, str] = {
        "traceerId": traceer_id or str(uuid.uuid4()),
        "conversatieId": conversatie_id or str(uuid.uuid4()),
    }
    if als_antwoord_op is not None:
        references["alsAntwoordOp"] = als_antwoord_op
    if referentie_id is not None:
        references["referentieId"] = referentie_id
    return BerichtMetadata.model_validate(
        {
            "routeringgegevens": {
                "afzender": {"rol": rol, "code": afzender},
                "geadresseerden": [{"rol": r, "code": c} for r, c in geadresseerden],
                "berichtstroom": {
                    "berichttype": berichttype,
                    "berichtversie": versie,
                    "berichtsubversie": subversie,
                    "actie": actie,
                },
            },
            "referentiegegevens": references,
        }
    )


def pull_entry(
    *,
    base_url: str,
    traceer_id: str,
    conversatie_id: str,
    afzender: Mapping[str, str],
    geadresseerde: Mapping[str, str],
    berichtstroom: Mapping[str, Any],
    received_at: datetime,
    size: int,
    sha256: str,
    als_antwoord_op: str | None = None,
    referentie_id: str | None = None,
) -> dict[str, Any]:
    """A waiting message as REST Pull v1 lists it (BerichtMetadata, pull form): its payload
    URL on ``base_url``, size and SHA256 checksum."""
    references: dict[str, str] = {
        "traceerId": as_uuid(traceer_id),
        "conversatieId": as_uuid(conversatie_id),
    }
    if als_antwoord_op:
        references["alsAntwoordOp"] = as_uuid(als_antwoord_op)
    if referentie_id and len(referentie_id) <= 150:
        references["referentieId"] = referentie_id
    url = f"{base_url.rstrip('/')}{PULL_V1}/berichten/{references['traceerId']}/payload"
    return {
        "basisgegevens": {
            "ontvangenOp": received_at.isoformat(),
            "payload": {
                "url": url,
                "grootte": size,
                "checksum": {"algoritme": "SHA256", "waarde": sha256},
            },
        },
        "routeringgegevens": {
            "afzender": dict(afzender),
            "geadresseerden": [dict(geadresseerde)],
            "berichtstroom": dict(berichtstroom),
        },
        "referentiegegevens": references,
    }


def matches(zoekpad: Any, entry: Mapping[str, Any]) -> bool:
    """Whether a listed message (:func:`pull_entry`) is one a Zoekpad asks for."""
    references = entry["referentiegegevens"]
    if isinstance(zoekpad, ZoekpadOpAlsAntwoordOp):
        return bool(references.get("alsAntwoordOp") == zoekpad.alsAntwoordOp)
    if isinstance(zoekpad, ZoekpadOpConversatieId):
        return bool(references["conversatieId"] == zoekpad.conversatieId)
    routing = entry["routeringgegevens"]
    flow = routing["berichtstroom"]
    addressees = routing["geadresseerden"]
    wanted: tuple[tuple[object, object], ...] = (
        (zoekpad.berichttype, flow.get("berichttype")),
        (zoekpad.berichtsubtype, flow.get("berichtsubtype")),
        (zoekpad.berichtversie, flow.get("berichtversie")),
        (zoekpad.berichtsubversie, flow.get("berichtsubversie")),
        (zoekpad.actie, flow.get("actie")),
    )
    if not all(asked is None or asked == value for asked, value in wanted):
        return False
    return any(
        (zoekpad.geadresseerdeRol is None or zoekpad.geadresseerdeRol == a.get("rol"))
        and (zoekpad.geadresseerdeCode is None or zoekpad.geadresseerdeCode == a.get("code"))
        for a in addressees
    )


def retour_reference(traceer_id: str, width: int = 24) -> str:
    """A message id as it fits a retour's 24-position reference field (NUM039): a UUID as
    its 16 bytes in URL-safe base64 (22 characters, the whole id, reversible); an id that
    fits as itself; anything longer as ``H`` and the start of its SHA-256."""
    if is_uuid(traceer_id):
        return base64.urlsafe_b64encode(uuid.UUID(traceer_id).bytes).decode("ascii").rstrip("=")
    if len(traceer_id) <= width:
        return traceer_id
    return "H" + hashlib.sha256(traceer_id.encode("utf-8")).hexdigest()[: width - 1]


_SERVICE_ROOT = "/berichtenservice"


def service_path(path: str) -> str:
    """A request path as the services' canonical one: VECOZO's test-environment prefix
    (``/acc``, ``/tst``) and a base URL that already ends in ``/berichtenservice`` or
    leaves it out are all taken, so that a client configured either way finds the
    services."""
    for environment in ("/acc", "/tst"):
        if path.startswith(environment + _SERVICE_ROOT + "/"):
            path = path[len(environment) :]
            break
    if path.startswith(("/berichten/rest-", "/berichtstatus/rest-")):
        path = _SERVICE_ROOT + path
    return path
