"""A worker pool with minCapacity 0 on the embedded stack's local provider, end to end: a burst of
tasks makes the provisioner start reference-worker processes, never beyond the pool's maximum; they
register, run the burst, and once the queue is idle the scanner ends them and the pool is back to
no workers — processes included.

The stack runs the provisioner every second. Waits are bounded polls; nothing asserts on durations.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import slugid
import taskcluster

from chalicelib.local.demo import pool_definition
from tests.e2e.test_embedded_stack import ENV, ROOT_TOKEN, Served, definition, eventually, running, serving

POOL = "e2e-scaling/burst"
MAX_WORKERS, CAPACITY = 3, 2
BURST = 24  # tasks of about a second each: several seconds of work for the pool at its maximum
ALIVE = ("requested", "running", "stopping")


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving({**ENV, "TASKQUEUE_PROVISION_INTERVAL": "1"}) as s:
        yield s


def clients(served: Served) -> tuple[Any, Any]:
    options = {"rootUrl": served.root_url, "credentials": {"clientId": "root", "accessToken": ROOT_TOKEN}}
    return taskcluster.Queue(options), taskcluster.WorkerManager(options)


def workers(manager: Any) -> list[dict[str, Any]]:
    return list(manager.listWorkersForWorkerPool(POOL)["workers"])


def test_a_min_0_pool_scales_up_under_a_burst_within_its_maximum_and_back_to_zero_when_idle(served: Served) -> None:
    queue, manager = clients(served)
    manager.createWorkerPool(POOL, {**pool_definition(MAX_WORKERS, CAPACITY), "description": "e2e: a burst"})
    assert workers(manager) == []

    task_ids = [slugid.nice() for _ in range(BURST)]
    for task_id in task_ids:
        body = definition(POOL, deadline_in=timedelta(minutes=30))
        body["payload"] = {"command": [["sh", "-c", "sleep 1"]], "maxRunTime": 60}
        queue.createTask(task_id, body)

    most_alive = 0
    seen: dict[str, set[str]] = {}

    def observe() -> list[dict[str, Any]]:
        nonlocal most_alive
        listed = workers(manager)
        for w in listed:
            seen.setdefault(w["workerId"], set()).add(w["state"])
        alive = sum(w["capacity"] for w in listed if w["state"] in ALIVE)
        assert alive <= MAX_WORKERS * CAPACITY, listed  # the hard maximum, at every look
        most_alive = max(most_alive, alive)
        return listed

    def all_completed() -> bool:
        observe()
        return all(queue.status(t)["status"]["state"] == "completed" for t in task_ids)

    eventually(all_completed, 120, f"the burst of {BURST} tasks to complete")
    assert most_alive == MAX_WORKERS * CAPACITY  # the burst filled the pool

    ran_on = {run["workerId"] for t in task_ids for run in queue.status(t)["status"]["runs"]}
    assert ran_on <= set(seen) and len(ran_on) > 1  # provisioned workers ran them, several at once

    # Idle: over the target of 0, every worker is ended and seen gone.
    def all_stopped() -> list[dict[str, Any]] | None:
        listed = observe()
        return listed if listed and all(w["state"] == "stopped" for w in listed) else None

    listed = eventually(all_stopped, 60, "every worker of the idle pool to be stopped")
    assert len(listed) == len(seen) >= MAX_WORKERS
    for worker_id, states in seen.items():
        assert "running" in states and "stopped" in states, (worker_id, states)  # it registered, then ended
    assert not running(lambda cmd: "-m worker" in cmd and any(w in cmd for w in seen))

    # The queue's own view of the pool's workers agrees: they claimed work on this task queue.
    provisioner_id, worker_type = POOL.split("/")
    listed_by_queue = queue.listWorkers(provisioner_id, worker_type)["workers"]
    assert {w["workerId"] for w in listed_by_queue} == ran_on
