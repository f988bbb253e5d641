"""Admin accounts: roles and what each may do, password hashes, session tokens, throttling.

Pure: no store, no reactor. Times are given, never read.

* **Roles.** A *viewer* sees the queue and the cases (client numbers masked); an
  *operator* also resolves cases and shows client numbers (the one who scripts the JSON
  API or the command line); an *administrator* can do all that, read and export the
  audit log, and run bulk actions (one action on a whole filtered selection).
* **Passwords** are hashed with scrypt (memory-hard; ``cryptography``'s implementation),
  the parameters stored with the hash: ``scrypt$<log2 n>$<r>$<p>$<salt>$<hash>`` (base64),
  so that stronger parameters later do not break the hashes made before (a login with
  an older hash stores a new one with today's parameters).
* **Session tokens** are 256 random bits; the store keeps only their SHA-256, so a copy of
  the database does not hold a usable session.
* **Throttling**: after a few failed logins for one account (or from one address) every
  further attempt waits, twice as long each time, up to a quarter of an hour.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from gateway.errors import ErrorKind, GatewayError

__all__ = [
    "ROLE_PERMISSIONS",
    "AccountError",
    "Actor",
    "PasswordHasher",
    "Permission",
    "Role",
    "ScryptParameters",
    "Throttle",
    "check_password_rules",
    "check_user_name",
    "csrf_token",
    "new_token",
    "token_digest",
]

MIN_PASSWORD_LENGTH: Final = 12
MAX_PASSWORD_LENGTH: Final = 1024
_USER_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")


class AccountError(GatewayError, ValueError):
    """A user name, role or password that cannot be used."""

    code = "account-invalid"
    kind = ErrorKind.INVALID


class Role(enum.StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMINISTRATOR = "administrator"


class Permission(enum.StrEnum):
    VIEW_CASES = "view_cases"
    RESOLVE_CASES = "resolve_cases"  # every action on a case, notes included
    UNMASK = "unmask"  # show BSNs and names (each time audited)
    VIEW_AUDIT = "view_audit"  # read and export the audit log
    # One action on every case of a filtered selection, as a background batch. Not an
    # operator's: mass changes are the administrator's call (an operator scripts the API
    # one case at a time, each checked and logged on its own).
    BULK_ACTIONS = "bulk_actions"
    # Disable and enable accounts, reset passwords, change roles, revoke sessions and
    # tokens: the leaver process (NEN 7510). The administrator's alone.
    MANAGE_USERS = "manage_users"


ROLE_PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    Role.VIEWER: frozenset({Permission.VIEW_CASES}),
    Role.OPERATOR: frozenset({Permission.VIEW_CASES, Permission.RESOLVE_CASES, Permission.UNMASK}),
    Role.ADMINISTRATOR: frozenset(Permission),
}


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a logged-in user (or ``cli:<os user>`` on the command line), and from
    where (an IP address, or ``cli``)."""

    name: str
    role: Role
    origin: str

    def may(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


def check_user_name(name: str) -> str:
    if not _USER_NAME.match(name):
        raise AccountError(
            "a user name is 2-63 characters: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"a password has at most {MAX_PASSWORD_LENGTH} characters")


# --- passwords -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScryptParameters:
    """scrypt's cost: memory is 128 * r * 2**log2_n bytes (128 MiB by default: N = 2**17,
    r = 8, p = 1, as OWASP's password storage guidance gives for scrypt)."""

    log2_n: int = 17
    r: int = 8
    p: int = 1
    length: int = 32


_HASH_PREFIX: Final = "scrypt"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class PasswordHasher:
    """Hashes new passwords with ``parameters``; verifies a hash with the parameters
    stored in it."""

    def __init__(self, parameters: ScryptParameters | None = None) -> None:
        self.parameters = parameters or ScryptParameters()
        # Verified against when the user does not exist, so that an unknown name costs as
        # much time as a wrong password (no probing for names). Made at the first need:
        # a command that checks no password does not pay for it.
        self._dummy: str | None = None

    def hash(self, password: str) -> str:
        p = self.parameters
        salt = secrets.token_bytes(16)
        derived = Scrypt(salt=salt, length=p.length, n=2**p.log2_n, r=p.r, p=p.p).derive(
            password.encode("utf-8")
        )
        return f"{_HASH_PREFIX}${p.log2_n}${p.r}${p.p}${_b64(salt)}${_b64(derived)}"

    def verify(self, password: str, stored: str | None) -> bool:
        """Whether ``password`` matches ``stored`` (None: no such user; always False, at
        the cost of a real check)."""
        if stored is None:
            if self._dummy is None:
                self._dummy = self.hash(secrets.token_urlsafe(16))
            self._check(password, self._dummy)
            return False
        return self._check(password, stored)

    def needs_rehash(self, stored: str) -> bool:
        try:
            log2_n, r, p, _salt, _hash = _parse_hash(stored)
        except AccountError:
            return True
        want = self.parameters
        return (log2_n, r, p) != (want.log2_n, want.r, want.p)

    @staticmethod
    def _check(password: str, stored: str) -> bool:
        try:
            log2_n, r, p, salt, expected = _parse_hash(stored)
        except AccountError:
            return False
        kdf = Scrypt(salt=salt, length=len(expected), n=2**log2_n, r=r, p=p)
        try:
            kdf.verify(password.encode("utf-8"), expected)
        except InvalidKey:
            return False
        return True


def _parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != _HASH_PREFIX:
        raise AccountError("not a password hash of this gateway")
    try:
        log2_n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        derived = base64.b64decode(parts[5], validate=True)
    except ValueError:
        raise AccountError("not a password hash of this gateway") from None
    if not (1 <= log2_n <= 24 and 1 <= r <= 64 and 1 <= p <= 16 and salt and derived):
        raise AccountError("password hash parameters out of range")
    return log2_n, r, p, salt, derived


# --- session tokens and CSRF ------------------------------------------------------------------


def new_token() -> str:
    """A new session or API token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What the store keeps of a token (and looks it up by)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: derived from the session's secret token, so it needs
    no storage, differs per session, and cannot be made without the (HttpOnly) cookie."""
    mac = hmac.new(session_token.encode("utf-8"), b"igo-admin-csrf", hashlib.sha256)
    return mac.hexdigest()


# --- throttling ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Throttle:
    """How long a login must wait after ``failures`` failed attempts in a row.

    ``free`` failures cost nothing; each one after that doubles the wait, from ``base``
    up to ``ceiling``. A success resets the count (the store keeps it per account).
    """

    free: int = 5
    base: timedelta = timedelta(seconds=2)
    ceiling: timedelta = timedelta(minutes=15)

    def wait(self, failures: int) -> timedelta:
        if failures < self.free:
            return timedelta(0)
        doublings = min(failures - self.free, 20)
        wait: timedelta = self.base * (2**doublings)
        return min(wait, self.ceiling)

    def allowed_at(self, failures: int, last_failure: datetime | None) -> datetime | None:
        """When the next attempt may be made; None: now."""
        wait = self.wait(failures)
        if not wait or last_failure is None:
            return None
        return last_failure + wait

    def refuses(self, failures: int, last_failure: datetime | None, now: datetime) -> bool:
        allowed = self.allowed_at(failures, last_failure)
        return allowed is not None and now < allowed
