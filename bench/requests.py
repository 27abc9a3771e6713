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


@contextmanager
def counting_requests(ignore: Callable[[], bool] = lambda: False) -> Iterator[Counter[tuple[str, str]]]:
    """Count requests made in this process while the block runs, except those made while
    `ignore()` is true (the benchmark's own set-up calls, say)."""
    counts: Counter[tuple[str, str]] = Counter()
    original = BaseClient._make_api_call

    def counted(self: BaseClient, operation_name: str, api_params: Any) -> Any:
        if not ignore():
            with _lock:
                counts[(self.meta.service_model.service_name, operation_name)] += 1
        return original(self, operation_name, api_params)

    BaseClient._make_api_call = counted  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        BaseClient._make_api_call = original  # type: ignore[method-assign]


def per_task(counts: Counter[tuple[str, str]], tasks: int) -> dict[str, float]:
    return {f"{svc}:{op}": round(n / tasks, 3) for (svc, op), n in sorted(counts.items())}
