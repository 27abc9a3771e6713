"""Continuation tokens: a Query's LastEvaluatedKey, opaque to clients (reference §0.6)."""

from __future__ import annotations

import base64
import json
from typing import Any

from ..domain.errors import InputError


def encode_token(key: dict[str, Any] | None) -> str | None:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode() if key else None


def decode_token(token: str | None) -> dict[str, Any] | None:
    """The start key a token stands for; 400 InputError for anything that is not one."""
    if not token:
        return None
    try:
        start = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError):
        start = None
    if not isinstance(start, dict):
        raise InputError(f"Invalid continuationToken {token!r}")
    return start


def next_token(last: dict[str, Any] | None, returned: int, limit: int) -> str | None:
    """A token only when a full page came back and DynamoDB says more may follow."""
    return encode_token(last) if last and returned >= limit else None
