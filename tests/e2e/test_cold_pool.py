"""Single tasks on an idle pool (minCapacity 0, workers of capacity 2) on the embedded stack: each
starts within seconds, and costs the pool at most one launch — no churn of workers launched, found
over capacity and removed while the task they were launched for waits.

The stack's provisioner runs every second; the tasks come far enough apart that the pool is idle
(no worker left, or one on its way out) when each arrives. Bounds are generous: what fails is a
task waiting for a second launch, or one that never starts.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.cold_pool import run
from tests.e2e.test_embedded_stack import ENV, ROOT_TOKEN, Served, serving

TASKS, GAP = 3, 8.0


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving({**ENV, "TASKQUEUE_PROVISION_INTERVAL": "1"}) as s:
        yield s


def test_single_tasks_on_an_idle_pool_start_within_seconds_with_at_most_one_launch_each(served: Served) -> None:
    timelines, seen = run(served.root_url, {"clientId": "root", "accessToken": ROOT_TOKEN}, TASKS, GAP)
    for t in timelines:
        assert t.state == "completed", t
        assert t.claimed is not None and t.claimed - t.created < 30, t
        assert len(t.launched) <= 1, t  # launched for it, or a worker that was still up
    assert len(seen) <= TASKS, seen
