"""Worker-manager v1 (worker pools, their workers and errors) over HTTP and through the official
`taskcluster.WorkerManager` client, against the stack on moto with the harness's FakeClock; and
the pools table's conditional writes (adapters/pool_store.py).

Workers and errors are recorded by the provisioner: here they are written through the store.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import slugid
import taskcluster
from fastjsonschema import JsonSchemaException
from taskcluster.exceptions import TaskclusterRestFailure

from chalicelib import reference
from chalicelib.adapters.pool_store import DynamoPoolStore
from chalicelib.domain.pools import PoolError, PoolWorker, WorkerPool, WorkerState, worker_credential_scopes
from tests.harness import WM, Harness, assert_error

POOL = "proj/linux"
ENC = "proj%2Flinux"
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
COUNTERS = {
    "currentCapacity",
    "requestedCount",
    "runningCount",
    "stoppingCount",
    "stoppedCount",
    "requestedCapacity",
    "runningCapacity",
    "stoppingCapacity",
    "stoppedCapacity",
}
POOL_KEYS = {
    "workerPoolId",
    "providerId",
    "previousProviderIds",
    "description",
    "config",
    "owner",
    "emailOnError",
    "created",
    "lastModified",
    *COUNTERS,
}
WORKER_KEYS = {
    "workerPoolId",
    "workerGroup",
    "workerId",
    "providerId",
    "created",
    "expires",
    "state",
    "capacity",
    "launchConfigId",
    "lastModified",
    "lastChecked",
}
ERROR_KEYS = {"workerPoolId", "errorId", "reported", "kind", "title", "description", "extra", "launchConfigId"}
OUTPUTS = {e.name: e.output for e in reference.entries("worker-manager") if e.output}


def pool_def(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "providerId": "aws",
        "description": "Linux builders",
        "owner": "ci@example.com",
        "emailOnError": False,
        "config": {
            "minCapacity": 0,
            "maxCapacity": 10,
            "scalingRatio": 0.5,
            "lifecycle": {"registrationTimeout": 900},
            "launchConfigs": [
                {
                    "region": "us-east-1",
                    "launchConfig": {"ImageId": "ami-0123456789abcdef0", "InstanceType": "m6i.large"},
                    "workerManager": {"launchConfigId": "m6i", "capacityPerInstance": 2},
                }
            ],
        },
    }
    body.update(overrides)
    return body


def call(stack: Harness, name: str, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    """One request to worker-manager; a 200 answer is checked against the endpoint's output schema."""
    r = stack.call(method, WM + path, body)
    assert r.status_code == status, (name, r.body)
    if status == 200 and name in OUTPUTS:
        try:
            reference.output_validator(str(OUTPUTS[name]))(r.json_body)
        except JsonSchemaException as e:
            raise AssertionError(f"{name}'s answer does not match {OUTPUTS[name]}: {e}\n{r.json_body}") from None
    return r.json_body


def store(stack: Harness) -> DynamoPoolStore:
    pools = stack.c.pool_store
    assert isinstance(pools, DynamoPoolStore)
    return pools


def worker(stack: Harness, worker_id: str, state: WorkerState = WorkerState.RUNNING, **fields: Any) -> PoolWorker:
    now = stack.clock.now()
    values: dict[str, Any] = {
        "worker_pool_id": POOL,
        "worker_group": "us-east-1",
        "worker_id": worker_id,
        "provider_id": "aws",
        "launch_config_id": "m6i",
        "state": state,
        "capacity": 2,
        "created": now,
        "last_modified": now,
        "last_checked": now,
        "expires": now + timedelta(days=7),
        "provider_data": {"region": "us-east-1"},
    }
    values.update(fields)
    return PoolWorker(**values)


def pool_error(stack: Harness, age: timedelta, **fields: Any) -> PoolError:
    values: dict[str, Any] = {
        "worker_pool_id": POOL,
        "error_id": slugid.nice(),
        "reported": stack.clock.now() - age,
        "kind": "creation-error",
        "title": "Instance Creation Error",
        "description": "InsufficientInstanceCapacity",
        "launch_config_id": "m6i",
        "extra": {"code": "InsufficientInstanceCapacity"},
    }
    values.update(fields)
    return PoolError(**values)


@pytest.fixture
def wm(stack: Harness, monkeypatch: pytest.MonkeyPatch) -> taskcluster.WorkerManager:
    stack.client_clock_follows_stack(monkeypatch)
    return taskcluster.WorkerManager({"rootUrl": stack.root_url(), "maxRetries": 0, "credentials": stack.credentials})


# --- worker pools through the official client -----------------------------------------------------
def test_a_pool_is_created_read_listed_updated_and_deleted_with_the_official_client(
    stack: Harness, wm: taskcluster.WorkerManager
) -> None:
    assert wm.ping()["alive"] is True
    created = wm.createWorkerPool(POOL, pool_def())
    assert set(created) == POOL_KEYS
    assert created["workerPoolId"] == POOL and created["providerId"] == "aws"
    assert created["config"] == pool_def()["config"]  # as written: no defaults filled in
    assert created["previousProviderIds"] == [] and all(created[k] == 0 for k in COUNTERS)
    assert DATE.match(created["created"]) and created["created"] == created["lastModified"]
    assert wm.workerPool(POOL) == created
    assert wm.listWorkerPools()["workerPools"] == [created]

    stack.advance(60)
    updated = wm.updateWorkerPool(POOL, pool_def(description="bigger", providerId="local"))
    assert (updated["description"], updated["providerId"], updated["previousProviderIds"]) == (
        "bigger",
        "local",
        ["aws"],
    )
    assert updated["created"] == created["created"] and updated["lastModified"] > created["lastModified"]

    deleted = wm.deleteWorkerPool(POOL)
    assert deleted["providerId"] == "null-provider"
    assert deleted["previousProviderIds"] == ["aws", "local"]
    assert [p["providerId"] for p in wm.listWorkerPools()["workerPools"]] == ["null-provider"]
    with pytest.raises(TaskclusterRestFailure) as e:
        wm.workerPool("proj/missing")
    assert e.value.status_code == 404


def test_the_official_client_pages_through_pools_by_id(stack: Harness, wm: taskcluster.WorkerManager) -> None:
    ids = [f"proj/p{i}" for i in (3, 0, 4, 1, 2)]
    for pool_id in ids:
        wm.createWorkerPool(pool_id, pool_def())
    seen: list[str] = []
    pages = 0
    query: dict[str, Any] = {"limit": 2}
    while True:
        page = wm.listWorkerPools(query=query)
        pages += 1
        seen += [p["workerPoolId"] for p in page["workerPools"]]
        if "continuationToken" not in page:
            break
        query = {"limit": 2, "continuationToken": page["continuationToken"]}
    assert seen == sorted(ids) and pages == 3


def test_workers_and_errors_through_the_official_client(stack: Harness, wm: taskcluster.WorkerManager) -> None:
    wm.createWorkerPool(POOL, pool_def())
    assert store(stack).put_worker(worker(stack, "i-0abc"))
    assert store(stack).put_worker(worker(stack, "i-0def", WorkerState.REQUESTED))
    store(stack).add_error(pool_error(stack, timedelta(minutes=1)))
    listed = wm.listWorkersForWorkerPool(POOL)["workers"]
    assert [w["workerId"] for w in listed] == ["i-0abc", "i-0def"]
    assert wm.listWorkersForWorkerPool(POOL, query={"state": "requested"})["workers"] == [listed[1]]
    assert wm.worker(POOL, "us-east-1", "i-0abc") == listed[0]
    [err] = wm.listWorkerPoolErrors(POOL)["workerPoolErrors"]
    assert err["kind"] == "creation-error" and set(err) == ERROR_KEYS


def test_a_worker_reports_an_error_with_its_own_credentials(stack: Harness, wm: taskcluster.WorkerManager) -> None:
    wm.createWorkerPool(POOL, pool_def())
    assert store(stack).put_worker(worker(stack, "i-0abc"))
    now = stack.clock.now()
    temporary = taskcluster.createTemporaryCredentials(
        stack.credentials["clientId"], stack.credentials["accessToken"], now - timedelta(minutes=5),
        now + timedelta(hours=1), worker_credential_scopes(POOL, "us-east-1", "i-0abc"),
    )  # fmt: skip
    as_worker = taskcluster.WorkerManager({"rootUrl": stack.root_url(), "maxRetries": 0, "credentials": temporary})
    report = {"workerGroup": "us-east-1", "workerId": "i-0abc", "kind": "worker-error", "title": "Disk full",
              "description": "no space left on /var/lib/worker", "extra": {"free": 0}}  # fmt: skip
    reported = as_worker.reportWorkerError(POOL, report)
    assert set(reported) == ERROR_KEYS and reported["launchConfigId"] == "m6i"
    assert reported["extra"] == {"free": 0, "workerGroup": "us-east-1", "workerId": "i-0abc"}
    assert wm.listWorkerPoolErrors(POOL)["workerPoolErrors"] == [reported]

    # Another worker's identity is not this worker's to use.
    with pytest.raises(TaskclusterRestFailure) as refused:
        as_worker.reportWorkerError(POOL, {**report, "workerId": "i-0def"})
    assert refused.value.status_code == 403
    assert wm.listWorkerPoolErrors(POOL)["workerPoolErrors"] == [reported]
    assert_error(stack.call("POST", WM + "/worker-pool-errors/proj%2Fnone", report), 404, "ResourceNotFound")
    assert_error(
        stack.call("POST", WM + f"/worker-pool-errors/{ENC}", {**report, "kind": "Bad Kind"}),
        400,
        "InputValidationError",
    )


# --- worker pools over HTTP -----------------------------------------------------------------------
def test_creating_an_existing_pool_is_409_whatever_the_definition_as_taskcluster(stack: Harness) -> None:
    first = call(stack, "createWorkerPool", "PUT", f"/worker-pool/{ENC}", pool_def())
    stack.advance(5)
    for body in (pool_def(), pool_def(description="something else")):
        refused = assert_error(stack.call("PUT", WM + f"/worker-pool/{ENC}", body), 409, "RequestConflict")
        assert refused["requestInfo"]["params"] == {"workerPoolId": POOL}
        assert "Worker pool already exists" in refused["message"]
    assert call(stack, "workerPool", "GET", f"/worker-pool/{ENC}") == first  # unchanged


def test_create_then_update_on_409_as_deployment_tools_do(stack: Harness) -> None:
    wm = taskcluster.WorkerManager({"rootUrl": stack.root_url(), "credentials": stack.credentials, "maxRetries": 0})
    for description in ("first", "second"):
        try:
            wm.createWorkerPool(POOL, pool_def(description=description))
        except TaskclusterRestFailure as e:
            assert e.status_code == 409
            wm.updateWorkerPool(POOL, pool_def(description=description))
    assert wm.workerPool(POOL)["description"] == "second"


def test_a_raw_slash_in_the_worker_pool_id_works_where_taskcluster_allows_it(stack: Harness) -> None:
    call(stack, "createWorkerPool", "PUT", f"/worker-pool/{POOL}", pool_def())
    assert call(stack, "workerPool", "GET", f"/worker-pool/{POOL}")["workerPoolId"] == POOL
    assert call(stack, "listWorkerPoolErrors", "GET", f"/worker-pool-errors/{POOL}") == {"workerPoolErrors": []}
    assert call(stack, "deleteWorkerPool", "DELETE", f"/worker-pool/{POOL}")["providerId"] == "null-provider"


def test_update_moves_the_old_provider_to_previous_and_back(stack: Harness) -> None:
    call(stack, "createWorkerPool", "PUT", f"/worker-pool/{ENC}", pool_def())
    moved = call(stack, "updateWorkerPool", "POST", f"/worker-pool/{ENC}", pool_def(providerId="local"))
    assert moved["previousProviderIds"] == ["aws"]
    # a pool read with workerPool can be written back as it is (its extra fields are ignored)
    back = {**moved, "providerId": "aws"}
    again = call(stack, "updateWorkerPool", "POST", f"/worker-pool/{ENC}", back)
    assert (again["providerId"], again["previousProviderIds"]) == ("aws", ["local"])
    same = call(stack, "updateWorkerPool", "POST", f"/worker-pool/{ENC}", pool_def())
    assert same["previousProviderIds"] == ["local"]


def test_missing_pools_and_workers_are_404_and_a_wrong_id_in_the_body_400(stack: Harness) -> None:
    missing = "proj%2Fmissing"
    assert_error(stack.call("GET", WM + f"/worker-pool/{missing}"), 404, "ResourceNotFound")
    assert_error(stack.call("POST", WM + f"/worker-pool/{missing}", pool_def()), 404, "ResourceNotFound")
    assert_error(stack.call("DELETE", WM + f"/worker-pool/{missing}"), 404, "ResourceNotFound")
    assert_error(stack.call("GET", WM + f"/workers/{missing}"), 404, "ResourceNotFound")
    call(stack, "createWorkerPool", "PUT", f"/worker-pool/{ENC}", pool_def())
    assert_error(stack.call("GET", WM + f"/workers/{ENC}/us-east-1/i-0none"), 404, "ResourceNotFound")
    body = assert_error(
        stack.call("POST", WM + f"/worker-pool/{ENC}", pool_def(workerPoolId="proj/other")), 400, "InputError"
    )
    assert "Incorrect workerPoolId" in body["message"]
    assert_error(stack.call("GET", WM + "/worker-pool/not-a-pool-id"), 400, "InvalidRequestArguments")


def _config(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = copy.deepcopy(pool_def()["config"])
    config.update(changes)
    return config


def _launch(**changes: Any) -> dict[str, Any]:
    lc: dict[str, Any] = copy.deepcopy(pool_def()["config"]["launchConfigs"][0])
    lc.update(changes)
    return lc


@pytest.mark.parametrize(
    ("config", "code", "says"),
    [
        (_config(minCapacity=5, maxCapacity=2), "InputError", "exceeds config.maxCapacity"),
        (
            _config(launchConfigs=[_launch(launchConfig={"ImageId": "ami-1", "UserData": "eA=="})]),
            "InputError",
            "may not set UserData",
        ),
        (_config(launchConfigs=[_launch(launchConfig={"InstanceType": "m6i.large"})]), "InputValidationError", ""),
        (_config(launchConfigs=[_launch(launchConfig="ami-1")]), "InputValidationError", ""),
        (_config(launchConfigs=[_launch(), _launch(region="us-west-2")]), "InputError", "must be unique"),
        (_config(scalingRatio=2), "InputValidationError", ""),
        (_config(colour="blue"), "InputValidationError", ""),
        (_config(launchConfigs=[_launch(additionalUserData={"rootUrl": "x"})]), "InputError", "rootUrl"),
    ],
    ids=["min-over-max", "user-data", "no-image", "not-an-object", "same-id", "ratio", "unknown-key", "reserved"],
)
def test_a_bad_config_is_400_with_taskcluster_error_body_and_nothing_is_stored(
    stack: Harness, config: dict[str, Any], code: str, says: str
) -> None:
    body = assert_error(stack.call("PUT", WM + f"/worker-pool/{ENC}", pool_def(config=config)), 400, code)
    assert says in body["message"]
    assert body["requestInfo"]["payload"]["config"] == config
    assert_error(stack.call("GET", WM + f"/worker-pool/{ENC}"), 404, "ResourceNotFound")
    call(stack, "createWorkerPool", "PUT", f"/worker-pool/{ENC}", pool_def())
    assert_error(stack.call("POST", WM + f"/worker-pool/{ENC}", pool_def(config=config)), 400, code)


def test_delete_marks_the_pool_until_the_provisioner_removes_it(stack: Harness) -> None:
    call(stack, "createWorkerPool", "PUT", f"/worker-pool/{ENC}", pool_def())
    call(stack, "createWorkerPool", "PUT", "/worker-pool/proj%2Fkeep", pool_def())
    marked = call(stack, "deleteWorkerPool", "DELETE", f"/worker-pool/{ENC}")
    assert (marked["providerId"], marked["previousProviderIds"]) == ("null-provider", ["aws"])
    again = call(stack, "deleteWorkerPool", "DELETE", f"/worker-pool/{ENC}")  # deleting twice: still marked
    assert (again["providerId"], again["previousProviderIds"]) == ("null-provider", ["aws"])
    listed = call(stack, "listWorkerPools", "GET", "/worker-pools")["workerPools"]
    assert [(p["workerPoolId"], p["providerId"]) for p in listed] == [("proj/keep", "aws"), (POOL, "null-provider")]

    store(stack).delete_pool("proj/keep")  # not marked: the provisioner's call changes nothing
    store(stack).delete_pool(POOL)
    assert_error(stack.call("GET", WM + f"/worker-pool/{ENC}"), 404, "ResourceNotFound")
    assert [p["workerPoolId"] for p in call(stack, "listWorkerPools", "GET", "/worker-pools")["workerPools"]] == [
        "proj/keep"
    ]
    call(stack, "createWorkerPool", "PUT", f"/worker-pool/{ENC}", pool_def())  # the id is free again


def test_a_marked_pool_given_a_provider_again_is_not_removed(stack: Harness) -> None:
    call(stack, "createWorkerPool", "PUT", f"/worker-pool/{ENC}", pool_def())
    call(stack, "deleteWorkerPool", "DELETE", f"/worker-pool/{ENC}")
    revived = call(stack, "updateWorkerPool", "POST", f"/worker-pool/{ENC}", pool_def())
    assert (revived["providerId"], revived["previousProviderIds"]) == ("aws", [])
    store(stack).delete_pool(POOL)
    assert call(stack, "workerPool", "GET", f"/worker-pool/{ENC}")["providerId"] == "aws"


def test_list_pools_pages_and_refuses_a_forged_token(stack: Harness) -> None:
    for i in range(3):
        call(stack, "createWorkerPool", "PUT", f"/worker-pool/proj%2Fp{i}", pool_def())
    page = call(stack, "listWorkerPools", "GET", "/worker-pools?limit=2")
    assert [p["workerPoolId"] for p in page["workerPools"]] == ["proj/p0", "proj/p1"]
    rest = call(stack, "listWorkerPools", "GET", f"/worker-pools?continuationToken={page['continuationToken']}")
    assert [p["workerPoolId"] for p in rest["workerPools"]] == ["proj/p2"] and "continuationToken" not in rest
    assert_error(stack.call("GET", WM + "/worker-pools?continuationToken=bm90LWEta2V5"), 400, "InputError")


# --- workers and errors ---------------------------------------------------------------------------
def test_workers_are_listed_filtered_paged_and_counted_in_the_pool(stack: Harness) -> None:
    call(stack, "createWorkerPool", "PUT", f"/worker-pool/{ENC}", pool_def())
    s = store(stack)
    assert s.put_worker(worker(stack, "i-01", WorkerState.REQUESTED, capacity=1))
    assert s.put_worker(worker(stack, "i-02", WorkerState.RUNNING, capacity=2))
    assert s.put_worker(worker(stack, "i-03", WorkerState.RUNNING, capacity=4, launch_config_id="m5"))
    assert s.put_worker(worker(stack, "i-04", WorkerState.STOPPING, capacity=2))
    assert s.put_worker(worker(stack, "i-05", WorkerState.STOPPED, capacity=8))
    assert s.put_worker(worker(stack, "i-06", worker_pool_id="proj/other"))

    pool = call(stack, "workerPool", "GET", f"/worker-pool/{ENC}")
    assert {k: pool[k] for k in COUNTERS} == {
        "currentCapacity": 9,
        "requestedCount": 1,
        "runningCount": 2,
        "stoppingCount": 1,
        "stoppedCount": 1,
        "requestedCapacity": 1,
        "runningCapacity": 6,
        "stoppingCapacity": 2,
        "stoppedCapacity": 8,
    }
    assert call(stack, "listWorkerPools", "GET", "/worker-pools")["workerPools"] == [pool]

    everyone = call(stack, "listWorkersForWorkerPool", "GET", f"/workers/{ENC}")["workers"]
    assert [w["workerId"] for w in everyone] == ["i-01", "i-02", "i-03", "i-04", "i-05"]
    assert set(everyone[0]) == WORKER_KEYS
    assert everyone[1] == {
        "workerPoolId": POOL,
        "workerGroup": "us-east-1",
        "workerId": "i-02",
        "providerId": "aws",
        "created": everyone[1]["created"],
        "expires": everyone[1]["expires"],
        "state": "running",
        "capacity": 2,
        "launchConfigId": "m6i",
        "lastModified": everyone[1]["lastModified"],
        "lastChecked": everyone[1]["lastChecked"],
    }
    running = call(stack, "listWorkersForWorkerPool", "GET", f"/workers/{ENC}?state=running")["workers"]
    assert [w["workerId"] for w in running] == ["i-02", "i-03"]
    by_config = call(stack, "listWorkersForWorkerPool", "GET", f"/workers/{ENC}?launchConfigId=m5")["workers"]
    assert [w["workerId"] for w in by_config] == ["i-03"]
    paged: list[str] = []
    token = ""
    while True:
        page = call(stack, "listWorkersForWorkerPool", "GET", f"/workers/{ENC}?limit=2&state=running{token}")
        paged += [w["workerId"] for w in page["workers"]]
        if "continuationToken" not in page:
            break
        token = f"&continuationToken={page['continuationToken']}"
    assert paged == ["i-02", "i-03"]
    assert call(stack, "worker", "GET", f"/workers/{ENC}/us-east-1/i-03") == everyone[2]
    assert_error(stack.call("GET", WM + f"/workers/{ENC}?state=sleeping"), 400, "InvalidRequestArguments")


def test_errors_of_the_last_7_days_are_listed_newest_first_and_filtered(stack: Harness) -> None:
    s = store(stack)
    old = pool_error(stack, timedelta(days=7, minutes=1))
    week = pool_error(stack, timedelta(days=6), launch_config_id=None, kind="worker-error", title="Worker Error")
    hour = pool_error(stack, timedelta(hours=1))
    now = pool_error(stack, timedelta(0), launch_config_id="m5")
    for e in (old, week, hour, now, hour):  # recording one twice changes nothing
        s.add_error(e)
    s.add_error(pool_error(stack, timedelta(0), worker_pool_id="proj/other"))

    listed = call(stack, "listWorkerPoolErrors", "GET", f"/worker-pool-errors/{ENC}")["workerPoolErrors"]
    assert [e["errorId"] for e in listed] == [now.error_id, hour.error_id, week.error_id]
    assert listed[1] == {
        "workerPoolId": POOL,
        "errorId": hour.error_id,
        "reported": listed[1]["reported"],
        "kind": "creation-error",
        "title": "Instance Creation Error",
        "description": "InsufficientInstanceCapacity",
        "extra": {"code": "InsufficientInstanceCapacity"},
        "launchConfigId": "m6i",
    }
    assert "launchConfigId" not in listed[2]
    by_config = call(stack, "listWorkerPoolErrors", "GET", f"/worker-pool-errors/{ENC}?launchConfigId=m6i")
    assert [e["errorId"] for e in by_config["workerPoolErrors"]] == [hour.error_id]
    by_id = call(stack, "listWorkerPoolErrors", "GET", f"/worker-pool-errors/{ENC}?errorId={week.error_id}")
    assert [e["errorId"] for e in by_id["workerPoolErrors"]] == [week.error_id]
    first = call(stack, "listWorkerPoolErrors", "GET", f"/worker-pool-errors/{ENC}?limit=2")
    assert [e["errorId"] for e in first["workerPoolErrors"]] == [now.error_id, hour.error_id]
    token = first["continuationToken"]
    rest = call(stack, "listWorkerPoolErrors", "GET", f"/worker-pool-errors/{ENC}?limit=2&continuationToken={token}")
    assert [e["errorId"] for e in rest["workerPoolErrors"]] == [week.error_id]
    # the provisioner's window: the last hour
    recent, _ = s.errors(POOL, stack.clock.now() - timedelta(hours=1), 100, None)
    assert {e.error_id for e in recent} == {now.error_id, hour.error_id}


# --- the store's conditional writes ---------------------------------------------------------------
@pytest.fixture
def pools(stack: Harness) -> Iterator[DynamoPoolStore]:
    yield store(stack)


def _pool(stack: Harness, **changes: Any) -> WorkerPool:
    now = stack.clock.now()
    values: dict[str, Any] = {
        "worker_pool_id": POOL,
        "provider_id": "aws",
        "description": "d",
        "owner": "o@example.com",
        "email_on_error": True,
        "config": pool_def()["config"],
        "created": now,
        "last_modified": now,
        "previous_provider_ids": ("local",),
    }
    values.update(changes)
    return WorkerPool(**values)


def test_put_pool_creates_only_a_new_id_and_replaces_only_an_existing_one(
    stack: Harness, pools: DynamoPoolStore
) -> None:
    pool = _pool(stack)
    assert not pools.put_pool(pool, create=False)  # nothing to replace
    assert pools.put_pool(pool, create=True)
    assert pools.get_pool(POOL, consistent=True) == pool  # every field round-trips
    assert not pools.put_pool(_pool(stack, description="other"), create=True)
    assert pools.get_pool(POOL, consistent=True) == pool
    changed = _pool(stack, description="changed", last_modified=pool.last_modified + timedelta(seconds=1))
    assert pools.put_pool(changed, create=False, expected=pool)
    assert not pools.put_pool(_pool(stack, description="stale"), create=False, expected=pool)  # read before
    assert pools.get_pool(POOL, consistent=True) == changed
    assert pools.all_pools() == [changed]


def test_put_worker_records_a_launch_once_and_changes_only_from_the_expected_state(
    stack: Harness, pools: DynamoPoolStore
) -> None:
    launched = worker(stack, "i-0abc", WorkerState.REQUESTED, terminate_after=stack.clock.now() + timedelta(hours=1))
    assert pools.put_worker(launched)
    assert not pools.put_worker(launched)  # a retried launch records nothing twice
    assert pools.get_worker(POOL, "us-east-1", "i-0abc") == launched
    running = worker(
        stack,
        "i-0abc",
        WorkerState.RUNNING,
        registered=stack.clock.now(),
        registration_hash="ab" * 32,
        should_terminate="over capacity",
    )
    assert not pools.put_worker(running, expected_state=WorkerState.RUNNING)  # it is still requested
    assert pools.put_worker(running, expected_state=WorkerState.REQUESTED)
    assert not pools.put_worker(running, expected_state=WorkerState.REQUESTED)  # the race's loser
    assert pools.get_worker(POOL, "us-east-1", "i-0abc") == running
    assert pools.find_worker("i-0abc") == running
    assert pools.find_worker("i-0none") is None
    assert pools.put_worker(worker(stack, "i-0old", WorkerState.STOPPED))
    assert [w.worker_id for w in pools.alive_workers(POOL)] == ["i-0abc"]
    assert [(t.state, t.capacity) for t in pools.worker_tallies(POOL)] == [
        (WorkerState.RUNNING, 2),
        (WorkerState.STOPPED, 2),
    ]


def test_an_unknown_provider_is_a_400_naming_the_known_ones(stack: Harness) -> None:
    body = assert_error(stack.call("PUT", WM + f"/worker-pool/{ENC}", pool_def(providerId="nope")), 400, "InputError")
    assert "'nope'" in body["message"] and "aws" in body["message"] and "null-provider" in body["message"]
    assert body["details"]["validProviderIds"] == sorted(body["details"]["validProviderIds"])
    assert_error(stack.call("GET", WM + f"/worker-pool/{ENC}"), 404, "ResourceNotFound")
