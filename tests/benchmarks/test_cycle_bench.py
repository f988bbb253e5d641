"""The national-cycle benchmark on a toy volume, so that ``python -m tests.benchmarks.cycle``
cannot rot unnoticed — and what it shows of the cycle: every line of every pregnancy ends
granted and answered to its participant. Nothing here is timed."""

from __future__ import annotations

import io
import subprocess
import sys
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from gateway.crypto import Keyring
from gateway.ei import validate_bytes
from tests.benchmarks import cycle
from tests.benchmarks.gateway import REGISTRY

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def reactor_running() -> bool:
    """Whether this process's global reactor was started (never, in the tests)."""
    installed = sys.modules.get("twisted.internet.reactor")
    return bool(getattr(installed, "running", False))


def test_the_files_are_valid_and_each_practice_declares_its_own_women() -> None:
    files = list(cycle.national_files(14, women_per_file=3, practices=2))

    per_participant = Counter(agb for agb, _, _ in files)
    assert set(per_participant) == {
        cycle.midwifery_practice(0),
        cycle.midwifery_practice(1),
        cycle.kraamzorg_organisation(0),
        cycle.kraamzorg_organisation(1),
    }
    assert per_participant[cycle.midwifery_practice(0)] == 3  # women 0, 2, … 12: 3 + 3 + 1
    prestaties = 0
    for agb, _, payload in files:
        result = validate_bytes(REGISTRY, payload)
        assert result.findings == []
        assert result.header is not None
        assert result.header.text("praktijk_code") == agb
        prestaties += result.counts["04"]
    assert prestaties == 14 * cycle.LINES_PER_PREGNANCY


def test_participants_shrink_with_the_share_of_the_year() -> None:
    assert cycle.practices_for(cycle.NATIONAL_BIRTHS) == 200
    assert cycle.practices_for(cycle.NATIONAL_BIRTHS // 10) == 20
    assert cycle.practices_for(5) == 1


def test_the_whole_cycle_grants_and_answers_every_line() -> None:
    figures = cycle.bench_cycle(pregnancies=9, women_per_file=4)

    assert [s.name for s in figures.steps] == ["intake", "bundling", "claims", "retours"]
    assert figures.files == 6  # 4 + 4 + 1 women, for each of the two participants
    assert figures.lines == 9 * cycle.LINES_PER_PREGNANCY
    assert (figures.claim_files, figures.integral_lines) == (1, 9 * 3)
    assert figures.insurer_retours == 1
    assert figures.participant_retours == figures.files  # every upload answered
    assert figures.granted_lines == figures.lines
    assert figures.granted_amount == figures.declared_amount > 0
    out = io.StringIO()
    cycle.report(figures, out)
    assert "participant retours" in out.getvalue()


def test_the_script_runs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    assert cycle.main(["--pregnancies", "3", "--check-processes", "0"]) == 0

    out = capsys.readouterr().out
    assert "lines/s" in out
    assert "checked in this process (no check workers)" in out


def test_the_intake_can_have_its_checks_run_by_check_workers_as_serve_does() -> None:
    # In a process of its own: with check workers the cycle runs on the global reactor.
    done = subprocess.run(
        [
            *(sys.executable, "-m", "tests.benchmarks.cycle", "--pregnancies", "9"),
            *("--women-per-file", "4", "--check-processes", "1"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "checked by 1 check worker(s), 0 upload(s) checked in this process" in done.stdout
    assert "answered  189 of 189 lines granted and answered" in done.stdout


@pytest.mark.postgres
def test_the_whole_cycle_on_postgresql_answers_every_line_and_drops_its_schema(
    postgres_url: str,
) -> None:
    figures = cycle.bench_cycle(pregnancies=3, women_per_file=4, store_url=postgres_url)

    assert figures.store == "PostgreSQL"
    assert figures.participant_retours == figures.files == 2
    assert figures.granted_lines == figures.lines == 3 * cycle.LINES_PER_PREGNANCY
    with psycopg.connect(postgres_url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'igo_bench_%'"
        ).fetchone()
    assert left == (0,)


def test_uploads_through_the_epd_api_go_through_the_whole_cycle(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cycle.main(["--pregnancies", "9", "--women-per-file", "4", "--through-api", "3"]) == 0

    out = capsys.readouterr().out
    assert "intake through the EPD API: 3 concurrent mutual-TLS clients" in out
    assert "uploads/s, p50" in out
    assert "answered  189 of 189 lines granted and answered" in out  # 9 pregnancies × 21


def test_the_intake_takes_uploads_in_at_once_so_that_they_share_commits() -> None:
    figures = cycle.bench_cycle(pregnancies=200, women_per_file=2)

    assert figures.files == 200  # 100 women for each of the two participants, 2 a file
    assert figures.participant_retours == figures.files
    assert figures.granted_lines == figures.lines
    # Uploads in flight together are recorded in one group commit: far fewer commits
    # than uploads (one after the other, each would be its own).
    assert 0 < figures.intake_commits < figures.files // 2
    out = io.StringIO()
    cycle.report(figures, out)
    assert "uploads in flight" in out.getvalue()


def test_a_sealed_cycle_seals_every_line_and_opens_them_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sealed: list[bytes] = []
    opened: list[bytes] = []
    seal, open_ = Keyring.seal, Keyring.open

    def counting_seal(ring: Keyring, plaintext: bytes, associated: bytes) -> tuple[str, bytes]:
        sealed.append(associated)
        return seal(ring, plaintext, associated)

    def counting_open(ring: Keyring, key_id: str, value: bytes, associated: bytes) -> bytes:
        opened.append(associated)
        return open_(ring, key_id, value, associated)

    monkeypatch.setattr(Keyring, "seal", counting_seal)
    monkeypatch.setattr(Keyring, "open", counting_open)

    figures = cycle.bench_cycle(pregnancies=3, women_per_file=4, sealed=True)

    assert figures.sealed
    assert figures.granted_lines == figures.lines == 3 * cycle.LINES_PER_PREGNANCY
    # Each line's client data and each upload's payload sealed at intake, and read back.
    assert len(sealed) >= figures.lines + figures.files
    assert len(opened) >= figures.lines
    out = io.StringIO()
    cycle.report(figures, out)
    assert "national cycle, SQLite, sealed:" in out.getvalue()


def test_the_cycle_through_the_api_leaves_this_process_s_reactor_alone() -> None:
    # The check workers are the gateway's there: no reactor is started here for them.
    assert cycle.main(["--pregnancies", "3", "--through-api", "1"]) == 0

    assert not reactor_running()
