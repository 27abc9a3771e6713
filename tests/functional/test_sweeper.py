"""The sweeper, driven by the fake clock: claim expiry, deadlines, lost hints; safe to overlap."""

from __future__ import annotations

import functools
import operator
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from chalice.local import LambdaContext

from chalicelib.domain.model import Task, parse_date
from chalicelib.services.sweeper import SAFETY_MARGIN
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


def sweeper_times(stack: Harness, task_id: str) -> list[datetime]:
    """The task's entries in the sweeper's index (`byDue`), whenever due."""
    store, far = stack.c.queue.store, stack.clock.now() + timedelta(days=30)
    shards = range(stack.c.settings.due_shards_swept)
    return [e.due_at for shard in shards for e in store.due(shard, far, 100) if e.task_id == task_id]


def test_a_claim_moves_no_sweeper_entry_and_a_run_still_going_is_rearmed_unchanged(stack: Harness) -> None:
    """A claim keeps the pending run's sweeper time (600 s after scheduling, before the lease ends):
    no index entry moves. The sweeper, looking then, finds the run still going: it moves the time to
    the lease's end without changing the task (no event, no report of a change); the claim still
    expires on time."""
    task_id = stack.create()
    scheduled = parse_date(stack.status(task_id)["runs"][0]["scheduled"])
    stack.claim()
    stack.pump.step()
    assert [name for name, _ in stack.events()][-1] == "task-running"
    assert sweeper_times(stack, task_id) == [scheduled + timedelta(seconds=600)]
    before = stack.status(task_id)
    stack.advance(601)
    assert stack.sweep() == []
    assert stack.status(task_id) == before
    assert stack.events() == []
    assert sweeper_times(stack, task_id) == [parse_date(before["runs"][0]["takenUntil"])]
    stack.advance(1200 - 601)
    assert stack.sweep() == [task_id]
    assert runs(stack.status(task_id))[0] == (0, "exception", "scheduled", "claim-expired")


def test_a_run_resolved_before_its_sweeper_time_never_moved_its_entry(stack: Harness) -> None:
    task_id = stack.create()
    [claim] = stack.claim()
    assert report(stack, task_id, claim["runId"], "completed").status_code == 200
    assert sweeper_times(stack, task_id) == []


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


# --- many tasks: shards, rounds and the time budget -------------------------------------------------
def expired_claims(stack: Harness, n: int) -> list[str]:
    """`n` running tasks (3 retries each) whose claims have just expired."""
    ids = [stack.create(retries=3) for _ in range(n)]
    for task_id in ids:
        assert claim_task(stack, task_id).status_code == 200
    stack.advance(stack.settings.claim_timeout + 1)
    return ids


def retried(stack: Harness, task_id: str) -> bool:
    expected = [(0, "exception", "scheduled", "claim-expired"), (1, "pending", "retry", None)]
    return runs(stack.status(task_id)) == expected


def by_shard(stack: Harness) -> list[set[str]]:
    """The due tasks of each shard of the sweeper's index."""
    now = stack.clock.now()
    return [{e.task_id for e in stack.c.queue.store.due(s, now, 1000)} for s in range(stack.settings.due_shards)]


def writes_allowed(stack: Harness, monkeypatch: pytest.MonkeyPatch, n: int) -> Callable[[], float]:
    """A time-left function for a tick: plenty until the tasks table has taken `n` writes, then none."""
    store = stack.c.queue.store
    save = store.save
    writes: list[str] = []

    def counted(task: Task, expected_version: int) -> Task | None:
        writes.append(task.task_id)
        return save(task, expected_version)

    monkeypatch.setattr(store, "save", counted)
    return lambda: 60.0 if len(writes) < n else 0.0


def test_a_shard_with_a_backlog_does_not_starve_the_others(stack: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    stack.c.queue.settings = replace(stack.settings, sweep_batch=2)
    expired_claims(stack, 16)
    big, small = sorted(by_shard(stack), key=len, reverse=True)
    for task_id in sorted(small)[2:]:  # the small shard keeps 2 due tasks, the big one 8 or more
        report(stack, task_id, 0, "completed")
    small_due = set(sorted(small)[:2])
    assert len(big) >= 8
    # Time for one round only: the sweep_batch (2) of each shard.
    changed = stack.c.sweeper.sweep(writes_allowed(stack, monkeypatch, 4)).changed
    stack.pump.step()
    assert small_due <= set(changed)
    assert len(set(changed) & big) == 2
    assert all(retried(stack, task_id) for task_id in small_due)


def test_a_tick_keeps_going_while_work_is_due(stack: Harness) -> None:
    stack.c.queue.settings = replace(stack.settings, sweep_batch=2)
    ids = expired_claims(stack, 11)  # several rounds of 2 per shard
    result = stack.c.sweeper.sweep()
    stack.pump.step()
    assert sorted(result.changed) == sorted(ids)
    assert not result.out_of_time
    assert all(retried(stack, task_id) for task_id in ids)


def test_a_tick_with_no_time_left_takes_no_task(stack: Harness) -> None:
    ids = expired_claims(stack, 3)
    result = stack.c.sweeper.sweep(lambda: SAFETY_MARGIN)
    assert result.changed == [] and result.out_of_time
    assert all(stack.status(task_id)["state"] == "running" for task_id in ids)
    assert sorted(stack.sweep()) == sorted(ids)


def test_a_tick_stops_when_its_time_runs_out_and_the_next_continues(
    stack: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack.c.queue.settings = replace(stack.settings, sweep_batch=2)
    ids = expired_claims(stack, 12)
    first = stack.c.sweeper.sweep(writes_allowed(stack, monkeypatch, 5))
    assert first.out_of_time
    assert 5 <= len(first.changed) < len(ids)  # writes already under way when time ran out finish
    rest = stack.sweep()
    assert sorted(first.changed + rest) == sorted(ids)  # each task once
    assert all(retried(stack, task_id) for task_id in ids)


def test_the_scheduled_function_stops_before_its_invocation_ends(stack: Harness) -> None:
    expired_claims(stack, 2)
    # Lambda's context with at most 5 s left: less than the sweeper's safety margin
    context = LambdaContext(function_name="sweeper", memory_size=512, max_runtime_ms=5000)

    event = {
        "id": "1",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2030-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {},
        "version": "0",
    }
    result = stack.pump.app.handler_map["sweeper"](event, context)
    assert result["changed"] == 0 and result["outOfTime"]
    assert stack.claim() == []


def test_rows_written_with_more_shards_are_still_swept_after_lowering_the_count(stack: Harness) -> None:
    ids = expired_claims(stack, 8)  # written with due_shards=2
    assert all(by_shard(stack))
    stack.c.queue.settings = replace(stack.settings, due_shards=1, due_shards_before=2)
    assert sorted(stack.sweep()) == sorted(ids)
