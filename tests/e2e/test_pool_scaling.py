"""Worker pools with minCapacity 0 on the embedded stack's local provider, end to end.

- A burst of tasks makes the provisioner start reference-worker processes, never beyond the
  pool's maximum; they register, run the burst, and once the queue is idle the scanner ends them
  and the pool is back to no workers — processes included.
- Single tasks on an idle pool (workers of capacity 2) each start within seconds, and cost the pool
  at most one launch: no churn of workers launched, found over capacity and removed while the task
  they were launched for waits. The tasks come far enough apart that the pool is idle (no worker
  left, or one on its way out) when each arrives: the first on a pool that never had a worker, the
  second after the first's worker went idle.

The stack runs the provisioner every second. Waits are bounded polls; nothing asserts on durations
but generous bounds: what fails is a task waiting for a second launch, or one that never starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import slugid
import taskcluster

from bench.cold_pool import run
from chalicelib.local.demo import pool_definition
from tests.harness import E2E_ENV, ROOT_CLIENT, Served, eventually, running, serving, task_def_now

POOL = "e2e-scaling/burst"
MAX_WORKERS, CAPACITY = 3, 2
BURST = 24  # tasks of about a second each: several seconds of work for the pool at its maximum
SINGLE_TASKS, GAP = 2, 8.0  # single tasks, seconds apart
ALIVE = ("requested", "running", "stopping")


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving({**E2E_ENV, "TASKQUEUE_PROVISION_INTERVAL": "1"}) as s:
        yield s


def clients(served: Served) -> tuple[Any, Any]:
    options = {"rootUrl": served.root_url, "credentials": ROOT_CLIENT}
    return taskcluster.Queue(options), taskcluster.WorkerManager(options)


def workers(manager: Any) -> list[dict[str, Any]]:
    return list(manager.listWorkersForWorkerPool(POOL)["workers"])


def test_a_min_0_pool_scales_up_under_a_burst_within_its_maximum_and_back_to_zero_when_idle(served: Served) -> None:
    queue, manager = clients(served)
    manager.createWorkerPool(POOL, {**pool_definition(MAX_WORKERS, CAPACITY), "description": "e2e: a burst"})
    assert workers(manager) == []

    task_ids = [slugid.nice() for _ in range(BURST)]
    for task_id in task_ids:
        body = task_def_now(POOL, deadline_in=timedelta(minutes=30))
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


def test_single_tasks_on_an_idle_pool_start_within_seconds_with_at_most_one_launch_each(served: Served) -> None:
    timelines, seen = run(served.root_url, ROOT_CLIENT, SINGLE_TASKS, GAP)
    for t in timelines:
        assert t.state == "completed", t
        assert t.claimed is not None and t.claimed - t.created < 30, t
        assert len(t.launched) <= 1, t  # launched for it, or a worker that was still up
    assert len(seen) <= SINGLE_TASKS, seen
