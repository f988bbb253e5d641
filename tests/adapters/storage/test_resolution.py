"""Resolving rejected integral lines end to end on SQLite and PostgreSQL, through the admin
service: the three participants' fixture declarations go through the intake and the
bundler, the simulated insurer rejects the claim (a member number it does not know), and
the administrator corrects and resubmits it, passes the rejection on, or breaks the
bundle — each checked in the store, in the files that go out and in the audit log. Also
the waiting phase that is overdue, closed by hand, and the refusals."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from twisted.internet import defer

from adapters.insurer_sim.config import SimRules
from adapters.insurer_sim.rules import judge
from adapters.storage import SqlMessageStore, Transaction, open_store
from adapters.storage.admin import SqlAdminStore
from adapters.storage.resolution import SqlResolutionStore
from gateway.admin.accounts import Actor, PasswordHasher, Role, ScryptParameters
from gateway.admin.cases import ActionRefusedError, CaseAction, CaseFilter, CaseKind, CaseState
from gateway.admin.metrics import AdminMetrics
from gateway.admin.service import AdminService
from gateway.bundler import Bundler
from gateway.collector import RetourCollector
from gateway.ei import Record, read_records, validate_bytes
from gateway.errors import ErrorKind
from gateway.intake import Intake
from gateway.loading import load_layouts
from gateway.masking import mask_value
from gateway.ports.insurer import FetchedRetour
from gateway.ports.intake import Upload
from gateway.ports.messages import Direction
from gateway.resolution import Resolver
from gateway.rules.model import (
    Contract,
    InsurerTerms,
    Participant,
    RuleSet,
    Settings,
    Terms,
    Variant,
)
from gateway.terms import load_catalogue
from gateway.unpacker import Unpacker
from gateway.vsp import send_metadata
from tests.gateway.rules.test_decide import TARIFFS
from tests.gateway.test_bundler import ALWAYS, FILES, MESSAGES, NOW
from tests.threadpump import ThreadPump

REGISTRY = load_layouts()
CATALOGUE = load_catalogue()
INSURER = "3311"
OTHER_INSURER = "3312"
RIGHT_MEMBER = "M0099887"


def terms(forward: bool = True) -> Terms:
    contract = Contract(2026, RuleSet.REGULAR_2023, TARIFFS, 0.0, frozenset(), forward)
    return Terms(
        Settings("53001234"),
        {agb: Participant(agb, Variant.A, ALWAYS) for agb in FILES},
        {uzovi: InsurerTerms(uzovi, {2026: contract}, False) for uzovi in (INSURER, OTHER_INSURER)},
    )


FAST = ScryptParameters(log2_n=10, r=8, p=1)
ROOT = Actor("cli:root", Role.ADMINISTRATOR, "cli")


@dataclass
class Cycle:
    pump: ThreadPump
    store: SqlMessageStore
    service: AdminService
    bundler: Bundler
    unpacker: Unpacker
    collector: RetourCollector
    rules: SimRules
    now: list[datetime]
    intake: Intake

    def wait(self, awaitable: Any) -> Any:
        return self.pump.wait(awaitable)

    def upload(self, agb: str) -> None:
        """Participant ``agb``'s fixture declaration, through the intake."""
        discipline, name = FILES[agb]
        metadata = send_metadata(agb, "EI")
        payload = (MESSAGES / name).read_bytes()
        receipt = self.wait(self.intake.receive(Upload(agb, discipline, metadata, payload)))
        assert receipt.code is None, receipt

    def user(self, name: str, role: Role) -> Actor:
        self.wait(self.service.create_user(name, role, "correct horse battery", ROOT))
        return Actor(name, role, "127.0.0.1")

    def insurer_answers(self, insurer: str = INSURER) -> list[bytes]:
        """The simulated insurer takes every queued file and answers it; the gateway
        collects and unpacks the retours. The files it received."""
        received = []
        due = self.wait(self.store.outbox.claim_due(insurer, self.now[0], timedelta(minutes=5), 50))
        for outbound, payload in due:
            received.append(payload)
            remote = f"remote-{outbound.traceer_id}"
            self.wait(self.store.outbox.delivered(outbound.traceer_id, remote, self.now[0]))
            verdict = judge(
                REGISTRY,
                payload,
                self.rules,
                uzovi=insurer,
                insurer_reference="SIM-1",
                today=self.now[0].date(),
            )
            collected = self.wait(
                self.collector.keep(
                    insurer,
                    FetchedRetour(f"r-{outbound.traceer_id}", verdict.retour, in_reply_to=remote),
                )
            )
            self.wait(self.unpacker.unpack(collected))
        return received

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        def run(txn: Transaction) -> list[tuple[Any, ...]]:
            txn.execute(sql, params)
            return list(txn.fetchall())

        result: list[tuple[Any, ...]] = self.wait(self.store.database.run_read("test", run))
        return result

    def retours_to(self, agb: str) -> list[bytes]:
        messages = self.wait(
            self.store.list_messages(agb, Direction.TO_PARTICIPANT, include_confirmed=True)
        )
        return [self.wait(self.store.payload(message.sha256)) for message in messages]


def _cycle(
    pump: ThreadPump, url: str, forward: bool = True, uploads: tuple[str, ...] = tuple(FILES)
) -> Iterator[Cycle]:
    """The store with ``uploads``' fixture declarations through the intake, and the
    services around it."""
    store = pump.wait(open_store(url, pump))
    now = [NOW]
    intake = Intake(
        store, REGISTRY, clock=lambda: now[0], run_in_thread=lambda f: defer.succeed(f())
    )
    the_terms = terms(forward)
    bundler = Bundler(store, store.bundles, REGISTRY, CATALOGUE, the_terms, now=lambda: now[0])
    unpacker = Unpacker(store, store.outcomes, REGISTRY, now=lambda: now[0])
    collector = RetourCollector(store, store.outbox, {}, REGISTRY, now=lambda: now[0])
    resolver = Resolver(
        store,
        SqlResolutionStore(store.database, store.codec),
        store.bundles.reserve,
        REGISTRY,
        CATALOGUE,
        the_terms,
        unpacker,
        now=lambda: now[0],
    )
    service = AdminService(
        SqlAdminStore(store.database, store.codec),
        store,
        REGISTRY,
        lambda: now[0],
        hasher=PasswordHasher(FAST),
        resolver=resolver,
        after_change=bundler.run_once,
    )
    cycle = Cycle(pump, store, service, bundler, unpacker, collector, SimRules(), now, intake)
    for agb in uploads:
        cycle.upload(agb)
    try:
        yield cycle
    finally:
        pump.wait(store.close())


@pytest.fixture
def cycle(pump: ThreadPump, sql_url: str) -> Iterator[Cycle]:
    yield from _cycle(pump, sql_url)


@pytest.fixture
def returning_cycle(pump: ThreadPump, sql_url: str) -> Iterator[Cycle]:
    """The same, under a contract that does not let the IGO forward monodisciplinarily."""
    yield from _cycle(pump, sql_url, forward=False)


def _claim_bsns(payload: bytes) -> list[str]:
    records = [r for r in read_records(REGISTRY, [payload]) if isinstance(r, Record)]
    return sorted({r.text("bsn") for r in records if r.type == "02"})


def rejected(cycle: Cycle) -> tuple[str, str]:
    """Bundle, and let the insurer reject the first woman's lines for her member number;
    (the bsn, the rejected case's id)."""
    plan = cycle.wait(cycle.bundler.run_once())
    assert plan.claims, "the fixtures make an integral claim"
    bsn = _claim_bsns(plan.claims[0].payload)[0]
    cycle.rules = SimRules(members={bsn: RIGHT_MEMBER})
    cycle.insurer_answers()
    viewer = cycle.user("vera", Role.VIEWER)
    queue = cycle.wait(
        cycle.service.queue(viewer, CaseFilter(kinds=frozenset({CaseKind.REJECTED_LINE})))
    )
    assert queue.cases, "the insurer's rejection is a case"
    return bsn, queue.cases[0].id


def test_a_rejected_integral_line_is_a_case_with_its_lines_and_the_rules_reasons(
    cycle: Cycle,
) -> None:
    _, case_id = rejected(cycle)
    viewer = cycle.user("wim", Role.VIEWER)
    view = cycle.wait(cycle.service.case(viewer, case_id))
    case = view.case
    assert case.state is CaseState.OPEN
    assert case.facts.retourcodes == ("0320",)
    assert ("0320", view.retourcodes[0][1]) == view.retourcodes[0]
    assert "niet verzekerd" in view.retourcodes[0][1]
    detail = view.detail
    assert detail.claim is not None
    assert detail.claim.reference == case.facts.ref
    assert detail.lines
    assert {ln.outcome for ln in detail.lines} == {"review"}
    assert set(case.facts.participants) == {ln.participant for ln in detail.lines}
    assert all(ln.reference and ln.traceer_id and ln.standard for ln in detail.lines)
    assert detail.decisions
    assert detail.decisions[0].kind == "integral"
    assert detail.decisions[0].reasons
    assert view.actions == []  # a viewer sees, and may not act
    operator = cycle.user("otto", Role.OPERATOR)
    actions = cycle.wait(cycle.service.case(operator, case_id)).actions
    assert actions == [
        CaseAction.RESUBMIT,
        CaseAction.PASS_ON,
        CaseAction.BREAK_BUNDLE,
        CaseAction.WRITE_OFF,
        CaseAction.NOTE,
    ]
    # The pregnancy view shows every line of the pregnancy with its outcome.
    assert detail.pregnancy is not None
    pregnancy = cycle.wait(cycle.service.pregnancy(viewer, detail.pregnancy))
    assert {ln.traceer_id for ln in detail.lines} <= {ln.traceer_id for ln in pregnancy.lines}
    assert pregnancy.claims[0].reference == case.facts.ref


def test_correct_the_member_number_resubmit_and_the_case_closes_when_granted(
    cycle: Cycle,
) -> None:
    _, case_id = rejected(cycle)
    operator = cycle.user("otto", Role.OPERATOR)
    before = cycle.wait(cycle.service.case(operator, case_id)).detail
    case = cycle.wait(
        cycle.service.act(
            operator,
            case_id,
            CaseAction.RESUBMIT,
            "lid bij navraag",
            {"member_number": RIGHT_MEMBER},
        )
    )
    assert case.state is CaseState.RESUBMITTED
    assert not case.facts.active  # its lines now belong to the corrected line
    # Both versions are kept and linked, with the difference.
    after = cycle.wait(cycle.service.case(operator, case_id)).detail
    assert next(v.reference for v in after.versions) == before.claim.reference
    corrected = after.versions[-1]
    assert corrected.corrects == case.facts.ref
    assert corrected.changes["member_number"][1] == mask_value(RIGHT_MEMBER)
    assert corrected.created_by == "otto"
    # The corrected claim goes out alone, with a new factuurnummer, and is granted.
    (sent,) = cycle.insurer_answers()
    assert validate_bytes(REGISTRY, sent).valid
    records = [r for r in read_records(REGISTRY, [sent]) if isinstance(r, Record)]
    assert records[0].text("invoice_number") == corrected.invoice_number
    assert [r.text("member_number") for r in records if r.type == "02"] == [RIGHT_MEMBER]
    assert [r.type for r in records].count("04") == 1
    outcomes = cycle.rows(
        "SELECT outcome FROM declaration_lines WHERE claim_reference = ?", corrected.reference
    )
    assert outcomes
    assert {row[0] for row in outcomes} == {"granted"}
    queue = cycle.wait(cycle.service.queue(operator, CaseFilter()))
    assert case_id not in {c.id for c in queue.cases}
    # Each participant with a line in it got its answer in a retour.
    for line in after.lines:
        assert cycle.retours_to(line.participant)
    # Audit: the resubmission names the fields changed, not their values.
    history = cycle.wait(cycle.service.case(operator, case_id)).history
    entry = next(e for e in history if e.action == "resubmit")
    assert "Verzekerdennummer" in entry.detail  # the field by its Dutch name
    assert RIGHT_MEMBER not in entry.detail
    # A bundling run afterwards claims nothing again.
    plan = cycle.wait(cycle.bundler.run_once())
    assert plan.claims == []


def test_a_resubmission_to_another_insurer_goes_to_that_insurer(cycle: Cycle) -> None:
    _, case_id = rejected(cycle)
    operator = cycle.user("otto", Role.OPERATOR)
    cycle.wait(
        cycle.service.act(operator, case_id, CaseAction.RESUBMIT, "", {"uzovi": OTHER_INSURER})
    )
    assert cycle.insurer_answers(INSURER) == []
    (sent,) = cycle.insurer_answers(OTHER_INSURER)
    records = [r for r in read_records(REGISTRY, [sent]) if isinstance(r, Record)]
    assert records[0].text("uzovi") == OTHER_INSURER


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({}, "niets-veranderd"),
        ({"member_number": "<script>"}, "veld-onjuist"),
        ({"uzovi": "9999"}, "verzekeraar-onbekend"),
        ({"prestatie": "ZZ9999"}, "prestatie-onjuist"),
        ({"first_day": "2026-13-01"}, "veld-onjuist"),
        ({"first_day": "2027-01-01"}, "datums-onjuist"),
        ({"bsn": "123456782"}, "veld-onbekend"),
    ],
)
def test_a_correction_that_is_not_valid_is_refused_and_nothing_is_stored(
    cycle: Cycle, fields: dict[str, str], code: str
) -> None:
    _, case_id = rejected(cycle)
    operator = cycle.user("otto", Role.OPERATOR)
    claims = cycle.rows("SELECT COUNT(*) FROM integral_claims")
    error = cycle.pump.wait_error(
        cycle.service.act(operator, case_id, CaseAction.RESUBMIT, "", fields)
    )
    assert isinstance(error, ActionRefusedError)
    assert error.code == code
    if "member_number" in fields:  # client data never goes into a message
        assert fields["member_number"] not in str(error)
    assert cycle.rows("SELECT COUNT(*) FROM integral_claims") == claims
    assert cycle.wait(cycle.service.case(operator, case_id)).case.state is CaseState.OPEN


def test_a_viewer_cannot_resolve_and_fields_belong_to_resubmit_only(cycle: Cycle) -> None:
    _, case_id = rejected(cycle)
    viewer = cycle.user("wim", Role.VIEWER)
    error = cycle.pump.wait_error(
        cycle.service.act(viewer, case_id, CaseAction.RESUBMIT, "", {"member_number": "X1"})
    )
    assert isinstance(error, ActionRefusedError)
    assert error.kind is ErrorKind.NOT_ALLOWED
    operator = cycle.user("otto", Role.OPERATOR)
    error = cycle.pump.wait_error(
        cycle.service.act(operator, case_id, CaseAction.PASS_ON, "", {"member_number": "X1"})
    )
    assert isinstance(error, ActionRefusedError)
    assert error.code == "velden-niet-verwacht"


def test_passing_the_rejection_on_answers_each_participant_with_the_insurers_codes(
    cycle: Cycle,
) -> None:
    _, case_id = rejected(cycle)
    operator = cycle.user("otto", Role.OPERATOR)
    lines = cycle.wait(cycle.service.case(operator, case_id)).detail.lines
    case = cycle.wait(cycle.service.act(operator, case_id, CaseAction.PASS_ON, ""))
    assert case.state is CaseState.PASSED_ON
    rejected_keys = {(ln.traceer_id, ln.record_number) for ln in lines}
    for participant in {ln.participant for ln in lines}:
        # Its newest retour answers exactly its rejected lines, with the insurer's code.
        retour = cycle.retours_to(participant)[-1]
        records = [r for r in read_records(REGISTRY, [retour]) if isinstance(r, Record)]
        answered = [r for r in records if r.type == "04"]
        assert answered
        assert {r.text("retourcode_1") for r in answered} == {"0320"}
        own = {
            k
            for k in rejected_keys
            if k[0] in {ln.traceer_id for ln in lines if ln.participant == participant}
        }
        assert len(answered) == len(own)
    reference = case_id.partition(":")[2]
    outcomes = cycle.rows(
        "SELECT DISTINCT outcome FROM declaration_lines WHERE claim_reference = ?", reference
    )
    assert outcomes == [("rejected",)]
    # Once passed on it cannot be passed on again.
    error = cycle.pump.wait_error(cycle.service.act(operator, case_id, CaseAction.PASS_ON, ""))
    assert isinstance(error, ActionRefusedError)


def test_breaking_the_bundle_forwards_the_originals_under_their_own_agb(cycle: Cycle) -> None:
    _, case_id = rejected(cycle)
    operator = cycle.user("otto", Role.OPERATOR)
    error = cycle.pump.wait_error(
        cycle.service.act(operator, case_id, CaseAction.BREAK_BUNDLE, "  ")
    )
    assert isinstance(error, ActionRefusedError)
    assert error.code == "reden-ontbreekt"
    case = cycle.wait(cycle.service.act(operator, case_id, CaseAction.BREAK_BUNDLE, "zorg elders"))
    assert case.state is CaseState.BROKEN
    view = cycle.wait(cycle.service.case(operator, case_id))
    assert {ln.state for ln in view.detail.lines} == {"forwarded"}
    # The forwards go to the insurer as the participants' own declarations.
    cycle.rules = SimRules()
    sent = cycle.insurer_answers()
    senders = set()
    for payload in sent:
        records = [r for r in read_records(REGISTRY, [payload]) if isinstance(r, Record)]
        senders.add(records[0].text("praktijk_code") or records[0].text("zorgverlener_code"))
    assert "53001234" not in senders
    # A later run decides them the same way: nothing is claimed for the broken phase.
    plan = cycle.wait(cycle.bundler.run_once())
    assert plan.claims == []
    broken = [d for d in plan.decisions if d.pregnancy == view.detail.pregnancy]
    assert broken == [] or all(d.kind.value != "integral" or not d.claims for d in broken)


def test_breaking_the_bundle_without_forwarding_returns_9001_retours(
    returning_cycle: Cycle,
) -> None:
    cycle = returning_cycle
    _, case_id = rejected(cycle)
    operator = cycle.user("otto", Role.OPERATOR)
    lines = cycle.wait(cycle.service.case(operator, case_id)).detail.lines
    cycle.wait(cycle.service.act(operator, case_id, CaseAction.BREAK_BUNDLE, "zorg elders"))
    for participant in {ln.participant for ln in lines}:
        retours = cycle.retours_to(participant)
        codes = [
            r.text("retourcode_1")
            for retour in retours
            for r in read_records(REGISTRY, [retour])
            if isinstance(r, Record) and r.type == "04"
        ]
        assert "9001" in codes
    states = cycle.rows(
        "SELECT DISTINCT state, outcome FROM declaration_lines WHERE state = 'returned'"
    )
    assert states == [("returned", "returned")]


def test_a_phase_waiting_past_its_expected_date_is_a_case_closed_by_hand(
    pump: ThreadPump, sql_url: str
) -> None:
    for cycle in _cycle(pump, sql_url):
        # Drop the birth so that the phases wait for it; decide long after the first care.
        births = [
            code
            for (standard, code), rule in CATALOGUE.rules.items()
            if rule.event is not None and rule.event.value == "birth"
        ]

        def drop(txn: Transaction, codes: tuple[str, ...] = tuple(births)) -> None:
            marks = ", ".join("?" * len(codes))
            txn.execute(f"DELETE FROM declaration_lines WHERE prestatiecode IN ({marks})", codes)

        cycle.wait(cycle.store.database.run_interaction("drop", drop))
        cycle.now[0] = NOW + timedelta(days=400)
        cycle.wait(cycle.bundler.run_once())
        operator = cycle.user("otto", Role.OPERATOR)
        queue = cycle.wait(
            cycle.service.queue(operator, CaseFilter(kinds=frozenset({CaseKind.WAITING_PHASE})))
        )
        assert queue.cases, "an overdue waiting phase is a case"
        case = queue.cases[0]
        assert "birth" in case.facts.summary
        view = cycle.wait(cycle.service.case(operator, case.id))
        assert CaseAction.CLOSE_PHASE in view.actions
        assert view.detail.decisions[0].kind == "waiting"
        done = cycle.wait(cycle.service.act(operator, case.id, CaseAction.CLOSE_PHASE, ""))
        # The bundling run right after the action decided the phase: no longer waiting.
        assert done.state is CaseState.PHASE_CLOSED
        assert not done.facts.active
        phase = case.facts.details["fase"]
        closed = cycle.rows("SELECT closed_by FROM closed_phases WHERE phase = ?", phase)
        assert closed == [("otto",)]


def test_a_bundle_the_rules_broke_is_a_case(pump: ThreadPump, sql_url: str) -> None:
    for cycle in _cycle(pump, sql_url):
        contract = Contract(2026, RuleSet.EXPERIMENT_2017, TARIFFS, 0.0, frozenset(), True)
        outside = Terms(
            Settings("53001234"),
            {
                agb: Participant(agb, Variant.A if agb != "06001234" else Variant.C, ALWAYS)
                for agb in FILES
            },
            {INSURER: InsurerTerms(INSURER, {2026: contract}, False)},
        )
        bundler = Bundler(
            cycle.store, cycle.store.bundles, REGISTRY, CATALOGUE, outside, now=lambda: NOW
        )
        cycle.wait(bundler.run_once())
        operator = cycle.user("otto", Role.OPERATOR)
        queue = cycle.wait(
            cycle.service.queue(operator, CaseFilter(kinds=frozenset({CaseKind.BUNDLE_BROKEN})))
        )
        assert queue.cases
        case = queue.cases[0]
        assert "06001234" in case.facts.summary
        view = cycle.wait(cycle.service.case(operator, case.id))
        assert {ln.state for ln in view.detail.lines} == {"forwarded"}
        assert view.actions == [CaseAction.WRITE_OFF, CaseAction.NOTE]
        done = cycle.wait(cycle.service.act(operator, case.id, CaseAction.WRITE_OFF, "klopt"))
        assert done.state is CaseState.WRITTEN_OFF


def test_the_open_cases_and_the_oldest_ones_age_are_metrics(cycle: Cycle) -> None:
    registry = CollectorRegistry()
    cycle.service.metrics = AdminMetrics(registry)
    rejected(cycle)
    cycle.now[0] = NOW + timedelta(days=8)
    cycle.wait(cycle.service.refresh_metrics())
    labels = {"kind": "rejected_line"}
    opened = registry.get_sample_value("igo_gateway_admin_open_cases", labels)
    assert opened is not None
    assert opened >= 1
    oldest = registry.get_sample_value("igo_gateway_admin_oldest_open_case_age_seconds", labels)
    assert oldest is not None
    assert oldest >= 8 * 86400 - 60
    parked = {"kind": "parked"}
    assert registry.get_sample_value("igo_gateway_admin_oldest_open_case_age_seconds", parked) == 0
    operator = cycle.user("otto", Role.OPERATOR)
    for case in cycle.wait(cycle.service.queue(operator, CaseFilter())).cases:
        if case.kind is CaseKind.REJECTED_LINE:
            cycle.wait(cycle.service.act(operator, case.id, CaseAction.PASS_ON, ""))
    cycle.wait(cycle.service.refresh_metrics())
    assert registry.get_sample_value("igo_gateway_admin_open_cases", labels) == 0
    actions = {"kind": "rejected_line", "action": "pass_on"}
    assert registry.get_sample_value("igo_gateway_admin_case_actions_total", actions) == opened


@pytest.mark.parametrize("answered_first", [False, True], ids=["before", "after"])
def test_lines_arriving_after_their_phase_was_claimed_get_its_answer(
    pump: ThreadPump, sql_url: str, answered_first: bool
) -> None:
    """The midwife's declaration alone is claimed; the kraamzorg's and the hospital's come
    later, for phases claimed already: they join the claimed lines, and are answered with
    them — when the insurer answers, or at once when it had answered already."""
    for cycle in _cycle(pump, sql_url, uploads=("02001234",)):
        first = cycle.wait(cycle.bundler.run_once())
        assert first.claims
        if answered_first:
            cycle.insurer_answers()
        cycle.upload("33001234")
        cycle.upload("06001234")
        cycle.wait(cycle.bundler.run_once())
        late = cycle.rows(
            "SELECT COUNT(*) FROM declaration_lines WHERE reason LIKE 'arrived after the claim%'"
        )
        assert late[0][0] > 0, "the test needs lines that arrive after their phase's claim"
        cycle.insurer_answers()
        unanswered = cycle.rows(
            "SELECT traceer_id, record_number FROM declaration_lines"
            " WHERE state = 'absorbed' AND (outcome IS NULL OR claim_reference IS NULL)"
        )
        assert unanswered == []
        unlinked = cycle.rows(
            "SELECT COUNT(*) FROM declaration_lines l WHERE state = 'absorbed' AND NOT EXISTS"
            " (SELECT 1 FROM claim_absorbs a WHERE a.reference = l.claim_reference"
            " AND a.traceer_id = l.traceer_id AND a.record_number = l.record_number)"
        )
        assert unlinked == [(0,)]
        for agb in ("33001234", "06001234"):
            retours = cycle.retours_to(agb)
            assert retours, agb
            answered = {
                r.text("reference")
                for retour in retours
                for r in read_records(REGISTRY, [retour])
                if isinstance(r, Record) and r.type == "04"
            }
            declared = {
                str(row[0])
                for row in cycle.rows(
                    "SELECT reference FROM declaration_lines WHERE participant = ?"
                    " AND state = 'absorbed'",
                    agb,
                )
            }
            assert declared <= answered
