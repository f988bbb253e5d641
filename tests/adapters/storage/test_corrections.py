"""Corrections after an integral claim, end to end on SQLite and PostgreSQL: the three
participants' fixture declarations are claimed and granted, then the kraamzorg
organisation credits lines in a credit-only upload. Every credit line is answered in its
retour; a cancelled line is never reported as granted; the settlement's "IGO owes" is what
the participants' retours granted, net of credits, to the cent; and a credit of the care
that dated the integral line gives the insurer a credit of that line and a new debit with
the right date."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta

import pytest

from gateway.admin.accounts import Role
from gateway.admin.cases import CaseAction, CaseFilter, CaseKind
from gateway.bundler import Bundler
from gateway.cli.settlement import settlement_json
from gateway.ei import FieldValue, FileWriter, Record, line_amount, prestatie_groups, read_records
from gateway.ports.intake import Upload
from gateway.ports.messages import Direction
from gateway.rules.model import Distribution
from gateway.terms import load_catalogue
from gateway.vsp import send_metadata
from tests.adapters.storage.test_resolution import REGISTRY, Cycle, _cycle, rejected, terms
from tests.gateway.test_bundler import MESSAGES
from tests.threadpump import ThreadPump

KRAAM = "33001234"
KZ_FILE = "kz301-kraamzorg-33001234.asc"


@pytest.fixture
def cycle(pump: ThreadPump, sql_url: str) -> Iterator[Cycle]:
    yield from _cycle(pump, sql_url)


def records(payload: bytes) -> list[Record]:
    return [r for r in read_records(REGISTRY, [payload]) if isinstance(r, Record)]


def _values(record: Record) -> dict[str, FieldValue]:
    values = dict(record.items())
    values.pop("record_id", None)
    values.pop("kenmerk", None)
    return values


def credit_upload(cycle: Cycle, references: list[str], invoice: str = "KZC-0001") -> str:
    """The kraamzorg organisation credits its earlier lines ``references`` (each in full)
    in one credit-only upload; its traceerId."""
    original = records((MESSAGES / KZ_FILE).read_bytes())
    header = _values(original[0])
    for name in ("standard_code", "version", "subversion"):
        header.pop(name, None)
    header["invoice_number"] = invoice
    w = FileWriter(REGISTRY.by_standard("KZ301"))
    w.header(**header)
    insured: Record | None = None
    for record in original[1:]:
        if record.type == "02":
            insured = record
        if record.type == "04" and record.text("reference") in references:
            assert insured is not None
            w.detail("02", _values(insured))
            values = _values(record)
            amount = record.number_value("declared_amount")
            values.update(
                calculated_amount=-amount,
                declared_amount=-amount,
                reference=f"C-{record.text('reference')}",
                previous_reference=record.text("reference"),
            )
            w.detail("04", values)
    payload = w.finish()
    metadata = send_metadata(KRAAM, "EI")
    receipt = cycle.wait(cycle.intake.receive(Upload(KRAAM, "kraamzorg", metadata, payload)))
    assert receipt.code is None, receipt
    traceer_id: str = receipt.traceer_id
    return traceer_id


def granted_in_retours(cycle: Cycle) -> dict[str, int]:
    """Per participant: what its retours granted, net of credits (signed amounts)."""
    total: dict[str, int] = defaultdict(int)
    for agb in ("02001234", KRAAM, "06001234"):
        messages = cycle.wait(
            cycle.store.list_messages(agb, Direction.TO_PARTICIPANT, include_confirmed=True)
        )
        for message in messages:
            payload = cycle.wait(cycle.store.payload(message.sha256))
            # Per line: its 04's amount, or (ZH309) the sum of its 06 tariff records'.
            for line, children in prestatie_groups(records(payload)):
                total[agb] += line_amount(line, children, "granted_amount") or 0
    return dict(total)


def owed(cycle: Cycle) -> dict[str, int]:
    rows = cycle.wait(cycle.store.outcomes.settlement(None, date(2026, 1, 1), date(2026, 12, 31)))
    report = settlement_json(rows, date(2026, 1, 1), date(2026, 12, 31))
    return {p["participant"]: p["owed"] for p in report["participants"]}


def kraam_hours(cycle: Cycle) -> list[tuple[str, date, str]]:
    """The kraamzorg hours lines of the first woman claimed: (reference, day, claim)."""
    rows = cycle.rows(
        "SELECT reference, prestatie_date, claim_reference, woman FROM declaration_lines"
        " WHERE participant = ? AND prestatiecode = 'KZUREN' ORDER BY woman, prestatie_date",
        KRAAM,
    )
    woman = rows[0][3]
    return [
        (r[0], r[1] if isinstance(r[1], date) else date.fromisoformat(r[1]), r[2])
        for r in rows
        if r[3] == woman
    ]


def claimed_and_granted(cycle: Cycle) -> None:
    plan = cycle.wait(cycle.bundler.run_once())
    assert plan.claims
    cycle.insurer_answers()
    assert owed(cycle) == granted_in_retours(cycle)


def test_a_credit_only_upload_after_a_granted_claim_is_answered_and_nets_out(
    cycle: Cycle,
) -> None:
    claimed_and_granted(cycle)
    before = owed(cycle)
    hours = kraam_hours(cycle)
    reference, _, claim = hours[3]  # a middle day: it does not date the integral line
    declared = cycle.rows(
        "SELECT granted_amount FROM declaration_lines WHERE reference = ?", reference
    )[0][0]
    assert declared > 0
    upload = credit_upload(cycle, [reference])
    cycle.wait(cycle.bundler.run_once())
    # The credit line is answered in a retour to its own upload: the grant reversed.
    retours = [
        m
        for m in cycle.wait(
            cycle.store.list_messages(KRAAM, Direction.TO_PARTICIPANT, include_confirmed=True)
        )
        if m.reply_to == upload
    ]
    assert len(retours) == 1
    answered = [r for r in records(cycle.wait(cycle.store.payload(retours[0].sha256)))]
    (line,) = [r for r in answered if r.type == "04"]
    assert line.get("granted_amount") == -declared
    assert answered[-1].get("total_granted") == -declared
    cycle.insurer_answers()
    after = owed(cycle)
    assert after[KRAAM] == before[KRAAM] - declared
    assert after == granted_in_retours(cycle)
    # The cancelled line is not reported as granted again, and the claim it was in stays.
    outcome = cycle.rows(
        "SELECT state, outcome, granted_amount FROM declaration_lines WHERE reference = ?",
        reference,
    )
    assert outcome == [("cancelled", "granted", declared)]
    assert claim


def test_a_credit_before_the_insurer_answers_is_never_reported_as_granted(
    cycle: Cycle,
) -> None:
    cycle.wait(cycle.bundler.run_once())
    reference, _, _ = kraam_hours(cycle)[3]
    credit_upload(cycle, [reference])
    cycle.wait(cycle.bundler.run_once())
    cycle.insurer_answers()
    state = cycle.rows(
        "SELECT state, outcome, granted_amount, outcome_codes FROM declaration_lines"
        " WHERE reference IN (?, ?) ORDER BY reference",
        reference,
        f"C-{reference}",
    )
    assert [row[0] for row in state] == ["cancelled", "cancelled"]
    assert all(row[2] in (0, None) for row in state), state
    assert all(row[1] is not None for row in state), "both lines are answered"
    assert owed(cycle) == granted_in_retours(cycle)


def test_a_credit_of_the_first_care_day_credits_the_integral_line_and_claims_it_again(
    cycle: Cycle,
) -> None:
    claimed_and_granted(cycle)
    hours = kraam_hours(cycle)
    first_reference, first_day, claim = hours[0]
    credit_upload(cycle, [first_reference])
    plan = cycle.wait(cycle.bundler.run_once())
    links = [link for c in plan.claims for link in c.links]
    credit = [link for link in links if link.credits == claim]
    assert len(credit) == 1, "the old integral line is credited"
    again = [link for link in links if link.credits is None and link.phase == credit[0].phase]
    assert len(again) == 1, "and claimed again"
    assert again[0].amount == -credit[0].amount
    # The new debit carries the new first care day; the credit the old one.
    sent = records(plan.claims[0].payload)
    by_reference = {r.text("reference"): r for r in sent if r.type == "04"}
    assert by_reference[credit[0].reference].get("prestatie_date") == first_day
    assert by_reference[again[0].reference].get("prestatie_date") == hours[1][1]
    cycle.insurer_answers()
    assert owed(cycle) == granted_in_retours(cycle)


# --- the status history an upload's sender sees ------------------------------------------

UPLOAD_RANK = ["ontvangen", "in_behandeling", "verwerkt", "doorgestuurd", "beantwoord"]


def histories(cycle: Cycle) -> dict[str, list[str]]:
    uploads = [
        row[0]
        for row in cycle.rows(
            "SELECT DISTINCT traceer_id FROM declaration_lines ORDER BY traceer_id"
        )
    ]
    entries = cycle.wait(cycle.store.statuses(uploads))
    out: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        out[entry.traceer_id].append(entry.status.value)
    return dict(out)


def never_backwards(history: list[str]) -> bool:
    ranks = [UPLOAD_RANK.index(status) for status in history]
    return ranks == sorted(ranks)


def test_a_status_history_never_moves_backwards_after_a_break(cycle: Cycle) -> None:
    _, case_id = rejected(cycle)
    assert any("beantwoord" in h for h in histories(cycle).values())
    operator = cycle.user("otto", Role.OPERATOR)
    cycle.wait(cycle.service.act(operator, case_id, CaseAction.BREAK_BUNDLE, "zorg elders"))
    for traceer_id, history in histories(cycle).items():
        assert never_backwards(history), (traceer_id, history)


def test_a_credit_only_upload_ends_answered(cycle: Cycle) -> None:
    claimed_and_granted(cycle)
    reference, _, _ = kraam_hours(cycle)[3]
    upload = credit_upload(cycle, [reference])
    cycle.wait(cycle.bundler.run_once())
    history = histories(cycle)[upload]
    assert history[-1] == "beantwoord", history
    assert never_backwards(history)


# --- breaking a bundle, and lines that join a claimed phase ---------------------------------


def test_breaking_a_bundle_opens_no_new_case_for_the_same_phase(cycle: Cycle) -> None:
    _, case_id = rejected(cycle)
    operator = cycle.user("otto", Role.OPERATOR)
    cycle.wait(cycle.service.act(operator, case_id, CaseAction.BREAK_BUNDLE, "zorg elders"))
    queue = cycle.wait(
        cycle.service.queue(operator, CaseFilter(kinds=frozenset({CaseKind.BUNDLE_BROKEN})))
    )
    assert queue.cases == [], [c.id for c in queue.cases]


def late_upload(cycle: Cycle, like: str, invoice: str = "KZL-0001") -> str:
    """The kraamzorg organisation declares one more day like its line ``like``, a day
    later; its traceerId."""
    original = records((MESSAGES / KZ_FILE).read_bytes())
    header = _values(original[0])
    for name in ("standard_code", "version", "subversion"):
        header.pop(name, None)
    header["invoice_number"] = invoice
    w = FileWriter(REGISTRY.by_standard("KZ301"))
    w.header(**header)
    insured: Record | None = None
    for record in original[1:]:
        if record.type == "02":
            insured = record
        if record.type == "04" and record.text("reference") == like:
            assert insured is not None
            w.detail("02", _values(insured))
            values = _values(record)
            day = record.get("prestatie_date")
            assert isinstance(day, date)
            values.update(prestatie_date=day + timedelta(days=1), reference=f"L-{like}")
            w.detail("04", values)
    metadata = send_metadata(KRAAM, "EI")
    receipt = cycle.wait(cycle.intake.receive(Upload(KRAAM, "kraamzorg", metadata, w.finish())))
    assert receipt.code is None, receipt
    traceer_id: str = receipt.traceer_id
    return traceer_id


def test_a_line_joining_a_claimed_and_shared_phase_is_answered_with_its_integral_line(
    cycle: Cycle,
) -> None:
    sharing = Bundler(
        cycle.store,
        cycle.store.bundles,
        REGISTRY,
        load_catalogue(),
        terms(),
        now=lambda: cycle.now[0],
        distribution=Distribution.SHARES,
    )
    cycle.wait(sharing.run_once())
    cycle.insurer_answers()
    hours = kraam_hours(cycle)
    last_reference, _, claim = hours[-1]
    upload = late_upload(cycle, last_reference)
    plan = cycle.wait(sharing.run_once())
    assert plan.claims == []  # the phase was claimed once
    (retour,) = [
        m
        for m in cycle.wait(
            cycle.store.list_messages(KRAAM, Direction.TO_PARTICIPANT, include_confirmed=True)
        )
        if m.reply_to == upload
    ]
    answered = records(cycle.wait(cycle.store.payload(retour.sha256)))
    assert answered[0].text("insurer_reference") == claim  # the integral line it joined
    (line,) = [r for r in answered if r.type == "04"]
    assert line.get("granted_amount") == 0
    assert line.text("retourcode_1") == "9002"  # paid through the integral line


def test_a_late_line_with_a_correction_that_changes_nothing_joins_the_claimed_line(
    cycle: Cycle,
) -> None:
    claimed_and_granted(cycle)
    hours = kraam_hours(cycle)
    credit_upload(cycle, [hours[3][0]])
    late = late_upload(cycle, hours[-1][0])
    plan = cycle.wait(cycle.bundler.run_once())
    # Credit and claim again would be the same line on the same day: nothing is sent, and
    # the late line joins the line already claimed (and granted).
    assert plan.claims == []
    (row,) = cycle.rows(
        "SELECT state, claim_reference, outcome FROM declaration_lines WHERE traceer_id = ?", late
    )
    assert row == ("absorbed", hours[0][2], "granted")
    assert owed(cycle) == granted_in_retours(cycle)
