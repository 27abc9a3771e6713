"""The sweeper, driven by the fake clock: claim expiry, deadlines, lost hints; safe to overlap."""

from __future__ import annotations

import functools
import operator
import threading

from tests.harness import Harness, claim_task, report, runs


def test_an_expired_claim_is_retried(stack: Harness) -> None:
    task_id = stack.create(retries=2)
    stack.claim()
    stack.advance(1199)
    assert stack.sweep() == []
    stack.advance(2)
    assert stack.sweep() == [task_id]
    status = stack.status(task_id)
    assert runs(status) == [(0, "exception", "scheduled", "claim-expired"), (1, "pending", "retry", None)]
    assert status["retriesLeft"] == 1
    [claim] = stack.claim()
    assert claim["runId"] == 1


def test_an_expired_claim_without_retries_left_is_final(stack: Harness) -> None:
    task_id = stack.create(retries=0)
    stack.claim()
    stack.advance(1201)
    stack.sweep()
    assert runs(stack.status(task_id)) == [(0, "exception", "scheduled", "claim-expired")]
    assert stack.claim() == []


def test_a_reclaimed_run_does_not_expire(stack: Harness) -> None:
    task_id = stack.create()
    stack.claim()
    stack.advance(1000)
    assert stack.call("POST", f"/task/{task_id}/runs/0/reclaim").status_code == 200
    stack.advance(1000)
    assert stack.sweep() == []
    assert stack.status(task_id)["state"] == "running"


def test_the_worker_of_an_expired_claim_gets_409(stack: Harness) -> None:
    task_id = stack.create()
    stack.claim()
    stack.advance(1201)
    stack.sweep()
    assert report(stack, task_id, 0, "completed").status_code == 409
    assert stack.call("POST", f"/task/{task_id}/runs/0/reclaim").status_code == 409


def test_a_pending_task_past_its_deadline_is_deadline_exceeded(stack: Harness) -> None:
    task_id = stack.create()
    stack.advance(3601)
    assert task_id in stack.sweep()
    assert runs(stack.status(task_id)) == [(0, "exception", "scheduled", "deadline-exceeded")]
    assert stack.claim() == []


def test_a_running_task_past_its_deadline_is_deadline_exceeded_not_retried(stack: Harness) -> None:
    from datetime import timedelta

    from chalicelib.domain.model import format_date

    deadline = format_date(stack.clock.now() + timedelta(seconds=600))  # earlier than the 20-minute lease
    task_id = stack.create(deadline=deadline)
    [claim] = stack.claim()
    assert claim["takenUntil"] > deadline
    stack.advance(601)
    stack.sweep()
    assert runs(stack.status(task_id)) == [(0, "exception", "scheduled", "deadline-exceeded")]


def test_a_completed_task_is_untouched_by_its_deadline(stack: Harness) -> None:
    task_id = stack.create()
    stack.claim()
    report(stack, task_id, 0, "completed")
    stack.advance(7200)
    assert stack.sweep() == []
    assert stack.status(task_id)["state"] == "completed"


def test_a_lost_hint_is_sent_again(stack: Harness) -> None:
    task_id = stack.create()
    stack.pump.step()
    sqs = stack.pump.sqs
    for url in sqs.list_queues(QueueNamePrefix="taskqueue-proj")["QueueUrls"]:
        sqs.purge_queue(QueueUrl=url)  # the hint is lost
    assert stack.claim() == []
    stack.advance(stack.settings.redispatch_after + 1)
    assert stack.sweep() == [task_id]
    [claim] = stack.claim()
    assert claim["status"]["taskId"] == task_id


def test_extra_hints_back_off(stack: Harness) -> None:
    stack.create()
    base = stack.settings.redispatch_after
    stack.advance(base + 1)
    assert len(stack.sweep()) == 1
    stack.advance(base)  # the next hint is due 3×base after scheduling
    assert stack.sweep() == []
    stack.advance(base)
    assert len(stack.sweep()) == 1


def test_two_sweeps_at_once_resolve_each_task_once(stack: Harness) -> None:
    ids = [stack.create(retries=3) for _ in range(6)]
    for task_id in ids:
        claim_task(stack, task_id)
    stack.advance(1201)
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda: results.append(stack.c.sweeper.sweep().changed)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(functools.reduce(operator.iadd, results, [])) == sorted(ids)
    for task_id in ids:
        status = stack.status(task_id)
        assert runs(status) == [(0, "exception", "scheduled", "claim-expired"), (1, "pending", "retry", None)]
        assert status["retriesLeft"] == 2


def test_a_sweep_racing_a_report_never_overwrites_it(stack: Harness) -> None:
    task_id = stack.create()
    stack.claim()
    stack.advance(1201)
    assert report(stack, task_id, 0, "completed").status_code == 200  # the worker was just in time
    assert stack.sweep() == []
    assert stack.status(task_id)["state"] == "completed"


def test_the_sweeper_handles_at_most_its_batch_per_tick(stack: Harness) -> None:
    from dataclasses import replace

    ids = [stack.create() for _ in range(5)]
    stack.advance(3601)
    stack.c.queue.settings = replace(stack.settings, sweep_batch=2)
    first = stack.sweep()
    assert len(first) == 2
    rest = stack.sweep() + stack.sweep()
    assert sorted(first + rest) == sorted(ids)
