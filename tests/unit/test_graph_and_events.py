"""The pure rules of task graphs and the events a row change publishes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain import transitions as tr
from chalicelib.domain.definition import new_task, normalize
from chalicelib.domain.errors import RequestConflict
from chalicelib.domain.events import resolution, task_events, task_routing_key
from chalicelib.domain.graph import TaskGroup, check_membership, group_expiry_for, satisfies, seal
from chalicelib.domain.model import ReasonResolved, Task, TaskState, Worker, format_date

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
TASK_ID = "fN1SbArXTPSVFNUvaOlinQ"
WORKER = Worker("wg", "w1")


def task(**overrides: object) -> Task:
    body = {
        "taskQueueId": "proj/linux",
        "created": format_date(NOW),
        "deadline": format_date(NOW + timedelta(hours=1)),
        "payload": {},
        "metadata": {"name": "n", "description": "d", "owner": "o", "source": "https://x"},
        "routes": ["index.a", "notify.b"],
        "tags": {"k": "v"},
        **overrides,
    }
    return new_task(TASK_ID, normalize(TASK_ID, body, NOW, 5))


@pytest.mark.parametrize(
    ("state", "requires", "expected"),
    [
        (TaskState.COMPLETED, "all-completed", True),
        (TaskState.FAILED, "all-completed", False),
        (TaskState.EXCEPTION, "all-completed", False),
        (TaskState.COMPLETED, "all-resolved", True),
        (TaskState.FAILED, "all-resolved", True),
        (TaskState.EXCEPTION, "all-resolved", True),
        (TaskState.PENDING, "all-resolved", False),
        (TaskState.RUNNING, "all-resolved", False),
        (TaskState.UNSCHEDULED, "all-resolved", False),
    ],
)
def test_which_resolutions_satisfy_which_dependents(state: TaskState, requires: str, expected: bool) -> None:
    assert satisfies(state, requires) is expected


def test_a_group_outlives_its_tasks_by_an_hour_rounded_up_to_the_hour() -> None:
    t = task(expires="2031-01-01T10:20:00.000Z")
    assert group_expiry_for(t) == datetime(2031, 1, 1, 12, 0, tzinfo=UTC)
    t = task(expires="2031-01-01T10:00:00.000Z")
    assert group_expiry_for(t) == datetime(2031, 1, 1, 11, 0, tzinfo=UTC)


def test_joining_a_group_needs_its_scheduler_and_no_seal() -> None:
    t = task(schedulerId="ci")
    group = TaskGroup(t.task_group_id, "ci", NOW)
    check_membership(group, t)
    with pytest.raises(RequestConflict):
        check_membership(TaskGroup(t.task_group_id, "other", NOW), t)
    sealed = seal(group, NOW)
    assert seal(sealed, NOW + timedelta(hours=1)) is sealed  # the first seal stays
    with pytest.raises(RequestConflict):
        check_membership(sealed, t)


def test_routing_key_has_taskclusters_parts_and_underscores_for_absent_ones() -> None:
    t = tr.schedule(task(), NOW)
    assert task_routing_key(t, None) == f"primary.{TASK_ID}._._._.proj.linux.-.{TASK_ID}._"
    running = tr.claim(t, 0, WORKER, NOW, timedelta(minutes=20))
    assert task_routing_key(running, 0) == f"primary.{TASK_ID}.0.wg.w1.proj.linux.-.{TASK_ID}._"


def names(old: Task | None, new: Task) -> list[str]:
    return [e.name for e in task_events(old, new)]


def test_each_transition_publishes_its_event() -> None:
    created = tr.schedule(task(), NOW)
    assert names(None, created) == ["task-defined", "task-pending"]
    assert names(None, task(dependencies=[TASK_ID])) == ["task-defined"]
    running = tr.claim(created, 0, WORKER, NOW, timedelta(minutes=20))
    assert names(created, running) == ["task-running"]
    for outcome, name in [(ReasonResolved.COMPLETED, "task-completed"), (ReasonResolved.FAILED, "task-failed")]:
        assert names(running, tr.resolve(running, 0, outcome, NOW)) == [name]
    retried = tr.report_exception(running, 0, ReasonResolved.WORKER_SHUTDOWN, NOW)
    assert names(running, retried) == ["task-exception", "task-pending"]
    reclaimed = tr.reclaim(running, 0, NOW + timedelta(minutes=5), timedelta(minutes=20))
    assert names(running, reclaimed) == []
    assert names(created, tr.change_priority(created, "high", NOW)) == ["task-priority-changed"]


def test_event_bodies_follow_taskcluster() -> None:
    created = tr.schedule(task(), NOW)
    running = tr.claim(created, 0, WORKER, NOW, timedelta(minutes=20))
    [event] = task_events(running, tr.resolve(running, 0, ReasonResolved.COMPLETED, NOW))
    assert event.exchange == "exchange/taskcluster-queue/v1/task-completed"
    assert event.routes == ("index.a", "notify.b")
    detail = event.detail()
    assert detail["routes"] == ["route.index.a", "route.notify.b"]
    assert (detail["version"], detail["runId"], detail["workerGroup"], detail["workerId"]) == (1, 0, "wg", "w1")
    assert detail["task"] == {"tags": {"k": "v"}}
    [defined, _] = task_events(None, created)
    assert defined.body["status"]["state"] == "unscheduled" and defined.body["status"]["runs"] == []
    [running_event] = task_events(created, running)
    assert running_event.body["takenUntil"] == format_date(NOW + timedelta(minutes=20))


def test_only_a_final_resolution_counts_as_one() -> None:
    created = tr.schedule(task(), NOW)
    running = tr.claim(created, 0, WORKER, NOW, timedelta(minutes=20))
    completed = tr.resolve(running, 0, ReasonResolved.COMPLETED, NOW)
    assert resolution(running, completed) is TaskState.COMPLETED
    assert resolution(completed, completed) is None  # a replayed record
    assert resolution(running, tr.report_exception(running, 0, ReasonResolved.WORKER_SHUTDOWN, NOW)) is None
    rerun = tr.rerun(completed, NOW)
    assert resolution(completed, rerun) is None
    rerun_running = tr.claim(rerun, 1, WORKER, NOW, timedelta(minutes=20))
    assert resolution(rerun_running, tr.resolve(rerun_running, 1, ReasonResolved.FAILED, NOW)) is TaskState.FAILED
    cancelled = tr.cancel(task(dependencies=[TASK_ID]), NOW)
    assert resolution(None, cancelled) is TaskState.EXCEPTION


def test_unscheduled_dependents_are_rechecked_with_backoff() -> None:
    waiting = task(dependencies=[TASK_ID])
    base = timedelta(minutes=10)
    assert tr.next_hint_at(waiting, base) == NOW + base
    later = tr.redispatch(waiting, NOW + base, base)
    assert tr.next_hint_at(later, base) == NOW + 3 * base
    assert tr.next_hint_at(task(), base) is None  # no dependencies: nothing to re-check
