"""What DynamoDB refuses of an item before it is written, as the caller's fault (a 400), not a 500."""

from __future__ import annotations

import json
from typing import Any

from ..domain.errors import InputError

# DynamoDB's item limit. A larger put is a ValidationException; a serialized row overstates the
# item a little (its JSON quoting), which only errs on the side of refusing.
MAX_ITEM_BYTES = 400 * 1024


def check_fits(row: Any, what: str) -> None:
    """400 InputError when `row` (a pynamodb Model) would be larger than DynamoDB stores."""
    size = len(json.dumps(row.serialize()).encode())
    if size > MAX_ITEM_BYTES:
        raise InputError(f"{what} would take {size} bytes to store; the limit is {MAX_ITEM_BYTES}")
