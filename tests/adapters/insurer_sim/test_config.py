"""The simulator's config file: the example loads; every problem is named with its path."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from adapters.insurer_sim.config import load_sim_config
from gateway.config import ConfigError

EXAMPLE = Path(__file__).parents[3] / "fixtures" / "insurer-sim.example.toml"


def test_the_example_config_loads_with_paths_next_to_it() -> None:
    config = load_sim_config(EXAMPLE, check_files=False)
    assert config.uzovi == "3311"
    assert config.tls.cert == EXAMPLE.parent / "pki" / "server.pem"
    assert config.rules.tariffs == {"196202": 12000}
    (overlap,) = config.rules.overlap
    assert overlap.from_date == date(2026, 1, 1)
    assert overlap.matches("999999990", date(2026, 5, 1))
    assert not overlap.matches("999999990", date(2025, 12, 31))
    assert not overlap.matches("123456782", date(2026, 5, 1))


def test_every_problem_is_reported_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text(
        """uzovi = "33"
colour = "blue"

[tls]
cert = "nope.pem"
key = "nope.key"
trust = "ca.pem"

[rules]
not_insured = ["12345"]
tariffs = { "196202" = -1 }

[faults]
fail_status = 404
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_sim_config(path)
    where = {p.path for p in caught.value.problems}
    assert {"uzovi", "colour", "tls.cert", "tls.key", "tls.trust"} <= where
    assert {"rules.not_insured[0]", "faults.fail_status", "rules.tariffs"} <= where
    assert "no such file" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("uzovi = ", "not valid TOML"), (b"\xff\xfe", "not UTF-8")],
)
def test_unreadable_files_are_config_errors(
    tmp_path: Path, text: str | bytes, fragment: str
) -> None:
    path = tmp_path / "sim.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError, match=fragment):
        load_sim_config(path)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_sim_config(tmp_path / "absent.toml")
