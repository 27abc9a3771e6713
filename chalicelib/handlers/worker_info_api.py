"""Queue v1 routes for worker metadata: task queues, provisioners, worker types and workers
: parse, call one service method, render. The endpoints' documentation is their
docstrings (first line: the title)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from .. import container
from ..domain.errors import InvalidRequestArguments
from ..domain.model import parse_date
from ..domain.worker_info import WorkerKey
from ..services.worker_info import WorkerInfo
from .api import Api, page
from .http import Call

worker_info_bp = Blueprint(__name__)
api = Api(worker_info_bp, "/api/queue/v1")
CATEGORY = "Worker Metadata"
PAGED = ("continuationToken", "limit")


def _workers() -> WorkerInfo:
    return container.get().workers


def _task_queue_id(call: Call) -> str:
    return f"{call.params['provisionerId']}/{call.params['workerType']}"


def _worker_key(call: Call) -> WorkerKey:
    return WorkerKey(_task_queue_id(call), call.params["workerGroup"], call.params["workerId"])


# --- provisioners and worker types ----------------------------------------------------------------
@api.route(
    "GET",
    "/provisioners",
    "listProvisioners",
    scopes="queue:list-provisioners",
    output="list-provisioners-response",
    paged=True,
    category=CATEGORY,
    stability="deprecated",
)
def list_provisioners(call: Call) -> dict[str, Any]:
    """Get a list of all active provisioners

    The provisioners of the task queues that have not expired, by id: a provisioner is the part of
    a `taskQueueId` before its `/`, its `expires` and `lastDateActive` the latest of its task
    queues'. Unlike Taskcluster's, this listing does return a `continuationToken` when more may
    follow."""
    found, token = _workers().provisioners(call.limit(), call.continuation)
    return page("provisioners", [p.to_json() for p in found], token)


@api.route(
    "GET",
    "/provisioners/{provisionerId}",
    "getProvisioner",
    scopes="queue:get-provisioner:<provisionerId>",
    output="provisioner-response",
    category=CATEGORY,
    stability="deprecated",
)
def get_provisioner(call: Call) -> dict[str, Any]:
    """Get an active provisioner

    The provisioner as `listProvisioners` shows it. 404 when no task queue of it is active."""
    return {**_workers().provisioner(call.params["provisionerId"]).to_json(), "actions": []}


@api.route(
    "GET",
    "/provisioners/{provisionerId}/worker-types",
    "listWorkerTypes",
    scopes="queue:list-worker-types:<provisionerId>",
    output="list-workertypes-response",
    paged=True,
    category=CATEGORY,
    stability="deprecated",
)
def list_worker_types(call: Call) -> dict[str, Any]:
    """Get a list of all active worker-types

    The provisioner's task queues that have not expired, as worker types, by id."""
    found, token = _workers().task_queues(call.limit(), call.continuation, call.params["provisionerId"])
    return page("workerTypes", [q.worker_type_json() for q in found], token)


@api.route(
    "GET",
    "/provisioners/{provisionerId}/worker-types/{workerType}",
    "getWorkerType",
    scopes="queue:get-worker-type:<provisionerId>/<workerType>",
    output="workertype-response",
    category=CATEGORY,
    stability="deprecated",
)
def get_worker_type(call: Call) -> dict[str, Any]:
    """Get a worker-type

    The task queue `<provisionerId>/<workerType>` as a worker type. 404 when it is unknown or expired."""
    return {**_workers().task_queue(_task_queue_id(call)).worker_type_json(), "actions": []}


# --- task queues ------------------------------------------------------------------------------------
@api.route(
    "GET",
    "/task-queues",
    "listTaskQueues",
    scopes="queue:list-task-queues",
    output="list-taskqueues-response",
    paged=True,
    category=CATEGORY,
)
def list_task_queues(call: Call) -> dict[str, Any]:
    """Get a list of all active task queues

    Every task queue that has not expired, by id. A task queue is seen when a task is created on
    it (Taskcluster only records claims) and when a worker claims or reclaims one of its tasks; it
    expires five days later. This is recorded from the tasks table's stream, so a new task queue
    shows up a moment after its first task, and without new claims `lastDateActive` is updated at
    most every 5 minutes."""
    found, token = _workers().task_queues(call.limit(), call.continuation)
    return page("taskQueues", [q.to_json() for q in found], token)


@api.route(
    "GET",
    "/task-queues/{taskQueueId}",
    "getTaskQueue",
    scopes="queue:get-task-queue:<taskQueueId>",
    output="taskqueue-response",
    category=CATEGORY,
)
def get_task_queue(call: Call) -> dict[str, Any]:
    """Get a task queue

    The task queue, as `listTaskQueues` shows it. 404 when it is unknown or expired."""
    return _workers().task_queue(call.params["taskQueueId"]).to_json()


# --- workers ----------------------------------------------------------------------------------------
@api.route(
    "GET",
    "/provisioners/{provisionerId}/worker-types/{workerType}/workers",
    "listWorkers",
    scopes="queue:list-workers:<provisionerId>/<workerType>",
    output="list-workers-response",
    query=("quarantined",),
    paged=True,
    category=CATEGORY,
    stability="deprecated",
)
def list_workers(call: Call) -> dict[str, Any]:
    """Get a list of all active workers of a workerType

    The workers of the task queue `<provisionerId>/<workerType>`, by workerGroup and workerId, with
    their first claim, last activity and latest task. Workers that expired (a day after their
    last claim or reclaim) are left out unless they are quarantined. `quarantined=true` lists only
    workers quarantined now, `quarantined=false` only the others; `quarantineUntil` is shown only
    while it is in the future."""
    raw = call.query.get("quarantined")
    if raw not in (None, "true", "false"):
        raise InvalidRequestArguments(f"Invalid query parameter quarantined: {raw!r} does not match ^(true|false)$")
    quarantined = None if raw is None else raw == "true"
    workers = _workers()
    found, token = workers.workers(_task_queue_id(call), call.limit(), call.continuation, quarantined)
    now = container.get().clock.now()
    return page("workers", [w.list_entry(now) for w in found], token)


@api.route(
    "GET",
    "/provisioners/{provisionerId}/worker-types/{workerType}/workers/{workerGroup}/{workerId}",
    "getWorker",
    scopes="queue:get-worker:<provisionerId>/<workerType>/<workerGroup>/<workerId>",
    output="worker-response",
    category=CATEGORY,
    stability="deprecated",
)
def get_worker(call: Call) -> dict[str, Any]:
    """Get a worker

    The worker, with its 20 most recent claims (`recentTasks`, oldest first) and its quarantine
    history. 404 when the worker or its task queue is unknown or expired (a quarantined worker
    does not expire before its quarantine ends)."""
    return _workers().worker(_worker_key(call)).to_json()


@api.route(
    "PUT",
    "/provisioners/{provisionerId}/worker-types/{workerType}/workers/{workerGroup}/{workerId}",
    "quarantineWorker",
    scopes={"AllOf": ["queue:quarantine-worker:<provisionerId>/<workerType>/<workerGroup>/<workerId>"]},
    input="quarantine-worker-request",
    output="worker-response",
    category=CATEGORY,
    stability="experimental",
)
def quarantine_worker(call: Call) -> dict[str, Any]:
    """Quarantine a worker

    Until `quarantineUntil`, the worker gets no work: `claimWork` waits out its long poll and
    answers with no tasks, `claimTask` answers 409 (Taskcluster answers `{}`). A time in the past
    lifts the quarantine. Each call is recorded in the worker's `quarantineDetails` with the
    caller's clientId and `quarantineInfo` (default `[unspecified]`). The process that answers
    applies it at once; the API's other processes within `TASKQUEUE_QUARANTINE_CACHE_SECONDS`
    (5 s). 404 when the worker is unknown."""
    until = parse_date(call.body["quarantineUntil"])
    client_id = call.caller.name if call.caller is not None else "anonymous"
    worker = _workers().quarantine(_worker_key(call), until, call.body.get("quarantineInfo"), client_id)
    return worker.to_json()


@api.route(
    "PUT",
    "/provisioners/{provisionerId}/worker-types/{workerType}/{workerGroup}/{workerId}",
    "declareWorker",
    scopes={
        "AllOf": [
            {
                "for": "property",
                "in": "properties",
                "each": "queue:declare-worker:<provisionerId>/<workerType>/<workerGroup>/<workerId>#<property>",
            }
        ]
    },
    input="update-worker-request",
    output="worker-response",
    category=CATEGORY,
    stability="experimental",
)
def declare_worker(call: Call) -> dict[str, Any]:
    """Declare a worker

    Record the worker (and its task queue) as active now and alive until `expires` at least: an
    earlier `expires` than the recorded one leaves it unchanged. Needs the scope
    `queue:declare-worker:<provisionerId>/<workerType>/<workerGroup>/<workerId>#expires`."""
    call.authorize(properties=sorted(call.body))
    return _workers().declare(_worker_key(call), parse_date(call.body["expires"])).to_json()
