"""The queue's use cases on the in-memory fakes (adapters/memory/): a task's life from
createTask to its resolution, the sweeper's expiries, and what the outbox announces — the same
services container.build() wires, without moto, in milliseconds. `pump` plays the tasks stream."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.adapters.memory import MemoryFakes, memory_container, memory_fakes, pump
from chalicelib.clock import FakeClock
from chalicelib.container import Container
from chalicelib.domain.errors import RequestConflict
from chalicelib.domain.model import ReasonResolved, Task, TaskState, Worker, format_date
from chalicelib.domain.worker_info import WorkerKey
from tests.harness import TEST_SETTINGS

T0 = datetime(2030, 1, 1, tzinfo=UTC)
QUEUE = "proj/linux"
WORKER = Worker("wg", "w1")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def fakes(clock: FakeClock) -> MemoryFakes:
    return memory_fakes(TEST_SETTINGS, clock)


@pytest.fixture
def c(clock: FakeClock, fakes: MemoryFakes) -> Iterator[Container]:
    yield memory_container(TEST_SETTINGS, clock, fakes=fakes)


def body(clock: FakeClock, **overrides: Any) -> dict[str, Any]:
    now = clock.now()
    return {
        "taskQueueId": QUEUE,
        "created": format_date(now),
        "deadline": format_date(now + timedelta(hours=1)),
        "payload": {"command": [["true"]]},
        "metadata": {"name": "t", "description": "", "owner": "me@example.com", "source": "https://example.com"},
        **overrides,
    }


def create(c: Container, clock: FakeClock, task_id: str, **overrides: Any) -> Task:
    task = c.queue.create_task(task_id, body(clock, **overrides))
    pump(c)
    return task


def claim_work(c: Container, wanted: int = 10, worker: Worker = WORKER) -> list[tuple[str, int]]:
    claims = c.queue.claim_work(QUEUE, worker, wanted, lambda: 0.0, lambda: 30.0)
    pump(c)
    return [(task.task_id, run_id) for task, run_id in claims]


def announced(fakes: MemoryFakes) -> list[tuple[str, str]]:
    """(event, taskId or taskGroupId) of the events published since the last call."""
    return [
        (e.name, e.body["status"]["taskId"] if "status" in e.body else e.body["taskGroupId"])
        for e in fakes.events.take()
    ]


def test_a_task_lives_from_creation_to_completion(c: Container, clock: FakeClock, fakes: MemoryFakes) -> None:
    create(c, clock, "task-a")
    assert announced(fakes) == [("task-defined", "task-a"), ("task-pending", "task-a")]
    assert c.queue.pending_count(QUEUE) == 1
    assert claim_work(c) == [("task-a", 0)]
    assert c.queue.queue_counts(QUEUE) == (0, 1)
    clock.advance(30)
    done = c.queue.resolve("task-a", 0, ReasonResolved.COMPLETED)
    pump(c)
    assert done.state is TaskState.COMPLETED and done.runs[0].resolved == T0 + timedelta(seconds=30)
    assert announced(fakes) == [
        ("task-running", "task-a"),
        ("task-completed", "task-a"),
        ("task-group-resolved", "task-a"),  # its own group, of which it was the only member
    ]
    assert c.queue.queue_counts(QUEUE) == (0, 0)


def test_pending_count_is_exact_while_shallow_and_sqs_s_estimate_when_deep(c: Container, clock: FakeClock) -> None:
    c.queue.exact_count_entries = 3
    create(c, clock, "short", deadline=format_date(clock.now() + timedelta(minutes=30)))
    create(c, clock, "long-1")
    clock.advance(31 * 60)  # short's deadline passed: Taskcluster counts it no more
    assert c.queue.pending_count(QUEUE) == 1  # exact: every entry read
    create(c, clock, "long-2")
    create(c, clock, "long-3")
    # deeper than the entries read: the estimate from the queue's hints (short's hint is still there)
    assert c.queue.pending_count(QUEUE) == 4
    assert claim_work(c, 4) == [("long-1", 0), ("long-2", 0), ("long-3", 0)]
    assert c.queue.pending_count(QUEUE) == 0  # exact again: short alone is left, past its deadline


def test_a_repeated_create_is_idempotent_and_a_different_one_a_conflict(c: Container, clock: FakeClock) -> None:
    create(c, clock, "task-a")
    stored = c.queue.task("task-a")
    assert c.queue.create_task("task-a", body(clock)) == stored
    with pytest.raises(RequestConflict):
        c.queue.create_task("task-a", body(clock, priority="high"))


def test_claim_work_hands_out_higher_priorities_first(c: Container, clock: FakeClock) -> None:
    create(c, clock, "low", priority="low")
    create(c, clock, "urgent", priority="highest")
    assert claim_work(c, 1) == [("urgent", 0)]
    assert claim_work(c, 1) == [("low", 0)]
    assert claim_work(c, 1) == []


def test_an_expired_claim_is_retried_by_the_sweeper(c: Container, clock: FakeClock, fakes: MemoryFakes) -> None:
    create(c, clock, "task-a", retries=1)
    claim_work(c)
    clock.advance(TEST_SETTINGS.claim_timeout - 1)
    assert c.sweeper.sweep().changed == []
    clock.advance(2)
    assert c.sweeper.sweep().changed == ["task-a"]
    pump(c)
    task = c.queue.task("task-a")
    assert [(r.state, r.reason_resolved) for r in task.runs] == [
        (TaskState.EXCEPTION, ReasonResolved.CLAIM_EXPIRED),
        (TaskState.PENDING, None),
    ]
    assert claim_work(c, worker=Worker("wg", "w2")) == [("task-a", 1)]
    with pytest.raises(RequestConflict):
        c.queue.resolve("task-a", 0, ReasonResolved.COMPLETED)  # the first worker's run is over


def test_a_reclaimed_run_outlives_its_first_lease(c: Container, clock: FakeClock) -> None:
    create(c, clock, "task-a")
    claim_work(c)
    clock.advance(1000)
    c.queue.reclaim_task("task-a", 0)
    clock.advance(1000)
    assert c.sweeper.sweep().changed == []
    assert c.queue.task("task-a").state is TaskState.RUNNING


def test_a_pending_task_past_its_deadline_is_resolved_by_the_sweeper(c: Container, clock: FakeClock) -> None:
    create(c, clock, "task-a")
    clock.advance(3601)
    assert "task-a" in c.sweeper.sweep().changed
    run = c.queue.task("task-a").runs[0]
    assert (run.state, run.reason_resolved) == (TaskState.EXCEPTION, ReasonResolved.DEADLINE_EXCEEDED)
    pump(c)
    assert claim_work(c) == []


def test_a_lost_hint_is_sent_again_after_the_redispatch_delay(
    c: Container, clock: FakeClock, fakes: MemoryFakes
) -> None:
    create(c, clock, "task-a")
    [lost] = fakes.hints.receive(QUEUE, 1, 0)
    fakes.hints.delete([lost])
    assert claim_work(c) == []
    clock.advance(TEST_SETTINGS.redispatch_after)
    assert c.sweeper.sweep().changed == ["task-a"]
    pump(c)
    assert claim_work(c) == [("task-a", 0)]


def test_claims_and_new_tasks_mark_the_task_queue_and_worker_seen(c: Container, clock: FakeClock) -> None:
    create(c, clock, "task-a")
    claim_work(c)
    queues, _ = c.workers.task_queues(10, None)
    assert [q.task_queue_id for q in queues] == [QUEUE]
    worker = c.workers.worker(WorkerKey(QUEUE, "wg", "w1"))
    assert [(t.task_id, t.run_id) for t in worker.recent_tasks] == [("task-a", 0)]


def test_a_quarantined_worker_claims_nothing(c: Container, clock: FakeClock) -> None:
    create(c, clock, "task-a")
    key = WorkerKey(QUEUE, "wg", "w1")
    c.workers.declare(key, clock.now() + timedelta(days=1))
    c.workers.quarantine(key, clock.now() + timedelta(hours=1), "flaky", "admin")
    assert claim_work(c) == []
    assert claim_work(c, worker=Worker("wg", "w2")) == [("task-a", 0)]
