"""The admin JSON: what the API answers and the command line prints, from the models."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from gateway.admin.audit import ChainReport
from gateway.admin.batches import (
    Batch,
    BatchItem,
    BatchProgress,
    BatchState,
    ItemOutcome,
    filter_json,
    preview_batch,
)
from gateway.admin.cases import (
    CaseAction,
    CaseFacts,
    CaseFilter,
    CaseKind,
    CaseRecord,
    CaseState,
    build_case,
)
from gateway.admin.consequences import bulk_consequence
from gateway.admin.search import HitKind, SearchHit, SearchResult
from gateway.admin.serialise import (
    batch_json,
    case_json,
    preview_json,
    report_json,
    reprocess_json,
    search_result_json,
)
from gateway.loading import describe
from gateway.ports.reprocess import ReprocessOutcome, ReprocessResult

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=3)


def parked(ref: str = "t1", **kw: object) -> CaseFacts:
    values: dict[str, object] = {"ref": ref, "since": T0, "party": "3311", "insurer": "3311"}
    return CaseFacts(kind=CaseKind.PARKED, active=True, **{**values, **kw})  # type: ignore[arg-type]


def test_a_case_in_camel_case_with_dutch_texts_and_meanings() -> None:
    facts = parked(retourcodes=("8001",), details={"fase": "prenatal"}, filename="f.xml")
    case = build_case(facts, None)
    value = case_json(case, NOW)
    assert value["id"] == case.id
    assert (value["kind"], value["state"], value["open"]) == ("parked", "open", True)
    assert value["since"] == T0.isoformat()
    assert value["ageSeconds"] == 3 * 3600
    assert value["retourcodes"] == [{"code": "8001", "meaning": describe("8001")}]
    assert value["details"] == {"fase": "prenatale fase"}
    assert value["record"] is None
    written_off = build_case(
        facts, CaseRecord(case.id, CaseState.WRITTEN_OFF, "dubbel", NOW, "otto")
    )
    assert case_json(written_off, NOW)["record"] == {
        "state": "written_off",
        "reason": "dubbel",
        "changedAt": NOW.isoformat(),
        "changedBy": "otto",
    }


def test_a_preview_lists_its_cases_and_says_what_it_does() -> None:
    cases = [build_case(parked("t1"), None), build_case(parked("t2", since=NOW), None)]
    query = CaseFilter(kinds=frozenset({CaseKind.PARKED}))
    preview = preview_batch(cases, query, CaseAction.RETRY, None, NOW)
    value = preview_json(preview)
    assert value["filter"] == filter_json(query)
    assert (value["action"], value["count"], value["leftOut"]) == ("retry", 2, 0)
    assert value["selection"] == preview.digest
    assert value["consequence"] == bulk_consequence(CaseAction.RETRY, 2, preview.cases)
    assert [c["ageSeconds"] for c in value["cases"]] == [3 * 3600, 0]
    json.dumps(value)  # JSON all the way down


def test_a_batch_with_its_items_only_when_asked() -> None:
    item = BatchItem(1, "parked:t1", ItemOutcome.SKIPPED, "past niet meer", NOW)
    batch = Batch(
        id=7,
        action=CaseAction.RETRY,
        reason="",
        query=CaseFilter(),
        state=BatchState.RUNNING,
        created_at=T0,
        created_by="otto",
        role="operator",
        origin="10.0.0.1",
        updated_at=NOW,
        progress=BatchProgress(done=1, skipped=1, remaining=2),
        items=(item, BatchItem(2, "parked:t2", None, "", None)),
    )
    plain = batch_json(batch)
    assert "items" not in plain
    assert plain["progress"] == {"done": 1, "skipped": 1, "failed": 0, "remaining": 2, "total": 4}
    assert batch_json(batch, items=True)["items"] == [
        {
            "position": 1,
            "caseId": "parked:t1",
            "outcome": "skipped",
            "detail": "past niet meer",
            "at": NOW.isoformat(),
        },
        {"position": 2, "caseId": "parked:t2", "outcome": None, "detail": "", "at": None},
    ]


def test_a_search_result_and_its_hits() -> None:
    hit = SearchHit(
        HitKind.LINE,
        "tr1",
        date(2026, 10, 1),
        T0,
        "12345678",
        "3311",
        "open",
        retourcodes=("8001",),
        bsn="******789",
    )
    value = search_result_json(SearchResult([hit], more=True, limit=1))
    assert (value["more"], value["limit"], value["unmasked"]) == (True, 1, False)
    [got] = value["hits"]
    assert (got["kind"], got["kindLabel"], got["date"]) == ("line", hit.label, "2026-10-01")
    assert got["storedAt"] == T0.isoformat()
    assert got["retourcodes"] == [{"code": "8001", "meaning": describe("8001")}]
    assert got["bsn"] == "******789"


def test_a_reprocessing_and_an_audit_report() -> None:
    result = ReprocessResult("tr1", ReprocessOutcome.ACCEPTED, lines_added=3)
    value = reprocess_json(result)
    assert (value["outcome"], value["linesAdded"], value["message"]) == (
        "accepted",
        3,
        result.message,
    )
    assert report_json(ChainReport(4, "ab", 3, "hash")) == {
        "intact": False,
        "entries": 4,
        "headHash": "ab",
        "firstBadSeq": 3,
        "problem": "hash",
    }
