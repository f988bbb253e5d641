"""The insurer's answers recorded on the declared lines, on both engines: on SQLite in one
statement for all the lines (``Transaction.update_values``), and one after the other when
a line is answered twice in the same call (then the last answer counts)."""

from __future__ import annotations

from datetime import UTC, datetime

from adapters.storage import Transaction, open_store
from adapters.storage.outcomes import SqlOutcomeStore, record_answers_txn
from gateway.bundler import outbound_message
from gateway.lines import AnswerOutcome
from gateway.ports.bundling import LineOutcome, QueuedFile
from gateway.ports.outcomes import AbsorbedLine, LineAnswer
from gateway.rules.catalogue import Phase
from gateway.rules.claims import ClaimLink
from gateway.rules.model import LineKey, Place
from tests.adapters.storage.builders import upload
from tests.adapters.storage.test_lines import line
from tests.threadpump import ThreadPump

AT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _answers_txn(txn: Transaction) -> list[tuple[object, ...]]:
    txn.execute(
        "SELECT record_number, outcome, granted_amount, outcome_codes, answered_in"
        " FROM declaration_lines WHERE traceer_id = 'up-0001' ORDER BY record_number"
    )
    return [
        (int(r[0]), r[1], None if r[2] is None else int(r[2]), r[3], r[4]) for r in txn.fetchall()
    ]


def test_the_answers_of_many_lines_are_recorded_at_once(sql_url: str, pump: ThreadPump) -> None:
    store = pump.wait(open_store(sql_url, pump))
    try:
        pump.wait(store.record_upload(upload(1), [], [line(n) for n in range(4)]))
        outcomes = SqlOutcomeStore(store.database, store.codec)
        first = [
            LineAnswer(("up-0001", 3), AnswerOutcome.REJECTED, 0, ("8001", "8002"), "rt-1"),
            LineAnswer(("up-0001", 1), AnswerOutcome.GRANTED, 4375, (), "rt-1"),
            LineAnswer(("up-0001", 2), AnswerOutcome.REVIEW, None, ("8001",), None),
        ]
        pump.wait(outcomes.record_answers(first, []))
        assert pump.wait(store.database.run_read("answers", _answers_txn)) == [
            (1, "granted", 4375, None, "rt-1"),
            (2, "review", None, "8001", None),
            (3, "rejected", 0, "8001 8002", "rt-1"),
            (4, None, None, None, None),
        ]
        # An answer without a retour keeps the one the line was answered in.
        again = [
            LineAnswer(("up-0001", 4), AnswerOutcome.GRANTED, 17500, (), "rt-2"),
            LineAnswer(("up-0001", 1), AnswerOutcome.GRANTED, 4000, (), None),
        ]
        pump.wait(outcomes.record_answers(again, []))
        assert pump.wait(store.database.run_read("answers", _answers_txn)) == [
            (1, "granted", 4000, None, "rt-1"),
            (2, "review", None, "8001", None),
            (3, "rejected", 0, "8001 8002", "rt-1"),
            (4, "granted", 17500, None, "rt-2"),
        ]
        # Line 2 answered twice in one call: the last answer counts.
        twice = [
            LineAnswer(("up-0001", 2), AnswerOutcome.REJECTED, 0, ("8003",), "rt-3"),
            LineAnswer(("up-0001", 3), AnswerOutcome.GRANTED, 13125, (), "rt-3"),
            LineAnswer(("up-0001", 2), AnswerOutcome.GRANTED, 8750, (), None),
        ]
        pump.wait(outcomes.record_answers(twice, []))
        assert pump.wait(store.database.run_read("answers", _answers_txn)) == [
            (1, "granted", 4000, None, "rt-1"),
            (2, "granted", 8750, None, "rt-3"),
            (3, "granted", 13125, None, "rt-3"),
            (4, "granted", 17500, None, "rt-2"),
        ]
        # nothing to answer: nothing changes
        pump.wait(store.database.run_interaction("none", record_answers_txn, (), (), store.codec))
        assert len(pump.wait(store.database.run_read("answers", _answers_txn))) == 4
    finally:
        pump.wait(store.close())


def test_the_lines_a_claim_file_carried_are_read_with_their_key_participant_and_amount(
    sql_url: str, pump: ThreadPump
) -> None:
    store = pump.wait(open_store(sql_url, pump))
    try:
        credit = line(2, amount=-4375, previous_reference="KZA-9")
        pump.wait(store.record_upload(upload(1), [], [line(0), line(1), credit, line(3)]))
        sent = outbound_message(
            b"claim file\r\n",
            insurer="3311",
            key="claim:3311:IGO26-00001",
            at=AT,
            invoice="IGO26-00001",
            name="KZ301-IGO26-00001.asc",
            standard="KZ301",
        )
        links = [
            _link("IGO26-00001-1", 1, (("up-0001", 1), ("up-0001", 2), ("up-0001", 4))),
            _link("IGO26-00001-2", 2, (("up-0001", 3),)),
        ]
        outcomes = [
            LineOutcome(key, Place.ABSORBED, "absorbed", None, link.reference, None, "p1")
            for link in links
            for key in link.absorbs
        ]
        pump.wait(
            store.bundles.record_bundle(
                [QueuedFile(sent, "3311", "12345678")],
                [(link, sent.traceer_id, "3311") for link in links],
                outcomes,
                AT,
            )
        )
        answers = SqlOutcomeStore(store.database, store.codec)
        # A line granted already is not answered again.
        granted = LineAnswer(("up-0001", 4), AnswerOutcome.GRANTED, 17500, (), None)
        pump.wait(answers.record_answers([granted], []))
        carried = pump.wait(answers.claims_in(sent.traceer_id))
        assert [(c.reference, c.record_number, c.insurer) for c in carried] == [
            ("IGO26-00001-1", 1, "3311"),
            ("IGO26-00001-2", 2, "3311"),
        ]
        assert [list(c.absorbed) for c in carried] == [
            [
                AbsorbedLine("up-0001", 1, "33001234", 4375),
                AbsorbedLine("up-0001", 2, "33001234", 8750),
            ],
            [AbsorbedLine("up-0001", 3, "33001234", -4375)],
        ]
        assert carried[1].absorbed[0].is_credit
        assert not carried[0].absorbed[0].is_credit
    finally:
        pump.wait(store.close())


def _link(reference: str, number: int, absorbs: tuple[LineKey, ...]) -> ClaimLink:
    return ClaimLink(
        "IGO26-00001", number, reference, "p1", Phase.PRENATAL, "196202", 13125, absorbs, None
    )
