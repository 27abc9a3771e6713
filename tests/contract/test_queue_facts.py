"""QueueFacts: what the provisioner asks the queue about a task queue and its workers."""

from __future__ import annotations

from tests.contract.backends import Queue

QUEUE = "proj/linux"


def test_counts_are_the_pending_and_the_claimed_tasks_of_the_task_queue(queue: Queue) -> None:
    assert queue.facts.counts(QUEUE) == (0, 0)
    for _ in range(3):
        queue.add_pending(QUEUE)
    queue.hold(QUEUE, "w1")
    queue.add_pending("proj/other")
    assert queue.facts.counts(QUEUE) == (3, 1)


def test_held_runs_are_grouped_by_the_worker_holding_them(queue: Queue) -> None:
    queue.add_pending(QUEUE)
    a = queue.hold(QUEUE, "w1")
    b = queue.hold(QUEUE, "w2")
    c = queue.hold(QUEUE, "w1")
    queue.hold("proj/other", "w3")
    held = queue.facts.held_runs(QUEUE)
    assert {w: sorted(runs) for w, runs in held.items()} == {
        ("wg", "w1"): sorted([(a, 0), (c, 0)]),
        ("wg", "w2"): [(b, 0)],
    }


def test_a_worker_shutdown_frees_the_run_and_it_is_pending_again(queue: Queue) -> None:
    task_id = queue.hold(QUEUE, "w1")
    queue.facts.worker_shutdown(task_id, 0)
    assert queue.facts.held_runs(QUEUE) == {}
    assert queue.facts.counts(QUEUE) == (1, 0)


def test_no_activity_is_known_of_workers_that_never_claimed(queue: Queue) -> None:
    assert queue.facts.activity(QUEUE, []) == {}
    assert queue.facts.activity(QUEUE, [("wg", "never-seen")]) == {}


def test_a_worker_shutdown_of_a_run_resolved_meanwhile_is_no_error(queue: Queue) -> None:
    task_id = queue.hold(QUEUE, "w1")
    queue.complete(task_id)
    queue.facts.worker_shutdown(task_id, 0)
    assert queue.facts.counts(QUEUE) == (0, 0)
