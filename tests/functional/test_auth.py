"""Authentication and scopes as Taskcluster clients see them (issue 7): Hawk, bewits, clients,
roles, temporary credentials and every endpoint's scopes — over HTTP, and through the official
`taskcluster` client (which signs with mohawk, independently of our code)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import boto3
import mohawk
import pytest
import requests
import slugid
import taskcluster
from taskcluster.exceptions import TaskclusterAuthFailure, TaskclusterRestFailure

from chalicelib.domain.model import format_date
from chalicelib.domain.pools import PoolWorker, WorkerState
from tests.harness import AUTH, Harness, assert_error, make_client, task_def

ROOT = "/api/queue/v1"


# --- helpers --------------------------------------------------------------------------------------
def make_role(stack: Harness, role_id: str, scopes: list[str]) -> None:
    r = stack.call("PUT", f"{AUTH}/roles/{role_id}", {"description": "test role", "scopes": scopes})
    assert r.status_code == 200, r.body


def client(stack: Harness, credentials: dict[str, Any] | None, cls: Any = taskcluster.Queue, **opts: Any) -> Any:
    options: dict[str, Any] = {"rootUrl": stack.root_url(), "maxRetries": 0, **opts}
    if credentials is not None:
        options["credentials"] = credentials
    return cls(options)


@pytest.fixture(autouse=True)
def client_clock(stack: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    stack.client_clock_follows_stack(monkeypatch)


# --- Hawk -----------------------------------------------------------------------------------------
def test_the_root_client_is_authenticated_and_holds_every_scope(stack: Harness) -> None:
    auth = client(stack, stack.credentials, taskcluster.Auth)
    assert auth.currentScopes() == {"scopes": ["*"]}
    task_id = stack.create()
    assert client(stack, stack.credentials).status(task_id)["status"]["state"] == "pending"


def test_a_wrong_access_token_is_401_authentication_failed(stack: Harness) -> None:
    task_id = stack.create()
    r = stack.call("GET", f"/task/{task_id}/status", credentials={"clientId": "root", "accessToken": "wrong"})
    assert_error(r, 401, "AuthenticationFailed")
    assert r.headers["WWW-Authenticate"] == "hawk"
    with pytest.raises(TaskclusterAuthFailure):
        client(stack, {"clientId": "root", "accessToken": "wrong"}).status(task_id)


def test_an_unknown_client_is_401(stack: Harness) -> None:
    r = stack.call("GET", f"/task/{slugid.nice()}/status", credentials={"clientId": "nobody", "accessToken": "x"})
    assert_error(r, 401, "AuthenticationFailed")


def test_an_expired_or_deleted_client_is_401(stack: Harness) -> None:
    creds = make_client(stack, "soon-gone", ["queue:status:*"])
    task_id = stack.create()
    assert stack.call("GET", f"/task/{task_id}/status", credentials=creds).status_code == 200
    stack.advance(24 * 3600 + 1)  # past its expiry (and past the client cache)
    assert_error(stack.call("GET", f"/task/{task_id}/status", credentials=creds), 401, "AuthenticationFailed")

    other = make_client(stack, "deleted", ["queue:status:*"])
    assert stack.call("GET", f"/task/{task_id}/status", credentials=other).status_code == 200
    assert stack.call("DELETE", f"{AUTH}/clients/deleted").status_code == 204
    assert_error(stack.call("GET", f"/task/{task_id}/status", credentials=other), 401, "AuthenticationFailed")


@pytest.mark.parametrize(("skew", "accepted"), [(-14 * 60, True), (14 * 60, True), (-16 * 60, False), (16 * 60, False)])
def test_a_client_clock_within_15_minutes_is_accepted_beyond_it_refused(
    stack: Harness, monkeypatch: pytest.MonkeyPatch, skew: int, accepted: bool
) -> None:
    task_id = stack.create()
    monkeypatch.setattr(mohawk.base, "utc_now", lambda offset_in_seconds=0: int(stack.clock.now().timestamp()) + skew)
    queue = client(stack, stack.credentials)
    if accepted:
        assert queue.status(task_id)["status"]["taskId"] == task_id
    else:
        with pytest.raises(TaskclusterAuthFailure, match="Stale timestamp"):
            queue.status(task_id)


def signed(stack: Harness, method: str, path: str, body: bytes, url_path: str | None = None) -> dict[str, str]:
    sender = mohawk.Sender(
        credentials={"id": "root", "key": stack.settings.root_access_token, "algorithm": "sha256"},
        url=f"http://localhost{url_path or path}",
        method=method,
        content=body.decode(),
        content_type="application/json",
        _timestamp=str(int(stack.clock.now().timestamp())),
    )
    return {"Authorization": sender.request_header, "Content-Type": "application/json", "Host": "localhost"}


def test_tampered_requests_are_refused(stack: Harness) -> None:
    task_id = slugid.nice()
    good = json.dumps({"newPriority": "high"}).encode()
    path = f"{ROOT}/task/{task_id}/priority"
    headers = signed(stack, "POST", path, good)
    # The body changed after signing: the payload hash no longer matches.
    r = stack.client.http.request("POST", path, headers=headers, body=json.dumps({"newPriority": "low"}).encode())
    assert_error(r, 401, "AuthenticationFailed")
    # Another path than the one signed.
    other = f"{ROOT}/task/{slugid.nice()}/priority"
    assert_error(stack.client.http.request("POST", other, headers=headers, body=good), 401, "AuthenticationFailed")
    # Another host than the one signed.
    moved = {**headers, "Host": "elsewhere.example.com"}
    assert_error(stack.client.http.request("POST", path, headers=moved, body=good), 401, "AuthenticationFailed")
    # The method changed.
    assert_error(
        stack.client.http.request("PUT", f"{ROOT}/task/{task_id}", headers=headers, body=good),
        401,
        "AuthenticationFailed",
    )
    # As signed, it passes authentication (and the missing task is then a 404).
    assert_error(stack.client.http.request("POST", path, headers=headers, body=good), 404, "ResourceNotFound")


def test_a_header_and_a_bewit_together_are_refused(stack: Harness) -> None:
    task_id = stack.create()
    url = client(stack, stack.credentials).buildSignedUrl("status", task_id)
    query = url.split("?", 1)[1]
    r = stack.call("GET", f"/task/{task_id}/status?{query}")
    assert_error(r, 401, "AuthenticationFailed")


# --- anonymous access -----------------------------------------------------------------------------
def test_no_credentials_get_the_anonymous_roles_scopes_and_missing_ones_are_403(stack: Harness) -> None:
    task_id = stack.create()
    assert stack.call("GET", "/ping", credentials=None).status_code == 200  # public
    body = assert_error(stack.call("GET", f"/task/{task_id}/status", credentials=None), 403, "InsufficientScopes")
    assert body["details"] == {"required": f"queue:status:{task_id}", "unsatisfied": f"queue:status:{task_id}"}
    assert "anonymous" in body["message"]

    make_role(stack, "anonymous", ["queue:status:*"])
    assert stack.call("GET", f"/task/{task_id}/status", credentials=None).status_code == 200
    with pytest.raises(TaskclusterRestFailure) as failure:
        client(stack, None).task(task_id)
    assert failure.value.status_code == 403


def test_403_comes_before_parameter_validation_when_the_route_parameters_suffice(stack: Harness) -> None:
    # Taskcluster authorizes first: an unauthorized caller learns nothing about the input's validity.
    assert_error(stack.call("GET", "/task/not-a-slug/status", credentials=None), 403, "InsufficientScopes")
    assert_error(stack.call("GET", "/task/not-a-slug/status"), 400, "InvalidRequestArguments")


# --- bewits ---------------------------------------------------------------------------------------
def bewit_expiry(url: str) -> int:
    """The expiry a signed URL's bewit carries (`id\\exp\\mac\\ext`, URL-safe base64)."""
    bewit = url.split("bewit=", 1)[1].split("&", 1)[0]
    raw = base64.urlsafe_b64decode(bewit + "=" * (-len(bewit) % 4)).decode()
    return int(raw.split("\\")[1])


def test_a_bewit_signed_url_reads_a_private_artifact_until_it_expires(stack: Harness) -> None:
    task_id = stack.create()
    [claim] = stack.claim()
    link = {
        "storageType": "reference",
        "url": "https://example.com/x",
        "contentType": "text/plain",
        "expires": format_date(stack.clock.now() + timedelta(days=1)),
    }
    assert stack.call("POST", f"/task/{task_id}/runs/0/artifacts/private%2Fx", link).status_code == 200
    queue = client(stack, stack.credentials)
    url = queue.buildSignedUrl("getArtifact", task_id, "0", "private/x", expiration=600)
    path_and_query = url.split(stack.root_url(), 1)[1]
    r = requests.get(stack.root_url() + path_and_query, allow_redirects=False)
    assert r.status_code == 303 and r.headers["Location"] == "https://example.com/x"
    assert requests.get(stack.root_url() + path_and_query.split("?")[0], allow_redirects=False).status_code == 403
    # A bewit for one artifact does not open another.
    other = path_and_query.replace("private%2Fx", "private%2Fy")
    assert requests.get(stack.root_url() + other, allow_redirects=False).status_code == 401
    # The client dates the bewit by the wall clock, the stack by its own: go just past its expiry.
    stack.advance(bewit_expiry(url) - stack.clock.now().timestamp() + 1)
    assert requests.get(stack.root_url() + path_and_query, allow_redirects=False).status_code == 401
    assert claim["status"]["taskId"] == task_id


def test_public_artifacts_need_no_scopes(stack: Harness) -> None:
    task_id = stack.create()
    stack.claim()
    link = {
        "storageType": "reference",
        "url": "https://example.com/log",
        "contentType": "text/plain",
        "expires": format_date(stack.clock.now() + timedelta(days=1)),
    }
    assert stack.call("POST", f"/task/{task_id}/runs/0/artifacts/public%2Flog", link).status_code == 200
    r = stack.call("GET", f"/task/{task_id}/runs/0/artifacts/public%2Flog", credentials=None)
    assert r.status_code == 303
    assert_error(
        stack.call("GET", f"/task/{task_id}/runs/0/artifacts/private%2Flog", credentials=None),
        403,
        "InsufficientScopes",
    )


# --- temporary credentials ------------------------------------------------------------------------
def test_claims_carry_credentials_for_their_run_only_until_taken_until(stack: Harness) -> None:
    first, second = stack.create(scopes=["secrets:get:project/x"]), stack.create()
    claims = {c["status"]["taskId"]: c for c in stack.claim(tasks=2)}
    creds = claims[first]["credentials"]
    assert creds["clientId"].startswith(f"task-client/{first}/0/on/wg/w1/until/")
    cert = json.loads(creds["certificate"])
    assert cert["scopes"] == [
        f"queue:reclaim-task:{first}/0",
        f"queue:resolve-task:{first}/0",
        f"queue:create-artifact:{first}/0",
        "secrets:get:project/x",
    ]
    as_run = client(stack, creds)
    assert client(stack, creds, taskcluster.Auth).currentScopes()["scopes"] == sorted(cert["scopes"])
    reclaimed = as_run.reclaimTask(first, "0")
    # Another task's run, or anything else, is refused.
    with pytest.raises(TaskclusterRestFailure) as refused:
        as_run.reportCompleted(second, "0")
    assert refused.value.status_code == 403
    with pytest.raises(TaskclusterRestFailure):
        as_run.cancelTask(first)
    # The reclaim's fresh credentials work; once past takenUntil (and the 5 minutes' tolerance), none do.
    fresh = client(stack, reclaimed["credentials"])
    stack.advance(1200 + 301)
    with pytest.raises(TaskclusterAuthFailure):
        as_run.reportCompleted(first, "0")
    stack.advance(1200)
    with pytest.raises(TaskclusterAuthFailure):
        fresh.reportCompleted(first, "0")


def test_temporary_credentials_made_by_a_client_are_checked_against_their_issuer(stack: Harness) -> None:
    issuer = make_client(stack, "issuer", ["queue:status:*"])
    task_id = stack.create()
    start = stack.clock.now()
    temp = taskcluster.createTemporaryCredentials(
        issuer["clientId"], issuer["accessToken"], start, start + timedelta(hours=1), [f"queue:status:{task_id}"]
    )
    assert client(stack, temp).status(task_id)["status"]["taskId"] == task_id
    greedy = taskcluster.createTemporaryCredentials(
        issuer["clientId"], issuer["accessToken"], start, start + timedelta(hours=1), ["queue:get-task:*"]
    )
    with pytest.raises(TaskclusterAuthFailure):
        client(stack, greedy).task(task_id)
    token = temp["accessToken"].decode() if isinstance(temp["accessToken"], bytes) else temp["accessToken"]
    forged = {**temp, "accessToken": token[:-2] + ("xx" if not token.endswith("xx") else "yy")}
    with pytest.raises(TaskclusterAuthFailure):
        client(stack, forged).status(task_id)


def test_authorized_scopes_narrow_a_request(stack: Harness) -> None:
    task_id = stack.create()
    narrowed = client(stack, stack.credentials, authorizedScopes=[f"queue:status:{task_id}"])
    assert narrowed.status(task_id)["status"]["taskId"] == task_id
    with pytest.raises(TaskclusterRestFailure) as refused:
        narrowed.task(task_id)
    assert refused.value.status_code == 403
    limited = make_client(stack, "limited", ["queue:status:*"])
    with pytest.raises(TaskclusterAuthFailure):
        client(stack, limited, authorizedScopes=["queue:get-task:*"]).task(task_id)


# --- clients and roles ----------------------------------------------------------------------------
def test_clients_are_created_read_listed_reset_and_deleted_with_the_official_client(stack: Harness) -> None:
    auth = client(stack, stack.credentials, taskcluster.Auth)
    expires = stack.clock.now() + timedelta(days=1)
    created = auth.createClient("project/ci", {"description": "CI", "expires": expires, "scopes": ["queue:status:*"]})
    token = created["accessToken"]
    assert created["clientId"] == "project/ci" and created["expandedScopes"] == ["queue:status:*"]
    got = auth.client("project/ci")
    assert "accessToken" not in got and got["scopes"] == ["queue:status:*"]
    assert [c["clientId"] for c in auth.listClients(query={"prefix": "project/"})["clients"]] == ["project/ci"]
    with pytest.raises(TaskclusterRestFailure) as conflict:
        auth.createClient("project/ci", {"description": "again", "expires": expires, "scopes": []})
    assert conflict.value.status_code == 409

    task_id = stack.create()
    assert client(stack, {"clientId": "project/ci", "accessToken": token}).status(task_id)
    new_token = auth.resetAccessToken("project/ci")["accessToken"]
    assert new_token != token
    with pytest.raises(TaskclusterAuthFailure):
        client(stack, {"clientId": "project/ci", "accessToken": token}).status(task_id)
    assert client(stack, {"clientId": "project/ci", "accessToken": new_token}).status(task_id)
    auth.deleteClient("project/ci")
    auth.deleteClient("project/ci")  # idempotent
    with pytest.raises(TaskclusterRestFailure) as gone:
        auth.client("project/ci")
    assert gone.value.status_code == 404


def test_access_tokens_are_never_stored(stack: Harness) -> None:
    creds = make_client(stack, "secretive", [])
    items = boto3.client("dynamodb", region_name="us-east-1").scan(TableName=stack.settings.auth_table)["Items"]
    assert items and creds["accessToken"] not in json.dumps(items)


def test_a_client_cannot_grant_scopes_it_lacks(stack: Harness) -> None:
    creator = make_client(stack, "creator", ["auth:create-client:sub/*", "queue:status:*"])
    ok = stack.call(
        "PUT",
        f"{AUTH}/clients/sub%2Fa",
        {
            "description": "x",
            "expires": format_date(stack.clock.now() + timedelta(hours=1)),
            "scopes": ["queue:status:x"],
        },
        credentials=creator,
    )
    assert ok.status_code == 200, ok.body
    body = assert_error(
        stack.call(
            "PUT",
            f"{AUTH}/clients/sub%2Fb",
            {"description": "x", "expires": format_date(stack.clock.now() + timedelta(hours=1)), "scopes": ["queue:*"]},
            credentials=creator,
        ),
        403,
        "InsufficientScopes",
    )
    assert body["details"]["unsatisfied"] == "queue:*"


def test_roles_expand_through_assume_scopes(stack: Harness) -> None:
    make_role(stack, "project:ci", ["queue:status:*", "assume:project:ci-reader"])
    make_role(stack, "project:ci-reader", ["queue:get-task:*"])
    make_role(stack, "repo:*", ["queue:route:index.<..>.*"])
    creds = make_client(stack, "ci-bot", ["assume:project:ci", "assume:repo:github.com/org/x"])
    auth = client(stack, stack.credentials, taskcluster.Auth)
    assert auth.client("ci-bot")["expandedScopes"] == [
        "assume:project:ci",
        "assume:project:ci-reader",
        "assume:repo:github.com/org/x",
        "queue:get-task:*",
        "queue:route:index.github.com/org/x.*",
        "queue:status:*",
    ]
    assert auth.expandScopes({"scopes": ["assume:project:ci-reader"]})["scopes"] == [
        "assume:project:ci-reader",
        "queue:get-task:*",
    ]
    assert [r["roleId"] for r in auth.listRoles()] == ["project:ci", "project:ci-reader", "repo:*"]
    task_id = stack.create()
    assert client(stack, creds).task(task_id)["taskQueueId"] == "proj/linux"
    auth.deleteRole("project:ci-reader")
    stack.advance(11)  # roles are cached for TASKQUEUE_AUTH_CACHE_SECONDS in other processes; this one forgets at once
    with pytest.raises(TaskclusterRestFailure):
        client(stack, creds).task(task_id)


def test_a_role_that_would_expand_without_bound_is_refused(stack: Harness) -> None:
    r = stack.call("PUT", f"{AUTH}/roles/grow*", {"description": "x", "scopes": ["assume:grow<..>x"]})
    assert_error(r, 400, "InputError")
    assert_error(stack.call("GET", f"{AUTH}/roles/grow*"), 404, "ResourceNotFound")


# --- every endpoint's scopes ----------------------------------------------------------------------
Case = tuple[str, Callable[[Harness], tuple[str, str, Any]], Callable[[Harness, dict[str, str]], list[str]]]


def _setup(stack: Harness) -> dict[str, str]:
    running = stack.create(taskQueueId="proj/busy")
    [claim] = stack.claim("proj/busy")
    assert claim["status"]["taskId"] == running
    stack.pump.step()  # the stream records the worker wg/w1 of proj/busy
    link = {
        "storageType": "reference",
        "url": "https://example.com/a",
        "contentType": "text/plain",
        "expires": format_date(stack.clock.now() + timedelta(days=1)),
    }
    assert stack.call("POST", f"/task/{running}/runs/0/artifacts/private%2Fa", link).status_code == 200
    assert stack.call("POST", f"/task/{running}/runs/0/artifacts/p", link).status_code == 200
    task_id = stack.create()
    group = stack.status(task_id)["taskGroupId"]
    unscheduled = stack.create(taskGroupId=group, dependencies=[task_id])
    sealed = stack.create()
    assert stack.call("POST", f"/task-group/{sealed}/seal").status_code == 200
    make_client(stack, "victim", [])
    make_role(stack, "r2", [])
    assert stack.call("PUT", f"{WM}/worker-pool/proj%2Fpool", POOL_DEF).status_code == 200
    now = stack.clock.now()
    stack.c.pool_store.put_worker(
        PoolWorker(
            worker_pool_id="proj/pool",
            worker_group="wg",
            worker_id="w1",
            provider_id="aws",
            launch_config_id="lc",
            state=WorkerState.RUNNING,
            capacity=1,
            created=now,
            last_modified=now,
            last_checked=now,
            expires=now + timedelta(days=1),
        )
    )
    return {
        "task": task_id,
        "group": group,
        "unscheduled": unscheduled,
        "new": slugid.nice(),
        "running": running,
        "sealed": sealed,
    }


BUSY_WORKERS = "/provisioners/proj/worker-types/busy/workers"
WM = "/api/worker-manager/v1"
POOL_DEF = {
    "providerId": "aws",
    "description": "d",
    "owner": "o@example.com",
    "emailOnError": False,
    "config": {
        "minCapacity": 0,
        "maxCapacity": 1,
        "launchConfigs": [{"region": "r", "launchConfig": {"ImageId": "i"}}],
    },
}
MANAGE_POOL = "worker-manager:manage-worker-pool:proj/pool"
CASES: list[tuple[str, str, str, Any, list[str]]] = [
    # (endpoint, method, path template, body, the exact scopes it needs)
    ("task", "GET", "/task/{task}", None, ["queue:get-task:{task}"]),
    ("status", "GET", "/task/{task}/status", None, ["queue:status:{task}"]),
    ("tasks", "POST", "/tasks", {"taskIds": ["{task}"]}, ["queue:get-task:{task}"]),
    ("statuses", "POST", "/tasks/status", {"taskIds": ["{task}"]}, ["queue:status:{task}"]),
    (
        "createTask",
        "PUT",
        "/task/{new}",
        "definition",
        [
            "secrets:get:x",
            "queue:route:index.x",
            "queue:create-task:project:none",
            "queue:scheduler-id:-",
            "queue:create-task:lowest:proj/linux",
        ],
    ),
    ("scheduleTask", "POST", "/task/{unscheduled}/schedule", None, ["queue:schedule-task:-/{group}/{unscheduled}"]),
    ("cancelTask", "POST", "/task/{task}/cancel", None, ["queue:cancel-task-in-project:none"]),
    (
        "changeTaskPriority",
        "POST",
        "/task/{task}/priority",
        {"newPriority": "high"},
        ["queue:change-task-priority:{task}"],
    ),
    ("pendingTasks", "GET", "/pending/proj%2Flinux", None, ["queue:pending-count:proj/linux"]),
    ("listTaskGroup", "GET", "/task-group/{group}/list", None, ["queue:list-task-group:{group}"]),
    ("sealTaskGroup", "POST", "/task-group/{group}/seal", None, ["queue:seal-task-group:-/{group}"]),
    ("listDependentTasks", "GET", "/task/{task}/dependents", None, ["queue:list-dependent-tasks:{task}"]),
    (
        "claimWork",
        "POST",
        "/claim-work/proj%2Flinux",
        {"workerGroup": "wg", "workerId": "w9", "tasks": 1},
        ["queue:claim-work:proj/linux", "queue:worker-id:wg/w9"],
    ),
    (
        "claimTask",
        "POST",
        "/task/{task}/runs/0/claim",
        {"workerGroup": "wg", "workerId": "w9"},
        ["queue:claim-task:proj/linux", "queue:worker-id:wg/w9"],
    ),
    ("listArtifacts", "GET", "/task/{task}/runs/0/artifacts", None, ["queue:list-artifacts:{task}:0"]),
    (
        "createRole",
        "PUT",
        f"{AUTH}/roles/r1",
        {"description": "d", "scopes": ["queue:status:x"]},
        ["auth:create-role:r1", "queue:status:x"],
    ),
    ("deleteRole", "DELETE", f"{AUTH}/roles/r1", None, ["auth:delete-role:r1"]),
    ("updateRole", "POST", f"{AUTH}/roles/r2", {"description": "d", "scopes": ["a:b"]}, ["auth:update-role:r2", "a:b"]),
    (
        "createClient",
        "PUT",
        f"{AUTH}/clients/c1",
        {"description": "d", "expires": "3000-01-01T00:00:00.000Z", "scopes": ["a:b"]},
        ["auth:create-client:c1", "a:b"],
    ),
    (
        "updateClient",
        "POST",
        f"{AUTH}/clients/victim",
        {"description": "d", "expires": "3000-01-01T00:00:00.000Z", "scopes": ["a:b"]},
        ["auth:update-client:victim", "a:b"],
    ),
    ("resetAccessToken", "POST", f"{AUTH}/clients/victim/reset", None, ["auth:reset-access-token:victim"]),
    ("deleteClient", "DELETE", f"{AUTH}/clients/victim", None, ["auth:delete-client:victim"]),
    ("rerunTask", "POST", "/task/{task}/rerun", None, ["queue:rerun-task:-/{group}/{task}"]),
    ("reclaimTask", "POST", "/task/{running}/runs/0/reclaim", None, ["queue:reclaim-task:{running}/0"]),
    ("reportCompleted", "POST", "/task/{running}/runs/0/completed", None, ["queue:resolve-task:{running}/0"]),
    ("reportFailed", "POST", "/task/{running}/runs/0/failed", None, ["queue:resolve-task:{running}/0"]),
    (
        "reportException",
        "POST",
        "/task/{running}/runs/0/exception",
        {"reason": "worker-shutdown"},
        ["queue:resolve-task:{running}/0"],
    ),
    (
        "taskQueueCounts",
        "GET",
        "/task-queues/proj%2Flinux/counts",
        None,
        ["queue:pending-count:proj/linux", "queue:claimed-count:proj/linux"],
    ),
    ("listPendingTasks", "GET", "/task-queues/proj%2Flinux/pending", None, ["queue:pending-list:proj/linux"]),
    ("listClaimedTasks", "GET", "/task-queues/proj%2Flinux/claimed", None, ["queue:claimed-list:proj/linux"]),
    ("getTaskGroup", "GET", "/task-group/{group}", None, ["queue:list-task-group:{group}"]),
    ("cancelTaskGroup", "POST", "/task-group/{sealed}/cancel", None, ["queue:cancel-task-group:-/{sealed}"]),
    (
        "changeTaskGroupPriority",
        "POST",
        "/task-group/{group}/priority",
        {"newPriority": "high"},
        ["queue:change-task-group-priority:-/{group}"],
    ),
    (
        "createArtifact",
        "POST",
        "/task/{running}/runs/0/artifacts/private%2Fb",
        "reference",
        ["queue:create-artifact:{running}/0"],
    ),
    ("getArtifact", "GET", "/task/{running}/runs/0/artifacts/private%2Fa", None, ["queue:get-artifact:private/a"]),
    ("getLatestArtifact", "GET", "/task/{running}/artifacts/private%2Fa", None, ["queue:get-artifact:private/a"]),
    ("artifact", "GET", "/task/{running}/runs/0/artifact-content/private%2Fa", None, ["queue:get-artifact:private/a"]),
    ("latestArtifact", "GET", "/task/{running}/artifact-content/private%2Fa", None, ["queue:get-artifact:private/a"]),
    ("listLatestArtifacts", "GET", "/task/{running}/artifacts", None, ["queue:list-artifacts:{running}"]),
    (
        "artifactInfo",
        "GET",
        "/task/{running}/runs/0/artifact-info/private%2Fa",
        None,
        ["queue:list-artifacts:{running}:0"],
    ),
    (
        "latestArtifactInfo",
        "GET",
        "/task/{running}/artifact-info/private%2Fa",
        None,
        ["queue:list-artifacts:{running}"],
    ),
    ("listProvisioners", "GET", "/provisioners", None, ["queue:list-provisioners"]),
    ("getProvisioner", "GET", "/provisioners/proj", None, ["queue:get-provisioner:proj"]),
    ("listWorkerTypes", "GET", "/provisioners/proj/worker-types", None, ["queue:list-worker-types:proj"]),
    ("getWorkerType", "GET", "/provisioners/proj/worker-types/busy", None, ["queue:get-worker-type:proj/busy"]),
    ("listTaskQueues", "GET", "/task-queues", None, ["queue:list-task-queues"]),
    ("getTaskQueue", "GET", "/task-queues/proj%2Fbusy", None, ["queue:get-task-queue:proj/busy"]),
    ("listWorkers", "GET", BUSY_WORKERS, None, ["queue:list-workers:proj/busy"]),
    ("getWorker", "GET", f"{BUSY_WORKERS}/wg/w1", None, ["queue:get-worker:proj/busy/wg/w1"]),
    (
        "quarantineWorker",
        "PUT",
        f"{BUSY_WORKERS}/wg/w1",
        {"quarantineUntil": "2000-01-01T00:00:00.000Z"},
        ["queue:quarantine-worker:proj/busy/wg/w1"],
    ),
    (
        "declareWorker",
        "PUT",
        "/provisioners/proj/worker-types/busy/wg/w2",
        {"expires": "3000-01-01T00:00:00.000Z"},
        ["queue:declare-worker:proj/busy/wg/w2#expires"],
    ),
    (
        "createWorkerPool",
        "PUT",
        f"{WM}/worker-pool/proj%2Fnew",
        POOL_DEF,
        ["worker-manager:manage-worker-pool:proj/new", "worker-manager:provider:aws"],
    ),
    (
        "updateWorkerPool",
        "POST",
        f"{WM}/worker-pool/proj%2Fpool",
        {**POOL_DEF, "providerId": "local"},
        [MANAGE_POOL, "worker-manager:provider:local"],
    ),
    ("deleteWorkerPool", "DELETE", f"{WM}/worker-pool/proj%2Fpool", None, [MANAGE_POOL]),
    ("workerPool", "GET", f"{WM}/worker-pool/proj%2Fpool", None, ["worker-manager:get-worker-pool:proj/pool"]),
    ("listWorkerPools", "GET", f"{WM}/worker-pools", None, ["worker-manager:list-worker-pools"]),
    (
        "listWorkerPoolErrors",
        "GET",
        f"{WM}/worker-pool-errors/proj%2Fpool",
        None,
        ["worker-manager:list-worker-pool-errors:proj/pool"],
    ),
    ("listWorkersForWorkerPool", "GET", f"{WM}/workers/proj%2Fpool", None, ["worker-manager:list-workers:proj/pool"]),
    ("worker", "GET", f"{WM}/workers/proj%2Fpool/wg/w1", None, ["worker-manager:get-worker:proj/pool/wg/w1"]),
]


@pytest.mark.parametrize(("name", "method", "path", "body", "exact"), CASES, ids=[c[0] for c in CASES])
def test_exactly_the_documented_scopes_succeed_and_missing_any_one_is_403(
    stack: Harness, name: str, method: str, path: str, body: Any, exact: list[str]
) -> None:
    ids = _setup(stack)
    if body == "definition":
        body = task_def(stack.clock, scopes=["secrets:get:x"], routes=["index.x"])
    elif body == "reference":
        body = {
            "storageType": "reference",
            "url": "https://example.com/b",
            "contentType": "text/plain",
            "expires": format_date(stack.clock.now() + timedelta(days=1)),
        }
    raw = json.dumps(body).replace("{task}", ids["task"]) if body is not None else None
    request_body = json.loads(raw) if raw is not None else None
    url = path.format(**ids)
    needed = [s.format(**ids) for s in exact]
    for i, missing in enumerate(needed):
        creds = make_client(stack, f"without-{i}", [s for s in needed if s != missing])
        r = stack.call(method, url, request_body, credentials=creds)
        got = assert_error(r, 403, "InsufficientScopes")
        assert missing in json.dumps(got["details"]["unsatisfied"]), (name, missing)
    creds = make_client(stack, "exact", needed)
    r = stack.call(method, url, request_body, credentials=creds)
    assert r.status_code in (200, 204, 303), (name, r.body)


def test_a_token_in_ext_that_is_not_base64_json_is_401(stack: Harness) -> None:
    ext = base64.b64encode(b"not json").decode()
    task_id = stack.create()
    sender = mohawk.Sender(
        credentials={"id": "root", "key": stack.settings.root_access_token, "algorithm": "sha256"},
        url=f"http://localhost{ROOT}/task/{task_id}/status",
        method="GET",
        content="",
        content_type="",
        ext=ext,
        _timestamp=str(int(stack.clock.now().timestamp())),
    )
    r = stack.call("GET", f"/task/{task_id}/status", headers={"Authorization": sender.request_header})
    assert "parse ext" in assert_error(r, 401, "AuthenticationFailed")["message"]


def test_on_aws_the_root_client_comes_from_its_secret(stack: Harness) -> None:
    from botocore.config import Config

    from chalicelib.config import Settings
    from chalicelib.container import root_credentials

    sm = boto3.client("secretsmanager", region_name="us-east-1")
    value = '{"clientId": "admin", "accessToken": "t0k"}'
    arn = sm.create_secret(Name="taskqueue-root-client", SecretString=value)["ARN"]
    root = root_credentials(Settings(root_secret_arn=arn, root_access_token="ignored"), Config())
    assert (root.client_id, root.access_token) == ("admin", "t0k")
    assert root.token_key and root.token_key != "t0k"  # derived from the token, as no tokenKey is in the secret
    sm.put_secret_value(SecretId=arn, SecretString='{"clientId": "admin", "accessToken": "t0k", "tokenKey": "k"}')
    assert root_credentials(Settings(root_secret_arn=arn), Config()).token_key == "k"
