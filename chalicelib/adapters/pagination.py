"""Continuation tokens: a Query's LastEvaluatedKey, opaque to clients."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from ..domain.errors import InputError


def encode_token(key: dict[str, Any] | None) -> str | None:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode() if key else None


Bounds = Mapping[str, tuple[str, str]]
MAX_KEY_BYTES = 1024  # DynamoDB's sort key limit (partition keys: 2,048)
HIGHEST = "\U0010ffff"  # sorts after any character a key may hold


def equal(value: str) -> tuple[str, str]:
    """Bounds of a key attribute the query fixes (its partition)."""
    return value, value


def prefixed(prefix: str) -> tuple[str, str]:
    """Bounds of a key attribute the query's condition wants to begin with `prefix`."""
    return prefix, prefix + HIGHEST


def decode_token(
    token: str | None, keys: set[str] | None = None, bounds: Bounds | None = None
) -> dict[str, Any] | None:
    """The start key a token stands for; 400 InputError for anything that is not one of this
    very query: of a Query whose keys are `keys`, when given, and whose string attributes lie
    within `bounds` (low, high, inclusive). DynamoDB refuses a start key outside the query's
    partition or key condition, or longer than a key may be, with an error that would be a 500."""
    if not token:
        return None
    try:
        start = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError, RecursionError):  # RecursionError: nested arrays, a few thousand deep
        start = None
    # A key is {attribute: {"S"|"N": text}}: anything else would reach DynamoDB and fail there.
    if not isinstance(start, dict) or not start or not all(_key_value(v) for v in start.values()):
        raise InputError(f"Invalid continuationToken {token!r}")
    if keys is not None and set(start) != keys:
        raise InputError(f"Invalid continuationToken {token!r}")
    for name, (low, high) in (bounds or {}).items():
        value = start.get(name, {}).get("S")
        if value is None or not low <= value <= high:
            raise InputError(f"Invalid continuationToken {token!r}: not one of this listing")
    return start


def _key_value(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and len(value) == 1
        and next(iter(value)) in ("S", "N")
        and all(isinstance(v, str) and 0 < len(v.encode(errors="replace")) <= MAX_KEY_BYTES for v in value.values())
    )


def next_token(last: dict[str, Any] | None, returned: int, limit: int) -> str | None:
    """A token only when a full page came back and DynamoDB says more may follow."""
    return encode_token(last) if last and returned >= limit else None
