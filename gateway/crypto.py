"""Encryption at rest: AES-256-GCM for stored payloads, and a keyed hash for lookups.

A :class:`Keyring` holds named data keys (one of them current, used for new data; the others
only to read what they sealed until it is re-encrypted) and an index key for
:meth:`Keyring.index`, an HMAC-SHA256 that lets the store find a woman's lines by BSN
without keeping the number itself. The index key never rotates: changing it would break
every lookup. The audit log's chain is keyed with a key derived from it
(:meth:`Keyring.audit_key`).

A sealed value is ``b"IGO1" || nonce (12 bytes) || ciphertext+tag``; the key id travels
next to it in the store. The associated data binds a ciphertext to its place (e.g. the
payload's SHA-256), so a sealed value copied to another row does not open.

The key file (TOML, owner-readable only)::

    current = "2026-11"
    index = "<base64 of 32 bytes>"

    [keys]
    "2026-11" = "<base64 of 32 bytes>"
    "2025-05" = "<base64 of 32 bytes>"   # older: kept until nothing uses it
"""

from __future__ import annotations

import base64
import hmac
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import ErrorKind, GatewayError

__all__ = [
    "CryptoError",
    "Keyring",
    "activate_key",
    "new_key_file",
    "remove_key",
    "rotate_key_file",
]

MAGIC = b"IGO1"
NONCE_BYTES = 12
KEY_BYTES = 32


class CryptoError(GatewayError):
    """A key file that cannot be used, or a sealed value that does not open (a key that
    is not in the keyring, or damaged bytes): either way the operator's keys are at fault."""

    code = "crypto"
    kind = ErrorKind.MISCONFIGURED


def _decode_key(name: str, text: object) -> bytes:
    try:
        raw = base64.b64decode(str(text), validate=True)
    except ValueError:
        raise CryptoError(f"key {name!r}: not base64") from None
    if len(raw) != KEY_BYTES:
        raise CryptoError(f"key {name!r}: must be {KEY_BYTES} bytes, is {len(raw)}")
    return raw


@dataclass(frozen=True)
class Keyring:
    keys: Mapping[str, bytes]
    current: str
    index_key: bytes

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise CryptoError(f"the current key {self.current!r} is not among the keys")

    @classmethod
    def load(cls, path: Path) -> Keyring:
        try:
            mode = path.stat().st_mode
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise CryptoError(f"{path}: cannot read ({exc.strerror})") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise CryptoError(f"{path}: not a key file ({exc})") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise CryptoError(f"{path}: readable by others; chmod 600 it")
        keys = data.get("keys")
        if not isinstance(keys, dict) or not keys:
            raise CryptoError(f"{path}: no [keys]")
        return cls(
            keys={name: _decode_key(name, value) for name, value in keys.items()},
            current=str(data.get("current", "")),
            index_key=_decode_key("index", data.get("index", "")),
        )

    def seal(self, plaintext: bytes, associated: bytes) -> tuple[str, bytes]:
        """``(key id, sealed value)`` of ``plaintext`` under the current key."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keys[self.current]).encrypt(nonce, plaintext, associated)
        return self.current, MAGIC + nonce + sealed

    def open(self, key_id: str, sealed: bytes, associated: bytes) -> bytes:
        key = self.keys.get(key_id)
        if key is None:
            raise CryptoError(f"no key {key_id!r} in the key file (was it removed too early?)")
        if not sealed.startswith(MAGIC):
            raise CryptoError("not a sealed value")
        nonce = sealed[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
        try:
            return AESGCM(key).decrypt(nonce, sealed[len(MAGIC) + NONCE_BYTES :], associated)
        except InvalidTag:
            raise CryptoError("a sealed value does not open: damaged or moved") from None

    def audit_key(self) -> bytes:
        """The key of the audit log's chain (:mod:`gateway.admin.audit`): derived from the
        index key, which never rotates, so the chain keeps one key for good; it is not
        the index key itself, so neither use can stand in for the other."""
        return hmac.new(self.index_key, b"igo-gateway audit chain v1", sha256).digest()

    def index(self, value: str) -> str:
        """The keyed hash of ``value`` (hex), for lookups without the value itself."""
        return hmac.new(self.index_key, value.encode("utf-8"), sha256).hexdigest()


def _key_text() -> str:
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def _write_private(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(partial, path)


def _render(current: str, index: str, keys: Mapping[str, str]) -> str:
    lines = [
        "# Keys of the gateway's encryption at rest. Keep this file secret and backed up",
        "# separately from the store: without it the stored payloads cannot be read.",
        f'current = "{current}"',
        f'index = "{index}"',
        "",
        "[keys]",
        *(f'"{name}" = "{value}"' for name, value in keys.items()),
    ]
    return "\n".join(lines) + "\n"


def _key_id(now: datetime) -> str:
    """When the key was made, and a random part so that two made at once differ."""
    return now.astimezone(UTC).strftime("k%Y%m%dT%H%M%S-") + os.urandom(3).hex()


def new_key_file(path: Path, *, now: datetime) -> str:
    """Write a new key file with one data key and an index key; the data key's id."""
    if path.exists():
        raise CryptoError(f"{path} exists; keys are never overwritten")
    key_id = _key_id(now)
    _write_private(path, _render(key_id, _key_text(), {key_id: _key_text()}))
    return key_id


def _rewrite(path: Path, ring: Keyring, current: str, extra: Mapping[str, str]) -> None:
    keys = {name: base64.b64encode(raw).decode("ascii") for name, raw in ring.keys.items()}
    keys.update(extra)
    index = base64.b64encode(ring.index_key).decode("ascii")
    _write_private(path, _render(current, index, keys))


def rotate_key_file(path: Path, *, now: datetime, activate: bool = True) -> str:
    """Add a new data key to the key file — current at once, or (``activate=False``) only
    known, for gateways that must all be able to read it before any of them writes with
    it. The old keys stay, to read what they sealed until it is re-encrypted. The new
    key's id."""
    ring = Keyring.load(path)
    key_id = _key_id(now)
    if key_id in ring.keys:
        raise CryptoError(f"a key {key_id!r} exists already; try again")
    _rewrite(path, ring, key_id if activate else ring.current, {key_id: _key_text()})
    return key_id


def activate_key(path: Path, key_id: str) -> None:
    """Make ``key_id``, already in the key file, the current key."""
    ring = Keyring.load(path)
    if key_id not in ring.keys:
        raise CryptoError(f"{path}: no key {key_id!r}")
    _rewrite(path, ring, key_id, {})


def remove_key(path: Path, key_id: str) -> None:
    """Take ``key_id`` out of the key file (never the current one). The caller checks
    first that the store no longer needs it (``igo-gateway keys retire`` does)."""
    ring = Keyring.load(path)
    if key_id not in ring.keys:
        raise CryptoError(f"{path}: no key {key_id!r}")
    if key_id == ring.current:
        raise CryptoError(f"{key_id!r} is the current key; rotate first")
    kept = Keyring(
        keys={k: v for k, v in ring.keys.items() if k != key_id},
        current=ring.current,
        index_key=ring.index_key,
    )
    _rewrite(path, kept, ring.current, {})
