"""The [[insurers]] section: UZOVI codes, links that are complete, no insurer twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, LinkKind, load_config

BASE = """
[igo]
name = "IGO"
agb = "53001234"

[epd_api.tls]
cert = "c.pem"
key = "k.pem"
trust = "t.pem"
"""


def load(tmp_path: Path, insurers: str) -> object:
    path = tmp_path / "gateway.toml"
    path.write_text(BASE + insurers, encoding="utf-8")
    return load_config(path, check_files=False)


def test_a_rest_and_a_directory_insurer(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
[[insurers]]
uzovi = "3311"
name = "Verzekeraar Een"
[insurers.link]
base_url = "https://insurer.example.org/api"
follow_up_seconds = 600
[insurers.link.tls]
cert = "igo.pem"
key = "igo.key"
trust = "insurer-ca.pem"
[insurers.link.retry]
max_attempts = 5

[[insurers]]
uzovi = "9999"
name = "Verzekeraar Twee"
[insurers.link]
kind = "directory"
outbox = "exchange/out"
inbox = "exchange/in"

[[insurers]]
uzovi = "0101"
name = "Zonder koppeling"
""",
    )
    rest, directory, unlinked = config.insurers  # type: ignore[attr-defined]
    assert rest.link.kind is LinkKind.REST
    assert rest.link.retry.max_attempts == 5
    assert rest.link.follow_up_seconds == 600
    assert rest.link.tls.trust == tmp_path / "insurer-ca.pem"
    assert directory.link.inbox == tmp_path / "exchange" / "in"
    assert unlinked.link is None


@pytest.mark.parametrize(
    ("insurers", "problem"),
    [
        ('[[insurers]]\nuzovi = "33"\nname = "X"\n', "insurers[0].uzovi"),
        (
            '[[insurers]]\nuzovi = "3311"\nname = "X"\n[insurers.link]\nkind = "rest"\n',
            "a rest link needs base_url and [tls]",
        ),
        (
            '[[insurers]]\nuzovi = "3311"\nname = "X"\n[insurers.link]\n'
            'kind = "directory"\noutbox = "o"\n',
            "a directory link needs outbox and inbox",
        ),
        (
            '[[insurers]]\nuzovi = "3311"\nname = "X"\n[insurers.link]\n'
            'base_url = "http://plain.example.org"\n',
            "insurers[0].link.base_url",
        ),
        (
            '[[insurers]]\nuzovi = "3311"\nname = "X"\n[insurers.link]\n'
            'kind = "directory"\noutbox = "o"\ninbox = "i"\nfollow_up_seconds = 60\n',
            "follow_up_seconds is for a rest link",
        ),
        (
            '[[insurers]]\nuzovi = "3311"\nname = "X"\n\n'
            '[[insurers]]\nuzovi = "3311"\nname = "Y"\n',
            "insurer 3311 is configured twice",
        ),
    ],
)
def test_insurer_problems_are_reported_with_their_path(
    tmp_path: Path, insurers: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, insurers)
    assert problem in str(raised.value)
