"""The shipped example catalogue: every real code in it means what it means (the public
sources in real-codes.md §4), the integral prestaties are labelled placeholders in list 069
with the structure the sources give."""

from __future__ import annotations

from collections import Counter
from datetime import date

from gateway.lines import DeclaredLine
from gateway.rules.catalogue import Event, Kind, Phase
from gateway.terms import load_catalogue

CATALOGUE = load_catalogue()


def line(standard: str, code: str, **codes: object) -> DeclaredLine:
    return DeclaredLine(
        traceer_id="t",
        record_number=1,
        participant="33001234",
        standard=standard,
        bsn="999990007",
        birth_date=None,
        insurer="3311",
        prestatiecodelijst="011",
        prestatiecode=code,
        prestatie_date=date(2026, 3, 1),
        prestatie_end_date=None,
        amount=100,
        reference="r",
        previous_reference=None,
        performer=None,
        **codes,  # type: ignore[arg-type]
    )


def test_kraamzorg_codes_mean_what_they_mean() -> None:
    for code in ("196202", "196203", "196205"):  # registration, intake at home, by phone
        rule = CATALOGUE.rule("KZ301", code)
        assert rule is not None
        assert (rule.phase, rule.event, rule.complex) == (Phase.PRENATAL, None, False)
    partus = CATALOGUE.rule("KZ301", "196204")  # partusassistentie
    assert partus is not None
    assert (partus.phase, partus.event) == (Phase.NATAL, Event.BIRTH)
    assert CATALOGUE.rule("KZ301", "196201") is None  # not public: not given a meaning


def test_midwifery_codes_are_the_four_digit_codes_of_list_032() -> None:
    codes = {
        code: rule for (standard, code), rule in CATALOGUE.rules.items() if standard == "VK301"
    }
    assert codes
    assert all(len(code) == 4 and code.isdigit() for code in codes)
    assert codes["1101"].phase is Phase.PRENATAL
    assert (codes["1102"].phase, codes["1102"].event) == (Phase.NATAL, Event.BIRTH)
    assert codes["1103"].phase is Phase.POSTNATAL
    assert "1001" not in codes  # volledige verloskundige zorg spans every phase


def test_placeholder_codes_are_letters_never_a_real_number() -> None:
    for (_, code), rule in CATALOGUE.rules.items():
        if not code[:2].isdigit():
            assert code.startswith(("KZ", "ZZ")), code
            assert rule.phase is Phase.POSTNATAL  # the two kraamzorg hours placeholders


def test_hospital_codes_by_the_field_that_carries_them() -> None:
    assert CATALOGUE.rule("ZH308", "159999030") is None  # a zorgproduct, not a declaratiecode
    visit = CATALOGUE.rule_of(line("ZH308", "ZZ0001", zorgproduct="159999030"))
    assert visit is not None
    assert (visit.phase, visit.complex) == (Phase.PRENATAL, True)
    birth = CATALOGUE.rule_of(line("ZH308", "ZZ0001", zorgactiviteiten=("190037",)))
    assert birth is not None
    assert (birth.phase, birth.event) == (Phase.NATAL, Event.BIRTH)
    echo = CATALOGUE.rule_of(line("ZH308", "ZZ0001", zorgactiviteiten=("39485",)))
    assert echo is not None
    assert echo.phase is Phase.PRENATAL


def test_integral_prestaties_are_labelled_placeholders_in_list_069() -> None:
    assert CATALOGUE.codelijst == "069"
    assert CATALOGUE.is_example
    assert all(p.placeholder for p in CATALOGUE.prestaties)


def test_the_structure_of_the_sources_experiment_nine_and_eight_from_2023() -> None:
    def valid(on: date) -> list[tuple[Phase, Kind]]:
        return [(p.phase, p.kind) for p in CATALOGUE.prestaties if p.valid_on(on)]

    experiment = valid(date(2022, 6, 1))
    assert len(experiment) == 9
    per_phase = Counter(phase for phase, _ in experiment)
    assert per_phase == Counter({Phase.PRENATAL: 3, Phase.NATAL: 3, Phase.POSTNATAL: 3})
    complex_ = Counter(phase for phase, kind in experiment if kind is Kind.COMPLEX)
    assert complex_ == Counter({Phase.PRENATAL: 1, Phase.NATAL: 1, Phase.POSTNATAL: 1})
    assert (Phase.PRENATAL, Kind.EARLY_END) in experiment
    regular = valid(date(2023, 1, 1))
    assert len(regular) == 8
    assert (Phase.PRENATAL, Kind.EARLY_END) not in regular
    names = {p.kind: p.name for p in CATALOGUE.prestaties if p.phase is Phase.PRENATAL}
    assert names[Kind.EARLY_END] == "Begeleiding eindigend voor 16 weken zwangerschap"
    assert names[Kind.NON_COMPLEX] == "Geboortezorg prenataal"


def test_every_mapped_prestatiecode_has_a_description_for_people() -> None:
    """The admin site shows a code with what it means: the integral prestaties' names and,
    for every monodisciplinary prestatiecode the example maps, its description."""
    example = load_catalogue()
    for _standard, code in example.rules:
        assert example.describe(code), code
    assert example.describe("196204") == "Partusassistentie"
    assert example.describe("IG0002") == "Geboortezorg prenataal"
    assert example.describe("KZUREN") is not None
    assert "voorbeeldcode" in (example.describe("KZUREN") or "")
    assert example.describe("999999") is None
