"""Continuation tokens: a Query's LastEvaluatedKey, opaque to clients (reference §0.6)."""

from __future__ import annotations

import base64
import json
from typing import Any

from ..domain.errors import InputError


def encode_token(key: dict[str, Any] | None) -> str | None:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode() if key else None


def decode_token(token: str | None, keys: set[str] | None = None) -> dict[str, Any] | None:
    """The start key a token stands for; 400 InputError for anything that is not one (of a Query
    whose keys are `keys`, when given: DynamoDB refuses other start keys, and moto crashes)."""
    if not token:
        return None
    try:
        start = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError):
        start = None
    # A key is {attribute: {"S"|"N": text}}: anything else would reach DynamoDB and fail there.
    if not isinstance(start, dict) or not start or not all(_key_value(v) for v in start.values()):
        raise InputError(f"Invalid continuationToken {token!r}")
    if keys is not None and set(start) != keys:
        raise InputError(f"Invalid continuationToken {token!r}")
    return start


def _key_value(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("S", "N") and all(
        isinstance(v, str) for v in value.values()
    )


def next_token(last: dict[str, Any] | None, returned: int, limit: int) -> str | None:
    """A token only when a full page came back and DynamoDB says more may follow."""
    return encode_token(last) if last and returned >= limit else None
