"""The integral rules as named scenarios from the handreiking (questions 28–38), each
asserting the decision and the resulting claim lines, and a property: every original line
ends in exactly one place."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.lines import DeclaredLine
from gateway.rules.catalogue import Phase
from gateway.rules.decide import decide
from gateway.rules.model import (
    Contract,
    Decision,
    DecisionKind,
    Existing,
    InsurerTerms,
    Participant,
    Place,
    RuleSet,
    Settings,
    Terms,
    Variant,
    line_key,
)
from gateway.terms import load_catalogue

CATALOGUE = load_catalogue()
MIDWIFE, KRAAM, HOSPITAL = "02001234", "33001234", "06001234"
OUTSIDE_HOSPITAL = "06009999"  # variant C: no relation with the IGO
OUTSIDE_MIDWIFE = "02009999"  # variant C as well
# The example catalogue's placeholders for the two kraamzorg codes that are not public.
KZ_HOURS, KZ_AFTER_CLINICAL = "KZUREN", "KZKLIN"
# A DBC declaratiecode the catalogue does not map: a clinical birth is known by its
# zorgactiviteit (190037, poliklinische bevalling op medische indicatie).
BIRTH_DBC, CLINICAL_BIRTH = "ZZ0001", ("190037",)
INSURER, NO_CONTRACT = "3311", "9999"
BIRTH = date(2026, 7, 24)
TODAY = date(2026, 11, 1)  # long after the postnatal period and its grace
TARIFFS = {
    "IG0001": 60000,
    "IG0002": 150000,
    "IG0003": 180000,
    "IG0004": 90000,
    "IG0006": 120000,
    "IG0007": 100000,
    "IG0008": 130000,
    "IG0009": 40000,
}


def contract(
    year: int = 2026, rule_set: RuleSet = RuleSet.EXPERIMENT_2017, **kw: object
) -> Contract:
    values: dict[str, object] = {
        "tariffs": TARIFFS,
        "overhead_percent": 0.0,
        "parallel_codes": frozenset({"1603", "196202", "196203"}),
        "forward_monodisciplinary": True,
    }
    values.update(kw)
    return Contract(year, rule_set, **values)  # type: ignore[arg-type]


def terms(
    *contracts: Contract,
    kraam_bundled: bool = True,
    midwife_left: date | None = None,
    forward_without_contract: bool = False,
) -> Terms:
    always: tuple[tuple[date | None, date | None, bool], ...] = ((None, None, True),)
    participants = {
        MIDWIFE: Participant(MIDWIFE, Variant.A, ((None, midwife_left, True),)),
        KRAAM: Participant(KRAAM, Variant.A, ((None, None, kraam_bundled),)),
        HOSPITAL: Participant(HOSPITAL, Variant.B, always),
        OUTSIDE_HOSPITAL: Participant(OUTSIDE_HOSPITAL, Variant.C, always),
        OUTSIDE_MIDWIFE: Participant(OUTSIDE_MIDWIFE, Variant.C, always),
    }
    insurers = {
        INSURER: InsurerTerms(INSURER, {c.year: c for c in contracts or (contract(),)}, False),
        NO_CONTRACT: InsurerTerms(NO_CONTRACT, {}, forward_without_contract),
    }
    return Terms(Settings("53001234"), participants, insurers)


_refs = iter(range(1, 10**6))


def ln(
    participant: str,
    standard: str,
    code: str,
    day: date,
    *,
    amount: int = 10000,
    insurer: str = INSURER,
    previous: str | None = None,
    reference: str | None = None,
    bsn: str = "999990007",
    zorgproduct: str | None = None,
    zorgactiviteiten: tuple[str, ...] = (),
) -> DeclaredLine:
    n = next(_refs)
    return DeclaredLine(
        traceer_id=f"upload-{participant}",
        record_number=n,
        participant=participant,
        standard=standard,
        bsn=bsn,
        birth_date=date(1994, 5, 6),
        insurer=insurer,
        prestatiecodelijst="045",
        prestatiecode=code,
        prestatie_date=day,
        prestatie_end_date=None,
        amount=amount,
        reference=reference or f"R{n}",
        previous_reference=previous,
        performer=participant,
        zorgproduct=zorgproduct,
        zorgactiviteiten=zorgactiviteiten,
    )


def full_pregnancy(insurer: str = INSURER, birth: date = BIRTH) -> list[DeclaredLine]:
    """Midwife prenatal care and a home birth, kraamzorg intake and hours."""
    return [
        ln(MIDWIFE, "VK301", "1603", birth - timedelta(days=140), insurer=insurer),
        ln(MIDWIFE, "VK301", "1101", birth - timedelta(days=1), insurer=insurer),
        ln(KRAAM, "KZ301", "196203", birth - timedelta(days=40), insurer=insurer),
        ln(MIDWIFE, "VK301", "1102", birth, insurer=insurer),
        ln(MIDWIFE, "VK301", "1103", birth + timedelta(days=10), insurer=insurer),
        *(
            ln(KRAAM, "KZ301", KZ_HOURS, birth + timedelta(days=d), insurer=insurer)
            for d in (1, 2, 3)
        ),
    ]


def by_phase(decisions: list[Decision]) -> dict[Phase | None, Decision]:
    return {d.phase: d for d in decisions if d.insurer == INSURER}


def places(decision: Decision) -> Counter[Place]:
    return Counter(p.place for p in decision.placements.values())


def every_line_once(lines: list[DeclaredLine], decisions: list[Decision]) -> None:
    placed = Counter(key for d in decisions for key in d.placements)
    assert placed == Counter(line_key(line) for line in lines)
    absorbed = Counter(key for d in decisions for c in d.claims for key in c.absorbs)
    assert all(n == 1 for n in absorbed.values())
    for d in decisions:
        for key, placement in d.placements.items():
            if placement.claim is not None:
                assert key in d.claims[placement.claim].absorbs


# --- the scenarios -----------------------------------------------------------------------


def test_q28_all_care_in_the_igo_gives_one_integral_prestatie_per_phase() -> None:
    lines = full_pregnancy()
    decisions = decide(lines, terms(), CATALOGUE, today=TODAY)
    phases = by_phase(decisions)
    assert {p: d.kind for p, d in phases.items()} == {
        Phase.PRENATAL: DecisionKind.INTEGRAL,
        Phase.NATAL: DecisionKind.INTEGRAL,
        Phase.POSTNATAL: DecisionKind.INTEGRAL,
    }
    assert [c.prestatie for c in phases[Phase.PRENATAL].claims] == ["IG0002"]
    assert [c.prestatie for c in phases[Phase.NATAL].claims] == ["IG0004"]
    (postnatal,) = phases[Phase.POSTNATAL].claims
    assert (postnatal.prestatie, postnatal.amount) == ("IG0007", 100000)
    assert len(postnatal.absorbs) == 4  # the midwife's visit and three kraamzorg days
    assert postnatal.first_day == BIRTH + timedelta(days=1)
    assert all(places(d) == Counter({Place.ABSORBED: len(d.lines)}) for d in decisions)
    every_line_once(lines, decisions)


def test_overhead_is_added_to_the_contract_tariff() -> None:
    decisions = decide(
        full_pregnancy(), terms(contract(overhead_percent=5)), CATALOGUE, today=TODAY
    )
    assert by_phase(decisions)[Phase.NATAL].claims[0].amount == 94500


def test_q28_a_parallel_ultrasound_by_a_variant_c_provider_goes_beside_the_claim() -> None:
    scan = ln(OUTSIDE_MIDWIFE, "VK301", "1603", BIRTH - timedelta(days=30))
    decisions = decide([*full_pregnancy(), scan], terms(), CATALOGUE, today=TODAY)
    prenatal = by_phase(decisions)[Phase.PRENATAL]
    # 1603 (specific diagnostic echo) is on the insurer's parallel list: declared by a
    # provider outside the IGO it goes beside the claim and does not break the bundle.
    assert prenatal.kind is DecisionKind.INTEGRAL
    (claim,) = prenatal.claims
    assert claim.prestatie == "IG0002"
    assert line_key(scan) not in claim.absorbs
    assert prenatal.placements[line_key(scan)].place is Place.FORWARDED


def test_a_mapped_parallel_code_of_a_variant_c_provider_does_not_break_the_bundle() -> None:
    kraam_c = ln(OUTSIDE_HOSPITAL, "KZ301", "196202", BIRTH - timedelta(days=150))
    decisions = decide([*full_pregnancy(), kraam_c], terms(), CATALOGUE, today=TODAY)
    prenatal = by_phase(decisions)[Phase.PRENATAL]
    assert prenatal.kind is DecisionKind.INTEGRAL
    assert prenatal.placements[line_key(kraam_c)].place is Place.FORWARDED
    assert line_key(kraam_c) not in prenatal.claims[0].absorbs


@pytest.mark.parametrize(
    ("rule_set", "kind"),
    [
        (RuleSet.EXPERIMENT_2017, DecisionKind.BUNDLE_BROKEN),
        (RuleSet.REGULAR_2023, DecisionKind.INTEGRAL),
    ],
)
def test_q30_an_outside_hospital_in_the_natal_phase(rule_set: RuleSet, kind: DecisionKind) -> None:
    clinical = ln(OUTSIDE_HOSPITAL, "ZH308", BIRTH_DBC, BIRTH, zorgactiviteiten=CLINICAL_BIRTH)
    lines = [*full_pregnancy(), clinical]
    decisions = decide(lines, terms(contract(rule_set=rule_set)), CATALOGUE, today=TODAY)
    natal = by_phase(decisions)[Phase.NATAL]
    assert natal.kind is kind
    assert natal.placements[line_key(clinical)].place is Place.FORWARDED
    if kind is DecisionKind.BUNDLE_BROKEN:
        assert natal.claims == ()
        assert places(natal) == Counter({Place.FORWARDED: 2})
        assert OUTSIDE_HOSPITAL in " ".join(natal.reasons)
    else:
        (claim,) = natal.claims
        # The IGO claims its own (non-complex) care; the hospital declares the clinical
        # birth itself beside it.
        assert claim.prestatie == "IG0004"
        assert line_key(clinical) not in claim.absorbs
    assert by_phase(decisions)[Phase.PRENATAL].kind is DecisionKind.INTEGRAL
    every_line_once(lines, decisions)


@pytest.mark.parametrize("other", [OUTSIDE_HOSPITAL, "53009999"], ids=["provider", "other-igo"])
def test_q31_care_entirely_by_another_provider_or_igo_is_not_claimed(other: str) -> None:
    lines = [
        ln(other, "ZH308", "15B282", BIRTH - timedelta(days=100)),
        ln(other, "ZH308", BIRTH_DBC, BIRTH, zorgactiviteiten=CLINICAL_BIRTH),
    ]
    decisions = decide(
        lines, terms(contract(rule_set=RuleSet.REGULAR_2023)), CATALOGUE, today=TODAY
    )
    for decision in decisions:
        assert decision.kind is DecisionKind.MONODISCIPLINARY
        assert decision.claims == ()
    every_line_once(lines, decisions)


def test_q33_a_participant_who_left_mid_pregnancy_breaks_the_later_phase() -> None:
    lines = full_pregnancy()
    decisions = decide(lines, terms(midwife_left=BIRTH - timedelta(days=1)), CATALOGUE, today=TODAY)
    phases = by_phase(decisions)
    assert phases[Phase.PRENATAL].kind is DecisionKind.INTEGRAL
    assert [c.prestatie for c in phases[Phase.PRENATAL].claims] == ["IG0002"]
    assert phases[Phase.NATAL].kind is DecisionKind.BUNDLE_BROKEN
    assert phases[Phase.POSTNATAL].kind is DecisionKind.BUNDLE_BROKEN
    assert phases[Phase.NATAL].claims == phases[Phase.POSTNATAL].claims == ()
    every_line_once(lines, decisions)


def test_q35_a_kraamzorg_organisation_that_declares_itself() -> None:
    lines = full_pregnancy()
    decisions = decide(lines, terms(kraam_bundled=False), CATALOGUE, today=TODAY)
    postnatal = by_phase(decisions)[Phase.POSTNATAL]
    assert postnatal.kind is DecisionKind.INTEGRAL
    (claim,) = postnatal.claims
    assert len(claim.absorbs) == 1  # only the midwife's postnatal visit
    kraam = [line for line in lines if line.participant == KRAAM and line.prestatie_date > BIRTH]
    assert {postnatal.placements[line_key(line)].place for line in kraam} == {Place.FORWARDED}


@pytest.mark.parametrize(("forward", "place"), [(True, Place.FORWARDED), (False, Place.RETURNED)])
def test_q38_an_insurer_without_an_integral_contract(forward: bool, place: Place) -> None:
    lines = full_pregnancy(insurer=NO_CONTRACT)
    decisions = decide(lines, terms(forward_without_contract=forward), CATALOGUE, today=TODAY)
    assert {d.kind for d in decisions} == {DecisionKind.MONODISCIPLINARY}
    assert all(d.claims == () for d in decisions)
    placements = [p for d in decisions for p in d.placements.values()]
    assert {p.place for p in placements} == {place}
    if place is Place.RETURNED:
        assert {p.code for p in placements} == {"9001"}
    every_line_once(lines, decisions)


@pytest.mark.parametrize(
    ("year", "rule_set", "prestatie"),
    [(2022, RuleSet.EXPERIMENT_2017, "IG0001"), (2026, RuleSet.REGULAR_2023, "IG0002")],
)
def test_a_miscarriage_before_16_weeks_under_both_rule_sets(
    year: int, rule_set: RuleSet, prestatie: str
) -> None:
    start = date(year, 2, 1)
    lines = [
        ln(MIDWIFE, "VK301", "1201", start),
        ln(HOSPITAL, "ZH308", "15B253", start + timedelta(days=40)),
    ]
    decisions = decide(lines, terms(contract(year, rule_set)), CATALOGUE, today=date(year, 12, 1))
    (decision,) = decisions
    assert decision.phase is Phase.PRENATAL
    assert decision.kind is DecisionKind.INTEGRAL
    assert [c.prestatie for c in decision.claims] == [prestatie]


def test_a_phase_waits_for_the_birth_and_then_for_late_declarations() -> None:
    lines = [ln(MIDWIFE, "VK301", "1101", BIRTH - timedelta(days=60))]
    (waiting,) = decide(lines, terms(), CATALOGUE, today=BIRTH - timedelta(days=10))
    assert waiting.kind is DecisionKind.WAITING
    assert waiting.waiting_for == "the birth (or an early end)"
    assert places(waiting) == Counter({Place.WAITING: 1})

    lines.append(ln(MIDWIFE, "VK301", "1102", BIRTH))
    decisions = decide(lines, terms(), CATALOGUE, today=BIRTH + timedelta(days=10))
    prenatal = by_phase(decisions)[Phase.PRENATAL]
    assert prenatal.kind is DecisionKind.WAITING
    assert prenatal.until == BIRTH + timedelta(days=30)
    ready = decide(lines, terms(), CATALOGUE, today=BIRTH + timedelta(days=30))
    assert by_phase(ready)[Phase.PRENATAL].kind is DecisionKind.INTEGRAL


def test_an_administrator_can_close_a_phase_by_hand() -> None:
    lines = [ln(MIDWIFE, "VK301", "1101", BIRTH - timedelta(days=60))]
    (waiting,) = decide(lines, terms(), CATALOGUE, today=BIRTH)
    (closed,) = decide(
        lines, terms(), CATALOGUE, today=BIRTH, closed={(waiting.pregnancy, Phase.PRENATAL)}
    )
    assert closed.kind is DecisionKind.INTEGRAL
    assert "closed by hand" in " ".join(closed.reasons)


def test_the_postnatal_exception_claims_kraamzorg_after_a_clinical_stay_on_top() -> None:
    lines = [*full_pregnancy(), ln(KRAAM, "KZ301", KZ_AFTER_CLINICAL, BIRTH + timedelta(days=6))]
    decisions = decide(lines, terms(), CATALOGUE, today=TODAY)
    postnatal = by_phase(decisions)[Phase.POSTNATAL]
    assert [c.prestatie for c in postnatal.claims] == ["IG0007", "IG0009"]
    assert [c.prestatie for d in decisions for c in d.claims].count("IG0002") == 1


def test_a_later_pregnancy_of_the_same_woman_is_a_new_one() -> None:
    lines = [*full_pregnancy(), *full_pregnancy(birth=BIRTH + timedelta(days=500))]
    decisions = decide(
        lines, terms(contract(2026), contract(2027)), CATALOGUE, today=date(2028, 3, 1)
    )
    assert len({d.pregnancy for d in decisions}) == 2
    assert sum(len(d.claims) for d in decisions) == 6


def test_a_correction_before_the_claim_cancels_both_lines() -> None:
    lines = full_pregnancy()
    wrong = lines[-1]
    credit = ln(
        KRAAM, "KZ301", KZ_HOURS, wrong.prestatie_date, amount=-10000, previous=wrong.reference
    )
    decisions = decide([*lines, credit], terms(), CATALOGUE, today=TODAY)
    postnatal = by_phase(decisions)[Phase.POSTNATAL]
    assert postnatal.placements[line_key(wrong)].place is Place.CANCELLED
    assert postnatal.placements[line_key(credit)].place is Place.CANCELLED
    assert len(postnatal.claims[0].absorbs) == 3
    every_line_once([*lines, credit], decisions)


def test_q36_a_correction_after_the_claim_credits_it_and_claims_again() -> None:
    lines = full_pregnancy()
    first = by_phase(decide(lines, terms(), CATALOGUE, today=TODAY))[Phase.POSTNATAL]
    (claimed,) = first.claims
    existing = Existing(
        reference="IGO26-0001-4",
        pregnancy=first.pregnancy,
        phase=Phase.POSTNATAL,
        insurer=INSURER,
        prestatie=claimed.prestatie,
        amount=claimed.amount,
        absorbs=frozenset(claimed.absorbs),
    )
    wrong = lines[-1]
    credit = ln(
        KRAAM, "KZ301", KZ_HOURS, wrong.prestatie_date, amount=-10000, previous=wrong.reference
    )
    late = ln(KRAAM, "KZ301", KZ_HOURS, BIRTH + timedelta(days=5))
    decisions = decide([*lines, credit, late], terms(), CATALOGUE, today=TODAY, existing=[existing])
    postnatal = by_phase(decisions)[Phase.POSTNATAL]
    assert postnatal.rule == "correction after a claim: credited"
    credit_line, new_claim = postnatal.claims
    assert (credit_line.amount, credit_line.credits) == (-100000, "IGO26-0001-4")
    assert new_claim.amount == 100000
    assert line_key(late) in new_claim.absorbs
    assert line_key(wrong) not in new_claim.absorbs
    every_line_once([*lines, credit, late], decisions)


def test_a_line_arriving_after_its_phase_was_claimed_is_absorbed_into_that_claim() -> None:
    lines = full_pregnancy()
    first = by_phase(decide(lines, terms(), CATALOGUE, today=TODAY))[Phase.POSTNATAL]
    existing = Existing(
        "IGO26-0001-4", first.pregnancy, Phase.POSTNATAL, INSURER, "IG0007", 100000,
        frozenset(first.claims[0].absorbs),
    )  # fmt: skip
    late = ln(KRAAM, "KZ301", KZ_HOURS, BIRTH + timedelta(days=7))
    decisions = decide([*lines, late], terms(), CATALOGUE, today=TODAY, existing=[existing])
    postnatal = by_phase(decisions)[Phase.POSTNATAL]
    assert postnatal.claims == ()
    assert postnatal.placements[line_key(late)].place is Place.ABSORBED
    assert "IGO26-0001-4" in postnatal.placements[line_key(late)].reason


# --- the property ----------------------------------------------------------------------------

CODES = [
    ("VK301", "1101"), ("VK301", "1102"), ("VK301", "1103"), ("VK301", "1603"),
    ("ZH308", "15B253"), ("KZ301", "196202"), ("KZ301", "196203"), ("KZ301", "KZUREN"),
    ("KZ301", "KZKLIN"), ("ZH308", "15E416"), ("ZH308", "ZZ0001"), ("VK301", "1001"),
]  # fmt: skip


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[DeclaredLine], Terms, date]:
    n = draw(st.integers(1, 25))
    lines: list[DeclaredLine] = []
    for i in range(n):
        standard, code = draw(st.sampled_from(CODES))
        who = draw(st.sampled_from([MIDWIFE, KRAAM, HOSPITAL, OUTSIDE_HOSPITAL, "01000001"]))
        day = date(2025, 6, 1) + timedelta(days=draw(st.integers(0, 900)))
        amount = draw(st.sampled_from([10000, 25000]))
        previous = None
        correction: bool = draw(st.integers(0, 3)) == 0
        if lines and correction:
            target = draw(st.sampled_from(lines))
            who, previous, amount = target.participant, target.reference, -abs(target.amount or 1)
        lines.append(
            ln(
                who,
                standard,
                code,
                day,
                amount=amount,
                previous=previous,
                insurer=draw(st.sampled_from([INSURER, NO_CONTRACT])),
                bsn=draw(st.sampled_from(["999990007", "999990019"])),
                reference=f"P{i}",
            )
        )
    chosen = terms(
        contract(2025, draw(st.sampled_from(list(RuleSet)))),
        contract(2026, draw(st.sampled_from(list(RuleSet)))),
        contract(2027),
        kraam_bundled=draw(st.booleans()),
        midwife_left=draw(st.sampled_from([None, date(2026, 3, 1)])),
    )
    today = date(2025, 6, 1) + timedelta(days=draw(st.integers(0, 1300)))
    return lines, chosen, today


@settings(max_examples=150, deadline=None)
@given(scenario())
def test_every_original_line_ends_in_exactly_one_place(
    case: tuple[list[DeclaredLine], Terms, date],
) -> None:
    lines, chosen, today = case
    decisions = decide(lines, chosen, CATALOGUE, today=today)
    every_line_once(lines, decisions)
    for decision in decisions:
        mains = [c for c in decision.claims if c.amount > 0 and c.prestatie != "IG0009"]
        assert len(mains) <= 1  # one integral prestatie per phase (IG0009 on top)


# --- issue 14: real codes, early ends, hospital codes ---------------------------------------


def test_a_kraamzorg_registration_and_intakes_are_prenatal_and_date_no_birth() -> None:
    """196202 is the registration, 196203/196205 the intake (at home, by phone): care
    before the birth that dates nothing; 196204 (partusassistentie) is at the birth."""
    registration = ln(KRAAM, "KZ301", "196202", date(2026, 2, 10))
    intake_home = ln(KRAAM, "KZ301", "196203", date(2026, 5, 4))
    intake_phone = ln(KRAAM, "KZ301", "196205", date(2026, 5, 6))
    partus = ln(KRAAM, "KZ301", "196204", BIRTH)
    lines = [*full_pregnancy(), registration, intake_home, intake_phone, partus]
    decisions = decide(lines, terms(), CATALOGUE, today=TODAY)
    phases = by_phase(decisions)
    (prenatal,) = phases[Phase.PRENATAL].claims
    for line in (registration, intake_home, intake_phone):
        assert line_key(line) in prenatal.absorbs
    assert prenatal.first_day == date(2026, 2, 10)
    (natal,) = phases[Phase.NATAL].claims
    assert line_key(partus) in natal.absorbs
    assert natal.first_day == BIRTH  # no intake dates the birth
    (postnatal,) = phases[Phase.POSTNATAL].claims
    assert not {line_key(line) for line in (registration, intake_home)} & set(postnatal.absorbs)
    every_line_once(lines, decisions)


def test_a_miscarriage_and_a_new_first_visit_months_later_are_two_pregnancies() -> None:
    start = date(2026, 1, 12)
    first = [
        ln(MIDWIFE, "VK301", "1201", start),
        ln(HOSPITAL, "ZH308", "15B253", start + timedelta(days=35)),  # early end
        ln(MIDWIFE, "VK301", "1201", start + timedelta(days=49)),  # aftercare
    ]
    second_start = start + timedelta(days=150)
    birth = second_start + timedelta(days=230)
    second = [
        ln(MIDWIFE, "VK301", "1101", second_start),
        ln(MIDWIFE, "VK301", "1102", birth),
        ln(MIDWIFE, "VK301", "1103", birth + timedelta(days=8)),
    ]
    lines = [*first, *second]
    decisions = decide(
        lines, terms(contract(2026), contract(2027)), CATALOGUE, today=birth + timedelta(days=90)
    )
    assert len({d.pregnancy for d in decisions}) == 2
    prenatal = [c for d in decisions if d.phase is Phase.PRENATAL for c in d.claims]
    assert len(prenatal) == 2
    by_first = {c.first_day: c for c in prenatal}
    assert set(by_first[start].absorbs) == {line_key(line) for line in first}
    assert set(by_first[second_start].absorbs) == {line_key(second[0])}
    every_line_once(lines, decisions)


def test_care_soon_after_an_early_end_stays_with_that_pregnancy() -> None:
    start = date(2026, 1, 12)
    lines = [
        ln(HOSPITAL, "ZH308", "15B253", start),
        ln(MIDWIFE, "VK301", "1201", start + timedelta(days=30)),
        ln(MIDWIFE, "VK301", "1201", start + timedelta(days=60)),
    ]
    decisions = decide(lines, terms(), CATALOGUE, today=start + timedelta(days=200))
    assert len({d.pregnancy for d in decisions}) == 1


PARALLEL_LIST = frozenset(
    {"1603", "1401", "196202", "196203", "196205", "39485", "88770"}
    | {"159999030", "159999027", "150101011"}
)


@pytest.mark.parametrize(
    ("declaratiecode", "zorgproduct", "activities"),
    [
        ("15E416", "159999030", ()),  # DBC: its zorgproduct is on the list
        ("ZZ0001", None, ("039485",)),  # an echo à vue, listed without its leading zero
    ],
    ids=["zorgproduct", "zorgactiviteit"],
)
def test_a_parallel_hospital_code_is_matched_on_the_field_that_carries_it(
    declaratiecode: str, zorgproduct: str | None, activities: tuple[str, ...]
) -> None:
    visit = ln(
        OUTSIDE_HOSPITAL,
        "ZH308",
        declaratiecode,
        BIRTH - timedelta(days=90),
        zorgproduct=zorgproduct,
        zorgactiviteiten=activities,
    )
    lines = [*full_pregnancy(), visit]
    chosen = terms(contract(rule_set=RuleSet.EXPERIMENT_2017, parallel_codes=PARALLEL_LIST))
    prenatal = by_phase(decide(lines, chosen, CATALOGUE, today=TODAY))[Phase.PRENATAL]
    assert prenatal.kind is DecisionKind.INTEGRAL  # not broken by the parallel visit
    assert prenatal.placements[line_key(visit)].place is Place.FORWARDED
    (claim,) = prenatal.claims
    assert line_key(visit) not in claim.absorbs


def test_a_hospital_code_off_the_list_still_breaks_the_bundle_under_the_experiment() -> None:
    visit = ln(OUTSIDE_HOSPITAL, "ZH308", "15B282", BIRTH - timedelta(days=90))
    chosen = terms(contract(rule_set=RuleSet.EXPERIMENT_2017, parallel_codes=PARALLEL_LIST))
    decisions = decide([*full_pregnancy(), visit], chosen, CATALOGUE, today=TODAY)
    # 15B282's zorgproduct 159999027 is on the list, but this line does not carry it.
    assert by_phase(decisions)[Phase.PRENATAL].kind is DecisionKind.BUNDLE_BROKEN


def test_a_hospital_line_is_mapped_by_its_zorgproduct_or_zorgactiviteit() -> None:
    by_product = ln(
        HOSPITAL, "ZH308", "ZZ0002", BIRTH - timedelta(days=80), zorgproduct="159999027"
    )
    clinical = ln(HOSPITAL, "ZH308", BIRTH_DBC, BIRTH, zorgactiviteiten=CLINICAL_BIRTH)
    lines = [*full_pregnancy(), by_product, clinical]
    phases = by_phase(decide(lines, terms(), CATALOGUE, today=TODAY))
    assert [c.prestatie for c in phases[Phase.PRENATAL].claims] == ["IG0003"]  # complex
    assert [c.prestatie for c in phases[Phase.NATAL].claims] == ["IG0006"]
    assert line_key(clinical) in phases[Phase.NATAL].claims[0].absorbs


@pytest.mark.parametrize(("forward", "place"), [(True, Place.FORWARDED), (False, Place.RETURNED)])
def test_a_credit_of_a_line_already_declared_monodisciplinarily_goes_the_same_way(
    forward: bool, place: Place
) -> None:
    """The insurer (or the participant itself) has the line: the gateway cannot cancel it
    on its own, the credit must reach whoever declared the line."""
    lines = full_pregnancy(insurer=NO_CONTRACT)
    wrong = lines[-1]
    credit = ln(
        KRAAM, "KZ301", KZ_HOURS, wrong.prestatie_date, amount=-10000, previous=wrong.reference,
        insurer=NO_CONTRACT,
    )  # fmt: skip
    everything = [*lines, credit]
    decisions = decide(
        everything,
        terms(forward_without_contract=forward),
        CATALOGUE,
        today=TODAY,
        mono={line_key(line) for line in lines},
    )
    placed = {key: p for d in decisions for key, p in d.placements.items()}
    assert placed[line_key(credit)].place is place
    assert placed[line_key(wrong)].place is place  # not cancelled behind the insurer's back
    every_line_once(everything, decisions)


@settings(max_examples=300, deadline=None)
@given(scenario(), st.data())
def test_corrections_after_a_claim_credit_each_claimed_line_once_with_its_own_days(
    case: tuple[list[DeclaredLine], Terms, date], data: st.DataObject
) -> None:
    """Claim, then credit some claimed lines and add late ones: every line still ends in
    one place; every claimed line that lost a line is credited exactly once, for its own
    amount and first day; the others are not touched."""
    lines, chosen, today = case
    first = decide(lines, chosen, CATALOGUE, today=today)
    existing: list[Existing] = []
    first_days: dict[str, date] = {}
    for n, d in enumerate(first):
        for m, c in enumerate(d.claims):
            if d.phase is None or c.credits is not None or c.amount <= 0:
                continue
            reference = f"IGO-{n}-{m}"
            existing.append(
                Existing(reference, d.pregnancy, d.phase, d.insurer, c.prestatie, c.amount,
                         frozenset(c.absorbs))
            )  # fmt: skip
            first_days[reference] = c.first_day
    claimed = [line for line in lines if any(line_key(line) in e.absorbs for e in existing)]
    credited = (
        data.draw(st.lists(st.sampled_from(claimed), unique=True, max_size=3)) if claimed else []
    )
    credits = [
        ln(
            line.participant,
            line.standard,
            line.prestatiecode,
            line.prestatie_date,
            amount=-abs(line.amount or 1),
            previous=line.reference,
            insurer=line.insurer,
            bsn=line.bsn,
            reference=f"C-{line.reference}",
        )
        for line in credited
    ]
    every = [*lines, *credits]
    second = decide(every, chosen, CATALOGUE, today=today, existing=existing)
    every_line_once(every, second)
    credit_lines = [c for d in second for c in d.claims if c.credits is not None]
    by_reference = {c.credits: c for c in credit_lines}
    assert len(by_reference) == len(credit_lines)  # each credited once
    for e in existing:
        if e.reference in by_reference:
            credit = by_reference[e.reference]
            assert credit.amount == -e.amount
            assert credit.first_day == first_days[e.reference]
    # Every claimed line that lost a line it absorbed is credited; another one is credited
    # only beside it (the phase decided again as a whole) and then claimed again the same.
    lost = {
        e.reference
        for e in existing
        for d in second
        for key, placement in d.placements.items()
        if key in e.absorbs and placement.place is Place.CANCELLED
    }
    assert lost <= set(by_reference)
    for d in second:
        own = [c for c in d.claims if c.credits is not None]
        if own and not {c.credits for c in own} & lost:
            raise AssertionError(f"credited without a lost line: {own}")
        for c in own:
            if c.credits not in lost:
                assert any(
                    (n.prestatie, n.amount, n.first_day) == (c.prestatie, -c.amount, c.first_day)
                    for n in d.claims
                    if n.credits is None
                ), c


def test_a_credit_of_care_claimed_on_top_credits_that_line_not_the_other() -> None:
    clinical = ln(KRAAM, "KZ301", KZ_AFTER_CLINICAL, BIRTH + timedelta(days=6))
    lines = [*full_pregnancy(), clinical]
    postnatal = by_phase(decide(lines, terms(), CATALOGUE, today=TODAY))[Phase.POSTNATAL]
    main, extra = postnatal.claims
    existing = [
        Existing("IGO-1", postnatal.pregnancy, Phase.POSTNATAL, INSURER, main.prestatie,
                 main.amount, frozenset(main.absorbs)),
        Existing("IGO-2", postnatal.pregnancy, Phase.POSTNATAL, INSURER, extra.prestatie,
                 extra.amount, frozenset(extra.absorbs)),
    ]  # fmt: skip
    credit = ln(
        KRAAM, "KZ301", KZ_AFTER_CLINICAL, clinical.prestatie_date, amount=-10000,
        previous=clinical.reference,
    )  # fmt: skip
    every = [*lines, credit]
    again = by_phase(decide(every, terms(), CATALOGUE, today=TODAY, existing=existing))
    claims = again[Phase.POSTNATAL].claims
    credits = {c.credits: c for c in claims if c.credits is not None}
    assert credits["IGO-2"].amount == -extra.amount
    # The phase's own line is credited and claimed again the same: the claim file leaves
    # both out (a pair that cancels out), so only IGO-2 is credited at the insurer.
    (debit,) = [c for c in claims if c.credits is None]
    assert (debit.prestatie, debit.amount, debit.first_day) == (
        main.prestatie, main.amount, main.first_day,
    )  # fmt: skip
    assert credits["IGO-1"].amount == -main.amount
    assert credits["IGO-1"].first_day == main.first_day
    every_line_once(every, list(again.values()))


def test_a_late_line_of_a_phase_claimed_twice_joins_the_phase_own_line() -> None:
    clinical = ln(KRAAM, "KZ301", KZ_AFTER_CLINICAL, BIRTH + timedelta(days=6))
    lines = [*full_pregnancy(), clinical]
    postnatal = by_phase(decide(lines, terms(), CATALOGUE, today=TODAY))[Phase.POSTNATAL]
    main, extra = postnatal.claims
    existing = [
        Existing("IGO-2", postnatal.pregnancy, Phase.POSTNATAL, INSURER, extra.prestatie,
                 extra.amount, frozenset(extra.absorbs)),
        Existing("IGO-1", postnatal.pregnancy, Phase.POSTNATAL, INSURER, main.prestatie,
                 main.amount, frozenset(main.absorbs)),
    ]  # fmt: skip
    late = ln(KRAAM, "KZ301", KZ_HOURS, BIRTH + timedelta(days=8))
    again = by_phase(decide([*lines, late], terms(), CATALOGUE, today=TODAY, existing=existing))
    placements = again[Phase.POSTNATAL].placements
    assert placements[line_key(late)].joins == "IGO-1"
    assert placements[line_key(clinical)].joins is None  # absorbed by IGO-2 already
