"""Worker-manager v1 routes: worker pools, their workers and errors (services/worker_manager.py).

Paths, bodies and scopes are Taskcluster's, so `taskcluster.WorkerManager` works unchanged. A
`workerPoolId` holds a `/`: the official clients send it as `%2F` within one segment, which every
route takes; the routes Taskcluster declares with `(*)` (worker-pool, worker-pool-errors) take a
raw `/` too. `/workers/<workerPoolId>` does not: it shares its shape with the worker route
`/workers/<workerPoolId>/<workerGroup>/<workerId>`, and API Gateway cannot tell them apart.
Each endpoint's documentation is its docstring (first line: the title).
"""

from __future__ import annotations

import time
from typing import Any

from chalice import Blueprint

from .. import container
from ..domain.errors import InvalidRequestArguments
from ..domain.pools import WorkerState
from ..services.worker_manager import WorkerManager
from .api import Api, page
from .http import Call

worker_manager_bp = Blueprint(__name__)
api = Api(worker_manager_bp, "/api/worker-manager/v1")
PAGED = ("continuationToken", "limit")
POOLS, WORKERS = "Worker Pools", "Workers"
_started = time.monotonic()


def _wm() -> WorkerManager:
    return container.get().worker_manager


@api.route("GET", "/ping", "ping", scopes=None, category="Monitoring")
def ping(call: Call) -> dict[str, Any]:
    """Ping Server

    Respond without doing anything. This endpoint is used to check that the service is up."""
    return {"alive": True, "uptime": time.monotonic() - _started}


# --- worker pools ---------------------------------------------------------------------------------
@api.route(
    "PUT",
    "/worker-pool/{workerPoolId}",
    "createWorkerPool",
    scopes={"AllOf": ["worker-manager:manage-worker-pool:<workerPoolId>", "worker-manager:provider:<providerId>"]},
    input="create-worker-pool-request",
    splat=True,
    output="worker-pool-full",
    category=POOLS,
)
def create_worker_pool(call: Call) -> dict[str, Any]:
    """Create Worker Pool

    Create a new worker pool. Creating it again with the same definition (providerId,
    description, config, owner, emailOnError) answers the pool as it is; a different definition
    under an id already taken is 409 `RequestConflict`. A `config` breaking a rule its schema
    cannot express (minCapacity above maxCapacity, a launch specification setting `UserData`,
    `IamInstanceProfile`, `MinCount` or `MaxCount`, repeated launchConfigIds) is 400 `InputError`."""
    call.authorize(providerId=call.body["providerId"])
    return _wm().create_worker_pool(call.params["workerPoolId"], call.body).to_json()


@api.route(
    "POST",
    "/worker-pool/{workerPoolId}",
    "updateWorkerPool",
    scopes={"AllOf": ["worker-manager:manage-worker-pool:<workerPoolId>", "worker-manager:provider:<providerId>"]},
    input="update-worker-pool-request",
    splat=True,
    output="worker-pool-full",
    category=POOLS,
    stability="experimental",
)
def update_worker_pool(call: Call) -> dict[str, Any]:
    """Update Worker Pool

    Given an existing worker pool definition, this will modify it and return the new definition.
    Changing `providerId` moves the old provider to `previousProviderIds`, until the provisioner
    has removed that provider's workers.

    To delete a worker pool, set its `providerId` to `"null-provider"` (or call
    `deleteWorkerPool`). After any existing workers have exited, the provisioner removes the
    pool; until then it can be updated again, such as to set its `providerId` to a real provider.
    404 when the pool does not exist."""
    call.authorize(providerId=call.body["providerId"])
    return _wm().update_worker_pool(call.params["workerPoolId"], call.body).to_json()


@api.route(
    "DELETE",
    "/worker-pool/{workerPoolId}",
    "deleteWorkerPool",
    scopes="worker-manager:manage-worker-pool:<workerPoolId>",
    splat=True,
    output="worker-pool-full",
    category=POOLS,
)
def delete_worker_pool(call: Call) -> dict[str, Any]:
    """Delete Worker Pool

    Mark a worker pool for deletion. This is the same as updating the pool to set its
    providerId to `"null-provider"`, but does not require scope
    `worker-manager:provider:null-provider`. The pool stays listed until the provisioner has
    removed its workers, then it is gone. 404 when the pool does not exist."""
    return _wm().delete_worker_pool(call.params["workerPoolId"]).to_json()


@api.route(
    "GET",
    "/worker-pool/{workerPoolId}",
    "workerPool",
    scopes="worker-manager:get-worker-pool:<workerPoolId>",
    splat=True,
    output="worker-pool-full",
    category=POOLS,
)
def worker_pool(call: Call) -> dict[str, Any]:
    """Get Worker Pool

    Fetch an existing worker pool definition, with the counts and capacity of its workers by
    state. 404 when the pool does not exist."""
    return _wm().worker_pool(call.params["workerPoolId"]).to_json()


@api.route(
    "GET",
    "/worker-pools",
    "listWorkerPools",
    scopes="worker-manager:list-worker-pools",
    output="worker-pool-list",
    paged=True,
    category=POOLS,
)
def list_worker_pools(call: Call) -> dict[str, Any]:
    """List All Worker Pools

    Get the list of all the existing worker pools, by id (pools pending deletion included)."""
    pools, token = _wm().list_worker_pools(call.limit(), call.continuation)
    return page("workerPools", [p.to_json() for p in pools], token)


@api.route(
    "GET",
    "/worker-pool-errors/{workerPoolId}",
    "listWorkerPoolErrors",
    scopes="worker-manager:list-worker-pool-errors:<workerPoolId>",
    splat=True,
    output="worker-pool-error-list",
    query=("launchConfigId", "errorId"),
    paged=True,
    category=POOLS,
)
def list_worker_pool_errors(call: Call) -> dict[str, Any]:
    """List Worker Pool Errors

    Get the list of worker pool errors of the last 7 days (older ones are deleted), newest
    first; `launchConfigId` and `errorId` narrow it down."""
    q = call.query
    errors, token = _wm().list_errors(
        call.params["workerPoolId"], call.limit(), call.continuation, q.get("launchConfigId"), q.get("errorId")
    )
    return page("workerPoolErrors", [e.to_json() for e in errors], token)


@api.route(
    "POST",
    "/worker-pool-errors/{workerPoolId}",
    "reportWorkerError",
    scopes={"AllOf": ["assume:worker-pool:<workerPoolId>", "assume:worker-id:<workerGroup>/<workerId>"]},
    input="report-worker-error-request",
    splat=True,
    output="worker-pool-error",
    category=POOLS,
)
def report_worker_error(call: Call) -> dict[str, Any]:
    """Report an error from a worker

    Report an error that occurred on a worker: startup or configuration trouble a pool's
    administrator should see. It is listed with the pool's other errors (listWorkerPoolErrors),
    with the reporting worker in `extra` and its launch config when it was launched by the pool.
    The worker's own credentials carry the scopes it needs. 404 when the pool does not exist."""
    call.authorize(workerGroup=call.body["workerGroup"], workerId=call.body["workerId"])
    return _wm().report_worker_error(call.params["workerPoolId"], call.body).to_json()


# --- workers --------------------------------------------------------------------------------------
STATES = tuple(s.value for s in WorkerState)


@api.route(
    "GET",
    "/workers/{workerPoolId}",
    "listWorkersForWorkerPool",
    scopes="worker-manager:list-workers:<workerPoolId>",
    output="worker-list",
    query=("launchConfigId", "state"),
    paged=True,
    category=WORKERS,
)
def list_workers_for_worker_pool(call: Call) -> dict[str, Any]:
    """Workers in a Worker Pool

    Get the list of all the existing workers in a given worker pool, stopped ones included until
    they expire; `state` (requested, running, stopping, stopped) and `launchConfigId` narrow it
    down. 404 when the pool does not exist."""
    state = call.query.get("state")
    if state is not None and state not in STATES:
        raise InvalidRequestArguments(f"Invalid query parameter state: {state!r} is not one of {', '.join(STATES)}")
    workers, token = _wm().list_workers(
        call.params["workerPoolId"], call.limit(), call.continuation, state, call.query.get("launchConfigId")
    )
    return page("workers", [w.to_json() for w in workers], token)


@api.route(
    "GET",
    "/workers/{workerPoolId}/{workerGroup}/{workerId}",
    "worker",
    scopes="worker-manager:get-worker:<workerPoolId>/<workerGroup>/<workerId>",
    output="worker-full",
    category=WORKERS,
)
def worker(call: Call) -> dict[str, Any]:
    """Get a Worker

    Get a single worker. 404 when there is no such worker."""
    p = call.params
    return _wm().worker(p["workerPoolId"], p["workerGroup"], p["workerId"]).to_json()


@api.route(
    "DELETE",
    "/workers/{workerPoolId}/{workerGroup}/{workerId}",
    "removeWorker",
    scopes="worker-manager:remove-worker:<workerPoolId>/<workerGroup>/<workerId>",
    category=WORKERS,
)
def remove_worker(call: Call) -> dict[str, Any]:
    """Remove a Worker

    Terminate a worker now: its instance (or, on the embedded stack, its process) is ended and
    it becomes `stopping`, then `stopped` once the cloud confirms; its running tasks are resolved
    `exception/worker-shutdown` by the worker, or after their claims expire. A worker already
    stopping or stopped is left as it is. A termination the cloud refuses is listed among the
    pool's errors. Registered workers may remove themselves. 404 when there is no such worker."""
    p = call.params
    container.get().registration.remove_worker(p["workerPoolId"], p["workerGroup"], p["workerId"])
    return {}


# --- the worker's side ----------------------------------------------------------------------------
@api.route(
    "POST",
    "/worker/register",
    "registerWorker",
    scopes=None,
    input="register-worker-request",
    output="register-worker-response",
    category=WORKERS,
)
def register_worker(call: Call) -> dict[str, Any]:
    """Register a running worker

    A launched worker joins its pool: it proves its launch with the one-time `registrationToken`
    of its user data (`workerIdentityProof`), becomes `running`, and gets temporary credentials
    with its pool's worker scopes until the pool's `reregistrationTimeout`. Registration is
    one-time (409 once registered) and only before `registrationTimeout` (400 after). No
    credentials are needed: the token is the proof."""
    return container.get().registration.register(call.body).to_json()


@api.route(
    "POST",
    "/worker/reregister",
    "reregisterWorker",
    scopes="worker-manager:reregister-worker:<workerPoolId>/<workerGroup>/<workerId>",
    input="reregister-worker-request",
    output="reregister-worker-response",
    category=WORKERS,
)
def reregister_worker(call: Call) -> dict[str, Any]:
    """Reregister a Worker

    A running worker renews its credentials before they expire: it proves itself with its
    current credentials (scope `worker-manager:reregister-worker:<pool>/<group>/<id>`) and the
    one-time `secret` of its last registerWorker or reregisterWorker answer, and gets new
    credentials until `reregistrationTimeout` from now, a new secret, and a later terminateAfter.
    400 for a wrong or used secret or an expired registration, 409 when the worker is not running,
    404 when there is no such worker."""
    b = call.body
    call.authorize(workerPoolId=b["workerPoolId"], workerGroup=b["workerGroup"], workerId=b["workerId"])
    return container.get().registration.reregister(b).to_json()


@api.route(
    "GET",
    "/workers/{workerPoolId}/{workerGroup}/{workerId}/should-terminate",
    "shouldWorkerTerminate",
    scopes="worker-manager:should-worker-terminate:<workerPoolId>/<workerGroup>/<workerId>",
    output="should-worker-terminate-response",
    category=WORKERS,
)
def should_worker_terminate(call: Call) -> dict[str, Any]:
    """Determine whether a worker should terminate

    The scanner's decision for this worker: `terminate: true` when the pool is over its scale-in
    target (newest workers kept), the worker's launch config was removed, or it is stopping.
    The reference worker asks between tasks and exits by itself. 404 when there is no such worker."""
    p = call.params
    return container.get().registration.should_terminate(p["workerPoolId"], p["workerGroup"], p["workerId"]).to_json()
