"""The key file: created private, never overwritten, rotated and activated; sealed values
open only with their key and their associated data."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.crypto import CryptoError, Keyring, activate_key, new_key_file, rotate_key_file

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def test_a_new_key_file_is_private_and_usable(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    key_id = new_key_file(path, now=T0)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ring = Keyring.load(path)
    assert ring.current == key_id
    kid, sealed = ring.seal(b"payload", b"sha")
    assert ring.open(kid, sealed, b"sha") == b"payload"
    with pytest.raises(CryptoError):
        ring.open(kid, sealed, b"other place")
    with pytest.raises(CryptoError, match="never overwritten"):
        new_key_file(path, now=T0)


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    new_key_file(path, now=T0)
    path.chmod(0o644)
    with pytest.raises(CryptoError, match="chmod 600"):
        Keyring.load(path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not toml [", "not a key file"),
        ('current = "a"\nindex = "AAAA"\n', "no \\[keys\\]"),
        ('current = "a"\nindex = "AAAA"\n[keys]\na = "AAAA"\n', "must be 32 bytes"),
        ('current = "a"\nindex = "%%%"\n[keys]\na = "x"\n', "not base64"),
    ],
)
def test_a_broken_key_file_is_a_clear_error(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "keys.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    with pytest.raises(CryptoError, match=problem):
        Keyring.load(path)


def test_rotation_keeps_old_keys_and_the_index_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    first = new_key_file(path, now=T0)
    before = Keyring.load(path)
    _, sealed = before.seal(b"old", b"aad")

    staged = rotate_key_file(path, now=T0 + timedelta(days=1), activate=False)
    ring = Keyring.load(path)
    assert ring.current == first
    assert set(ring.keys) == {first, staged}

    activate_key(path, staged)
    ring = Keyring.load(path)
    assert ring.current == staged
    assert ring.open(first, sealed, b"aad") == b"old"
    assert ring.index("111222333") == before.index("111222333")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    with pytest.raises(CryptoError, match="no key"):
        activate_key(path, "k-unknown")
