"""What bundling reads and writes, on SQL.

:meth:`SqlBundleStore.bundle_input` gives every line of each woman who has a line still
open (so that a late line or a correction is decided together with what came before), the
integral lines already claimed for them, and the phases closed by hand.
:meth:`SqlBundleStore.bundle_groups` cuts those women into batches of connected groups —
women who share an upload, or whose lines a credit and the line it corrects link, are never
apart — and :meth:`SqlBundleStore.bundle_input_of` gives the same input for one batch (its
group closed again as it reads, so that an upload that arrived since never straddles two
batches). :meth:`SqlBundleStore.record_bundle` stores a run's outcome in one transaction: the
outbound files (queued for the forwarder), the claimed integral lines with what they
absorbed, and where every settled original line ended — but only when every line the run
decided is still as the run read it (state and revision), the run still holds its
lease and the factuurnummers it numbered its claim files with are still free
(:func:`check_guard_txn`); otherwise nothing of it is stored.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from itertools import pairwise
from typing import Any, Final

from twisted.internet.defer import Deferred

from adapters.storage.database import Database, Transaction
from adapters.storage.journal import (
    JournalCodec,
    add_status_txn,
    add_statuses_txn,
    put_message_txn,
)
from adapters.storage.leases import check_lease_txn
from adapters.storage.lines import COLUMN_COUNT, COLUMNS, People, line_from_row, woman_key
from adapters.storage.outbox import enqueue_txn
from gateway.lines import DeclaredLine
from gateway.ports.bundling import (
    BundleConflictError,
    BundleInput,
    DecisionRecord,
    LateLine,
    LineOutcome,
    QueuedFile,
    ReturnedRetour,
    RunGuard,
)
from gateway.ports.messages import MessageStatus, NewStatus
from gateway.rules.catalogue import Phase
from gateway.rules.claims import ClaimLink
from gateway.rules.model import RETURN_TO_DECLARE_ITSELF, Existing, LineKey, Place

__all__ = ["SqlBundleStore"]

_CHUNK: Final = 400


class SqlBundleStore:
    def __init__(self, database: Database, codec: JournalCodec) -> None:
        self.database = database
        self.codec = codec

    def woman_of(self, line: DeclaredLine) -> str:
        return woman_key(self.codec, line.bsn, line.birth_date)

    def bundle_input(self) -> Deferred[BundleInput]:
        return self.database.run_read("bundle_input", bundle_input_txn, self.codec)

    def bundle_groups(self, limit: int) -> Deferred[list[list[str]]]:
        """The women with a line still open, in batches of whole connected groups of about
        ``limit`` lines at most (a bigger group is a batch of its own)."""
        return self.database.run_read("bundle_groups", bundle_groups_txn, limit)

    def bundle_input_of(self, women: Sequence[str]) -> Deferred[BundleInput]:
        """:meth:`bundle_input` for ``women`` and every woman connected to them now."""
        return self.database.run_read("bundle_input_of", bundle_input_txn, self.codec, tuple(women))

    def reserve(self, name: str, count: int) -> Deferred[int]:
        """Reserve ``count`` numbers of sequence ``name``; the first of them."""
        return self.database.run_interaction("reserve", reserve_txn, name, count)

    def last_number(self, name: str) -> Deferred[int]:
        return self.database.run_read("last_number", last_number_txn, name)

    def record_bundle(
        self,
        outbound: Sequence[QueuedFile],
        claims: Sequence[tuple[ClaimLink, str, str]],  # (link, outbound traceerId, insurer)
        outcomes: Sequence[LineOutcome],
        at: datetime,
        decisions: Sequence[DecisionRecord] = (),
        retours: Sequence[ReturnedRetour] = (),
        late: Sequence[LateLine] = (),
        guard: RunGuard | None = None,
    ) -> Deferred[None]:
        return self.database.run_interaction(
            "record_bundle",
            record_bundle_txn,
            tuple(outbound),
            tuple(claims),
            tuple(outcomes),
            at,
            self.codec,
            tuple(decisions),
            tuple(retours),
            tuple(late),
            guard,
        )

    def close_phase(self, pregnancy: str, phase: Phase, by: str, at: datetime) -> Deferred[None]:
        return self.database.run_interaction(
            "close_phase", close_phase_txn, pregnancy, phase, by, at
        )


def _chunks(values: Sequence[Any]) -> list[Sequence[Any]]:
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]


# The women with a line still open (a subquery).
_OPEN_WOMEN: Final = "SELECT woman FROM declaration_lines WHERE state = 'open'"


def bundle_groups_txn(txn: Transaction, limit: int) -> list[list[str]]:
    """Every woman with a line still open, in batches: women who declared in one upload
    (a forward is made per upload, with the participant's own factuurnummer: an upload
    split over two batches would be forwarded twice) or whose lines a credit and the line
    it corrects link are in one group; groups are put together, in the order of their
    first woman, into batches of at most ``limit`` lines (a bigger group alone)."""
    index: dict[str, int] = {}  # a woman's or an upload's node
    parent: list[int] = []
    size: dict[str, int] = defaultdict(int)  # lines per woman

    def node(name: str) -> int:
        found = index.get(name)
        if found is None:
            found = index[name] = len(parent)
            parent.append(found)
        return found

    def root(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    def join(a: int, b: int) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    txn.execute(
        "SELECT woman, traceer_id, COUNT(*) FROM declaration_lines"  # noqa: S608
        f" WHERE woman IN ({_OPEN_WOMEN}) GROUP BY woman, traceer_id"
    )
    for woman, upload, count in txn.fetchall():
        size[woman] += int(count)
        join(node("w:" + woman), node("u:" + upload))
    txn.execute(
        "SELECT l.woman, t.woman FROM declaration_lines l JOIN declaration_lines t"
        " ON t.participant = l.participant AND t.reference = l.previous_reference"
        " WHERE l.previous_reference IS NOT NULL AND t.woman <> l.woman"
    )
    for one, other in txn.fetchall():
        if one in size and other in size:
            join(index["w:" + one], index["w:" + other])
    groups: dict[int, list[str]] = defaultdict(list)
    for woman in sorted(size):
        groups[root(index["w:" + woman])].append(woman)
    batches: list[list[str]] = []
    lines = 0
    for group in groups.values():  # in the order of their first woman
        count = sum(size[woman] for woman in group)
        if not batches or lines + count > limit:
            batches.append([])
            lines = 0
        batches[-1] += group
        lines += count
    return [batch for batch in batches if batch]


# A line's row as a run reads it: the line, then its state, revision and answer.
_INPUT_COLUMNS: Final = f"{COLUMNS}, state, revision, outcome, granted_amount"
_STATE: Final = COLUMN_COUNT  # where the state is in such a row
# Where the woman's key, the participant and the reference a line corrects are in it.
_NAMES: Final = [name.strip() for name in COLUMNS.split(",")]
_WOMAN, _PARTICIPANT, _PREVIOUS = map(_NAMES.index, ("woman", "participant", "previous_reference"))


def _rows_of_women_txn(txn: Transaction, women: Sequence[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Every line's row of ``women`` (:data:`_INPUT_COLUMNS`), by woman, each woman's in
    the order the woman's index gives them."""
    rows: dict[str, list[tuple[Any, ...]]] = {woman: [] for woman in women}
    for chunk in _chunks(women):
        marks = ", ".join("?" * len(chunk))
        txn.execute(
            f"SELECT {_INPUT_COLUMNS} FROM declaration_lines WHERE woman IN ({marks})",  # noqa: S608
            tuple(chunk),
        )
        for row in txn.fetchall():
            rows[row[_WOMAN]].append(row)
    return rows


def _close_group_txn(
    txn: Transaction, women: Sequence[str]
) -> tuple[list[str], dict[str, list[tuple[Any, ...]]]]:
    """``women`` and every woman with a line still open connected to them now (through an
    upload, or a credit of one of their lines), until nothing more joins; with the rows of
    their lines. Each woman's lines are read once, by the woman's index (their rows are
    scattered over the table); the connections are found from those rows: the women of
    their uploads by the uploads' keys, the lines their credits correct by reference."""
    group = set(women)
    seen = set(group)  # every woman looked at (with an open line or not)
    frontier = sorted(group)
    rows = _rows_of_women_txn(txn, frontier)
    while frontier:
        found: set[str] = set()
        own = [row for woman in frontier for row in rows[woman]]
        # The women of these women's uploads (each upload's lines once, by its key).
        uploads = sorted({row[0] for row in own})
        for chunk in _chunks(uploads):
            marks = ", ".join("?" * len(chunk))
            txn.execute(
                "SELECT DISTINCT woman FROM declaration_lines"  # noqa: S608
                f" WHERE traceer_id IN ({marks})",
                tuple(chunk),
            )
            found.update(row[0] for row in txn.fetchall())
        # The women of the lines these women's lines correct (another woman's only).
        corrects: dict[tuple[str, str], set[str]] = defaultdict(set)
        for row in own:
            if row[_PREVIOUS] is not None:
                corrects[(row[_PARTICIPANT], row[_PREVIOUS])].add(row[_WOMAN])
        for chunk in _chunks(sorted({reference for _, reference in corrects})):
            marks = ", ".join("?" * len(chunk))
            txn.execute(
                "SELECT participant, reference, woman FROM declaration_lines"  # noqa: S608
                f" WHERE reference IN ({marks})",
                tuple(chunk),
            )
            for participant, reference, woman in txn.fetchall():
                if corrects.get((participant, reference), set()) - {woman}:
                    found.add(woman)
        new, seen = found - seen, seen | found
        looked_at = _rows_of_women_txn(txn, sorted(new))
        frontier = sorted(
            woman
            for woman, own_rows in looked_at.items()
            if any(row[_STATE] == "open" for row in own_rows)
        )
        rows.update((woman, looked_at[woman]) for woman in frontier)
        group.update(frontier)
    return sorted(group), rows


def bundle_input_txn(
    txn: Transaction, codec: JournalCodec, women: Sequence[str] | None = None
) -> BundleInput:
    """The input of a run over every woman with a line still open, or over ``women`` (and
    the women connected to them)."""
    if women is None:
        txn.execute("SELECT DISTINCT woman FROM declaration_lines WHERE state = 'open'")
        chosen = sorted(row[0] for row in txn.fetchall())
        # Read and decoded a chunk of women at a time: the whole backlog is never held
        # as rows and lines at once.
        chunks: Iterable[dict[str, list[tuple[Any, ...]]]] = (
            _rows_of_women_txn(txn, chunk) for chunk in _chunks(chosen)
        )
    else:
        chosen, rows_of = _close_group_txn(txn, women)
        chunks = [rows_of]
    lines: list[DeclaredLine] = []
    states: dict[LineKey, str] = {}
    revisions: dict[LineKey, int] = {}
    outcomes: dict[LineKey, tuple[str, int | None]] = {}
    woman_of: dict[LineKey, str] = {}
    people: People = {}
    for rows in chunks:
        for woman in sorted(rows):
            for row in rows[woman]:
                line = line_from_row(row[:COLUMN_COUNT], codec, people)
                key = (line.traceer_id, line.record_number)
                lines.append(line)
                woman_of[key] = woman
                state, revision, outcome, granted = row[COLUMN_COUNT:]
                states[key] = state
                revisions[key] = int(revision)
                if outcome is not None:
                    outcomes[key] = (outcome, None if granted is None else int(granted))
    keys = set(states)
    # A credited line and one replaced by a corrected resubmission are no longer claimed.
    txn.execute(
        "SELECT credits FROM integral_claims WHERE credits IS NOT NULL"
        " UNION SELECT corrects FROM integral_claims WHERE corrects IS NOT NULL"
    )
    credited = {row[0] for row in txn.fetchall()}
    found: dict[str, tuple[tuple[Any, ...], set[LineKey]]] = {}
    for row in _claims_txn(txn, None if women is None else chosen):
        if row[0] in credited:
            continue
        entry = found.setdefault(row[0], (row[:6], set()))
        entry[1].add((row[6], int(row[7])))
    existing = [
        Existing(
            head[0], head[1], Phase(head[2]), head[3], head[4], int(head[5]), frozenset(absorbs)
        )
        for head, absorbs in found.values()
        if absorbs & keys
    ]
    txn.execute("SELECT pregnancy, phase FROM closed_phases")
    closed = {(row[0], Phase(row[1])) for row in txn.fetchall()}
    answered = _answered_txn(txn, [e.reference for e in existing])
    txn.execute("SELECT pregnancy, phase FROM broken_phases")
    broken = {(row[0], Phase(row[1])) for row in txn.fetchall()}
    return BundleInput(
        lines,
        existing,
        closed,
        broken,
        states,
        revisions=revisions,
        answered=answered,
        outcomes=outcomes,
        women=woman_of,
    )


_CLAIMS: Final = (
    "SELECT c.reference, c.pregnancy, c.phase, c.insurer, c.prestatie, c.amount,"
    " a.traceer_id, a.record_number FROM integral_claims c"
    " JOIN claim_absorbs a ON a.reference = c.reference WHERE c.credits IS NULL"
)


def _claims_txn(txn: Transaction, women: Sequence[str] | None) -> list[tuple[Any, ...]]:
    """The claimed integral lines (not credits) with each line they absorbed: all of them,
    or those that absorbed a line of ``women``."""
    if women is None:
        txn.execute(_CLAIMS)
        return txn.fetchall()
    rows: list[tuple[Any, ...]] = []
    for chunk in _chunks(women):
        marks = ", ".join("?" * len(chunk))
        txn.execute(
            f"{_CLAIMS} AND c.reference IN (SELECT b.reference FROM claim_absorbs b"  # noqa: S608
            " JOIN declaration_lines l"
            " ON l.traceer_id = b.traceer_id AND l.record_number = b.record_number"
            f" WHERE l.woman IN ({marks}))",
            tuple(chunk),
        )
        rows += txn.fetchall()
    return rows


def _answered_txn(
    txn: Transaction, references: list[str]
) -> dict[str, tuple[str, tuple[str, ...]]]:
    """The answer each of ``references`` (claimed lines) has already, by its lines'."""
    answered: dict[str, tuple[str, tuple[str, ...]]] = {}
    for chunk in _chunks(references):
        marks = ", ".join("?" * len(chunk))
        txn.execute(
            "SELECT claim_reference, outcome, outcome_codes FROM declaration_lines"  # noqa: S608
            f" WHERE claim_reference IN ({marks}) AND outcome IS NOT NULL",
            tuple(chunk),
        )
        for reference, outcome, codes in txn.fetchall():
            answered.setdefault(reference, (outcome, tuple((codes or "").split())))
    return answered


def reserve_txn(txn: Transaction, name: str, count: int) -> int:
    """One atomic statement, so that two processes never get the same numbers (a read
    then a write would lose an update on PostgreSQL)."""
    if count < 1:
        raise ValueError("reserve at least one number")
    txn.execute(
        "INSERT INTO counters (name, value) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value"
        " RETURNING value",
        (name, count),
    )
    row = txn.fetchone()
    assert row is not None
    return int(row[0]) - count + 1


def last_number_txn(txn: Transaction, name: str) -> int:
    txn.execute("SELECT value FROM counters WHERE name = ?", (name,))
    row = txn.fetchone()
    return 0 if row is None else int(row[0])


def take_numbers_txn(txn: Transaction, name: str, last: int, count: int) -> None:
    """Take the ``count`` numbers of sequence ``name`` after ``last``, or raise
    :class:`~gateway.bundler.BundleConflictError` when another has taken numbers since
    (one statement: it takes them only while the sequence still stands at ``last``)."""
    txn.execute(
        "INSERT INTO counters (name, value) VALUES (?, 0) ON CONFLICT (name) DO NOTHING",
        (name,),
    )
    txn.execute(
        "UPDATE counters SET value = value + ? WHERE name = ? AND value = ?",
        (count, name, last),
    )
    if txn.rowcount != 1:
        raise BundleConflictError(
            f"the factuurnummers after {last} were taken since the run numbered its claims"
        )


# Where a line the run decided moves, as the parameters of :func:`_move_params` say: a
# settled line takes its state, reason, retourcode, claim and outbound file, pregnancy,
# phase and decision (keeping the claim, outbound file, pregnancy and decision it had where
# the outcome gives none); a waiting line with a pregnancy takes its pregnancy, phase and
# decision as they are; any other line keeps every column.
_MOVE: Final = (
    " state = COALESCE(?, state),"
    " reason = CASE WHEN ? THEN ? ELSE reason END,"
    " retourcode = CASE WHEN ? THEN ? ELSE retourcode END,"
    " claim_reference = COALESCE(?, claim_reference),"
    " outbound = COALESCE(?, outbound),"
    " pregnancy = COALESCE(?, pregnancy),"
    " phase = CASE WHEN ? THEN ? ELSE phase END,"
    " decision = CASE WHEN ? THEN ? ELSE COALESCE(?, decision) END"
)
# A line the guard names moves only if it is still in the state and at the revision the
# run read, and then to its next revision.
_GUARDED_MOVE: Final = (
    f"UPDATE declaration_lines SET revision = revision + 1,{_MOVE}"  # noqa: S608
    " WHERE traceer_id = ? AND record_number = ? AND state = ? AND revision = ?"
)
_UNGUARDED_MOVE: Final = (
    f"UPDATE declaration_lines SET{_MOVE} WHERE traceer_id = ? AND record_number = ?"
)
# Where a line's key is among the parameters of _GUARDED_MOVE.
_GUARDED_KEY: Final = slice(-4, -2)
# The parameters of _MOVE for a line that keeps every column.
_STAYS: Final = (None, False, None, False, None, None, None, None, False, None, False, None, None)


def _moves(outcome: LineOutcome) -> bool:
    """Whether ``outcome`` changes a column of its line: settled, or waiting in a
    pregnancy."""
    return outcome.place is not Place.WAITING or outcome.pregnancy is not None


def _move_params(outcome: LineOutcome | None) -> tuple[object, ...]:
    """The parameters of :data:`_MOVE` for ``outcome`` (None: the line stays as it is)."""
    if outcome is None or not _moves(outcome):
        return _STAYS
    settled = outcome.place is not Place.WAITING
    phase = None if outcome.phase is None else outcome.phase.value
    decision = None if outcome.decision is None else outcome.decision.value
    return (
        outcome.place.value if settled else None,
        settled,
        outcome.reason if settled else None,
        settled,
        outcome.retourcode if settled else None,
        outcome.claim_reference if settled else None,
        outcome.outbound if settled else None,
        outcome.pregnancy,
        True,
        phase,
        not settled,
        None if settled else decision,
        decision if settled else None,
    )


def check_guard_txn(
    txn: Transaction, guard: RunGuard, outcomes: Sequence[LineOutcome] = ()
) -> None:
    """Raise :class:`~gateway.bundler.BundleConflictError` (or, for a lost lease,
    :class:`~gateway.jobs.LeaseLostError`) unless the run may record: it holds its lease,
    the factuurnummers it gave its claim files are still free (they are taken now), and
    every line it decided is in the state and at the revision it read. Each of those
    lines moves to the next revision and, in the same statement, to where ``outcomes``
    put it (the last outcome of a line counts)."""
    if guard.lease_job is not None and guard.lease_holder is not None:
        check_lease_txn(txn, guard.lease_job, guard.lease_holder, int(guard.lease_seconds * 1000))
    if guard.numbers is not None:
        take_numbers_txn(txn, *guard.numbers)
    # In key order, so that two recordings lock their lines in the same order (never a
    # deadlock between them on PostgreSQL, where the lines move one after the other: the
    # second waits, then finds them changed). The rows changed add up over the lines.
    changed = 0
    if guard.expected:
        by_key = {outcome.key: outcome for outcome in outcomes}
        changed = txn.update_values(
            _GUARDED_MOVE,
            [
                (*_move_params(by_key.get(key)), *key, *expected)
                for key, expected in sorted(guard.expected.items())
            ],
            _GUARDED_KEY,
            adapted=True,  # text, numbers and None only: passed as they are
        )
    if changed != len(guard.expected):
        raise BundleConflictError(
            f"{len(guard.expected) - changed} of the run's {len(guard.expected)} line(s)"
            " changed since it read them"
        )


def record_bundle_txn(
    txn: Transaction,
    outbound: tuple[QueuedFile, ...],
    claims: tuple[tuple[ClaimLink, str, str], ...],
    outcomes: tuple[LineOutcome, ...],
    at: datetime,
    codec: JournalCodec,
    decisions: tuple[DecisionRecord, ...] = (),
    retours: tuple[ReturnedRetour, ...] = (),
    late: tuple[LateLine, ...] = (),
    guard: RunGuard | None = None,
) -> None:
    if guard is not None:
        check_guard_txn(txn, guard, outcomes)
    for item in outbound:
        enqueue_txn(txn, item.message, item.insurer, item.sender, codec)
    # One statement per kind of row, for every row of the batch (a run records tens of
    # thousands of lines at once).
    claim_rows: list[tuple[object, ...]] = []
    absorb_rows: list[tuple[str, str, int]] = []
    for link, message_id, insurer in claims:
        claim_rows.append(
            (
                link.reference,
                link.invoice_number,
                link.record_number,
                message_id,
                insurer,
                link.pregnancy,
                link.phase.value,
                link.prestatie,
                link.amount,
                link.credits,
                at,
            )
        )
        absorb_rows += [(link.reference, *key) for key in link.absorbs]
    txn.insert_values(
        "INSERT INTO integral_claims (reference, invoice_number, record_number, outbound,"
        " insurer, pregnancy, phase, prestatie, amount, credits, created_at)",
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        claim_rows,
    )
    txn.insert_rows("claim_absorbs", "reference, traceer_id, record_number", absorb_rows)
    settled = [outcome for outcome in outcomes if outcome.place is not Place.WAITING]
    record_decisions_txn(txn, decisions, at)
    # The state each settled line was in before: the guard has just checked it is the one
    # the run read (a line the guard does not name is read).
    checked = {} if guard is None else {key: state for key, (state, _) in guard.expected.items()}
    per_upload: dict[str, Counter[str]] = defaultdict(Counter)
    for outcome in settled:
        state = checked.get(outcome.key)
        if state is None:
            txn.execute(
                "SELECT state FROM declaration_lines WHERE traceer_id = ? AND record_number = ?",
                outcome.key,
            )
            row = txn.fetchone()
            state = None if row is None else row[0]
        if state != outcome.place.value:
            per_upload[outcome.key[0]][outcome.place.value] += 1
    progress = {upload: _progress(counts) for upload, counts in sorted(per_upload.items())}
    now_at = _statuses_txn(txn, sorted(progress))
    add_statuses_txn(
        txn,
        [
            (upload, status)
            for upload, status in progress.items()
            if not _would_go_back(now_at.get(upload), status.status)
        ],
        at,
    )
    # A run decides again every line of a woman with a line still open; an upload got a
    # progress status above only for its lines that move, not again for lines settled
    # before. Every line keeps the pregnancy, phase and kind of decision it was put in (a
    # waiting line too: the pregnancy view shows it). The lines the guard named have moved
    # with its check; the others (none when a run reads every line it decides) move here.
    unguarded = [
        outcome
        for outcome in outcomes
        if _moves(outcome) and (guard is None or outcome.key not in guard.expected)
    ]
    if unguarded:
        txn.executemany(
            _UNGUARDED_MOVE, [(*_move_params(outcome), *outcome.key) for outcome in unguarded]
        )
    _late_txn(txn, late)
    _returned_txn(txn, retours, codec)


_WORDS = {
    "absorbed": "integraal gedeclareerd",
    "forwarded": "monodisciplinair doorgestuurd",
    "returned": "teruggestuurd om zelf te declareren (9001)",
    "cancelled": "tegen een correctie weggestreept",
}


def _progress(counts: Counter[str]) -> NewStatus:
    """The status an upload gets when bundling settled some of its lines."""
    parts = [
        f"{counts[place]} regel(s) {words}" for place, words in _WORDS.items() if counts[place]
    ]
    status = (
        MessageStatus.FORWARDED
        if counts["absorbed"] or counts["forwarded"]
        else MessageStatus.PROCESSED
    )
    code = RETURN_TO_DECLARE_ITSELF if counts["returned"] else None
    return NewStatus(status, code, "Verwerkt: " + "; ".join(parts) + ".")


# The order an upload's statuses follow; its history never goes back in it (an upload
# answered and then bundled again after a break stays "beantwoord").
_UPLOAD_ORDER: Final = (
    MessageStatus.RECEIVED,
    MessageStatus.PROCESSING,
    MessageStatus.PROCESSED,
    MessageStatus.FORWARDED,
    MessageStatus.ANSWERED,
)


def _statuses_txn(txn: Transaction, uploads: Sequence[str]) -> dict[str, str]:
    """The status each of ``uploads`` has now (an unknown one is left out)."""
    found: dict[str, str] = {}
    for chunk in _chunks(uploads):
        marks = ", ".join("?" * len(chunk))
        txn.execute(
            f"SELECT traceer_id, status FROM messages WHERE traceer_id IN ({marks})",  # noqa: S608
            tuple(chunk),
        )
        found.update((row[0], row[1]) for row in txn.fetchall())
    return found


def _would_go_back(now_at: str | None, status: MessageStatus) -> bool:
    """Whether an upload at status ``now_at`` would go back in its order to ``status``."""
    if now_at is None or status not in _UPLOAD_ORDER:
        return False
    try:
        current = MessageStatus(now_at)
    except ValueError:
        return False
    if current not in _UPLOAD_ORDER:
        return False
    return _UPLOAD_ORDER.index(status) < _UPLOAD_ORDER.index(current)


def _late_txn(txn: Transaction, late: tuple[LateLine, ...]) -> None:
    """Late lines join their claimed line (its provenance); one under review joins the
    case of the rejected line."""
    for item in late:
        txn.execute(
            "INSERT INTO claim_absorbs (reference, traceer_id, record_number) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (item.reference, *item.key),
        )
        if item.answer is not None and item.answer.outcome == "review":
            txn.execute(
                "UPDATE declaration_lines SET outcome = 'review', outcome_codes = ?"
                " WHERE traceer_id = ? AND record_number = ?",
                (" ".join(item.answer.codes) or None, *item.key),
            )


def _returned_txn(
    txn: Transaction, retours: tuple[ReturnedRetour, ...], codec: JournalCodec
) -> None:
    for retour in retours:
        stored = put_message_txn(txn, retour.message, codec)
        upload = retour.message.reply_to
        if upload is not None and stored.traceer_id == retour.message.traceer_id:
            add_status_txn(
                txn,
                upload,
                NewStatus(
                    MessageStatus.ANSWERED,
                    None,
                    f"Beantwoord: retourinformatie klaargezet ({retour.message.standard}).",
                ),
                retour.message.created_at,
            )
        for answer in retour.answers:
            txn.execute(
                "UPDATE declaration_lines SET outcome = ?, granted_amount = ?,"
                " outcome_codes = ?, answered_in = ? WHERE traceer_id = ? AND record_number = ?",
                (
                    answer.outcome,
                    answer.granted,
                    " ".join(answer.codes) or None,
                    stored.traceer_id,
                    *answer.key,
                ),
            )


def _day(txn: Transaction, value: date | None) -> object:
    if value is None:
        return None
    return value if txn.engine == "postgres" else value.isoformat()


def record_decisions_txn(txn: Transaction, records: Sequence[DecisionRecord], at: datetime) -> None:
    """Keep the latest decision of each pregnancy, phase and insurer of ``records``;
    ``since`` is when it became of its kind (a decision taken again the same way keeps
    it). The kinds kept are read at once, then one statement per kind of change (a batch
    records thousands)."""
    latest: dict[tuple[str, str, str], DecisionRecord] = {}
    kinds: dict[tuple[str, str, str], list[str]] = defaultdict(list)  # in record order
    for record in records:
        key = _decision_key(record)
        latest[key] = record
        kinds[key].append(record.kind.value)
    had: dict[tuple[str, str, str], str] = {}
    for chunk in _chunks(sorted({key[0] for key in latest})):
        marks = ", ".join("?" * len(chunk))
        txn.execute(
            "SELECT pregnancy, phase, insurer, kind FROM bundle_decisions"  # noqa: S608
            f" WHERE pregnancy IN ({marks})",
            tuple(chunk),
        )
        had.update(((row[0], row[1], row[2]), row[3]) for row in txn.fetchall())
    new: list[tuple[object, ...]] = []
    changed: list[tuple[object, ...]] = []
    same: list[tuple[object, ...]] = []
    for key, record in latest.items():
        values = _decision_values(txn, record, at)
        if key not in had:
            new.append((*values, at, *key))
            continue
        # Of another kind at some step from the kind kept to the last of ``records``.
        steps = [had[key], *kinds[key]]
        if any(before != after for before, after in pairwise(steps)):
            changed.append((*values, at, *key))
        else:
            same.append((*values, *key))
    txn.insert_values(_INSERT_DECISION, "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", new)
    txn.update_values(_UPDATE_DECISION.format(since=", since = ?"), changed, _DECISION_KEY)
    txn.update_values(_UPDATE_DECISION.format(since=""), same, _DECISION_KEY)


_INSERT_DECISION: Final = (
    "INSERT INTO bundle_decisions (kind, rule, reasons, waiting_for, until,"
    " overdue_on, first_day, decided_at, since, pregnancy, phase, insurer)"
)
# Where a decision's key (pregnancy, phase, insurer) is among _UPDATE_DECISION's parameters.
_DECISION_KEY: Final = slice(-3, None)
_UPDATE_DECISION: Final = (
    "UPDATE bundle_decisions SET kind = ?, rule = ?, reasons = ?, waiting_for = ?,"
    " until = ?, overdue_on = ?, first_day = ?, decided_at = ?{since}"
    " WHERE pregnancy = ? AND phase = ? AND insurer = ?"
)


def _decision_key(record: DecisionRecord) -> tuple[str, str, str]:
    return (record.pregnancy, record.phase.value if record.phase else "", record.insurer)


def _decision_values(txn: Transaction, record: DecisionRecord, at: datetime) -> tuple[object, ...]:
    return (
        record.kind.value,
        record.rule,
        "\n".join(record.reasons),
        record.waiting_for,
        _day(txn, record.until),
        _day(txn, record.overdue_on),
        _day(txn, record.first_day),
        at,
    )


def close_phase_txn(txn: Transaction, pregnancy: str, phase: Phase, by: str, at: datetime) -> None:
    txn.execute(
        "INSERT INTO closed_phases (pregnancy, phase, closed_by, closed_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (pregnancy, phase) DO NOTHING",
        (pregnancy, phase.value, by, at),
    )
