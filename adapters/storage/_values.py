"""Rules on stored values that every store implementation applies the same way."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.ports.messages import NewMessage

__all__ = [
    "CONFIRMED_DESCRIPTION",
    "check_limit",
    "check_new_message",
    "dump_metadata",
    "load_metadata",
]

CONFIRMED_DESCRIPTION = "Ontvangst bevestigd door de ontvanger."


def check_new_message(message: NewMessage) -> None:
    """Refuse a message whose journal identity or timestamp would be wrong.

    The journal is content-addressed: a payload stored under another hash would be served
    for every message that names that hash.
    """
    if hashlib.sha256(message.payload).hexdigest() != message.sha256:
        raise ValueError(f"message {message.traceer_id}: sha256 does not match the payload")
    _check_aware(message.created_at)


def check_limit(limit: int) -> None:
    if limit < 0:
        raise ValueError("limit must not be negative")


def _check_aware(value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware")


def dump_metadata(metadata: Mapping[str, Any]) -> str:
    """Metadata as the JSON text stored (stable key order, so equal metadata is equal text)."""
    return json.dumps(dict(metadata), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def load_metadata(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("stored metadata is not a JSON object")
    return value
