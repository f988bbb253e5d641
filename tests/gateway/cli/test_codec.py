"""``igo-gateway validate`` and ``igo-gateway show`` as a user runs them.

Most tests call :func:`gateway.cli.main` in-process (fast); the ``TestConsole`` ones run
the real console entry, ``python -m gateway.cli``, in a subprocess, so that exit codes,
streams and the absence of tracebacks are what a shell sees.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.ei import LayoutRegistry, Outcome, Record, build_retour, read_records
from gateway.loading import load_layouts
from tests.factories import BSNS, kz301

BSN = BSNS[0]  # the BSN every file below is built with
FILE_KEYS = {"file", "standard", "version", "valid", "records", "findings"}
FINDING_KEYS = {"record", "kind", "field", "start", "end", "value", "retourcode", "message"}


@pytest.fixture(scope="module")
def registry() -> LayoutRegistry:
    return load_layouts()


def _replace_at(data: bytes, line: int, start: int, value: bytes) -> bytes:
    """``data`` with ``value`` written at 1-based position ``start`` of 1-based ``line``."""
    lines = data.split(b"\r\n")
    row = lines[line - 1]
    lines[line - 1] = row[: start - 1] + value + row[start - 1 + len(value) :]
    return b"\r\n".join(lines)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, registry: LayoutRegistry) -> dict[str, Path]:
    """Files a user might hand to the commands, written once for the module."""
    directory = tmp_path_factory.mktemp("ei")
    valid = kz301(registry, lines=3, comment="telefonisch overleg")
    lines = valid.split(b"\r\n")
    retour = build_retour(
        registry.retour_of(registry.by_standard("KZ301")),
        [r for r in read_records(registry, [valid]) if isinstance(r, Record)],
        {2: Outcome(granted=12000)},
        insurer_reference="VZ-2026-1",
        retour_date=date(2026, 3, 1),
    )
    contents = {
        "valid.asc": valid,
        "valid2.asc": kz301(registry, invoice="F2026-0002", bsn=BSNS[1]),
        # the 02 record's BSN fails the eleven-proof
        "bad_bsn.asc": _replace_at(valid, 2, 15, b"111222334"),
        # the third line (an 04 record) lost 100 positions: its quote carries the BSN
        "short_record.asc": b"\r\n".join([*lines[:2], lines[2][:210], *lines[3:]]),
        # a byte inserted before the BSN of the 02 record pushes it out of its field
        # (and makes the line too long, so the finding quotes the line)
        "shifted_bsn.asc": b"\r\n".join([lines[0], lines[1][:5] + b"7" + lines[1][5:], *lines[2:]]),
        "retour.asc": retour,
        "unknown_standard.asc": b"01999" + b" " * 305 + b"\r\n",
        "empty.asc": b"",
        "garbage.bin": bytes(range(256)) * 9 + b"\x1b[31m\r\n\x00\xff" * 40,
    }
    paths = {}
    for name, data in contents.items():
        path = directory / name
        path.write_bytes(data)
        paths[name.split(".")[0]] = path
    return paths


def run_main(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def json_lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


# --- validate ------------------------------------------------------------------------------


def test_a_valid_file_exits_0(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    code, out, err = run_main(capsys, "validate", files["valid"])

    assert code == 0
    assert out == f"{files['valid']}: KZ301 v3.2, 9 records: valid\n"
    assert err == ""


def test_a_retour_file_is_validated_too(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    code, out, _ = run_main(capsys, "validate", "--json", files["retour"])

    assert code == 0
    assert json_lines(out)[0]["standard"] == "KZ302"


def test_a_finding_names_record_type_field_positions_value_and_retourcode(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    code, out, _ = run_main(capsys, "validate", "--unmask", files["bad_bsn"])

    assert code == 1
    first, finding = out.splitlines()
    assert first == f"{files['bad_bsn']}: KZ301 v3.2, 9 records: INVALID (1 finding)"
    assert finding == (
        "  record 2 (02), field 0203 'burgerservicenummer (bsn) verzekerde', "
        "positions 15-23, value '111222334': retourcode 0435 "
        "(Burgerservicenummer (BSN) verzekerde ontbreekt of is onjuist.) "
        "burgerservicenummer (bsn) verzekerde: fails the eleven-proof"
    )


def test_a_field_of_an_unknown_standard_is_named(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    code, out, _ = run_main(capsys, "validate", files["unknown_standard"])

    assert code == 1
    assert "unknown standard, 0 records: INVALID (1 finding)" in out
    assert "field 0102 'code externe-integratiebericht', positions 3-5, value '999'" in out
    assert "retourcode 0010" in out


def test_any_invalid_file_makes_the_exit_status_1(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    code, out, _ = run_main(capsys, "validate", files["valid"], files["bad_bsn"], files["valid2"])

    assert code == 1
    assert [line.split(":")[0] for line in out.splitlines() if not line.startswith(" ")] == [
        str(files["valid"]),
        str(files["bad_bsn"]),
        str(files["valid2"]),
    ]


def test_several_valid_files_exit_0(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    code, out, _ = run_main(capsys, "validate", files["valid"], files["valid2"], files["retour"])

    assert code == 0
    assert out.count(": valid\n") == 3


@pytest.mark.parametrize(
    "name",
    ["valid", "bad_bsn", "short_record", "shifted_bsn", "unknown_standard", "empty", "garbage"],
)
def test_json_has_exactly_the_documented_keys(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], name: str
) -> None:
    code, out, _ = run_main(capsys, "validate", "--json", files[name])

    (result,) = json_lines(out)
    assert set(result) == FILE_KEYS
    assert result["file"] == str(files[name])
    assert result["valid"] is (code == 0)
    findings = result["findings"]
    assert isinstance(findings, list)
    assert all(set(f) == FINDING_KEYS for f in findings)
    assert result["valid"] is (not findings)


def test_json_describes_the_file_and_each_finding(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    _, out, _ = run_main(capsys, "validate", "--json", files["valid"], files["bad_bsn"])

    valid, bad = json_lines(out)
    assert valid == {
        "file": str(files["valid"]),
        "standard": "KZ301",
        "version": "3.2",
        "valid": True,
        "records": 9,
        "findings": [],
    }
    assert bad["findings"] == [
        {
            "record": 2,
            "kind": "02",
            "field": "0203",
            "start": 15,
            "end": 23,
            "value": "******334",
            "retourcode": "0435",
            "message": "burgerservicenummer (bsn) verzekerde: fails the eleven-proof",
        }
    ]


def test_json_locates_a_record_of_the_wrong_length(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    code, out, _ = run_main(capsys, "validate", "--json", files["short_record"])

    assert code == 1
    (result,) = json_lines(out)
    findings = result["findings"]
    assert isinstance(findings, list)
    assert {"record": 3, "kind": "04", "retourcode": "0804", "start": 1, "end": 210}.items() <= (
        findings[0].items()
    )


@pytest.mark.parametrize(
    ("name", "retourcode"),
    [("unknown_standard", "0010"), ("empty", "0001"), ("garbage", "0002")],
)
def test_unreadable_files_are_invalid_with_their_retourcode(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], name: str, retourcode: str
) -> None:
    code, out, err = run_main(capsys, "validate", "--json", files[name])

    assert code == 1
    assert err == ""
    (result,) = json_lines(out)
    assert result["standard"] is None
    assert result["version"] is None
    assert result["records"] == 0
    findings = result["findings"]
    assert isinstance(findings, list)
    assert [f["retourcode"] for f in findings] == [retourcode]


def test_control_characters_of_a_garbage_file_are_escaped(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    for argv in (["validate"], ["validate", "--json"], ["show"]):
        _, out, err = run_main(capsys, *argv, files["garbage"])
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", out + err)


# --- BSN masking ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["valid", "bad_bsn", "short_record", "shifted_bsn", "retour"])
@pytest.mark.parametrize(
    "argv", [["validate"], ["validate", "--json"], ["show"], ["show", "--all"]]
)
def test_the_full_bsn_never_appears_without_unmask(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], name: str, argv: list[str]
) -> None:
    assert BSN.encode() in files[name].read_bytes()

    _, out, err = run_main(capsys, *argv, files[name])

    assert BSN not in out + err
    if argv[0] == "show":
        assert "******333" in out


def test_a_bsn_pushed_out_of_its_field_is_masked_in_the_quoted_line(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    _, out, _ = run_main(capsys, "validate", "--json", files["shifted_bsn"])
    _, unmasked, _ = run_main(capsys, "validate", "--json", "--unmask", files["shifted_bsn"])

    assert BSN not in out
    assert BSN in unmasked


@pytest.mark.parametrize("argv", [["validate"], ["show"]])
def test_unmask_shows_the_bsn(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], argv: list[str]
) -> None:
    _, out, _ = run_main(capsys, *argv, "--unmask", files["short_record"])

    assert BSN in out


# --- show ----------------------------------------------------------------------------------


def test_show_prints_an_aligned_view_with_field_names(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    code, out, err = run_main(capsys, "show", files["valid"])

    assert code == 0
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == (
        f"{files['valid']}: KZ301 v3.2 — Declaratie kraamzorg en integrale geboortezorg "
        "(layout modelled)"
    )
    headings = [line for line in lines if line.startswith("record ")]
    assert headings == [
        "record 1 · 01 voorloop",
        "record 2 · 02 verzekerde",
        "record 3 · 04 prestatie",
        "record 4 · 98 commentaar",
        "record 5 · 04 prestatie",
        "record 6 · 98 commentaar",
        "record 7 · 04 prestatie",
        "record 8 · 98 commentaar",
        "record 9 · 99 sluit",
    ]
    fields = [line for line in lines if line.startswith("  ")]
    # every field line: id, name, then the positions in one column, then the value
    assert fields
    for line in fields:
        assert re.fullmatch(r"  [0-9 ]{4} .{44} [ 0-9]{2}[0-9]-[0-9]{1,3} *( .*)?", line), line
        assert line[55] == "-", line
    assert "  0203 burgerservicenummer (bsn) verzekerde" in out
    assert re.search(r"  0210 naam verzekerde \(01\) +64-88  Testpersoon\n", out)
    assert re.search(r"  0408 datum prestatie +59-66  2026-01-10\n", out)
    assert re.search(r"  0430 declaratiebedrag \(incl\. btw\) +156-164 120\.00\n", out)
    assert re.search(r"  9804 vrije tekst +19-158 telefonisch overleg\n", out)
    assert "reserve" not in out


def test_show_all_includes_empty_and_reserve_fields(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    _, brief, _ = run_main(capsys, "show", files["valid"])
    _, everything, _ = run_main(capsys, "show", "--all", files["valid"])

    assert len(everything.splitlines()) > len(brief.splitlines())
    assert "0118" in everything
    assert "0118" not in brief


def test_show_reports_a_bad_line_and_goes_on(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path]
) -> None:
    code, out, _ = run_main(capsys, "show", files["short_record"])

    assert code == 0
    assert "line 3: unreadable: record 04 is 210 positions long, KZ301 v3.2 needs 310" in out
    assert "(retourcode 0804)" in out
    assert "record 9 · 99 sluit" in out


def test_show_a_retour_file(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    code, out, _ = run_main(capsys, "show", files["retour"])

    assert code == 0
    assert out.startswith(f"{files['retour']}: KZ302 v3.2")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("unknown_standard", "unknown standard code '999' (retourcode 0010)"),
        ("empty", "the file is empty (retourcode 0001)"),
        ("garbage", "does not start with a 01 (voorloop) record (retourcode 0002)"),
    ],
)
def test_show_of_an_unreadable_file_exits_1_with_a_message(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], name: str, message: str
) -> None:
    code, out, err = run_main(capsys, "show", files[name])

    assert code == 1
    assert out == ""
    assert err.startswith(f"igo-gateway show: {files[name]}: ")
    assert message in err


# --- usage errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["validate"],
        ["show"],
        ["validate", "--bogus", "x.asc"],
        ["show", "a.asc", "b.asc"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)

    assert exc.value.code == 2
    assert "usage: igo-gateway" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["validate", "show"])
def test_a_missing_file_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    code, out, err = run_main(capsys, command, tmp_path / "nope.asc")

    assert code == 2
    assert out == ""
    assert err == f"igo-gateway {command}: {tmp_path / 'nope.asc'}: no such file\n"


def test_a_missing_file_among_others_is_a_usage_error_before_any_output(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path
) -> None:
    code, out, err = run_main(capsys, "validate", files["valid"], tmp_path / "nope.asc")

    assert code == 2
    assert out == ""
    assert "nope.asc: no such file" in err


@pytest.mark.parametrize("command", ["validate", "show"])
def test_a_directory_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    code, _, err = run_main(capsys, command, tmp_path)

    assert code == 2
    assert err == f"igo-gateway {command}: {tmp_path}: is a directory\n"


@pytest.mark.parametrize("command", ["validate", "show"])
def test_a_file_that_cannot_be_read_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
    files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    real_open = Path.open

    def refuse(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == files["valid"]:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)

    code, out, err = run_main(capsys, command, files["valid"])

    assert code == 2
    assert out == ""
    assert err == f"igo-gateway {command}: {files['valid']}: Permission denied\n"


# --- the real console entry ----------------------------------------------------------------


def console(*argv: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m gateway.cli ARGV`` as a shell runs it."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *map(str, argv)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


class TestConsole:
    def test_valid_files_exit_0(self, files: dict[str, Path]) -> None:
        proc = console("validate", files["valid"], files["retour"])

        assert proc.returncode == 0
        assert proc.stdout.splitlines() == [
            f"{files['valid']}: KZ301 v3.2, 9 records: valid",
            f"{files['retour']}: KZ302 v3.2, 9 records: valid",
        ]
        assert proc.stderr == ""

    def test_an_invalid_file_exits_1_with_its_findings(self, files: dict[str, Path]) -> None:
        proc = console("validate", files["valid"], files["short_record"])

        assert proc.returncode == 1
        assert "short_record.asc: KZ301 v3.2, 9 records: INVALID" in proc.stdout
        assert "record 3 (04), positions 1-210" in proc.stdout
        assert "retourcode 0804 (Lengte record is onjuist.)" in proc.stdout
        assert BSN not in proc.stdout
        assert proc.stderr == ""

    def test_json_prints_one_object_per_file(self, files: dict[str, Path]) -> None:
        proc = console("validate", "--json", files["valid"], files["bad_bsn"], files["garbage"])

        assert proc.returncode == 1
        results = json_lines(proc.stdout)
        assert [r["file"] for r in results] == [
            str(files["valid"]),
            str(files["bad_bsn"]),
            str(files["garbage"]),
        ]
        assert [r["valid"] for r in results] == [True, False, False]
        assert all(set(r) == FILE_KEYS for r in results)
        for result in results:
            findings = result["findings"]
            assert isinstance(findings, list)
            assert all(set(f) == FINDING_KEYS for f in findings)

    @pytest.mark.parametrize(
        "argv",
        [[], ["validate"], ["show"], ["validate", "--bogus"], ["frobnicate"]],
        ids=["nothing", "validate", "show", "unknown-option", "unknown-command"],
    )
    def test_usage_errors_exit_2(self, argv: list[str]) -> None:
        proc = console(*argv)

        assert proc.returncode == 2
        assert proc.stderr.startswith("usage: igo-gateway")
        assert "Traceback" not in proc.stderr

    def test_a_missing_file_exits_2(self, tmp_path: Path) -> None:
        proc = console("validate", tmp_path / "missing.asc")

        assert proc.returncode == 2
        assert proc.stderr == f"igo-gateway validate: {tmp_path / 'missing.asc'}: no such file\n"

    @pytest.mark.parametrize("name", ["unknown_standard", "empty", "garbage"])
    def test_unreadable_files_never_end_in_a_traceback(
        self, files: dict[str, Path], name: str
    ) -> None:
        for argv in (["validate"], ["show"]):
            proc = console(*argv, files[name])

            assert proc.returncode == 1, (argv, proc.stderr)
            assert "Traceback" not in proc.stdout + proc.stderr

    def test_show_masks_bsns_unless_unmasked(self, files: dict[str, Path]) -> None:
        masked = console("show", files["valid"])
        unmasked = console("show", "--unmask", files["valid"])

        assert masked.returncode == unmasked.returncode == 0
        assert BSN not in masked.stdout
        assert "  0203 burgerservicenummer (bsn) verzekerde" in masked.stdout
        assert f"15-23  {BSN}" in unmasked.stdout

    @pytest.mark.parametrize("command", ["validate", "show"])
    def test_a_terminal_that_cannot_print_utf8_gets_escapes(
        self, files: dict[str, Path], command: str
    ) -> None:
        proc = console(command, files["short_record"], PYTHONIOENCODING="ascii")

        assert proc.returncode == (1 if command == "validate" else 0)
        assert "Traceback" not in proc.stderr
        assert proc.stdout.isascii()
        assert ("\\u2026" if command == "validate" else "\\u2014") in proc.stdout
