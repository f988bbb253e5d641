"""What an action on a case will do, in Dutch, as the confirmation says it before the
administrator confirms: for one case (:func:`consequence`) and for a batch of cases
(:func:`bulk_consequence`). Shown by the admin site and the command line, and given by
the JSON API's batch preview."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from gateway.admin.cases import Case, CaseAction
from gateway.admin.labels import ACTION_LABELS

__all__ = ["bulk_consequence", "consequence"]


def consequence(action: CaseAction, case: Case) -> str:
    """What ``action`` does to ``case``."""
    insurer = case.facts.insurer or "de verzekeraar"
    return {
        CaseAction.RETRY: f"Het bestand gaat terug in de wachtrij en wordt direct opnieuw "
        f"aangeboden aan verzekeraar {insurer}, met hetzelfde kenmerk en factuurnummer: de "
        "verzekeraar ziet geen tweede declaratie.",
        CaseAction.WRITE_OFF: "De zaak wordt afgeboekt en verdwijnt uit de wachtrij. Er wordt "
        "niets verstuurd of teruggemeld. Vermeld waarom.",
        CaseAction.REOPEN: "De zaak komt terug in de wachtrij van open zaken.",
        CaseAction.NOTE: "De notitie komt bij de zaak te staan; de toestand van de zaak "
        "verandert niet.",
        CaseAction.RESUBMIT: "De integrale prestatie gaat met de verbeterde gegevens opnieuw "
        "naar de verzekeraar, in een eigen declaratiebestand met een nieuw factuurnummer. De "
        "afgewezen regel blijft bewaard en wordt aan de nieuwe gekoppeld; de verzekeraar "
        "boekte de afgewezen regel niet, dus er gaat geen creditregel mee. De deelnemers "
        "krijgen hun retour als de verzekeraar de verbeterde regel beoordeelt.",
        CaseAction.BREAK_BUNDLE: "De bundel van deze fase wordt gebroken: de oorspronkelijke "
        "regels gaan monodisciplinair — doorgestuurd onder de eigen AGB-code van de "
        "deelnemer waar het contract dat toestaat, anders terug naar de deelnemer met "
        "retourcode 9001 (zelf declareren). Dit geldt ook voor later ingediende regels van "
        "deze fase. Vermeld waarom.",
        CaseAction.PASS_ON: "Elke deelnemer krijgt een retourbestand waarin zijn regels zijn "
        f"afgewezen met de retourcodes van verzekeraar {insurer}. De IGO declareert deze "
        "fase niet opnieuw.",
        CaseAction.CLOSE_PHASE: "De fase wordt als compleet beschouwd: de volgende "
        "bundelronde (direct na het bevestigen) declareert wat er nu is.",
    }[action]


_BULK_EFFECTS: Final = {
    CaseAction.RETRY: "gaat het bestand terug in de wachtrij en wordt het direct opnieuw "
    "aangeboden aan de verzekeraar, met hetzelfde kenmerk en factuurnummer: de verzekeraar "
    "ziet geen tweede declaratie",
    CaseAction.WRITE_OFF: "wordt de zaak afgeboekt met de reden hieronder en verdwijnt ze uit "
    "de wachtrij; er wordt niets verstuurd of teruggemeld",
    CaseAction.REOPEN: "komt de zaak terug in de wachtrij van open zaken",
    CaseAction.NOTE: "komt de notitie hieronder bij de zaak te staan; de toestand van de zaak "
    "verandert niet",
    CaseAction.BREAK_BUNDLE: "wordt de bundel van de fase gebroken: de oorspronkelijke regels "
    "gaan monodisciplinair — doorgestuurd onder de eigen AGB-code van de deelnemer waar het "
    "contract dat toestaat, anders terug naar de deelnemer met retourcode 9001 (zelf "
    "declareren); de reden hieronder geldt voor alle zaken",
    CaseAction.PASS_ON: "krijgt elke deelnemer een retourbestand waarin zijn regels zijn "
    "afgewezen met de retourcodes van de verzekeraar; de IGO declareert die fase niet opnieuw",
    CaseAction.CLOSE_PHASE: "wordt de fase als compleet beschouwd: de bundelronde na elke zaak "
    "declareert wat er dan is",
}


def bulk_consequence(
    action: CaseAction, count: int, cases: Sequence[Case], *, confirmation: bool = True
) -> str:
    """What a batch of ``action`` on ``count`` cases does, in Dutch (``confirmation``: as
    the confirmation says it, before the batch exists). An action without a bulk text of
    its own (a later kind's) is told by its single-case consequence."""
    effect = _BULK_EFFECTS.get(action)
    if effect is None:
        single = consequence(action, cases[0]) if cases else ACTION_LABELS.get(action, "")
        effect = f"gebeurt dit: {single}"
    zaken = "zaak" if count == 1 else "zaken"
    if not confirmation:
        return (
            f"Voor elk van deze {count} {zaken} {effect}. Elke zaak is apart gedaan en "
            "vastgelegd in het auditlog; een zaak waar de actie niet meer bij paste, is "
            "overgeslagen (met de reden)."
        )
    return (
        f"Voor elk van deze {count} {zaken} {effect}. De gateway doet de zaken één voor één "
        "op de achtergrond, elke zaak apart vastgelegd in het auditlog. Een zaak waar de "
        "actie dan niet meer bij past, wordt overgeslagen (met de reden); zaken die na deze "
        "bevestiging bijkomen, horen er niet bij. U kunt de batch pauzeren, hervatten of "
        "stoppen."
    )
