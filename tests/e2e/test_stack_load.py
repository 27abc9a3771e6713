"""Under a steady stream of writes, the embedded stack's time-driven work keeps its pace.

`python -m chalicelib.local serve` (claims of 2 s, sweeper every 0.2 s) while clients create tasks
as fast as the stack takes them: a claim nobody reclaims must still expire within seconds of its
`takenUntil`. The load is bounded (it stops once the claim expired, or after LOAD_LIMIT seconds).
Pending tasks get their first extra hint after the default 10 minutes: the sweeper's only work
here is the abandoned claim.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import slugid

from tests.harness import E2E_ENV, Served, runs, serving, task_def_now

SETTINGS = {k: v for k, v in E2E_ENV.items() if k != "TASKQUEUE_REDISPATCH_AFTER"}

CLIENTS = 8  # concurrent createTask loops: the API's threads leave the pump behind the writes
LOAD_LIMIT = 60.0  # seconds the load may last at most
LATE = 10.0  # the most a claim may expire after takenUntil (sweeper interval 0.2 s; a busy machine)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving(SETTINGS) as s:
        yield s


def when(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_an_abandoned_claim_expires_on_time_while_tasks_are_created_continuously(served: Served) -> None:
    stop = threading.Event()
    created = [0] * CLIENTS

    def load(i: int) -> None:
        queue = served.queue()
        end = time.monotonic() + LOAD_LIMIT
        while not stop.is_set() and time.monotonic() < end:
            queue.createTask(slugid.nice(), task_def_now("e2e/load"))
            created[i] += 1

    loaders = [threading.Thread(target=load, args=(i,), name=f"load-{i}", daemon=True) for i in range(CLIENTS)]
    for t in loaders:
        t.start()
    try:
        queue = served.queue()
        while sum(created) < 50:  # the load is on
            assert any(t.is_alive() for t in loaders), "the load stopped"
            time.sleep(0.1)
        task_id = slugid.nice()
        queue.createTask(task_id, task_def_now("e2e/abandoned"))
        # claimTask, not claimWork: a hint would come from the stream, behind the backlog of the load.
        claimed = queue.claimTask(task_id, "0", {"workerGroup": "e2e", "workerId": "gone"})
        taken_until = when(claimed["takenUntil"])  # and never reclaimed

        status: dict[str, Any] = {}
        while time.time() < taken_until + LATE + 20 and all(t.is_alive() for t in loaders):
            status = queue.status(task_id)["status"]
            if status["runs"][0]["state"] != "running":
                break
            time.sleep(0.2)
        under_load = all(t.is_alive() for t in loaders)
    finally:
        stop.set()
        for t in loaders:
            t.join(timeout=30)

    assert under_load, f"the load ended first ({sum(created)} tasks created): it did not last the test"
    assert runs(status)[0] == (0, "exception", "scheduled", "claim-expired"), (
        f"no expiry {time.time() - taken_until:.0f} s after takenUntil, {sum(created)} tasks created meanwhile"
    )
    late = when(status["runs"][0]["resolved"]) - taken_until
    assert late < LATE, f"the claim expired {late:.1f} s after takenUntil under load ({sum(created)} tasks created)"
    print(f"claim expired {late:.1f} s after takenUntil; {sum(created)} tasks created")
