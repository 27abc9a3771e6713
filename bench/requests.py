"""Counting the AWS requests the app makes, from botocore itself (not estimated).

Every AWS call — boto3's and pynamodb's — goes through botocore's BaseClient._make_api_call; the
counter wraps it for the duration of a `with` block and tallies (service, operation).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.client import BaseClient

_lock = threading.Lock()


class Counts(Counter[tuple[str, str]]):
    """Requests by (service, operation); `batch_items` counts the items of batched writes (a
    BatchWriteItem of 25 deletes is one request but 25 items, each billed as a write)."""

    def __init__(self) -> None:
        super().__init__()
        self.batch_items: Counter[tuple[str, str]] = Counter()


@contextmanager
def counting_requests(ignore: Callable[[], bool] = lambda: False) -> Iterator[Counts]:
    """Count requests made in this process while the block runs, except those made while
    `ignore()` is true (the benchmark's own set-up calls, say)."""
    counts = Counts()
    original = BaseClient._make_api_call

    def counted(self: BaseClient, operation_name: str, api_params: Any) -> Any:
        if not ignore():
            key = (self.meta.service_model.service_name, operation_name)
            with _lock:
                counts[key] += 1
                if operation_name == "BatchWriteItem":
                    counts.batch_items[key] += sum(len(r) for r in api_params.get("RequestItems", {}).values())
        return original(self, operation_name, api_params)

    BaseClient._make_api_call = counted  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        BaseClient._make_api_call = original  # type: ignore[method-assign]


def per_task(counts: Counter[tuple[str, str]], tasks: int) -> dict[str, float]:
    return {f"{svc}:{op}": round(n / tasks, 3) for (svc, op), n in sorted(counts.items())}
