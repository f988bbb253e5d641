"""Roles, password hashes, tokens and throttling: pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.admin.accounts import (
    AccountError,
    Actor,
    PasswordHasher,
    Permission,
    Role,
    ScryptParameters,
    Throttle,
    check_password_rules,
    check_user_name,
    csrf_token,
    new_token,
    token_digest,
)

FAST = ScryptParameters(log2_n=10)


def test_roles_grant_what_they_say() -> None:
    viewer, operator, admin = (Actor("x", role, "") for role in Role)
    assert viewer.may(Permission.VIEW_CASES)
    assert not viewer.may(Permission.RESOLVE_CASES)
    assert not viewer.may(Permission.UNMASK)
    assert operator.may(Permission.RESOLVE_CASES)
    assert operator.may(Permission.UNMASK)
    assert not operator.may(Permission.VIEW_AUDIT)
    assert not operator.may(Permission.MANAGE_USERS)
    assert all(admin.may(p) for p in Permission)


def test_a_password_hash_is_scrypt_with_its_parameters_and_a_salt() -> None:
    hasher = PasswordHasher(FAST)
    first, second = hasher.hash("correct horse battery"), hasher.hash("correct horse battery")
    assert first.startswith("scrypt$10$8$1$")
    assert first != second  # salted
    assert hasher.verify("correct horse battery", first)
    assert not hasher.verify("correct horse batterY", first)
    assert not hasher.verify("anything", None)  # no such user
    assert not hasher.verify("anything", "not-a-hash")


def test_the_default_cost_is_at_least_n_2_17_and_older_hashes_still_verify() -> None:
    defaults = ScryptParameters()
    assert defaults.log2_n >= 17
    assert 128 * defaults.r * 2**defaults.log2_n >= 128 * 1024 * 1024  # 128 MiB
    old = PasswordHasher(ScryptParameters(log2_n=15)).hash("correct horse battery")
    hasher = PasswordHasher()
    assert hasher.verify("correct horse battery", old)
    assert hasher.needs_rehash(old)
    assert hasher.hash("correct horse battery").startswith(f"scrypt${defaults.log2_n}$8$1$")


def test_hashes_made_with_other_parameters_still_verify_and_ask_for_a_rehash() -> None:
    old = PasswordHasher(ScryptParameters(log2_n=11)).hash("correct horse battery")
    hasher = PasswordHasher(FAST)
    assert hasher.verify("correct horse battery", old)
    assert hasher.needs_rehash(old)
    assert not hasher.needs_rehash(hasher.hash("x" * 12))


@pytest.mark.parametrize("name", ["a", "Anna", "anna smith", "<b>", "x" * 64])
def test_bad_user_names_are_refused(name: str) -> None:
    with pytest.raises(AccountError):
        check_user_name(name)


def test_short_passwords_are_refused() -> None:
    with pytest.raises(AccountError):
        check_password_rules("short")
    check_password_rules("long enough password")


def test_tokens_are_random_and_stored_as_digests_and_csrf_tokens_differ_per_session() -> None:
    a, b = new_token(), new_token()
    assert a != b
    assert len(a) >= 43
    assert token_digest(a) != a
    assert len(token_digest(a)) == 64
    assert csrf_token(a) == csrf_token(a)
    assert csrf_token(a) != csrf_token(b)


def test_throttling_doubles_the_wait_after_the_free_attempts_up_to_a_ceiling() -> None:
    throttle = Throttle(free=3, base=timedelta(seconds=2), ceiling=timedelta(minutes=1))
    assert [throttle.wait(n).total_seconds() for n in range(2, 10)] == [0, 2, 4, 8, 16, 32, 60, 60]
    t = datetime(2026, 1, 1, tzinfo=UTC)
    assert not throttle.refuses(2, t, t)
    assert throttle.refuses(4, t, t + timedelta(seconds=3))
    assert not throttle.refuses(4, t, t + timedelta(seconds=4))
