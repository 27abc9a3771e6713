"""createTask, task and status over HTTP: validation, defaults, idempotency, error bodies."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import slugid

from chalicelib.domain.model import format_date
from tests.harness import Harness, assert_error, task_def


def put(stack: Harness, body: Any, task_id: str | None = None, **kw: Any) -> Any:
    return stack.call("PUT", f"/task/{task_id or slugid.nice()}", body, **kw)


def test_create_task_fills_defaults_and_returns_pending_status(stack: Harness) -> None:
    task_id = slugid.nice()
    r = put(stack, task_def(stack.clock), task_id)
    assert r.status_code == 200
    status = r.json_body["status"]
    assert status["taskId"] == task_id
    assert (status["provisionerId"], status["workerType"], status["taskQueueId"]) == ("proj", "linux", "proj/linux")
    assert (status["schedulerId"], status["projectId"], status["taskGroupId"]) == ("-", "none", task_id)
    assert status["priority"] == "lowest"
    assert status["retriesLeft"] == 5
    assert status["state"] == "pending"
    assert [(r["runId"], r["state"], r["reasonCreated"]) for r in status["runs"]] == [(0, "pending", "scheduled")]
    assert r.headers["Cache-Control"] == "no-store no-cache must-revalidate"


def test_task_returns_the_stored_definition_exactly(stack: Harness) -> None:
    now = stack.clock.now()
    body = task_def(
        stack.clock,
        taskQueueId=None,
        provisionerId="prov-1",
        workerType="builder",
        created=now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z",  # nanoseconds: truncated to ms
        deadline=(now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        routes=["index.a.b"],
        tags={"kind": "build"},
        extra={"x": [1, 2.5, None]},
        priority="high",
        retries=0,
    )
    task_id = slugid.nice()
    assert put(stack, body, task_id).status_code == 200
    task = stack.call("GET", f"/task/{task_id}").json_body
    deadline = now + timedelta(hours=2)
    assert task == {
        "provisionerId": "prov-1",
        "workerType": "builder",
        "taskQueueId": "prov-1/builder",
        "schedulerId": "-",
        "projectId": "none",
        "taskGroupId": task_id,
        "dependencies": [],
        "requires": "all-completed",
        "routes": ["index.a.b"],
        "priority": "high",
        "retries": 0,
        "created": format_date(now),
        "deadline": format_date(deadline.replace(microsecond=0)),
        "expires": format_date(deadline.replace(microsecond=0, year=deadline.year + 1)),
        "scopes": [],
        "payload": body["payload"],
        "metadata": body["metadata"],
        "tags": {"kind": "build"},
        "extra": {"x": [1, 2.5, None]},
    }


def test_same_definition_twice_is_idempotent_and_returns_current_status(stack: Harness) -> None:
    task_id, body = slugid.nice(), task_def(stack.clock)
    first = put(stack, body, task_id)
    stack.claim()
    again = put(stack, body, task_id)
    assert again.status_code == 200
    assert again.json_body["status"]["state"] == "running"
    assert again.json_body["status"]["taskId"] == first.json_body["status"]["taskId"]


def test_same_task_id_with_another_definition_is_a_conflict(stack: Harness) -> None:
    task_id = slugid.nice()
    put(stack, task_def(stack.clock), task_id)
    r = put(stack, task_def(stack.clock, retries=2), task_id)
    assert_error(r, 409, "RequestConflict")
    assert stack.call("GET", f"/task/{task_id}").json_body["retries"] == 5


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"retries": 50}, "InputValidationError"),
        ({"retries": -1}, "InputValidationError"),
        ({"retries": "5"}, "InputValidationError"),
        ({"priority": "normal"}, "InputValidationError"),
        ({"workerType": "Bad_Type", "taskQueueId": None, "provisionerId": "p"}, "InputValidationError"),
        ({"taskQueueId": "a/b/c"}, "InputValidationError"),
        ({"provisionerId": "x" * 39, "workerType": "w", "taskQueueId": None}, "InputValidationError"),
        ({"schedulerId": ""}, "InputValidationError"),
        ({"taskGroupId": "not-a-slugid"}, "InputValidationError"),
        ({"routes": ["a", "a"]}, "InputValidationError"),
        ({"unknownField": 1}, "InputValidationError"),
        ({"metadata": {"name": "n", "description": "d", "owner": "o", "source": "ftp://x"}}, "InputValidationError"),
        ({"metadata": {"name": "n", "description": "d", "owner": "o"}}, "InputValidationError"),
        ({"payload": []}, "InputValidationError"),
        ({"created": "yesterday"}, "InputValidationError"),
        ({"scopes": ["queue:*", "bad**"]}, "InputError"),
        ({"taskQueueId": "a/b", "provisionerId": "a", "workerType": "c"}, "InputError"),
        ({"taskQueueId": None}, "InputError"),
        ({"taskQueueId": None, "provisionerId": "only"}, "InputError"),
    ],
)
def test_invalid_definitions_are_rejected_and_nothing_is_stored(
    stack: Harness, change: dict[str, Any], code: str
) -> None:
    task_id = slugid.nice()
    body = {k: v for k, v in {**task_def(stack.clock), **change}.items() if v is not None}
    r = put(stack, body, task_id)
    assert_error(r, 400, code)
    assert_error(stack.call("GET", f"/task/{task_id}"), 404, "ResourceNotFound")


@pytest.mark.parametrize(
    ("created", "deadline", "expires"),
    [
        (-16 * 60, 3600, None),  # created too far in the past
        (16 * 60, 3600, None),  # ... or the future
        (0, -1, None),  # deadline passed
        (0, 5 * 86400 + 16 * 60, None),  # deadline too far ahead
        (0, 3600, 3599),  # expires before deadline
        (600, 300, None),  # deadline before created
    ],
)
def test_time_rules_are_enforced_with_input_error(
    stack: Harness, created: int, deadline: int, expires: int | None
) -> None:
    now = stack.clock.now()
    body = task_def(
        stack.clock,
        created=format_date(now + timedelta(seconds=created)),
        deadline=format_date(now + timedelta(seconds=deadline)),
        expires=format_date(now + timedelta(seconds=expires)) if expires is not None else None,
    )
    assert_error(put(stack, body), 400, "InputError")


def test_a_deadline_five_days_ahead_is_accepted(stack: Harness) -> None:
    now = stack.clock.now()
    body = task_def(stack.clock, deadline=format_date(now + timedelta(days=5, minutes=10)))
    assert put(stack, body).status_code == 200


def test_dependencies_are_refused_until_the_dependency_tracker_exists(stack: Harness) -> None:
    assert_error(put(stack, task_def(stack.clock, dependencies=[slugid.nice()])), 400, "InputError")


def test_empty_dependencies_are_accepted(stack: Harness) -> None:
    assert put(stack, task_def(stack.clock, dependencies=[])).status_code == 200


@pytest.mark.parametrize(
    ("raw", "headers"),
    [
        (b"{not json", {"Content-Type": "application/json"}),
        (b'{"a": NaN}', {"Content-Type": "application/json"}),
        (b"42", {"Content-Type": "application/json"}),
        (b"", {"Content-Type": "application/json"}),
        (b'{"created": "x"}', {"Content-Type": "text/plain"}),
    ],
)
def test_malformed_bodies_are_malformed_payload(stack: Harness, raw: bytes, headers: dict[str, str]) -> None:
    assert_error(put(stack, raw, headers=headers), 400, "MalformedPayload")


def test_bodies_over_ten_megabytes_are_refused_with_413(stack: Harness) -> None:
    body = task_def(stack.clock, extra={"blob": "x" * (10 * 1024 * 1024)})
    assert_error(put(stack, json.dumps(body).encode()), 413, "InputTooLarge")


def test_definitions_too_large_for_a_row_are_refused_with_413(stack: Harness) -> None:
    body = task_def(stack.clock, payload={"blob": "x" * (300 * 1024)})
    task_id = slugid.nice()
    assert_error(put(stack, body, task_id), 413, "InputTooLarge")
    assert stack.call("GET", f"/task/{task_id}").status_code == 404


@pytest.mark.parametrize("path", ["/task/notaslugid", "/task/notaslugid/status"])
def test_bad_task_ids_are_invalid_request_arguments(stack: Harness, path: str) -> None:
    assert_error(stack.call("GET", path), 400, "InvalidRequestArguments")


def test_unknown_task_is_not_found(stack: Harness) -> None:
    body = assert_error(stack.call("GET", f"/task/{slugid.nice()}/status"), 404, "ResourceNotFound")
    assert body["requestInfo"]["method"] == "status"


def test_error_body_echoes_the_request(stack: Harness) -> None:
    task_id = slugid.nice()
    body = assert_error(put(stack, task_def(stack.clock, retries=99), task_id), 400, "InputValidationError")
    assert body["requestInfo"]["method"] == "createTask"
    assert body["requestInfo"]["params"] == {"taskId": task_id}
    assert body["requestInfo"]["payload"]["retries"] == 99
    assert "data.retries" in body["message"]
