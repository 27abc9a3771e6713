"""Hostile or careless input at the edge: each gets a cheap Taskcluster-style 4xx and stores nothing.

Deep JSON, digit strings no integer type holds, dates a datetime cannot hold (or that would
overflow the arithmetic done on them), identifiers longer than any key may be, and createTask
naming thousands of tasks that do not exist. Time bounds are generous (a regression to the
old behaviour took 20 s or crashed; these finish in well under a second).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import slugid

from chalicelib.handlers.http import MAX_JSON_DEPTH
from tests.harness import Harness, assert_error, task_def

AUTH = "/api/auth/v1"
WM = "/api/worker-manager/v1"


@contextmanager
def within(seconds: float) -> Iterator[None]:
    start = time.monotonic()
    yield
    assert time.monotonic() - start < seconds


def nested(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


def raw(stack: Harness, method: str, path: str, body: bytes, anonymous: bool = False) -> Any:
    """`body` sent as the client's bytes (no client would make them), signed unless anonymous."""
    return stack.call(method, path, body, credentials=None if anonymous else stack.credentials)


def task_missing(stack: Harness, task_id: str) -> None:
    assert_error(stack.call("GET", f"/task/{task_id}"), 404, "ResourceNotFound")


# --- JSON nested deeper than anything real -------------------------------------------------------
@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
@pytest.mark.parametrize("anonymous", [False, True])
def test_deeply_nested_json_is_a_400_on_every_kind_of_endpoint(stack: Harness, levels: int, anonymous: bool) -> None:
    task_id = slugid.nice()
    deep = nested(levels)
    body = json.dumps(task_def(stack.clock, taskQueueId="sandbox/linux")).encode()
    deep_task = body.replace(b'"payload": {', b'"payload": {"deep": ' + deep + b", ", 1)
    requests = [
        ("PUT", f"/task/{task_id}", deep_task),
        ("PUT", f"/task/{task_id}", deep),
        ("POST", "/claim-work/sandbox%2Flinux", deep),
        ("POST", f"{AUTH}/scopes/expand", deep),
        ("PUT", f"{WM}/worker-pool/sandbox%2Flinux", deep),
    ]
    for method, path, payload in requests:
        with within(5):
            r = raw(stack, method, path, payload, anonymous)
        assert_error(r, 400, "MalformedPayload")
        assert "nested deeper than" in r.json_body["message"]
    task_missing(stack, task_id)


def test_nesting_up_to_the_limit_is_stored_and_returned_as_sent(stack: Harness) -> None:
    task_id = slugid.nice()
    payload: dict[str, Any] = {"leaf": True}
    for _ in range(MAX_JSON_DEPTH - 2):  # the body itself and `payload` are two levels
        payload = {"a": payload}
    r = stack.call("PUT", f"/task/{task_id}", task_def(stack.clock, payload=payload))
    assert r.status_code == 200, r.body
    assert stack.call("GET", f"/task/{task_id}").json_body["payload"] == payload


def test_a_number_no_float_can_hold_is_a_400(stack: Harness) -> None:
    task_id = slugid.nice()
    body = json.dumps(task_def(stack.clock, payload={"n": 12345})).encode().replace(b"12345", b"1e999")
    assert_error(raw(stack, "PUT", f"/task/{task_id}", body), 400, "MalformedPayload")
    task_missing(stack, task_id)


# --- digit strings -------------------------------------------------------------------------------
@pytest.mark.parametrize("digits", [5, 5_000])
def test_a_run_id_with_too_many_digits_is_a_400(stack: Harness, digits: int) -> None:
    task_id = stack.create()
    run_id = "9" * digits
    for method, path in [
        ("POST", f"/task/{task_id}/runs/{run_id}/completed"),
        ("POST", f"/task/{task_id}/runs/{run_id}/reclaim"),
        ("GET", f"/task/{task_id}/runs/{run_id}/artifacts"),
        ("GET", f"/task/{task_id}/runs/{run_id}/artifacts/public%2Fx"),
    ]:
        assert_error(stack.call(method, path), 400, "InvalidRequestArguments")
    assert stack.status(task_id)["state"] == "pending"


def test_a_run_id_that_is_a_number_but_no_run_is_a_404(stack: Harness) -> None:
    task_id = stack.create()
    assert_error(stack.call("POST", f"/task/{task_id}/runs/9999/completed"), 404, "ResourceNotFound")


@pytest.mark.parametrize(
    "path",
    [
        "/task-queues/proj%2Flinux/pending?limit=",
        "/task-group/{group}/list?limit=",
        "/task/{group}/dependents?limit=",
        f"{AUTH}/clients?limit=",
        f"{WM}/worker-pools?limit=",
    ],
)
def test_a_limit_with_thousands_of_digits_is_a_400(stack: Harness, path: str) -> None:
    group = stack.create()
    assert_error(stack.call("GET", path.format(group=group) + "9" * 5_000), 400, "InvalidRequestArguments")
    r = stack.call("GET", path.format(group=group) + "0" * 8 + "5")
    assert r.status_code == 200, r.body


@pytest.mark.parametrize("token", ["9" * 5_000, "-1", "x" * 5_000])
def test_a_continuation_token_that_is_no_token_is_a_400(stack: Harness, token: str) -> None:
    task_id = stack.create()
    r = stack.call("POST", f"/tasks?continuationToken={token}", {"taskIds": [task_id]})
    assert r.status_code == 400, r.body
    assert r.json_body["code"] in ("InputError", "InvalidRequestArguments")


# --- dates ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("deadline", "9999-12-31T23:59:59.999Z"),  # the expiry a year later is no datetime
        ("deadline", "9999-01-01T00:00:00.000Z"),
        ("created", "0001-01-01T00:00:00.000Z"),
        ("created", "0001-01-01T00:00:00.000+01:00"),  # before datetime's first instant in UTC
        ("created", "0000-01-01T00:00:00.000Z"),
        ("expires", "+275760-09-13T00:00:00.000Z"),  # JavaScript's last date
        ("expires", "9999-12-31T23:59:59.999Z"),
        ("expires", "2026-02-30T00:00:00.000Z"),
        ("deadline", "1969-12-31T23:59:59.999Z"),
    ],
)
def test_dates_outside_what_the_service_can_hold_are_a_400(stack: Harness, field: str, value: str) -> None:
    task_id = slugid.nice()
    r = stack.call("PUT", f"/task/{task_id}", task_def(stack.clock, **{field: value}))
    body = assert_error(r, 400, "InputValidationError")
    assert "1970" in body["message"]  # says which dates are taken
    task_missing(stack, task_id)


def test_a_far_expiry_that_is_storable_is_taken(stack: Harness) -> None:
    task_id = stack.create(expires="9998-12-31T00:00:00.000Z")
    assert stack.call("GET", f"/task/{task_id}").json_body["expires"] == "9998-12-31T00:00:00.000Z"


def test_dates_of_other_endpoints_are_checked_the_same_way(stack: Harness) -> None:
    client = f"{AUTH}/clients/someone"
    body = {"description": "x", "expires": "9999-12-31T23:59:59.999Z", "scopes": []}
    assert_error(stack.call("PUT", client, body), 400, "InputValidationError")
    assert_error(stack.call("GET", client), 404, "ResourceNotFound")
    worker = "/provisioners/proj/worker-types/linux/workers/wg/w1"
    assert_error(
        stack.call("PUT", worker, {"quarantineUntil": "+275760-09-13T00:00:00.000Z"}), 400, "InputValidationError"
    )


# --- identifiers ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", f"{AUTH}/roles/{'r' * 5_000}", {"description": "x", "scopes": []}),
        ("PUT", f"{AUTH}/clients/{'c' * 5_000}", {"description": "x", "expires": "2030-01-01T00:00:00.000Z"}),
        ("GET", f"{AUTH}/roles/{'r' * 5_000}", None),
        ("DELETE", f"{AUTH}/clients/{'c' * 5_000}", None),
        ("PUT", f"/task/{'A' * 5_000}", None),
        ("GET", f"/task/{'A' * 5_000}/status", None),
    ],
)
def test_identifiers_longer_than_any_key_are_a_400(stack: Harness, method: str, path: str, body: Any) -> None:
    if path.startswith("/task/") and method == "PUT":
        body = task_def(stack.clock)
    assert_error(stack.call(method, path, body), 400, "InvalidRequestArguments")
    assert all(len(r["roleId"]) < 5_000 for r in stack.call("GET", f"{AUTH}/roles").json_body)


def test_identifiers_at_their_maximum_are_taken(stack: Harness) -> None:
    role_id = "r" * 500
    r = stack.call("PUT", f"{AUTH}/roles/{role_id}", {"description": "x", "scopes": ["queue:status:*"]})
    assert r.status_code == 200, r.body
    assert stack.call("GET", f"{AUTH}/roles/{role_id}").json_body["roleId"] == role_id


# --- expensive rejections ------------------------------------------------------------------------
def test_thousands_of_dependencies_that_do_not_exist_are_refused_after_one_batch(stack: Harness) -> None:
    task_id = slugid.nice()
    deps = [slugid.nice() for _ in range(10_000)]
    body = task_def(stack.clock, taskQueueId="sandbox/linux", dependencies=deps)
    grant_sandbox(stack)
    with within(10):
        r = stack.call("PUT", f"/task/{task_id}", body, credentials=None)
    error = assert_error(r, 400, "InputError")
    assert set(error["details"]["missingTaskDependencies"]) <= set(deps[:100])
    task_missing(stack, task_id)
    assert not [row for row in stack.c.dependencies.graph._model.scan() if task_id in row.pk or task_id in row.sk]  # type: ignore[attr-defined]


def test_unauthorized_dependencies_are_refused_before_any_is_looked_up(stack: Harness) -> None:
    task_id = slugid.nice()
    deps = [slugid.nice() for _ in range(10_000)]
    body = task_def(stack.clock, taskQueueId="elsewhere/linux", dependencies=deps)
    with within(5):
        r = stack.call("PUT", f"/task/{task_id}", body, credentials=None)
    assert_error(r, 403, "InsufficientScopes")
    task_missing(stack, task_id)


def grant_sandbox(stack: Harness) -> None:
    """The embedded stack's anonymous role: lowest-priority tasks on sandbox/* task queues."""
    scopes = ["queue:create-task:lowest:sandbox/*", "queue:create-task:project:none", "queue:scheduler-id:-"]
    scopes += ["queue:get-task:*", "queue:status:*"]
    r = stack.call("PUT", f"{AUTH}/roles/anonymous", {"description": "sandbox", "scopes": scopes})
    assert r.status_code == 200, r.body


def forged_token(key: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps({k: {"S": v} for k, v in key.items()}).encode()).decode()


def test_a_continuation_token_of_another_listing_is_a_400(stack: Harness) -> None:
    group, other = slugid.nice(), slugid.nice()
    for g in (group, group, other):
        stack.create(taskGroupId=g)
    page = stack.call("GET", f"/task-group/{group}/list?limit=1").json_body
    token = page["continuationToken"]
    assert stack.call("GET", f"/task-group/{group}/list?continuationToken={token}").status_code == 200
    # the same token on another group's listing would be a start key outside that query
    assert_error(stack.call("GET", f"/task-group/{other}/list?continuationToken={token}"), 400, "InputError")
    pending = forged_token({"taskQueueId": "proj/linux", "queueSort": "running#x", "taskId": "x"})
    r = stack.call("GET", f"/task-queues/proj%2Flinux/pending?continuationToken={pending}")
    assert_error(r, 400, "InputError")


def test_a_continuation_token_with_a_key_longer_than_keys_may_be_is_a_400(stack: Harness) -> None:
    task_id = stack.create()
    token = forged_token({"pk": f"dependents#{task_id}", "sk": "x" * 2_000})
    assert_error(stack.call("GET", f"/task/{task_id}/dependents?continuationToken={token}"), 400, "InputError")
