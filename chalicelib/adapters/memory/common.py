"""What every table does, for the in-memory fakes: the helpers they share.

Dates kept to the millisecond (`_ms`), values through JSON (`_json_copy`), the item size limit
(`_check_fits`), the adapters' spread of a sparse index (`_shard`), one Query over sorted rows
(`_query`) and the adapters' continuation tokens (`_token`, `_start`), and the workers and pools
tables' worker sort key (`_worker_sk`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from ...domain.errors import InputError
from ...domain.model import format_date, parse_date
from ..items import MAX_ITEM_BYTES
from ..pagination import Bounds, decode_token, encode_token

T = TypeVar("T")
Key = tuple[str, ...]


def _ms(dt: datetime) -> datetime:
    """A date as a table gives it back: UTC, to the millisecond."""
    return parse_date(format_date(dt))


def _opt_ms(dt: datetime | None) -> datetime | None:
    return None if dt is None else _ms(dt)


def _shard(key: str, shards: int) -> str:
    """The adapters' spread of a sparse index over `shards` partitions."""
    return str(int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % shards)


def _json_copy(value: T) -> T:
    copied: T = json.loads(json.dumps(value, separators=(",", ":")))
    return copied


def _check_fits(what: str, attributes: Mapping[str, Any]) -> None:
    """items.check_fits over the attributes (the serialized row is a little larger: only rows near
    the limit could be told apart)."""
    size = len(json.dumps(attributes, default=str).encode())
    if size > MAX_ITEM_BYTES:
        raise InputError(f"{what} would take {size} bytes to store; the limit is {MAX_ITEM_BYTES}")


def _query(
    rows: Iterable[tuple[Key, T]], start: Key | None, limit: int | None, descending: bool = False
) -> tuple[list[T], Key | None]:
    """One Query: the rows after `start` in key order (reversed: before it), at most `limit`, and
    the key of the last one if the page is full (DynamoDB's LastEvaluatedKey when Limit stops it)."""
    ordered = sorted(rows, key=lambda r: r[0], reverse=descending)
    if start is not None:
        ordered = [r for r in ordered if (r[0] < start if descending else r[0] > start)]
    page = ordered if limit is None else ordered[:limit]
    last = page[-1][0] if page and limit is not None and len(page) >= limit else None
    return [item for _, item in page], last


def _token(names: Sequence[str], values: Sequence[str] | None) -> str | None:
    """A continuation token as the adapters make one: the LastEvaluatedKey, encoded."""
    if values is None:
        return None
    return encode_token({n: {"S": v} for n, v in zip(names, values, strict=True)})


def _start(token: str | None, names: Sequence[str], sort: Sequence[str], bounds: Bounds) -> Key | None:
    """The sort key a token stands for, refused (InputError) as the adapter refuses it."""
    start = decode_token(token, set(names), bounds)
    return None if start is None else tuple(start[n]["S"] for n in sort)


def _worker_sk(worker_group: str, worker_id: str) -> str:
    return f"worker/{worker_group}/{worker_id}"
