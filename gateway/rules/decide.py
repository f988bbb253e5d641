"""The integral rules: from a woman's monodisciplinary lines to decisions per pregnancy,
phase and insurer. Pure: lines, terms, the catalogue and a given day in; decisions out.

1. **Corrections.** A credit line (negative amount) naming an earlier reference of the same
   participant cancels that line; both end as *cancelled*, each naming the other. When the
   cancelled line was already absorbed into a claimed integral line, that line is credited
   (with its own days) and the phase is decided again from what remains. A credit of a
   line already forwarded or returned monodisciplinarily goes the same way instead.
2. **Pregnancies.** A woman's lines (same BSN and birth date) in date order belong to one
   pregnancy until one lies more than ``trajectory_days`` after its first, or — after an
   early end — more than ``aftercare_days`` after both the early end and the line before
   it; then a next pregnancy begins. A line of a "birth" code dates the birth; an
   "early-end" code (before 16 weeks) ends the pregnancy.
3. **Phases.** The catalogue's mapping gives each line its phase (by its prestatiecode, or a
   hospital line's zorgproduct or zorgactiviteit code); a code it does not know cannot be
   bundled and goes its own way (monodisciplinary). Parallel codes are compared with the
   field that carries them (:func:`on_parallel_list`).
4. **Decision per pregnancy, phase and insurer** — exactly one of:
   *monodisciplinary* (no integral contract for the year of the phase's first care day;
   nothing of it by bundled participants); *waiting* (the event that closes the phase has
   not happened, or its grace period for late declarations has not passed — unless an
   administrator closed it by hand); *bundle broken* (experiment-2017 rule set: care by a
   provider outside the IGO that is not a parallel declaration); *integral* (one integral
   prestatie of the catalogue for the phase and its complexity at the contract tariff plus
   overhead; under the postnatal exception an "extra" prestatie may come on top). Lines of
   participants that declare for themselves, parallel declarations, and — under
   regular-2023 — other care outside participation go monodisciplinarily beside it.
5. **Monodisciplinary** means: forwarded unchanged under the participant's own AGB code when
   the contract (or, without one, the insurer's setting) allows the IGO to, else returned to
   the participant with retourcode 9001 (modelled) to declare it itself.

Where the rules had to choose (modelled, not confirmed): the contract year is the year of a
phase's first care day; a phase closes at the birth (prenatal, natal), at the early end
(prenatal), or ``postnatal_days`` after the birth (postnatal); lines arriving for a phase
already claimed are absorbed into that claim (the IGO was paid once for the phase).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import date, timedelta

from gateway.lines import DeclaredLine
from gateway.rules.catalogue import (
    Catalogue,
    CodeField,
    Event,
    Kind,
    Phase,
    codes_of,
    same_code,
)
from gateway.rules.model import (
    RETURN_TO_DECLARE_ITSELF,
    ClaimLine,
    Contract,
    Decision,
    DecisionKind,
    Existing,
    LineKey,
    Place,
    Placement,
    Pregnancy,
    RuleSet,
    Standing,
    Terms,
    Variant,
    line_key,
)

__all__ = [
    "BROKEN_BY_HAND",
    "decide",
    "link_pregnancies",
    "on_parallel_list",
    "plain_woman_key",
]

WomanKey = Callable[[DeclaredLine], str]
# The rule of a phase an administrator broke: the case it came from is its record (no
# case of its own).
BROKEN_BY_HAND = "bundle broken by hand"


def plain_woman_key(line: DeclaredLine) -> str:
    """An unkeyed hash of BSN and birth date (the store uses a keyed one)."""
    born = line.birth_date.isoformat() if line.birth_date else ""
    return hashlib.sha256(f"{line.bsn}|{born}".encode()).hexdigest()


# --- corrections and pregnancies ---------------------------------------------------------


def _corrections(
    lines: Sequence[DeclaredLine], mono: Collection[LineKey] = frozenset()
) -> tuple[dict[LineKey, LineKey], set[LineKey], set[LineKey]]:
    """(cancelled keys, each with the key of its pair: the credit line and the line it
    cancels name each other; credit lines that correct nothing the gateway has; credit
    lines of a line already declared monodisciplinarily, ``mono``, which go its way)."""
    debits = {(line.participant, line.reference): line for line in lines if not line.is_credit}
    cancelled: dict[LineKey, LineKey] = {}
    orphans: set[LineKey] = set()
    follow: set[LineKey] = set()
    for line in lines:
        if not line.is_credit:
            continue
        target = debits.get((line.participant, line.previous_reference or ""))
        if target is not None and line_key(target) in mono:
            follow.add(line_key(line))
            continue
        if target is None or line_key(target) in cancelled:
            orphans.add(line_key(line))
            continue
        cancelled[line_key(line)] = line_key(target)
        cancelled[line_key(target)] = line_key(line)
    return cancelled, orphans, follow


def link_pregnancies(
    lines: Iterable[DeclaredLine],
    catalogue: Catalogue,
    *,
    trajectory_days: int,
    woman: WomanKey = plain_woman_key,
    aftercare_days: int = 42,
) -> list[Pregnancy]:
    """A woman's lines in date order, cut into pregnancies: a next one begins at a line
    more than ``trajectory_days`` after the first of the current one, or — once the
    current one ended early (an "early-end" code, no birth) — at a line more than
    ``aftercare_days`` after both that early end and the line before it (care after a
    miscarriage follows it within weeks; a new first visit comes months later)."""
    by_woman: dict[str, list[DeclaredLine]] = defaultdict(list)
    for line in lines:
        by_woman[woman(line)].append(line)
    pregnancies = []
    for key, own in sorted(by_woman.items()):
        own.sort(key=lambda ln: (ln.prestatie_date, ln.traceer_id, ln.record_number))
        current: list[DeclaredLine] = []
        ended: date | None = None
        born = False
        for line in own:
            day = line.prestatie_date
            after_early_end = (
                ended is not None
                and not born
                and (day - ended).days > aftercare_days
                and (day - current[-1].prestatie_date).days > aftercare_days
            )
            if current and (
                (day - current[0].prestatie_date).days > trajectory_days or after_early_end
            ):
                pregnancies.append(_pregnancy(key, current, catalogue))
                current, ended, born = [], None, False
            current.append(line)
            rule = catalogue.rule_of(line)
            if rule is not None and not line.is_credit:
                if rule.event is Event.EARLY_END and ended is None:
                    ended = day
                elif rule.event is Event.BIRTH:
                    born = True
        pregnancies.append(_pregnancy(key, current, catalogue))
    return pregnancies


def _pregnancy(woman: str, lines: list[DeclaredLine], catalogue: Catalogue) -> Pregnancy:
    births, ends = [], []
    for line in lines:
        rule = catalogue.rule_of(line)
        if rule is not None and rule.event is Event.BIRTH and not line.is_credit:
            births.append(line.prestatie_date)
        if rule is not None and rule.event is Event.EARLY_END and not line.is_credit:
            ends.append(line.prestatie_date)
    birth = min(births) if births else None
    early_end = min(ends) if ends and birth is None else None
    first = lines[0].prestatie_date.isoformat()
    return Pregnancy(f"{woman[:16]}-{first}", woman, tuple(lines), birth, early_end)


# --- the decision ------------------------------------------------------------------------


def _closes(pregnancy: Pregnancy, phase: Phase, postnatal_days: int) -> tuple[date | None, str]:
    """When ``phase`` closes, and the event it waits for."""
    if phase is Phase.PRENATAL:
        return pregnancy.birth or pregnancy.early_end, "the birth (or an early end)"
    if phase is Phase.NATAL:
        return pregnancy.birth, "the birth"
    if pregnancy.birth is None:
        return None, "the birth and the end of the postnatal period"
    return pregnancy.birth + timedelta(days=postnatal_days), "the end of the postnatal period"


class _Phase:
    """Deciding one pregnancy's phase for one insurer."""

    def __init__(
        self,
        pregnancy: Pregnancy,
        phase: Phase,
        insurer: str,
        lines: list[DeclaredLine],
        terms: Terms,
        catalogue: Catalogue,
        cancelled: Mapping[LineKey, LineKey],
    ) -> None:
        self.pregnancy, self.phase, self.insurer = pregnancy, phase, insurer
        self.lines, self.terms, self.catalogue = lines, terms, catalogue
        self.placements: dict[LineKey, Placement] = {}
        self.claims: list[ClaimLine] = []
        self.reasons: list[str] = []
        for line in lines:
            if line_key(line) in cancelled:
                self.placements[line_key(line)] = Placement(
                    Place.CANCELLED,
                    "cancelled against its correction",
                    pair=cancelled[line_key(line)],
                )
        self.active = [ln for ln in lines if line_key(ln) not in cancelled]
        insurer_terms = terms.insurers.get(insurer)
        anchor = min((ln.prestatie_date for ln in self.active), default=None)
        self.contract: Contract | None = None
        if insurer_terms is not None and anchor is not None:
            self.contract = insurer_terms.contracts.get(anchor.year)
        self.forward = (
            self.contract.forward_monodisciplinary
            if self.contract is not None
            else bool(insurer_terms and insurer_terms.forward_without_contract)
        )

    def mono(self, lines: Iterable[DeclaredLine], why: str) -> None:
        for line in lines:
            if self.forward:
                placement = Placement(Place.FORWARDED, f"{why}; forwarded under its own AGB code")
            else:
                placement = Placement(
                    Place.RETURNED,
                    f"{why}; to be declared by the participant itself",
                    code=RETURN_TO_DECLARE_ITSELF,
                )
            self.placements[line_key(line)] = placement

    def decision(self, kind: DecisionKind, rule: str, **extra: object) -> Decision:
        return Decision(
            pregnancy=self.pregnancy.id,
            phase=self.phase,
            insurer=self.insurer,
            kind=kind,
            rule=rule,
            reasons=tuple(self.reasons),
            placements=dict(self.placements),
            claims=tuple(self.claims),
            lines=tuple(self.lines),
            **extra,  # type: ignore[arg-type]
        )

    def claim(self, code: str, name: str, lines: Sequence[DeclaredLine], price: int) -> None:
        index = len(self.claims)
        first = lines[0]
        self.claims.append(
            ClaimLine(
                prestatie=code,
                name=name,
                bsn=first.bsn,
                birth_date=first.birth_date,
                first_day=min(ln.prestatie_date for ln in lines),
                last_day=max(ln.prestatie_end_date or ln.prestatie_date for ln in lines),
                amount=price,
                absorbs=tuple(line_key(ln) for ln in lines),
            )
        )
        for line in lines:
            self.placements[line_key(line)] = Placement(
                Place.ABSORBED, f"absorbed into integral prestatie {code}", claim=index
            )


def _fresh(
    p: _Phase,
    *,
    today: date,
    hand_closed: bool,
    settings_grace: int,
    postnatal_days: int,
    credited: bool,
) -> Decision:
    integral_rule = "correction after a claim: credited" if credited else None
    if not p.active:
        p.reasons.append("every line of this phase was cancelled by its correction")
        kind = DecisionKind.INTEGRAL if p.claims else DecisionKind.MONODISCIPLINARY
        return p.decision(kind, integral_rule or "nothing left to claim")
    contract = p.contract
    year = min(ln.prestatie_date for ln in p.active).year
    if contract is None:
        p.reasons.append(f"insurer {p.insurer} has no integral contract for {year}")
        p.mono(p.active, "no integral contract")
        return p.decision(DecisionKind.MONODISCIPLINARY, "no integral contract")
    closes, event = _closes(p.pregnancy, p.phase, postnatal_days)
    ready_on = closes + timedelta(days=settings_grace) if closes is not None else None
    if not hand_closed and (ready_on is None or today < ready_on):
        for line in p.active:
            p.placements[line_key(line)] = Placement(Place.WAITING, f"waits for {event}")
        p.reasons.append(
            f"the phase is not complete: it waits for {event}"
            + (f" and the grace period to {ready_on.isoformat()}" if ready_on else "")
        )
        return p.decision(
            DecisionKind.WAITING, "phase not complete", waiting_for=event, until=ready_on
        )
    if hand_closed:
        p.reasons.append("closed by hand by an administrator")
    candidates, self_declared, parallel, breakers = [], [], [], []
    for line in p.active:
        standing = p.terms.standing(line.participant, line.prestatie_date)
        if standing is Standing.BUNDLED:
            candidates.append(line)
        elif standing is Standing.SELF:
            self_declared.append(line)
        elif _is_parallel(p.terms, line, contract):
            parallel.append(line)
        else:
            breakers.append(line)
    if self_declared:
        p.reasons.append(
            f"{len(self_declared)} line(s) of participants that declare for themselves"
        )
        p.mono(self_declared, "the participant declares for itself")
    if parallel:
        p.reasons.append(f"{len(parallel)} parallel declaration(s) beside the integral claim")
        p.mono(parallel, "parallel declaration by a provider outside the IGO")
    if breakers and contract.rule_set is RuleSet.EXPERIMENT_2017:
        who = ", ".join(sorted({ln.participant for ln in breakers}))
        p.reasons.append(
            f"care outside the IGO that is not a parallel declaration (by {who}) breaks the "
            f"bundle under rule set {contract.rule_set.value}"
        )
        p.mono(candidates + breakers, "bundle broken")
        return p.decision(DecisionKind.BUNDLE_BROKEN, "bundle breaker")
    if breakers:
        p.reasons.append(
            f"{len(breakers)} line(s) outside participation go monodisciplinarily "
            f"(no bundle breakers under {contract.rule_set.value})"
        )
        p.mono(breakers, "outside participation")
    if not candidates:
        p.reasons.append("no care in this phase by participants of the IGO")
        kind = DecisionKind.INTEGRAL if p.claims else DecisionKind.MONODISCIPLINARY
        return p.decision(kind, integral_rule or "no care by the IGO's participants")
    return _integral(p, candidates, contract, integral_rule)


def _is_parallel(terms: Terms, line: DeclaredLine, contract: Contract) -> bool:
    participant = terms.participants.get(line.participant)
    not_affiliated = participant is None or participant.variant is Variant.C
    return not_affiliated and on_parallel_list(line, contract.parallel_codes)


def on_parallel_list(line: DeclaredLine, codes: Collection[str]) -> bool:
    """Whether ``line`` carries a code of the parallel list, each kind of code compared
    with the field that carries it: a DBC zorgproduct code (9 digits) with the hospital
    line's zorgproduct; any other code with the prestatiecode (or DBC declaratiecode) and
    with the hospital line's zorgactiviteit codes."""
    for code in codes:
        if len(code) == 9 and code.isdigit():
            fields: tuple[CodeField, ...] = (CodeField.ZORGPRODUCT,)
        else:
            fields = (CodeField.PRESTATIECODE, CodeField.ZORGACTIVITEIT)
        if any(same_code(code, own) for f in fields for own in codes_of(line, f)):
            return True
    return False


def _integral(
    p: _Phase, candidates: list[DeclaredLine], contract: Contract, rule: str | None
) -> Decision:
    catalogue = p.catalogue
    anchor = min(ln.prestatie_date for ln in candidates)
    rules = {line_key(ln): catalogue.rule_of(ln) for ln in candidates}
    extras: dict[str, list[DeclaredLine]] = defaultdict(list)
    main: list[DeclaredLine] = []
    for line in candidates:
        r = rules[line_key(line)]
        extra = r.extra if r is not None else None
        if extra is not None and (x := catalogue.by_code(extra)) is not None and x.repeatable:
            extras[extra].append(line)
        else:
            main.append(line)
    if not main:  # only "extra" care: it is the phase's prestatie after all
        main, extras = candidates, {}
    complex_ = any(r is not None and r.complex for r in rules.values())
    kinds = [Kind.COMPLEX if complex_ else Kind.NON_COMPLEX]
    if p.phase is Phase.PRENATAL and p.pregnancy.early_end is not None:
        kinds.insert(0, Kind.EARLY_END)
    prestatie = next(
        (x for k in kinds if (x := catalogue.prestatie(p.phase, k, anchor)) is not None), None
    )
    if prestatie is None:
        p.reasons.append(f"the catalogue has no integral prestatie for {p.phase.value} on {anchor}")
        p.mono(candidates, "no integral prestatie in the catalogue")
        return p.decision(DecisionKind.MONODISCIPLINARY, "no integral prestatie")
    price = contract.price(prestatie.code)
    if price is None:
        p.reasons.append(f"the {contract.year} contract has no tariff for {prestatie.code}")
        p.mono(candidates, f"no contract tariff for {prestatie.code}")
        return p.decision(DecisionKind.MONODISCIPLINARY, "no tariff")
    p.claim(prestatie.code, prestatie.name, main, price)
    p.reasons.append(
        f"all care by participants within their periods: one integral prestatie "
        f"{prestatie.code} ({prestatie.kind.value}) at {price} eurocent"
        + (f" incl. {contract.overhead_percent:g}% overhead" if contract.overhead_percent else "")
    )
    for code, lines in sorted(extras.items()):
        extra_price = contract.price(code)
        extra_prestatie = catalogue.by_code(code)
        if extra_price is None or extra_prestatie is None:
            for line in lines:  # no separate tariff: part of the phase's prestatie
                p.placements[line_key(line)] = Placement(
                    Place.ABSORBED, f"absorbed into integral prestatie {prestatie.code}", claim=0
                )
            continue
        p.claim(code, extra_prestatie.name, lines, extra_price)
        p.reasons.append(f"postnatal exception: {code} on top, at {extra_price} eurocent")
    return p.decision(DecisionKind.INTEGRAL, rule or "integral")


def _with_existing(
    p: _Phase, claims: Sequence[Existing], cancelled: Mapping[LineKey, LineKey]
) -> Decision | None:
    """The decision for a phase already claimed (``claims``: its claimed lines, the first
    the phase's own, an extra one on top after it), or None to decide it afresh after a
    credit line: when a correction cancelled part of what a claimed line absorbed, every
    claimed line of the phase is credited (the phase is decided again as a whole; a credit
    and a new debit that come out the same are not sent). A credit line carries the days of
    the line it credits (those of the lines it absorbed)."""
    if any(existing.absorbs & cancelled.keys() for existing in claims):
        for existing in claims:
            own = [ln for ln in p.lines if line_key(ln) in existing.absorbs] or p.lines
            p.claims.append(
                ClaimLine(
                    prestatie=existing.prestatie,
                    name=f"creditering van {existing.reference}",
                    bsn=p.lines[0].bsn,
                    birth_date=p.lines[0].birth_date,
                    first_day=min(ln.prestatie_date for ln in own),
                    last_day=max(ln.prestatie_end_date or ln.prestatie_date for ln in own),
                    amount=-existing.amount,
                    absorbs=(),
                    credits=existing.reference,
                )
            )
        names = ", ".join(existing.reference for existing in claims)
        p.reasons.append(
            f"a correction cancelled a line of claimed integral line(s) {names}: credited, "
            "and the phase decided again"
        )
        return None
    main = claims[0]
    for line in p.active:
        key = line_key(line)
        owner = next((e for e in claims if key in e.absorbs), None)
        late = owner is None
        p.placements[key] = Placement(
            Place.ABSORBED,
            f"{'arrived after the claim; ' if late else ''}absorbed into claimed integral "
            f"line {(owner or main).reference}",
            joins=main.reference if late else None,
        )
    p.reasons.append(
        "already claimed as " + ", ".join(f"{e.reference} ({e.prestatie})" for e in claims)
    )
    return p.decision(DecisionKind.INTEGRAL, "already claimed")


def decide(
    lines: Iterable[DeclaredLine],
    terms: Terms,
    catalogue: Catalogue,
    *,
    today: date,
    existing: Iterable[Existing] = (),
    closed: Collection[tuple[str, Phase]] = frozenset(),
    broken: Collection[tuple[str, Phase]] = frozenset(),
    woman: WomanKey = plain_woman_key,
    mono: Collection[LineKey] = frozenset(),
) -> list[Decision]:
    """Every decision for ``lines`` as of ``today``. ``existing`` are the integral lines
    claimed before; ``closed`` the (pregnancy, phase) pairs an administrator closed;
    ``broken`` those whose bundle an administrator broke (their lines go
    monodisciplinarily, whatever was claimed before); ``mono`` the lines already forwarded
    or returned monodisciplinarily (a credit of one goes the same way: the gateway cannot
    cancel what the insurer or the participant has)."""
    every = list(lines)
    cancelled, orphans, follow = _corrections(every, mono)
    claims_by_line: dict[LineKey, Existing] = {}
    for earlier in existing:
        for key in earlier.absorbs:
            claims_by_line[key] = earlier
    settings = terms.settings
    decisions = []
    for pregnancy in link_pregnancies(
        every,
        catalogue,
        trajectory_days=settings.trajectory_days,
        woman=woman,
        aftercare_days=settings.aftercare_days,
    ):
        groups: dict[tuple[Phase | None, str], list[DeclaredLine]] = defaultdict(list)
        for line in pregnancy.lines:
            rule = catalogue.rule_of(line)
            unmapped = line_key(line) in orphans or line_key(line) in follow
            phase = rule.phase if rule is not None and not unmapped else None
            groups[(phase, line.insurer)].append(line)
        for (phase, insurer), group in sorted(groups.items(), key=_order):
            if phase is None:
                decisions.append(
                    _unmapped(pregnancy, insurer, group, terms, catalogue, orphans, follow)
                )
                continue
            p = _Phase(pregnancy, phase, insurer, group, terms, catalogue, cancelled)
            if (pregnancy.id, phase) in broken:
                decisions.append(_broken_by_hand(p))
                continue
            claims = sorted(
                dict.fromkeys(
                    claims_by_line[line_key(ln)] for ln in group if line_key(ln) in claims_by_line
                ),
                key=lambda e: _is_extra(catalogue, e.prestatie),
            )
            if claims:
                done = _with_existing(p, claims, cancelled)
                if done is not None:
                    decisions.append(done)
                    continue
            decisions.append(
                _fresh(
                    p,
                    today=today,
                    hand_closed=(pregnancy.id, phase) in closed,
                    settings_grace=settings.grace_days,
                    postnatal_days=settings.postnatal_days,
                    credited=bool(claims),
                )
            )
    return decisions


def _is_extra(catalogue: Catalogue, code: str) -> bool:
    """Whether ``code`` is an integral prestatie that comes on top of the phase's own."""
    prestatie = catalogue.by_code(code)
    return prestatie is not None and prestatie.kind is Kind.EXTRA


def _broken_by_hand(p: _Phase) -> Decision:
    p.reasons.append(
        "an administrator of the IGO broke the bundle: every line goes monodisciplinarily"
    )
    p.mono(p.active, "bundle broken by the IGO")
    return p.decision(DecisionKind.BUNDLE_BROKEN, BROKEN_BY_HAND)


def _order(item: tuple[tuple[Phase | None, str], list[DeclaredLine]]) -> tuple[int, str]:
    (phase, insurer), _ = item
    rank = list(Phase).index(phase) if phase is not None else len(Phase)
    return rank, insurer


def _unmapped(
    pregnancy: Pregnancy,
    insurer: str,
    lines: list[DeclaredLine],
    terms: Terms,
    catalogue: Catalogue,
    orphans: set[LineKey],
    follow: set[LineKey],
) -> Decision:
    p = _Phase(pregnancy, Phase.PRENATAL, insurer, lines, terms, catalogue, {})
    for line in lines:
        if line_key(line) in orphans:
            why = "a credit of a line the gateway does not have"
        elif line_key(line) in follow:
            why = "a credit of a line declared monodisciplinarily goes the same way"
        else:
            why = f"prestatie code {line.prestatiecode} ({line.standard}) is not in the mapping"
        p.mono([line], why)
        p.reasons.append(why)
    decision = p.decision(DecisionKind.MONODISCIPLINARY, "not bundled")
    return Decision(**{**decision.__dict__, "phase": None})
