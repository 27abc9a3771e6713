"""Task-queue views and batch lookups: counts, listings, pagination."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import slugid

from tests.harness import Harness, assert_error, report

TQ = "proj%2Flinux"


def test_pending_tasks_counts_pending_runs_once(stack: Harness) -> None:
    ids = [stack.create() for _ in range(3)]
    stack.create(ids[0])  # an idempotent repeat does not count twice
    stack.create(taskQueueId="proj/other")
    r = stack.call("GET", f"/pending/{TQ}")
    assert r.json_body == {
        "provisionerId": "proj",
        "workerType": "linux",
        "taskQueueId": "proj/linux",
        "pendingTasks": 3,
    }
    assert stack.call("GET", "/pending/nobody%2Fhere").json_body["pendingTasks"] == 0
    assert_error(stack.call("GET", "/pending/1%2F1"), 400, "InvalidRequestArguments")


def test_task_queue_counts_pending_and_claimed(stack: Harness) -> None:
    for _ in range(4):
        stack.create()
    stack.claim(tasks=3)
    r = stack.call("GET", f"/task-queues/{TQ}/counts")
    assert r.json_body == {
        "provisionerId": "proj",
        "workerType": "linux",
        "taskQueueId": "proj/linux",
        "pendingTasks": 1,
        "claimedTasks": 3,
    }
    stack.advance(1201)  # leases ran out: no longer counted as claimed
    assert stack.call("GET", f"/task-queues/{TQ}/counts").json_body["claimedTasks"] == 0


def collect(stack: Harness, path: str, limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token = None
    for _ in range(50):
        query = f"?limit={limit}" + (f"&continuationToken={token}" if token else "")
        body = stack.call("GET", path + query).json_body
        items += body["tasks"]
        token = body.get("continuationToken")
        if not token:
            return items
    raise AssertionError("pagination never ended")


def test_list_pending_tasks_oldest_first_in_pages(stack: Harness) -> None:
    ids = []
    for _ in range(5):
        ids.append(stack.create())
        stack.advance(1)
    listed = collect(stack, f"/task-queues/{TQ}/pending", 2)
    assert [t["taskId"] for t in listed] == ids
    assert all(t["runId"] == 0 and t["task"]["taskQueueId"] == "proj/linux" for t in listed)
    assert listed[0]["inserted"] < listed[-1]["inserted"]


def test_list_claimed_tasks(stack: Harness) -> None:
    ids = {stack.create() for _ in range(3)}
    stack.claim(tasks=2, worker_id="wk")
    listed = collect(stack, f"/task-queues/{TQ}/claimed", 1)
    assert len(listed) == 2
    assert {t["taskId"] for t in listed} <= ids
    assert all((t["workerGroup"], t["workerId"]) == ("wg", "wk") for t in listed)
    assert all("claimed" in t and t["task"]["taskQueueId"] == "proj/linux" for t in listed)
    first = listed[0]
    report(stack, first["taskId"], 0, "completed")
    assert [t["taskId"] for t in collect(stack, f"/task-queues/{TQ}/claimed", 10)] == [listed[1]["taskId"]]


def test_tasks_and_statuses_omit_unknown_ids_and_paginate(stack: Harness) -> None:
    ids = [stack.create() for _ in range(5)]
    asked = [*ids[:2], slugid.nice(), *ids[2:]]
    r = stack.call("POST", "/tasks?limit=4", {"taskIds": asked})
    first = r.json_body
    assert [t["taskId"] for t in first["tasks"]] == ids[:3]
    token = first["continuationToken"]
    rest = stack.call("POST", f"/tasks?limit=4&continuationToken={token}", {"taskIds": asked}).json_body
    assert [t["taskId"] for t in rest["tasks"]] == ids[3:]
    assert "continuationToken" not in rest
    statuses = stack.call("POST", "/tasks/status", {"taskIds": asked}).json_body["statuses"]
    assert [s["taskId"] for s in statuses] == ids
    assert all(s["status"]["state"] == "pending" for s in statuses)
    assert stack.call("POST", "/tasks/status", {"taskIds": []}).json_body == {"statuses": []}
    assert_error(stack.call("POST", "/tasks", {"taskIds": "x"}), 400, "InputValidationError")
    assert_error(stack.call("POST", "/tasks?limit=x", {"taskIds": []}), 400, "InvalidRequestArguments")


@pytest.mark.parametrize(
    "start",
    [{"a": {"S": "x"}}, {"taskId": 5}, {"taskId": {"S": 5}}, [], {}, {"pk": {"L": []}, "sk": {"S": "x"}}],
)
def test_a_continuation_token_that_is_no_start_key_of_that_listing_is_400(stack: Harness, start: object) -> None:
    token = base64.urlsafe_b64encode(json.dumps(start).encode()).decode()
    task_id = stack.create()
    group = stack.status(task_id)["taskGroupId"]
    for path in (
        f"/task-group/{group}/list",
        "/task-queues/proj%2Flinux/pending",
        f"/task/{task_id}/dependents",
        "/api/auth/v1/clients",
    ):
        r = stack.call("GET", f"{path}?continuationToken={token}")
        assert (r.status_code, r.json_body["code"]) == (400, "InputError"), (path, r.body)
