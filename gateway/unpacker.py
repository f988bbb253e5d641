"""Unpacking an insurer's retour back to every originating provider, line by line.

For a retour answering an **integral claim file** each integral line is looked up by its
NUM040: *granted* — every original line it absorbed is granted, with the amount the
distribution model assigns it (``declared``: what the participant declared, the
monodisciplinary equivalent; ``shares``: a percentage per discipline of the granted amount
less the IGO's overhead — the shares of the disciplines that took part, made to add up to
100% — split over that discipline's lines by their declared amounts);
*rejected* (nothing granted) — its originals go to the IGO administrator's queue, status
"under review by the IGO", until resolved. A whole-file rejection (a code in the 01 record)
rejects every line of the file. Each participant then gets a retour file in its own retour
standard answering its own upload: the original records, their NUM040 and reference
numbers, the outcome tail and recomputed totals — only the lines answered now (lines under
review are answered later, in a further retour). For a **monodisciplinary forward** the
insurer's retour is passed on to the participant unchanged: it is its own declaration.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import partial

from twisted.logger import Logger

from gateway import crashpoints
from gateway.ei import (
    LayoutRegistry,
    Outcome,
    Record,
    line_amount,
    prestatie_groups,
    records_of,
)
from gateway.lines import AnsweredLine, AnswerOutcome
from gateway.metrics import Metrics
from gateway.ports.messages import (
    Direction,
    Message,
    MessageStatus,
    MessageStore,
    NewMessage,
    NewStatus,
)
from gateway.ports.outcomes import (
    CarriedClaim,
    CollectedRetour,
    LineAnswer,
    OutcomeStore,
)
from gateway.ports.runtime import RunInThread, run_inline
from gateway.retours import new_traceer_id, participant_retour
from gateway.rules.model import Discipline, Distribution, LineKey, line_key

__all__ = [
    "Unpacker",
    "distribute",
]

log = Logger()


def distribute(
    granted: int,
    lines: Sequence[AnsweredLine],
    *,
    model: Distribution,
    shares: Mapping[Discipline, float],
    discipline_of: Callable[[str], Discipline | None],
    overhead_percent: float = 0.0,
) -> dict[LineKey, int]:
    """Each absorbed line's part of a granted integral amount (eurocents).

    ``declared``: what the line declared (a credit line its negative amount), so the parts
    add up to what was declared net of credits. ``shares``: the granted amount less the
    overhead, to the cent, over the disciplines with a debit line (a discipline with only
    credit lines took no part in the care); a credit line gets nothing."""
    if model is Distribution.DECLARED:
        return {line_key(line): line.amount or 0 for line in lines}
    net = granted * (1 - overhead_percent / 100)
    by_discipline: dict[Discipline | None, list[AnsweredLine]] = defaultdict(list)
    for line in lines:
        if not line.is_credit:
            by_discipline[discipline_of(line.participant)].append(line)
    debits = sum(len(own) for own in by_discipline.values())
    # Shares of the disciplines that took part in this line, made to add up to 100%.
    present = {d: shares.get(d, 0.0) if d is not None else 0.0 for d in by_discipline}
    whole = sum(present.values())
    exact: dict[LineKey, float] = {line_key(line): 0.0 for line in lines}
    if not debits:
        return {key: 0 for key in exact}
    for discipline, own in by_discipline.items():
        pot = net * present[discipline] / whole if whole else net * len(own) / debits
        weights = [max(line.amount or 0, 0) for line in own]
        total = sum(weights)
        for line, weight in zip(own, weights, strict=True):
            exact[line_key(line)] = pot * (weight / total if total else 1 / len(own))
    out = _apportion(round(net), exact)
    return out


def _apportion(total: int, exact: Mapping[LineKey, float]) -> dict[LineKey, int]:
    """Whole eurocents that add up to ``total`` exactly (largest remainders get the rest)."""
    out = {key: int(value) for key, value in exact.items()}
    rest = total - sum(out.values())
    by_remainder = sorted(
        (key for key, value in exact.items() if value > 0),
        key=lambda key: exact[key] - out[key],
        reverse=True,
    )
    for key in by_remainder[: max(rest, 0)]:
        out[key] += 1
    return out


def _retour_tail(
    records: Sequence[Record],
) -> tuple[tuple[str, ...], dict[int, Record], dict[int, list[Record]]]:
    """The 01's retourcodes, the answered prestatie (04) records by NUM040, and the records
    under each (a ZH309 answers the money on the 06 tariefrecords)."""
    header_codes: tuple[str, ...] = ()
    for record in records:
        if record.type == "01":
            header_codes = _codes(record)
            break
    details: dict[int, Record] = {}
    children: dict[int, list[Record]] = {}
    for line, under in prestatie_groups(records):
        number = line.number_value("record_id")
        details[number], children[number] = line, under
    return header_codes, details, children


def _granted(record: Record, under: Sequence[Record] = ()) -> int:
    value = line_amount(record, under, "granted_amount")
    return value if isinstance(value, int) else 0


def _codes(record: Record, under: Sequence[Record] = ()) -> tuple[str, ...]:
    found: list[str] = []
    for rec in (record, *under):
        for n in (1, 2, 3):
            value = str(rec.get(f"retourcode_{n}") or "").strip()
            if value and value != "0000" and value not in found:
                found.append(value)
    return tuple(found)


class Unpacker:
    def __init__(
        self,
        messages: MessageStore,
        outcomes: OutcomeStore,
        registry: LayoutRegistry,
        *,
        now: Callable[[], datetime],
        model: Distribution = Distribution.DECLARED,
        shares: Mapping[Discipline, float] | None = None,
        discipline_of: Callable[[str], Discipline | None] = lambda agb: None,
        overhead_of: Callable[[str], float] = lambda insurer: 0.0,
        metrics: Metrics | None = None,
        run_in_thread: RunInThread | None = None,
        new_id: Callable[[], str] = new_traceer_id,
    ) -> None:
        self._metrics = metrics
        self._new_id = new_id
        self._run: RunInThread = run_in_thread or run_inline
        self._messages = messages
        self._outcomes = outcomes
        self._registry = registry
        self._now = now
        self._model = model
        self._shares = dict(shares or {})
        self._discipline_of = discipline_of
        self._overhead_of = overhead_of

    async def _parse(self, payload: bytes) -> list[Record]:
        """The records of a file (on a worker thread when one is given)."""
        records: list[Record] = await self._run(partial(records_of, self._registry, payload))
        return records

    async def _payload(self, collected: CollectedRetour) -> bytes:
        return await self._messages.payload(collected.message.sha256) or b""

    async def unpack(self, collected: CollectedRetour) -> list[LineAnswer]:
        if collected.answers is None or not collected.valid:
            return []
        # The records as the collector read them when it checked the file; read from
        # the stored payload only when it did not hand them on.
        records = (
            list(collected.records)
            if collected.records is not None
            else await self._parse(await self._payload(collected))
        )
        outbound = collected.answers.traceer_id
        claims = await self._outcomes.claims_in(outbound)
        if claims:
            answers = self._integral(records, claims)
            retours, answers = await self._participant_retours(
                answers, claims, records, collected.message.traceer_id
            )
        else:
            answers, retours = await self._forwarded(collected, records, outbound)
        await self._outcomes.record_answers(answers, retours)
        crashpoints.reached("retours-built")
        counts: dict[str, int] = defaultdict(int)
        for answer in answers:
            counts[answer.outcome.value] += 1
        log.info(
            "unpacked retour {traceer_id}: {counts}; {files} retour file(s) for participants",
            traceer_id=collected.message.traceer_id,
            counts=dict(counts),
            files=len(retours),
        )
        return answers

    # --- integral claims -----------------------------------------------------------------

    def _integral(self, records: list[Record], claims: list[CarriedClaim]) -> list[LineAnswer]:
        header_codes, details, under = _retour_tail(records)
        answers = []
        for claim in claims:
            record = details.get(claim.record_number)
            tail = under.get(claim.record_number, [])
            codes = header_codes or (_codes(record, tail) if record else ("0001",))
            granted = 0 if header_codes or record is None else _granted(record, tail)
            if claim.credits is not None:
                continue  # a credit line absorbs nothing
            keys = [line_key(line) for line in claim.absorbed]
            if granted > 0:
                parts = distribute(
                    granted,
                    claim.absorbed,
                    model=self._model,
                    shares=self._shares,
                    discipline_of=self._discipline_of,
                    overhead_percent=self._overhead_of(claim.insurer),
                )
                answers += [
                    LineAnswer(key, AnswerOutcome.GRANTED, parts[key], codes, None) for key in keys
                ]
            else:
                answers += [
                    LineAnswer(key, AnswerOutcome.REVIEW, None, codes, None) for key in keys
                ]
        return answers

    async def _participant_retours(
        self,
        answers: list[LineAnswer],
        claims: list[CarriedClaim],
        retour: list[Record],
        retour_id: str,
    ) -> tuple[list[NewMessage], list[LineAnswer]]:
        lines = {line_key(line): line for claim in claims for line in claim.absorbed}
        reference = (
            retour[0].text("insurer_reference")
            if retour and retour[0].layout.has("insurer_reference")
            else ""
        )
        return await self.answer_participants(answers, lines, reference, retour_id)

    async def answer_participants(
        self,
        answers: Sequence[LineAnswer],
        lines: Mapping[LineKey, AnsweredLine],
        insurer_reference: str = "",
        retour_id: str | None = None,
    ) -> tuple[list[NewMessage], list[LineAnswer]]:
        """A retour file per upload answering its granted and rejected ``answers`` (lines
        under review wait); the answers with the retour that carries each."""
        by_upload: dict[str, list[LineAnswer]] = defaultdict(list)
        for answer in answers:
            if answer.outcome in (AnswerOutcome.GRANTED, AnswerOutcome.REJECTED):
                by_upload[answer.key[0]].append(answer)
        # The uploads answered, read at once, and their retours built in one go (on a
        # worker thread when one is given): a claim file answers hundreds of uploads.
        uploads = await self._messages.messages_with_payloads(sorted(by_upload))
        at = self._now()
        calls = [
            (
                upload_id,
                partial(
                    self._retour_of,
                    message,
                    payload,
                    {
                        a.key[1]: Outcome(
                            granted=a.granted or 0,
                            calculated=lines[a.key].amount,
                            codes=() if a.outcome is AnswerOutcome.GRANTED else a.codes[:3],
                        )
                        for a in by_upload[upload_id]
                    },
                    insurer_reference=insurer_reference[:24],
                    at=at,
                    answers=retour_id,
                ),
            )
            for upload_id, (message, payload) in sorted(uploads.items())
            if payload is not None
        ]
        built: list[tuple[str, NewMessage | None]] = await self._run(
            lambda: [(upload_id, call()) for upload_id, call in calls]
        )
        messages = []
        answered_in: dict[LineKey, str] = {}
        for upload_id, new in built:
            if new is None:
                continue
            messages.append(new)
            if self._metrics is not None:
                waited = (self._now() - uploads[upload_id][0].created_at).total_seconds()
                self._metrics.end_to_end_seconds.observe(max(0.0, waited))
            for a in by_upload[upload_id]:
                answered_in[a.key] = new.traceer_id
        return messages, [
            LineAnswer(a.key, a.outcome, a.granted, a.codes, answered_in.get(a.key))
            for a in answers
        ]

    def _retour_of(
        self,
        upload: Message,
        payload: bytes,
        outcomes: dict[int, Outcome],
        *,
        insurer_reference: str,
        at: datetime,
        answers: str | None,
    ) -> NewMessage | None:
        """The retour to ``upload``'s participant (its file read again here)."""
        return participant_retour(
            self._registry,
            upload,
            records_of(self._registry, payload),
            outcomes,
            insurer_reference=insurer_reference,
            at=at,
            answers=answers,
            new_id=self._new_id,
        )

    # --- monodisciplinary forwards -------------------------------------------------------

    async def _forwarded(
        self, collected: CollectedRetour, records: list[Record], outbound: str
    ) -> tuple[list[LineAnswer], list[NewMessage]]:
        lines = await self._outcomes.forwarded_in(outbound)
        if not lines:
            return [], []
        payload = await self._payload(collected)
        header_codes, details, under = _retour_tail(records)
        by_reference = {r.text("reference"): r for r in details.values()}
        upload_id = lines[0].traceer_id
        message = await self._messages.get_message(upload_id)
        if message is None:
            return [], []
        traceer_id = self._new_id()
        retour = NewMessage(
            traceer_id=traceer_id,
            conversatie_id=message.conversatie_id,
            direction=Direction.TO_PARTICIPANT,
            party=message.party,
            payload=payload,
            sha256=collected.message.sha256,
            created_at=self._now(),
            status=NewStatus(MessageStatus.DELIVERED, None, "Retourinformatie doorgegeven."),
            idempotency_key=f"passed-on:{collected.message.traceer_id}",
            filename=f"{collected.message.standard or 'retour'}-{traceer_id}.asc",
            standard=collected.message.standard,
            reply_to=upload_id,
        )
        answers = []
        for line in lines:
            record = by_reference.get(line.reference)
            tail = under.get(record.number_value("record_id"), []) if record else []
            codes = header_codes or (_codes(record, tail) if record else ())
            granted = 0 if header_codes or record is None else _granted(record, tail)
            outcome = AnswerOutcome.GRANTED if granted > 0 else AnswerOutcome.REJECTED
            answers.append(LineAnswer(line_key(line), outcome, granted, codes, retour.traceer_id))
        return answers, [retour]
