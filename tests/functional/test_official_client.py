"""Queue v1 as a user of the official `taskcluster` Python client sees it.

Every implemented endpoint is called through `taskcluster.Queue` over real HTTP (the harness's
in-process server) against the stack on moto, with the harness's fake clock: definitions are
built from `stack.clock.now()`, the event pump is stepped before claimWork, and time-driven
changes (claim expiry, deadlines) come from `stack.advance()` + `stack.sweep()`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import slugid
import taskcluster
from taskcluster.exceptions import TaskclusterRestFailure

from tests.harness import Harness, iso, runs, task_def

TQ = "proj/linux"
WORKER = {"workerGroup": "wg", "workerId": "w1"}
CLAIM_TIMEOUT = timedelta(seconds=1200)  # Settings.claim_timeout's default, used by the harness
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
STATUS_KEYS = {
    "taskId",
    "provisionerId",
    "workerType",
    "taskQueueId",
    "schedulerId",
    "projectId",
    "taskGroupId",
    "priority",
    "deadline",
    "expires",
    "retriesLeft",
    "state",
    "runs",
}
CLAIM_KEYS = {"status", "runId", "workerGroup", "workerId", "takenUntil", "task", "credentials"}


# --- helpers --------------------------------------------------------------------------------------
@pytest.fixture
def queue(stack: Harness, monkeypatch: pytest.MonkeyPatch) -> taskcluster.Queue:
    stack.client_clock_follows_stack(monkeypatch)
    return taskcluster.Queue({"rootUrl": stack.root_url(), "maxRetries": 0, "credentials": stack.credentials})


def parse(text: str) -> datetime:
    assert DATE.match(text), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def check_dates(status: dict[str, Any]) -> None:
    """As Taskcluster's checkDates test helper: every date is `YYYY-MM-DDTHH:MM:SS.mmmZ`."""
    assert set(status) == STATUS_KEYS, status
    for key in ("deadline", "expires"):
        assert DATE.match(status[key]), (key, status[key])
    for run in status["runs"]:
        for key in ("takenUntil", "scheduled", "started", "resolved"):
            if key in run:
                assert DATE.match(run[key]), (key, run)


def create(queue: taskcluster.Queue, stack: Harness, task_id: str | None = None, **overrides: Any) -> str:
    task_id = task_id or slugid.nice()
    status = queue.createTask(task_id, task_def(stack.clock, **overrides))["status"]
    check_dates(status)
    assert status["taskId"] == task_id
    return task_id


def claim_work(
    queue: taskcluster.Queue, stack: Harness, tasks: int = 1, worker_id: str = "w1", tq: str = TQ
) -> list[dict[str, Any]]:
    stack.pump.step()  # deliver the stream: pending runs get their hints
    result = queue.claimWork(tq, {"workerGroup": "wg", "workerId": worker_id, "tasks": tasks})
    assert set(result) == {"tasks"}
    claims: list[dict[str, Any]] = result["tasks"]
    for c in claims:
        assert set(c) == CLAIM_KEYS, c
        assert DATE.match(c["takenUntil"]), c
        check_dates(c["status"])
    return claims


def claim_one(queue: taskcluster.Queue, stack: Harness, task_id: str) -> dict[str, Any]:
    claims = claim_work(queue, stack)
    assert [c["status"]["taskId"] for c in claims] == [task_id]
    return claims[0]


@contextmanager
def fails(status_code: int, code: str, case: str = "") -> Iterator[pytest.ExceptionInfo[TaskclusterRestFailure]]:
    """The call inside raises the client's TaskclusterRestFailure with this status and error code."""
    with pytest.raises(TaskclusterRestFailure) as info:
        yield info
    err = info.value
    assert (err.status_code, err.body.get("code")) == (status_code, code), (case, err.body)
    assert f"* errorCode:  {code}" in str(err), case
    assert f"* statusCode: {status_code}" in str(err), case


def collect(call: Callable[..., Any], key: str, **kwargs: Any) -> list[list[Any]]:
    """Every page of a paginated call, through the client's paginationHandler."""
    pages: list[list[Any]] = []

    def handler(response: dict[str, Any]) -> None:
        pages.append(response[key])

    assert call(paginationHandler=handler, **kwargs) is None
    return pages


# --- monitoring -----------------------------------------------------------------------------------
def test_ping(queue: taskcluster.Queue) -> None:
    result = queue.ping()
    assert result["alive"] is True
    assert isinstance(result["uptime"], float) and result["uptime"] >= 0


# --- createTask / task / status -------------------------------------------------------------------
def test_create_task_returns_pending_status_and_task_returns_definition_with_defaults(
    stack: Harness, queue: taskcluster.Queue
) -> None:
    now = stack.clock.now()
    deadline = now + timedelta(hours=1)  # task_def's
    task_id = slugid.nice()
    body = task_def(stack.clock)
    status = queue.createTask(task_id, body)["status"]
    check_dates(status)
    assert {k: v for k, v in status.items() if k != "runs"} == {
        "taskId": task_id,
        "provisionerId": "proj",
        "workerType": "linux",
        "taskQueueId": TQ,
        "schedulerId": "-",
        "projectId": "none",
        "taskGroupId": task_id,
        "priority": "lowest",
        "deadline": body["deadline"],
        "expires": iso(deadline.replace(year=deadline.year + 1)),  # default: deadline + 1 year
        "retriesLeft": 5,
        "state": "pending",
    }
    assert status["runs"] == [{"runId": 0, "state": "pending", "reasonCreated": "scheduled", "scheduled": iso(now)}]

    assert queue.task(task_id) == {
        "provisionerId": "proj",
        "workerType": "linux",
        "taskQueueId": TQ,
        "schedulerId": "-",
        "projectId": "none",
        "taskGroupId": task_id,
        "dependencies": [],
        "requires": "all-completed",
        "routes": [],
        "priority": "lowest",
        "retries": 5,
        "created": body["created"],
        "deadline": body["deadline"],
        "expires": status["expires"],
        "scopes": [],
        "payload": body["payload"],
        "metadata": body["metadata"],
        "tags": {},
        "extra": {},
    }
    assert queue.status(task_id) == {"status": status}


def test_task_round_trips_a_full_definition_with_dates_normalised(stack: Harness, queue: taskcluster.Queue) -> None:
    now = stack.clock.now()
    task_id, group_id = slugid.nice(), slugid.nice()
    created = now.replace(microsecond=356234)
    deadline = now + timedelta(hours=3)
    expires = now + timedelta(days=30)
    body = task_def(
        stack.clock,
        taskQueueId=None,
        provisionerId="prov-1",
        workerType="builder",
        schedulerId="my-scheduler",
        projectId="proj/x.y",
        taskGroupId=group_id,
        requires="all-resolved",
        routes=["index.a.b", "notify.email.x"],
        priority="very-high",
        retries=2,
        created=created.strftime("%Y-%m-%dT%H:%M:%S.%f") + "324Z",  # nanoseconds: truncated to ms
        deadline=deadline.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        expires=expires.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        scopes=["secrets:get:x", "queue:route:*"],
        tags={"kind": "build"},
        extra={"x": [1, 2.5, None, {"y": "z"}]},
    )
    status = queue.createTask(task_id, body)["status"]
    check_dates(status)
    assert (status["taskQueueId"], status["taskGroupId"], status["schedulerId"], status["projectId"]) == (
        "prov-1/builder",
        group_id,
        "my-scheduler",
        "proj/x.y",
    )
    assert (status["priority"], status["retriesLeft"]) == ("very-high", 2)
    expected = {
        **body,
        "taskQueueId": "prov-1/builder",
        "dependencies": [],
        "created": iso(created),
        "deadline": iso(deadline.replace(microsecond=0)),
        "expires": iso(expires),
    }
    assert queue.task(task_id) == expected
    assert (status["deadline"], status["expires"]) == (expected["deadline"], expected["expires"])
    # The very same request again is an idempotent repeat, high-precision dates included.
    assert queue.createTask(task_id, body) == {"status": status}


def test_create_task_is_idempotent_and_a_different_definition_conflicts(
    stack: Harness, queue: taskcluster.Queue
) -> None:
    task_id = slugid.nice()
    body = task_def(stack.clock)
    first = queue.createTask(task_id, body)
    stack.advance(5)
    assert queue.createTask(task_id, body) == first  # same status, no second run
    assert len(first["status"]["runs"]) == 1

    # A repeat returns the task's *current* status.
    claim_one(queue, stack, task_id)
    again = queue.createTask(task_id, body)["status"]
    assert (again["state"], runs(again)) == ("running", [(0, "running", "scheduled", None)])

    for change in ({"priority": "high"}, {"payload": {"command": [["echo", "bye"]]}}, {"retries": 4}):
        with fails(409, "RequestConflict"):
            queue.createTask(task_id, {**body, **change})
    assert queue.task(task_id)["payload"] == body["payload"]
    assert queue.pendingTasks(TQ)["pendingTasks"] == 0  # no extra pending run from any of the repeats


# Each case changes a valid definition (given the fake clock's now) into one createTask must refuse.
INVALID_DEFINITIONS: list[tuple[str, Callable[[dict[str, Any], datetime], Any], str]] = [
    ("payload-missing", lambda b, now: b.pop("payload"), "InputValidationError"),
    ("deadline-missing", lambda b, now: b.pop("deadline"), "InputValidationError"),
    ("unknown-property", lambda b, now: b.update(bogus=1), "InputValidationError"),
    ("priority-normal", lambda b, now: b.update(priority="normal"), "InputValidationError"),
    ("retries-50", lambda b, now: b.update(retries=50), "InputValidationError"),
    ("created-not-a-date", lambda b, now: b.update(created="yesterday"), "InputValidationError"),
    ("metadata-incomplete", lambda b, now: b["metadata"].pop("owner"), "InputValidationError"),
    ("bad-task-group-id", lambda b, now: b.update(taskGroupId="not-a-slugid"), "InputValidationError"),
    ("created-too-old", lambda b, now: b.update(created=iso(now - timedelta(minutes=16))), "InputError"),
    ("created-in-future", lambda b, now: b.update(created=iso(now + timedelta(minutes=16))), "InputError"),
    (
        "deadline-before-created",
        lambda b, now: b.update(created=iso(now), deadline=iso(now - timedelta(seconds=1))),
        "InputError",
    ),
    (
        "deadline-in-past",
        lambda b, now: b.update(created=iso(now - timedelta(minutes=10)), deadline=iso(now - timedelta(minutes=1))),
        "InputError",
    ),
    (
        "deadline-beyond-5-days",
        lambda b, now: b.update(deadline=iso(now + timedelta(days=5, minutes=16))),
        "InputError",
    ),
    ("expires-before-deadline", lambda b, now: b.update(expires=iso(now + timedelta(minutes=30))), "InputError"),
    ("queue-id-mismatch", lambda b, now: b.update(provisionerId="other", workerType="linux"), "InputError"),
    ("no-queue-id", lambda b, now: b.pop("taskQueueId"), "InputError"),
    ("scope-ends-with-double-star", lambda b, now: b.update(scopes=["queue:**"]), "InputError"),
    ("dependencies", lambda b, now: b.update(dependencies=[slugid.nice()]), "InputError"),  # not supported yet
]


def test_create_task_rejects_invalid_definitions(stack: Harness, queue: taskcluster.Queue) -> None:
    for case, change, code in INVALID_DEFINITIONS:
        body = task_def(stack.clock)
        change(body, stack.clock.now())
        task_id = slugid.nice()
        with fails(400, code, case):
            queue.createTask(task_id, body)
        with fails(404, "ResourceNotFound", case):
            queue.status(task_id)


def test_unknown_task_is_404_and_a_malformed_task_id_400(stack: Harness, queue: taskcluster.Queue) -> None:
    unknown = slugid.nice()
    calls: list[Callable[[], Any]] = [
        lambda: queue.task(unknown),
        lambda: queue.status(unknown),
        lambda: queue.scheduleTask(unknown),
        lambda: queue.rerunTask(unknown),
        lambda: queue.cancelTask(unknown),
        lambda: queue.changeTaskPriority(unknown, {"newPriority": "high"}),
        lambda: queue.claimTask(unknown, 0, WORKER),
        lambda: queue.reclaimTask(unknown, 0),
        lambda: queue.reportCompleted(unknown, 0),
        lambda: queue.reportFailed(unknown, 0),
        lambda: queue.reportException(unknown, 0, {"reason": "worker-shutdown"}),
    ]
    for call in calls:
        with fails(404, "ResourceNotFound"):
            call()
    with fails(400, "InvalidRequestArguments"):
        queue.task("not-a-slugid")
    with fails(400, "InvalidRequestArguments"):
        queue.status("not-a-slugid")


# --- tasks / statuses -----------------------------------------------------------------------------
def test_tasks_and_statuses_paginate_and_omit_unknown_ids(stack: Harness, queue: taskcluster.Queue) -> None:
    known = [create(queue, stack) for _ in range(5)]
    ids = [known[0], slugid.nice(), known[1], known[2], slugid.nice(), known[3], known[4]]
    definitions = {t: queue.task(t) for t in known}
    statuses = {t: queue.status(t)["status"] for t in known}

    # One call, no limit: every known task at once, no continuationToken.
    everything = queue.tasks({"taskIds": ids})
    assert set(everything) == {"tasks"}
    assert {e["taskId"]: e["task"] for e in everything["tasks"]} == definitions
    assert len(everything["tasks"]) == 5

    # Through the client's paginationHandler, 2 ids at a time.
    pages = collect(queue.tasks, "tasks", payload={"taskIds": ids}, query={"limit": 2})
    assert len(pages) > 1
    entries = [e for page in pages for e in page]
    assert all(len(page) <= 2 for page in pages)
    assert sorted(e["taskId"] for e in entries) == sorted(known)
    assert {e["taskId"]: e["task"] for e in entries} == definitions

    # statuses, following continuationToken by hand.
    seen: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": 3}
    for _ in range(10):
        page = queue.statuses(payload={"taskIds": ids}, query=query)
        assert len(page["statuses"]) <= 3
        seen += page["statuses"]
        if "continuationToken" not in page:
            break
        query = {"limit": 3, "continuationToken": page["continuationToken"]}
    else:
        pytest.fail("statuses never stopped returning a continuationToken")
    assert sorted(e["taskId"] for e in seen) == sorted(known)
    assert {e["taskId"]: e["status"] for e in seen} == statuses

    # Only unknown ids, or none at all: empty answers.
    assert queue.tasks({"taskIds": [slugid.nice(), slugid.nice()]}) == {"tasks": []}
    assert queue.statuses({"taskIds": []}) == {"statuses": []}
    assert queue.statuses({}) == {"statuses": []}  # taskIds defaults to []
    with fails(400, "InputValidationError"):
        queue.tasks({"taskIds": "not-a-list"})
    with fails(400, "InputValidationError"):
        queue.statuses({"ids": known})


# --- claimWork / claimTask / reclaimTask ----------------------------------------------------------
def test_claim_work_returns_at_most_n_tasks_highest_priority_first(stack: Harness, queue: taskcluster.Queue) -> None:
    by_priority = {p: create(queue, stack, priority=p) for p in ("lowest", "low", "high", "highest", "medium")}
    create(queue, stack, taskQueueId="proj/other")  # another queue's task is never handed out here
    now = stack.clock.now()

    first = claim_work(queue, stack, tasks=3)
    assert [c["task"]["priority"] for c in first] == ["highest", "high", "medium"]
    for c in first:
        task_id = c["status"]["taskId"]
        assert task_id == by_priority[c["task"]["priority"]]
        assert (c["runId"], c["workerGroup"], c["workerId"]) == (0, "wg", "w1")
        assert parse(c["takenUntil"]) == now + CLAIM_TIMEOUT
        assert c["task"] == queue.task(task_id)
        assert c["status"]["state"] == "running"
        assert c["status"]["runs"] == [
            {
                "runId": 0,
                "state": "running",
                "reasonCreated": "scheduled",
                "workerGroup": "wg",
                "workerId": "w1",
                "takenUntil": c["takenUntil"],
                "scheduled": c["status"]["runs"][0]["scheduled"],
                "started": iso(now),
            }
        ]
        assert queue.status(task_id)["status"] == c["status"]

    rest = claim_work(queue, stack, tasks=32, worker_id="w2")
    assert [c["task"]["priority"] for c in rest] == ["low", "lowest"]
    assert {c["workerId"] for c in rest} == {"w2"}
    assert claim_work(queue, stack, tasks=5) == []
    for _ in range(2):
        create(queue, stack)
    stack.pump.step()
    assert len(queue.claimWork(TQ, WORKER)["tasks"]) == 1  # `tasks` defaults to 1
    assert [c["task"]["taskQueueId"] for c in claim_work(queue, stack, tasks=5, tq="proj/other")] == ["proj/other"]


def test_claim_work_rejects_invalid_requests(queue: taskcluster.Queue) -> None:
    for payload in (
        {"workerGroup": "wg", "workerId": "w1", "tasks": 0},
        {"workerGroup": "wg", "workerId": "w1", "tasks": 33},
        {"workerGroup": "wg"},
        {"workerGroup": "wg", "workerId": "bad id!"},
        {"workerGroup": "wg", "workerId": "w1", "extra": True},
    ):
        with fails(400, "InputValidationError", repr(payload)):
            queue.claimWork(TQ, payload)
    with fails(400, "InvalidRequestArguments"):
        queue.claimWork("1/1", {"workerGroup": "wg", "workerId": "w1"})


def test_claim_task_then_reclaim_task(stack: Harness, queue: taskcluster.Queue) -> None:
    task_id = create(queue, stack)
    with fails(404, "ResourceNotFound"):
        queue.claimTask(task_id, 1, WORKER)
    claimed_at = stack.clock.now()
    claim = queue.claimTask(task_id, 0, WORKER)
    assert set(claim) == CLAIM_KEYS
    check_dates(claim["status"])
    assert (claim["runId"], claim["workerGroup"], claim["workerId"]) == (0, "wg", "w1")
    assert parse(claim["takenUntil"]) == claimed_at + CLAIM_TIMEOUT
    assert claim["task"] == queue.task(task_id)
    assert runs(claim["status"]) == [(0, "running", "scheduled", None)]

    stack.advance(1)
    again = queue.claimTask(task_id, 0, WORKER)  # the same worker again: the same claim (fresh credentials)
    assert {**again, "credentials": None} == {**claim, "credentials": None}
    with fails(409, "RequestConflict"):
        queue.claimTask(task_id, 0, {"workerGroup": "wg", "workerId": "someone-else"})
    assert claim_work(queue, stack) == []  # its hint is stale now: claimWork must not hand it out again

    stack.advance(60)
    reclaimed = queue.reclaimTask(task_id, 0)
    assert set(reclaimed) == {"status", "runId", "workerGroup", "workerId", "takenUntil", "credentials"}
    assert (reclaimed["runId"], reclaimed["workerGroup"], reclaimed["workerId"]) == (0, "wg", "w1")
    assert parse(reclaimed["takenUntil"]) == stack.clock.now() + CLAIM_TIMEOUT
    check_dates(reclaimed["status"])
    assert reclaimed["status"]["runs"][0]["takenUntil"] == reclaimed["takenUntil"]
    assert reclaimed["status"]["runs"][0]["started"] == iso(claimed_at)
    assert queue.status(task_id)["status"] == reclaimed["status"]
    with fails(404, "ResourceNotFound"):
        queue.reclaimTask(task_id, 1)

    queue.reportCompleted(task_id, 0)
    with fails(409, "RequestConflict"):
        queue.reclaimTask(task_id, 0)  # the run is resolved: the worker must stop
    with fails(409, "RequestConflict"):
        queue.claimTask(task_id, 0, WORKER)


def test_reclaim_and_claim_task_conflict_on_a_pending_run(stack: Harness, queue: taskcluster.Queue) -> None:
    task_id = create(queue, stack)
    with fails(409, "RequestConflict"):
        queue.reclaimTask(task_id, 0)
    claim_one(queue, stack, task_id)
    queue.reportException(task_id, 0, {"reason": "worker-shutdown"})
    with fails(409, "RequestConflict"):
        queue.claimTask(task_id, 0, WORKER)  # not the latest run any more
    claim = queue.claimTask(task_id, 1, WORKER)
    assert claim["runId"] == 1


# --- reportCompleted / reportFailed / reportException ---------------------------------------------
def test_report_completed(stack: Harness, queue: taskcluster.Queue) -> None:
    task_id = create(queue, stack)
    with fails(409, "RequestConflict"):
        queue.reportCompleted(task_id, 0)  # still pending
    claim_one(queue, stack, task_id)
    stack.advance(30)
    status = queue.reportCompleted(task_id, 0)["status"]
    check_dates(status)
    assert status["state"] == "completed"
    assert runs(status) == [(0, "completed", "scheduled", "completed")]
    assert status["runs"][0]["resolved"] == iso(stack.clock.now())
    assert status["runs"][0]["workerId"] == "w1"
    assert "takenUntil" in status["runs"][0]  # kept after resolution, as Taskcluster does

    stack.advance(1)
    assert queue.reportCompleted(task_id, 0) == {"status": status}  # idempotent
    with fails(409, "RequestConflict"):
        queue.reportFailed(task_id, 0)
    with fails(409, "RequestConflict"):
        queue.reportException(task_id, 0, {"reason": "worker-shutdown"})
    with fails(404, "ResourceNotFound"):
        queue.reportCompleted(task_id, 1)
    assert queue.status(task_id) == {"status": status}


def test_report_failed(stack: Harness, queue: taskcluster.Queue) -> None:
    task_id = create(queue, stack)
    with fails(409, "RequestConflict"):
        queue.reportFailed(task_id, 0)  # still pending
    claim_one(queue, stack, task_id)
    status = queue.reportFailed(task_id, 0)["status"]
    check_dates(status)
    assert status["state"] == "failed"
    assert runs(status) == [(0, "failed", "scheduled", "failed")]
    assert status["retriesLeft"] == 5  # failure is never retried
    assert queue.reportFailed(task_id, 0) == {"status": status}
    with fails(409, "RequestConflict"):
        queue.reportCompleted(task_id, 0)


def test_report_exception_worker_shutdown_creates_a_retry_run(stack: Harness, queue: taskcluster.Queue) -> None:
    task_id = create(queue, stack, retries=2)
    with fails(409, "RequestConflict"):
        queue.reportException(task_id, 0, {"reason": "worker-shutdown"})  # still pending
    claim_one(queue, stack, task_id)
    stack.advance(10)
    status = queue.reportException(task_id, 0, {"reason": "worker-shutdown"})["status"]
    check_dates(status)
    assert status["state"] == "pending"
    assert status["retriesLeft"] == 1
    assert runs(status) == [(0, "exception", "scheduled", "worker-shutdown"), (1, "pending", "retry", None)]
    assert status["runs"][0]["resolved"] == status["runs"][1]["scheduled"] == iso(stack.clock.now())
    assert set(status["runs"][1]) == {"runId", "state", "reasonCreated", "scheduled"}

    assert queue.reportException(task_id, 0, {"reason": "worker-shutdown"}) == {"status": status}  # idempotent
    with fails(409, "RequestConflict"):
        queue.reportException(task_id, 0, {"reason": "internal-error"})  # a different reason
    with fails(409, "RequestConflict"):
        queue.reportCompleted(task_id, 0)

    # The retry run is dispatched like any pending run; intermittent-task earns a task-retry.
    claim = claim_one(queue, stack, task_id)
    assert claim["runId"] == 1
    status = queue.reportException(task_id, 1, {"reason": "intermittent-task"})["status"]
    assert status["retriesLeft"] == 0
    assert runs(status)[1:] == [(1, "exception", "retry", "intermittent-task"), (2, "pending", "task-retry", None)]

    # No retries left: the exception is final.
    assert claim_one(queue, stack, task_id)["runId"] == 2
    status = queue.reportException(task_id, 2, {"reason": "worker-shutdown"})["status"]
    assert (status["state"], len(status["runs"]), status["retriesLeft"]) == ("exception", 3, 0)
    assert runs(status)[2] == (2, "exception", "task-retry", "worker-shutdown")


def test_report_exception_that_never_retries(stack: Harness, queue: taskcluster.Queue) -> None:
    for reason in ("malformed-payload", "resource-unavailable", "internal-error"):
        task_id = create(queue, stack)
        claim_one(queue, stack, task_id)
        status = queue.reportException(task_id, 0, {"reason": reason})["status"]
        assert (status["state"], status["retriesLeft"]) == ("exception", 5)
        assert runs(status) == [(0, "exception", "scheduled", reason)]
        assert claim_work(queue, stack) == []


def test_report_exception_rejects_reasons_workers_may_not_give(stack: Harness, queue: taskcluster.Queue) -> None:
    task_id = create(queue, stack)
    claim_one(queue, stack, task_id)
    for payload in ({"reason": "canceled"}, {"reason": "superseded"}, {}, {"reason": 1}):
        with fails(400, "InputValidationError", repr(payload)):
            queue.reportException(task_id, 0, payload)
    assert queue.status(task_id)["status"]["state"] == "running"


# --- scheduleTask / rerunTask / cancelTask / changeTaskPriority -----------------------------------
def test_schedule_task_returns_the_current_status_of_a_scheduled_task(stack: Harness, queue: taskcluster.Queue) -> None:
    task_id = create(queue, stack)
    status = queue.status(task_id)["status"]
    stack.advance(5)
    assert queue.scheduleTask(task_id) == {"status": status}  # already has run 0: unchanged
    claim_one(queue, stack, task_id)
    assert runs(queue.scheduleTask(task_id)["status"]) == [(0, "running", "scheduled", None)]


def test_rerun_task(stack: Harness, queue: taskcluster.Queue) -> None:
    task_id = create(queue, stack, retries=3)
    pending = queue.status(task_id)["status"]
    assert queue.rerunTask(task_id) == {"status": pending}  # already pending: unchanged
    claim_one(queue, stack, task_id)
    assert runs(queue.rerunTask(task_id)["status"]) == [(0, "running", "scheduled", None)]  # running: unchanged
    queue.reportFailed(task_id, 0)

    stack.advance(5)
    status = queue.rerunTask(task_id)["status"]
    check_dates(status)
    assert status["state"] == "pending"
    assert status["retriesLeft"] == 3  # min(retries, 50 - runs - 1)
    assert runs(status) == [(0, "failed", "scheduled", "failed"), (1, "pending", "rerun", None)]
    assert status["runs"][1]["scheduled"] == iso(stack.clock.now())
    assert queue.rerunTask(task_id) == {"status": status}  # idempotent

    claim = claim_one(queue, stack, task_id)
    assert claim["runId"] == 1
    assert runs(queue.reportCompleted(task_id, 1)["status"])[1] == (1, "completed", "rerun", "completed")


def test_rerun_task_stops_at_50_runs(stack: Harness, queue: taskcluster.Queue) -> None:
    task_id = create(queue, stack, retries=5)
    status: dict[str, Any] = {}
    for _ in range(49):
        queue.cancelTask(task_id)
        status = queue.rerunTask(task_id)["status"]
        n = len(status["runs"])
        assert status["retriesLeft"] == min(5, 50 - (n - 1) - 1), n  # min(retries, 50 - runs before - 1)
    assert (len(status["runs"]), status["retriesLeft"], status["state"]) == (50, 0, "pending")
    assert runs(status)[49] == (49, "pending", "rerun", None)
    queue.cancelTask(task_id)
    with fails(409, "RequestConflict"):
        queue.rerunTask(task_id)  # "Maximum number of runs reached (50)"
    assert len(queue.status(task_id)["status"]["runs"]) == 50


def test_cancel_task(stack: Harness, queue: taskcluster.Queue) -> None:
    # A pending task: its run is resolved exception/canceled and claimWork no longer hands it out.
    pending_id = create(queue, stack)
    stack.advance(2)
    status = queue.cancelTask(pending_id)["status"]
    check_dates(status)
    assert status["state"] == "exception"
    assert runs(status) == [(0, "exception", "scheduled", "canceled")]
    assert status["runs"][0]["resolved"] == iso(stack.clock.now())
    assert queue.cancelTask(pending_id) == {"status": status}  # idempotent
    assert claim_work(queue, stack) == []

    # A running task: its worker's reclaim and report then conflict.
    running_id = create(queue, stack)
    claim_one(queue, stack, running_id)
    status = queue.cancelTask(running_id)["status"]
    assert runs(status) == [(0, "exception", "scheduled", "canceled")]
    assert status["runs"][0]["workerId"] == "w1"
    with fails(409, "RequestConflict"):
        queue.reclaimTask(running_id, 0)
    with fails(409, "RequestConflict"):
        queue.reportCompleted(running_id, 0)

    # A resolved task is left as it is; a cancelled task can be rerun.
    done_id = create(queue, stack)
    claim_one(queue, stack, done_id)
    completed = queue.reportCompleted(done_id, 0)
    assert queue.cancelTask(done_id) == completed
    rerun = queue.rerunTask(pending_id)["status"]
    assert runs(rerun)[1] == (1, "pending", "rerun", None)


def test_change_task_priority(stack: Harness, queue: taskcluster.Queue) -> None:
    high_id = create(queue, stack, priority="high")
    task_id = create(queue, stack)  # lowest
    status = queue.changeTaskPriority(task_id, {"newPriority": "highest"})["status"]
    check_dates(status)
    assert (status["priority"], status["state"]) == ("highest", "pending")
    assert queue.task(task_id)["priority"] == "highest"
    assert queue.status(task_id)["status"]["priority"] == "highest"
    with fails(409, "RequestConflict"):
        queue.changeTaskPriority(task_id, {"newPriority": "highest"})  # unchanged priority
    with fails(400, "InputValidationError"):
        queue.changeTaskPriority(task_id, {"newPriority": "normal"})
    with fails(400, "InputValidationError"):
        queue.changeTaskPriority(task_id, {})

    # claimWork sees the new priority: it now comes before the `high` task.
    assert [c["status"]["taskId"] for c in claim_work(queue, stack)] == [task_id]
    # A running task can still be reprioritised; a resolved one can't.
    assert queue.changeTaskPriority(task_id, {"newPriority": "low"})["status"]["priority"] == "low"
    queue.reportCompleted(task_id, 0)
    with fails(409, "RequestConflict"):
        queue.changeTaskPriority(task_id, {"newPriority": "medium"})
    assert [c["status"]["taskId"] for c in claim_work(queue, stack)] == [high_id]


def test_change_task_priority_of_a_task_pending_on_a_retry_run(stack: Harness, queue: taskcluster.Queue) -> None:
    task_id = create(queue, stack)
    claim_one(queue, stack, task_id)
    queue.reportException(task_id, 0, {"reason": "worker-shutdown"})
    status = queue.changeTaskPriority(task_id, {"newPriority": "high"})["status"]
    assert (status["priority"], status["state"]) == ("high", "pending")


def test_deadline_passed_makes_the_task_immutable(stack: Harness, queue: taskcluster.Queue) -> None:
    task_id = create(queue, stack)
    claim_one(queue, stack, task_id)
    stack.advance(3600)  # exactly the deadline: nothing may change it any more
    for call in (
        lambda: queue.scheduleTask(task_id),
        lambda: queue.rerunTask(task_id),
        lambda: queue.cancelTask(task_id),
        lambda: queue.changeTaskPriority(task_id, {"newPriority": "high"}),
        lambda: queue.claimTask(task_id, 0, WORKER),
        lambda: queue.reclaimTask(task_id, 0),
    ):
        with fails(409, "RequestConflict"):
            call()
    assert queue.status(task_id)["status"]["state"] == "running"


# --- time: the sweeper as the user sees it -------------------------------------------------------
def test_claim_expiry_resolves_the_run_and_retries(stack: Harness, queue: taskcluster.Queue) -> None:
    task_id = create(queue, stack)
    claim = claim_one(queue, stack, task_id)
    stack.advance(CLAIM_TIMEOUT.total_seconds() + 1)
    assert task_id in stack.sweep()
    status = queue.status(task_id)["status"]
    check_dates(status)
    assert (status["state"], status["retriesLeft"]) == ("pending", 4)
    assert runs(status) == [(0, "exception", "scheduled", "claim-expired"), (1, "pending", "retry", None)]
    assert status["runs"][0]["takenUntil"] == claim["takenUntil"]
    with fails(409, "RequestConflict"):
        queue.reclaimTask(task_id, 0)
    with fails(409, "RequestConflict"):
        queue.reportCompleted(task_id, 0)
    assert claim_one(queue, stack, task_id)["runId"] == 1


@pytest.mark.parametrize("claimed", [False, True], ids=["pending", "running"])
def test_deadline_exceeded(stack: Harness, queue: taskcluster.Queue, claimed: bool) -> None:
    task_id = create(queue, stack, deadline=iso(stack.clock.now() + timedelta(minutes=10)))
    if claimed:
        claim_one(queue, stack, task_id)
    stack.advance(601)
    assert task_id in stack.sweep()
    status = queue.status(task_id)["status"]
    check_dates(status)
    assert status["state"] == "exception"
    assert runs(status) == [(0, "exception", "scheduled", "deadline-exceeded")]
    assert claim_work(queue, stack) == []
    if claimed:
        with fails(409, "RequestConflict"):
            queue.reportCompleted(task_id, 0)


# --- task queues ----------------------------------------------------------------------------------
def test_pending_tasks_and_task_queue_counts(stack: Harness, queue: taskcluster.Queue) -> None:
    ids = {"provisionerId": "proj", "workerType": "linux", "taskQueueId": TQ}
    assert queue.pendingTasks(TQ) == {**ids, "pendingTasks": 0}  # an unknown queue counts 0, no 404
    assert queue.taskQueueCounts(TQ) == {**ids, "pendingTasks": 0, "claimedTasks": 0}

    body = task_def(stack.clock)
    first = slugid.nice()
    queue.createTask(first, body)
    queue.createTask(first, body)  # a repeat doesn't count twice
    create(queue, stack)
    create(queue, stack)
    create(queue, stack, taskQueueId="proj/other")
    assert queue.pendingTasks(TQ) == {**ids, "pendingTasks": 3}
    assert queue.taskQueueCounts(TQ) == {**ids, "pendingTasks": 3, "claimedTasks": 0}

    claim_work(queue, stack, tasks=2)
    assert queue.pendingTasks(TQ)["pendingTasks"] == 1
    assert queue.taskQueueCounts(TQ) == {**ids, "pendingTasks": 1, "claimedTasks": 2}
    assert queue.taskQueueCounts("proj/other") == {
        "provisionerId": "proj",
        "workerType": "other",
        "taskQueueId": "proj/other",
        "pendingTasks": 1,
        "claimedTasks": 0,
    }

    # A claim whose takenUntil has passed is no longer counted, even before the sweeper acts.
    stack.advance(CLAIM_TIMEOUT.total_seconds() + 1)
    assert queue.taskQueueCounts(TQ)["claimedTasks"] == 0
    stack.sweep()  # both expired claims are retried: pending again
    assert queue.taskQueueCounts(TQ) == {**ids, "pendingTasks": 3, "claimedTasks": 0}
    queue.cancelTask(first)
    assert queue.pendingTasks(TQ)["pendingTasks"] == 2

    with fails(400, "InvalidRequestArguments"):
        queue.pendingTasks("1/1")
    with fails(400, "InvalidRequestArguments"):
        queue.taskQueueCounts("no-slash")


def test_list_pending_and_claimed_tasks(stack: Harness, queue: taskcluster.Queue) -> None:
    assert queue.listPendingTasks(TQ) == {"tasks": []}
    assert queue.listClaimedTasks(TQ) == {"tasks": []}
    created: list[tuple[str, str]] = []
    for _ in range(3):
        created.append((create(queue, stack), iso(stack.clock.now())))
        stack.advance(1)
    create(queue, stack, taskQueueId="proj/other")

    listing = queue.listPendingTasks(TQ)
    assert "continuationToken" not in listing
    assert [(e["taskId"], e["inserted"]) for e in listing["tasks"]] == created  # oldest first
    for e in listing["tasks"]:
        assert set(e) == {"taskId", "runId", "task", "inserted"}
        assert e["runId"] == 0
        assert e["task"] == queue.task(e["taskId"])

    pages = collect(queue.listPendingTasks, "tasks", params={"taskQueueId": TQ}, query={"limit": 1})
    assert all(len(p) <= 1 for p in pages)
    assert [e["taskId"] for page in pages for e in page] == [t for t, _ in created]

    claimed_at = iso(stack.clock.now())
    claim = claim_work(queue, stack, worker_id="w9")[0]
    claimed_id = claim["status"]["taskId"]
    # Same priority: oldest first. moto's SQS keeps order; real SQS standard queues
    # only try to, so on AWS this is best-effort.
    assert claimed_id == created[0][0]
    assert [e["taskId"] for e in queue.listPendingTasks(TQ)["tasks"]] == [t for t, _ in created[1:]]
    claimed = queue.listClaimedTasks(TQ)
    assert claimed == {
        "tasks": [
            {
                "taskId": claimed_id,
                "runId": 0,
                "workerGroup": "wg",
                "workerId": "w9",
                "claimed": claimed_at,
                "task": queue.task(claimed_id),
            }
        ]
    }
    stack.advance(1)
    second = claim_work(queue, stack, worker_id="w8")[0]["status"]["taskId"]
    pages = collect(queue.listClaimedTasks, "tasks", params={"taskQueueId": TQ}, query={"limit": 1})
    assert [(e["taskId"], e["workerId"]) for page in pages for e in page] == [(claimed_id, "w9"), (second, "w8")]

    queue.reportCompleted(claimed_id, 0)
    assert [e["taskId"] for e in queue.listClaimedTasks(TQ)["tasks"]] == [second]
    assert [e["taskId"] for e in queue.listPendingTasks("proj/other")["tasks"]] != []
    assert queue.listPendingTasks("proj/unknown") == {"tasks": []}
    with fails(400, "InvalidRequestArguments"):
        queue.listClaimedTasks("1/1")


# --- edge cases found while testing ----------------------------------------------------------------
def test_list_pending_tasks_rejects_a_malformed_continuation_token(queue: taskcluster.Queue) -> None:
    for call in (queue.listPendingTasks, queue.listClaimedTasks):
        with pytest.raises(TaskclusterRestFailure) as info:
            call(TQ, query={"continuationToken": "not-a-token"})
        assert info.value.status_code == 400, info.value.body
        assert info.value.body["code"] in ("InputError", "InvalidRequestArguments")


def test_statuses_with_limit_zero_does_not_paginate_forever(stack: Harness, queue: taskcluster.Queue) -> None:
    ids = [create(queue, stack) for _ in range(2)]
    try:
        page = queue.statuses(payload={"taskIds": ids}, query={"limit": 0})
    except TaskclusterRestFailure as err:
        assert err.status_code == 400, err.body
        return
    assert page["statuses"] or "continuationToken" not in page, page


def test_pending_count_excludes_tasks_past_their_deadline(stack: Harness, queue: taskcluster.Queue) -> None:
    create(queue, stack)
    stack.advance(3600)  # the deadline; the sweeper has not run yet
    assert queue.pendingTasks(TQ)["pendingTasks"] == 0
