"""What the administrator reads: one language (Dutch), names instead of bare codes, euros
with a decimal comma, local time.

The rules engine and the store keep their own words (``prenatal``, ``absorbed``, "phase
not complete: waits for the birth"): they are identifiers and log text, tested as they
are. This module translates them where they are shown — the site's pages, the admin
API's case texts, the command line — by label tables and, for the rules' sentences, by
patterns (:func:`dutch`). A sentence no pattern knows is shown as it is. The admin
models' own states, roles, actions and outcomes have their labels here too, keyed by the
members' values: this module imports none of the models (the batches reach it through
:mod:`gateway.resolution`, so an import back would be a cycle).

:class:`Names` puts names to codes: participants and insurers as the configuration names
them (plus :data:`KNOWN_INSURERS` for the UZOVI numbers the demo and the docs use),
prestaties with the description the catalogue gives.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from gateway.lines import AnswerOutcome
from gateway.ports.resolution import Field

__all__ = [
    "ACTION_LABELS",
    "AUDIT_LABELS",
    "BATCH_STATE_LABELS",
    "CASE_DETAIL_LABELS",
    "CONTROL_LABELS",
    "FIELD_LABELS",
    "ITEM_OUTCOME_LABELS",
    "KNOWN_INSURERS",
    "LINE_STATE_LABELS",
    "OUTCOME_LABELS",
    "PHASE_LABELS",
    "ROLE_LABELS",
    "SEARCH_OUTCOMES",
    "STATE_LABELS",
    "ClientView",
    "Names",
    "age_text",
    "audit_keyed_text",
    "day_text",
    "dutch",
    "euro_text",
    "local_time",
    "pregnancy_text",
]

LOCAL: Final = ZoneInfo("Europe/Amsterdam")

# UZOVI numbers the demo and the documentation use, with the name they go by there. 3311
# is the example insurer of the docs and the insurer simulator ("Zorgverzekeraar
# Voorbeeld"); it is modelled, not the register's name for that number. The config's
# [[insurers]] name always comes first.
KNOWN_INSURERS: Final[Mapping[str, str]] = {
    "3311": "Zorgverzekeraar Voorbeeld",
}

PHASE_LABELS: Final[Mapping[str, str]] = {
    "prenatal": "prenatale fase",
    "natal": "natale fase",
    "postnatal": "postnatale fase",
}
PHASE_WORDS: Final[Mapping[str, str]] = {
    "postnatal": "postnataal",
    "prenatal": "prenataal",
    "natal": "nataal",
}
# Where bundling put a line (the store's ``state`` of a declaration line).
LINE_STATE_LABELS: Final[Mapping[str, str]] = {
    "open": "nog niet beoordeeld",
    "waiting": "wacht",
    "absorbed": "opgenomen in integrale prestatie",
    "forwarded": "monodisciplinair doorgestuurd",
    "returned": "terug naar deelnemer",
    "cancelled": "tegen correctie weggestreept",
    "answered": "beantwoord door verzekeraar",
}
# What a case's source tells beside its summary (``CaseFacts.details``), by what it is;
# the case page shows the details under these names.
CASE_DETAIL_LABELS: Final[Mapping[str, str]] = {
    "attempts": "pogingen",
    "delivery_state": "toestand verzending",
    "first_attempt": "eerste poging",
    "invoice_number": "factuurnummer",
    "insurer_reference": "kenmerk verzekeraar",
    "phase": "fase",
    "corrects": "verbetering van",
    "pregnancy": "zwangerschap",
    "waiting_for": "wacht op",
    "expected_by": "verwacht uiterlijk",
}
DECISION_KIND_LABELS: Final[Mapping[str, str]] = {
    "integral": "integraal gedeclareerd",
    "monodisciplinary": "monodisciplinair",
    "bundle-broken": "bundel gebroken",
    "waiting": "wacht",
}
KIND_WORDS: Final[Mapping[str, str]] = {
    "non-complex": "niet complex",
    "complex": "complex",
    "early-end": "vroeg geëindigd",
    "extra": "aanvullend",
    "variant": "variant",
}
# Outbound files and search hits.
OUTBOUND_STATE_LABELS: Final[Mapping[str, str]] = {
    "queued": "in de wachtrij",
    "sending": "wordt verstuurd",
    "delivered": "afgeleverd bij de verzekeraar",
    "answered": "beantwoord door de verzekeraar",
    "parked": "geparkeerd",
}

# The admin models' states, roles, actions and outcomes, keyed by the value of their
# ``StrEnum`` member (a member looks its label up itself). tests/gateway/admin/
# test_labels.py checks that every member has one.
ROLE_LABELS: Final[Mapping[str, str]] = {
    "viewer": "alleen lezen",
    "operator": "operator",
    "administrator": "beheerder",
}
STATE_LABELS: Final[Mapping[str, str]] = {  # a case's state
    "open": "open",
    "retried": "opnieuw aangeboden",
    "written_off": "afgeboekt",
    "resolved": "opgelost",
    "resubmitted": "verbeterd ingediend",
    "broken": "bundel gebroken",
    "passed_on": "doorgegeven aan deelnemers",
    "phase_closed": "fase gesloten",
}
ACTION_LABELS: Final[Mapping[str, str]] = {  # an action on a case, as its button says it
    "retry": "Opnieuw aanbieden",
    "resubmit": "Verbeteren en opnieuw indienen",
    "break_bundle": "Bundel breken",
    "pass_on": "Afwijzing doorgeven",
    "close_phase": "Fase sluiten",
    "write_off": "Afboeken",
    "reopen": "Heropenen",
    "note": "Notitie toevoegen",
}
AUDIT_LABELS: Final[Mapping[str, str]] = {  # an audit entry's action
    "login": "aangemeld",
    "login_failed": "aanmelding mislukt",
    "logout": "afgemeld",
    "user_created": "gebruiker aangemaakt",
    "token_created": "API-token aangemaakt",
    "view_queue": "zaken bekeken",
    "view_case": "zaak bekeken",
    "unmask": "persoonsgegevens getoond",
    "retry": "opnieuw aangeboden",
    "write_off": "afgeboekt",
    "reopen": "heropend",
    "note": "notitie",
    "resubmit": "verbeterd en opnieuw ingediend",
    "break_bundle": "bundel gebroken",
    "pass_on": "afwijzing doorgegeven",
    "close_phase": "fase met de hand gesloten",
    "view_pregnancy": "zwangerschap bekeken",
    "view_audit": "auditlog bekeken",
    "export_audit": "auditlog geëxporteerd",
    "search": "gezocht",
    "batch_created": "bulkactie gestart",
    "batch_paused": "bulkactie gepauzeerd",
    "batch_resumed": "bulkactie hervat",
    "batch_cancelled": "bulkactie gestopt",
    "batch_finished": "bulkactie klaar",
}
BATCH_STATE_LABELS: Final[Mapping[str, str]] = {
    "running": "bezig",
    "paused": "gepauzeerd",
    "cancelled": "gestopt",
    "finished": "klaar",
}
ITEM_OUTCOME_LABELS: Final[Mapping[str, str]] = {  # a case of a batch
    "done": "gedaan",
    "skipped": "overgeslagen",
    "failed": "mislukt",
}
CONTROL_LABELS: Final[Mapping[str, str]] = {  # a batch's buttons
    "pause": "Pauzeren",
    "resume": "Hervatten",
    "cancel": "Stoppen",
}
# The fields a correction may change (gateway.resolution), as the forms and pages name them.
FIELD_LABELS: Final[Mapping[Field, str]] = {
    Field.MEMBER_NUMBER: "Verzekerdennummer",
    Field.UZOVI: "UZOVI-nummer",
    Field.FIRST_DAY: "Begindatum prestatie",
    Field.LAST_DAY: "Einddatum prestatie",
    Field.PRESTATIE: "Integrale prestatie",
}
# A search hit's verdict (the insurer's, on a line or on the lines a claim absorbed).
SEARCH_OUTCOMES: Final[Mapping[str, str]] = {
    AnswerOutcome.GRANTED: "toegekend",
    AnswerOutcome.REJECTED: "afgewezen (doorgegeven)",
    AnswerOutcome.REVIEW: "afgewezen, in behandeling bij de IGO",
    "replaced": "afgewezen, vervangen door een verbetering",  # a claim a correction replaced
    AnswerOutcome.RETURNED: "terug: zelf declareren",
}
# A declaration line's verdict on the pregnancy and case pages ("": no answer yet).
OUTCOME_LABELS: Final[Mapping[str, str]] = {
    AnswerOutcome.GRANTED: "toegekend",
    AnswerOutcome.REJECTED: "afgewezen (doorgegeven)",
    AnswerOutcome.REVIEW: "in behandeling bij de IGO",
    AnswerOutcome.RETURNED: "terug: zelf declareren",
    "": "nog geen antwoord",
}

_EVENTS: Final = (
    ("the birth (or an early end)", "de geboorte (of een vroeg einde)"),
    (
        "the birth and the end of the postnatal period",
        "de geboorte en het einde van de kraamperiode",
    ),
    ("the end of the postnatal period", "het einde van de kraamperiode"),
    ("the birth", "de geboorte"),
)


def euro_text(cents: int | None) -> str:
    """``€ 1.010,00``: a dot between thousands, a decimal comma (negative: ``€ -12,50``)."""
    if cents is None:
        return "—"
    text = f"{abs(cents) / 100:,.2f}".replace(",", "#").replace(".", ",").replace("#", ".")
    return f"€ {'-' if cents < 0 else ''}{text}"


def age_text(age: timedelta) -> str:
    """How long a case has been open: ``3 dagen``, ``5 uur``, ``12 min``."""
    days = age.days
    if days >= 2:
        return f"{days} dagen"
    hours = int(age.total_seconds() // 3600)
    if hours >= 1:
        return f"{hours} uur"
    return f"{int(age.total_seconds() // 60)} min"


def local_time(moment: datetime) -> str:
    """A moment as the administrator's clock shows it (Europe/Amsterdam)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(LOCAL).strftime("%d-%m-%Y %H:%M")


def day_text(day: date | None) -> str:
    return "—" if day is None else day.strftime("%d-%m-%Y")


def _cents(match: re.Match[str]) -> str:
    return euro_text(int(match.group(1)))


def _event(text: str) -> str:
    for english, nl in _EVENTS:
        text = text.replace(english, nl)
    return text


def _phase_words(text: str) -> str:
    for english, nl in PHASE_WORDS.items():
        text = re.sub(rf"\b{english}\b", nl, text)
    return text


def _iso_days(text: str) -> str:
    return re.sub(r"\b(\d{4})-(\d{2})-(\d{2})\b", lambda m: f"{m[3]}-{m[2]}-{m[1]}", text)


# The rules' sentences (gateway/rules/decide.py) and the bundler's placements, most
# specific first. Each pattern is tried on the whole text; groups are kept.
_PATTERNS: Final[tuple[tuple[re.Pattern[str], str], ...]] = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"(\d+) eurocent", "\x00\\1\x00"),  # amounts: euros (below)
        (r"^phase not complete$", "fase niet compleet"),
        (r"the phase is not complete: it waits for (.+?) and the grace period to (\S+)$",
         r"de fase is niet compleet: ze wacht op \1 en de wachttermijn tot \2"),
        (r"the phase is not complete: it waits for (.+)$",
         r"de fase is niet compleet: ze wacht op \1"),
        (r"^waits for (.+)$", r"wacht op \1"),
        (r"closed by hand by an administrator", "met de hand gesloten door een beheerder"),
        (r"every line of this phase was cancelled by its correction",
         "elke regel van deze fase is tegen zijn correctie weggestreept"),
        (r"no care in this phase by participants of the IGO",
         "geen zorg in deze fase door deelnemers van de IGO"),
        (r"insurer (\d{4}) has no integral contract for (\d{4})",
         r"verzekeraar \1 heeft geen integraal contract voor \2"),
        (r"postnatal exception: (\S+) on top, at", r"postnatale uitzondering: \1 erbovenop, voor"),
        (r"the catalogue has no integral prestatie for (\S+) on (\S+)",
         r"de catalogus heeft geen integrale prestatie voor \1 op \2"),
        (r"the (\d{4}) contract has no tariff for (\S+)",
         r"het contract \1 heeft geen tarief voor \2"),
        (r"(\d+) parallel declaration\(s\) beside the integral claim",
         r"\1 parallelle declaratie(s) naast de integrale declaratie"),
        (r"(\d+) line\(s\) of participants that declare for themselves",
         r"\1 regel(s) van deelnemers die zelf declareren"),
        (r"care outside the IGO that is not a parallel declaration \(by (.+?)\) breaks the "
         r"bundle under rule set (\S+)",
         r"zorg buiten de IGO die geen parallelle declaratie is (door \1) breekt de bundel "
         r"onder regelset \2"),
        (r"(\d+) line\(s\) outside participation go monodisciplinarily \(no bundle breakers "
         r"under (\S+)\)",
         r"\1 regel(s) buiten de deelname gaan monodisciplinair (geen bundelbrekers onder \2)"),
        (r"all care by participants within their periods: one integral prestatie (\S+) "
         r"\(([a-z-]+)\) at",
         r"alle zorg door deelnemers binnen hun periodes: één integrale prestatie \1 (\2) voor"),
        (r" incl\. ([\d.,]+)% overhead", r" incl. \1% opslag"),
        (r"a correction cancelled a line of claimed integral line\(s\) (.+?): credited, and "
         r"the phase decided again",
         r"een correctie streepte een regel weg van gedeclareerde integrale regel(s) \1: "
         r"gecrediteerd, en de fase opnieuw beoordeeld"),
        (r"^already claimed as (.+)$", r"al gedeclareerd als \1"),
        (r"^already claimed$", "al gedeclareerd"),
        (r"^arrived after the claim$", "na de declaratie binnengekomen"),
        (r"absorbed into claimed integral line (\S+)",
         r"opgenomen in gedeclareerde integrale regel \1"),
        (r"absorbed into integral prestatie (\S+)", r"opgenomen in integrale prestatie \1"),
        (r"cancelled against its correction", "tegen zijn correctie weggestreept"),
        (r"a credit of a line the gateway does not have",
         "een creditering van een regel die de gateway niet heeft"),
        (r"a credit of a line declared monodisciplinarily goes the same way",
         "een creditering van een monodisciplinair gedeclareerde regel gaat dezelfde weg"),
        (r"prestatie code (\S+) \((\S+)\) is not in the mapping",
         r"prestatiecode \1 (\2) staat niet in de indeling van de catalogus"),
        (r"^forwarded under its own AGB code$", "doorgestuurd onder de eigen AGB-code"),
        (r"^to be declared by the participant itself$", "de deelnemer declareert het zelf"),
        (r"the participant declares for itself", "de deelnemer declareert zelf"),
        (r"parallel declaration by a provider outside the IGO",
         "parallelle declaratie door een zorgaanbieder buiten de IGO"),
        (r"^bundle broken by hand$", "bundel met de hand gebroken"),
        (r"^bundle broken$", "bundel gebroken"),
        (r"^bundle breaker$", "bundelbreker"),
        (r"^outside participation$", "buiten de deelname"),
        (r"^no integral contract$", "geen integraal contract"),
        (r"^no integral prestatie in the catalogue$", "geen integrale prestatie in de catalogus"),
        (r"^no integral prestatie$", "geen integrale prestatie"),
        (r"^no contract tariff for (\S+)$", r"geen contracttarief voor \1"),
        (r"^no tariff$", "geen tarief"),
        (r"^not bundled$", "niet gebundeld"),
        (r"^nothing left to claim$", "niets meer te declareren"),
        (r"^correction after a claim: credited$", "correctie na een declaratie: gecrediteerd"),
        (r"^no care by the IGO's participants$", "geen zorg door de deelnemers van de IGO"),
        (r"^integral$", "integraal"),
        (r"\(name not public\)", "(naam niet openbaar)"),
        (r"\(name and criterion not public\)", "(naam en criterium niet openbaar)"),
    )
)  # fmt: skip


def _one(part: str) -> str:
    for pattern, replacement in _PATTERNS:
        part = pattern.sub(replacement, part)
    part = re.sub("\x00(\\d+)\x00", _cents, part)
    part = _iso_days(_phase_words(_event(part)))
    for kind, nl in KIND_WORDS.items():
        part = part.replace(f"({kind})", f"({nl})")
    return part


def dutch(text: str | None) -> str:
    """The rules' and the store's English text in Dutch (phases, places, reasons, amounts
    in euros, dates as dd-mm-jjjj); text already in Dutch comes back as it is. A text of
    several sentences ("rule: reason; reason") is translated sentence by sentence."""
    if not text:
        return ""
    out = []
    for part in text.split("; "):
        head, sep, tail = part.partition(": ")
        if sep and _one(head) != head:
            out.append(f"{_one(head)}: {_one(tail)}")
        else:
            out.append(_one(part))
    return "; ".join(out)


@dataclass(frozen=True, slots=True)
class ClientView:
    """The client of a case as the insured record (02) of its file names her."""

    bsn: str  # masked (last three digits) unless unmasked
    name: str  # initials, prefix and surname: "A.M. de Voorbeeld"
    birth_date: date | None
    member_number: str  # masked unless unmasked
    masked: bool


def pregnancy_text(
    client: ClientView | None, pregnancy: str, birth: date | None, expected: date | None
) -> str:
    """A pregnancy as a person knows it: the woman, and the birth date (or the expected
    one), instead of its key."""
    who = client.name if client is not None and client.name else "cliënte"
    if birth is not None:
        return f"{who}, bevallen op {day_text(birth)}"
    if expected is not None:
        return f"{who}, uitgerekend rond {day_text(expected)}"
    start = pregnancy.rpartition("-")[0][-10:] if pregnancy.count("-") >= 3 else ""
    return f"{who}, zorg vanaf {start}" if start else who


@dataclass(frozen=True)
class Names:
    """Names for codes, as far as they are known; a code without one is shown as a code
    with what kind of code it is."""

    participants: Mapping[str, str] = field(default_factory=dict)
    insurers: Mapping[str, str] = field(default_factory=dict)
    prestaties: Mapping[str, str] = field(default_factory=dict)
    birth_codes: frozenset[str] = frozenset()  # prestatiecodes that date the birth

    def participant(self, agb: str | None) -> str:
        if not agb:
            return "—"
        name = self.participants.get(agb)
        return f"{name} (AGB {agb})" if name else f"AGB {agb}"

    def insurer(self, uzovi: str | None) -> str:
        if not uzovi:
            return "—"
        name = self.insurers.get(uzovi) or KNOWN_INSURERS.get(uzovi)
        return f"{name} (UZOVI {uzovi})" if name else f"UZOVI {uzovi}"

    def prestatie(self, code: str | None) -> str:
        if not code:
            return "—"
        name = self.prestaties.get(code)
        return f"{code} — {dutch(name)}" if name else f"{code} (prestatiecode)"


def audit_keyed_text(before: int) -> str:
    """The detail of the audit log's ``audit_keyed`` marker, after ``before`` entries made
    without a key."""
    if before:
        return f"keten vanaf hier met sleutel; regels 1-{before} ervoor zonder"
    return "keten met sleutel"
