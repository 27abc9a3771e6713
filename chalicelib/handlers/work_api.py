"""Queue v1 routes of the worker's side: claimWork (and the deprecated claimTask), reclaims and
reports, and the counts and listings of a task queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from chalice import Blueprint

from .. import container
from ..domain.model import ReasonResolved, Task, TaskState, Worker, claim_json, format_date
from ..services.queue import QueueService
from .api import Api, page, response_budget, response_bytes
from .http import Call
from .tasks_api import authorized_task

work_bp = Blueprint(__name__)
api = Api(work_bp, "/api/queue/v1")
API_GATEWAY_TIMEOUT = 29.0
RESOLVE_TASK = "queue:resolve-task:<taskId>/<runId>"


def _queue() -> QueueService:
    return container.get().queue


def _run_id(call: Call) -> int:
    return int(call.params["runId"])


def _status(task: Task) -> dict[str, Any]:
    return {"status": task.status_json()}


# --- workers ----------------------------------------------------------------------------------------
def _claim_work_budget() -> tuple[Callable[[], float], Callable[[], float]]:
    """claimWork's clocks: (waiting left: Taskcluster's 20 s, within the request's own time left).

    The request's time is the Lambda's remaining time, less what API Gateway's 29 s cuts off.
    """
    settings = container.get().settings
    context = work_bp.lambda_context
    start = time.monotonic()
    lambda_left = context.get_remaining_time_in_millis() / 1000 if context is not None else API_GATEWAY_TIMEOUT
    end = start + min(lambda_left, API_GATEWAY_TIMEOUT) - 1.0
    wait_end = min(end - 3.0, start + settings.claim_work_timeout)
    return (lambda: wait_end - time.monotonic()), (lambda: end - time.monotonic())


@api.route(
    "POST",
    "/claim-work/{taskQueueId}",
    "claimWork",
    scopes={"AllOf": ["queue:claim-work:<taskQueueId>", "queue:worker-id:<workerGroup>/<workerId>"]},
    input="claim-work-request",
    output="claim-work-response",
    category="Worker Interface",
)
def claim_work(call: Call) -> dict[str, Any]:
    """Claim Work

    Claim up to `tasks` pending runs from the task queue, highest priority first, waiting up to 20
    seconds (less, if the request's own time runs short) for one to arrive. Each claim is the run's
    definition, status, lease (`takenUntil`, 20 minutes) and, when the deployment has a root client,
    temporary credentials for that run only. An empty list means: call again. A run is never claimed
    unless it is returned."""
    call.authorize(workerGroup=call.body["workerGroup"], workerId=call.body["workerId"])
    worker = Worker(call.body["workerGroup"], call.body["workerId"])
    wait_left, time_left = _claim_work_budget()
    budget = response_budget() - response_bytes({"tasks": []})
    claims = _queue().claim_work(call.params["taskQueueId"], worker, call.body["tasks"], wait_left, time_left, budget)
    return {"tasks": [_claim(task, run_id) for task, run_id in claims]}


def _claim(task: Task, run_id: int) -> dict[str, Any]:
    """A claim as its worker receives it, with temporary credentials for this run only."""
    claim = claim_json(task, run_id)
    credentials = container.get().auth.task_credentials(task, run_id)
    if credentials is not None:
        claim["credentials"] = credentials
    return claim


@api.route(
    "POST",
    "/task/{taskId}/runs/{runId}/claim",
    "claimTask",
    scopes={"AllOf": ["queue:claim-task:<provisionerId>/<workerType>", "queue:worker-id:<workerGroup>/<workerId>"]},
    input="task-claim-request",
    output="task-claim-response",
    category="Worker Interface",
    stability="deprecated",
)
def claim_task(call: Call) -> dict[str, Any]:
    """Claim Task

    Claim one given pending run (the run must be the latest and pending). Repeating the claim as the
    same worker succeeds; any other claim of a run no longer pending is a 409."""
    worker = Worker(call.body["workerGroup"], call.body["workerId"])
    run_id = _run_id(call)
    return _claim(_queue().claim_task(call.params["taskId"], run_id, worker, authorized_task(call)), run_id)


@api.route(
    "POST",
    "/task/{taskId}/runs/{runId}/reclaim",
    "reclaimTask",
    scopes="queue:reclaim-task:<taskId>/<runId>",
    output="task-reclaim-response",
    category="Worker Interface",
)
def reclaim_task(call: Call) -> dict[str, Any]:
    """Reclaim task

    Extend the lease of a running run by the claim timeout, and return fresh credentials. A 409
    tells the worker to stop: the run was resolved (cancelled, deadline, claim expired)."""
    run_id = _run_id(call)
    claim = _claim(_queue().reclaim_task(call.params["taskId"], run_id), run_id)
    del claim["task"]
    return claim


@api.route(
    "POST",
    "/task/{taskId}/runs/{runId}/completed",
    "reportCompleted",
    scopes=RESOLVE_TASK,
    parse_body=True,
    output="task-status-response",
    category="Worker Interface",
)
def report_completed(call: Call) -> dict[str, Any]:
    # Legacy: reportCompleted with {"success": false} resolves the run as failed.
    """Report Run Completed

    Resolve the running run as `completed`; dependents waiting on it may become pending. Idempotent;
    a run in any other state is a 409."""
    failed = isinstance(call.raw_json, dict) and call.raw_json.get("success") is False
    outcome = ReasonResolved.FAILED if failed else ReasonResolved.COMPLETED
    return _status(_queue().resolve(call.params["taskId"], _run_id(call), outcome))


@api.route(
    "POST",
    "/task/{taskId}/runs/{runId}/failed",
    "reportFailed",
    scopes=RESOLVE_TASK,
    output="task-status-response",
    category="Worker Interface",
)
def report_failed(call: Call) -> dict[str, Any]:
    """Report Run Failed

    Resolve the running run as `failed`: the task ran and its commands failed. No automatic retry.
    Idempotent; a run in any other state is a 409."""
    return _status(_queue().resolve(call.params["taskId"], _run_id(call), ReasonResolved.FAILED))


@api.route(
    "POST",
    "/task/{taskId}/runs/{runId}/exception",
    "reportException",
    scopes=RESOLVE_TASK,
    input="task-exception-request",
    output="task-status-response",
    category="Worker Interface",
)
def report_exception(call: Call) -> dict[str, Any]:
    """Report Task Exception

    Resolve the running run as `exception` with `reason`. `worker-shutdown` and `intermittent-task`
    add a new pending run (`retry` / `task-retry`) while retries are left; other reasons do not.
    Idempotent for the same reason."""
    reason = ReasonResolved(call.body["reason"])
    return _status(_queue().report_exception(call.params["taskId"], _run_id(call), reason))


# --- task queues ------------------------------------------------------------------------------------
def _queue_ids(task_queue_id: str) -> dict[str, str]:
    provisioner_id, worker_type = task_queue_id.split("/", 1)
    return {"provisionerId": provisioner_id, "workerType": worker_type, "taskQueueId": task_queue_id}


@api.route(
    "GET",
    "/pending/{taskQueueId}",
    "pendingTasks",
    scopes="queue:pending-count:<taskQueueId>",
    output="pending-tasks-response",
    category="Task Queues",
    stability="deprecated",
)
def pending_tasks(call: Call) -> dict[str, Any]:
    """Get Number of Pending Tasks

    How many tasks are pending on the task queue, counted on the tasks table's `byQueue` index
    (eventually consistent: a task created a moment ago may not count yet)."""
    tq = call.params["taskQueueId"]
    return {**_queue_ids(tq), "pendingTasks": _queue().pending_count(tq)}


@api.route(
    "GET",
    "/task-queues/{taskQueueId}/counts",
    "taskQueueCounts",
    scopes={"AllOf": ["queue:pending-count:<taskQueueId>", "queue:claimed-count:<taskQueueId>"]},
    output="task-queue-counts-response",
    category="Task Queues",
)
def task_queue_counts(call: Call) -> dict[str, Any]:
    """Get Number of Pending and Claimed Tasks

    How many tasks are pending and how many are claimed (running, lease not expired) on the task
    queue."""
    tq = call.params["taskQueueId"]
    pending, claimed = _queue().queue_counts(tq)
    return {**_queue_ids(tq), "pendingTasks": pending, "claimedTasks": claimed}


def _listing(call: Call, state: TaskState) -> tuple[list[Any], str | None]:
    result: tuple[list[Any], str | None] = _queue().queue_listing(
        call.params["taskQueueId"], state, call.limit(), call.continuation
    )
    return result


@api.route(
    "GET",
    "/task-queues/{taskQueueId}/pending",
    "listPendingTasks",
    scopes="queue:pending-list:<taskQueueId>",
    output="list-pending-tasks-response",
    paged=True,
    category="Task Queues",
    stability="experimental",
)
def list_pending_tasks(call: Call) -> dict[str, Any]:
    """List Pending Tasks

    A page of the task queue's pending tasks, oldest first, with when each became pending."""
    rows, token = _listing(call, TaskState.PENDING)
    pending = (
        {"taskId": t.task_id, "runId": t.latest.run_id, "task": t.task_json(), "inserted": format_date(since)}
        for t, since in rows
    )
    return page("tasks", pending, token)


@api.route(
    "GET",
    "/task-queues/{taskQueueId}/claimed",
    "listClaimedTasks",
    scopes="queue:claimed-list:<taskQueueId>",
    output="list-claimed-tasks-response",
    paged=True,
    category="Task Queues",
    stability="experimental",
)
def list_claimed_tasks(call: Call) -> dict[str, Any]:
    """List Claimed Tasks

    A page of the task queue's claimed tasks, oldest claim first, with their workers."""
    rows, token = _listing(call, TaskState.RUNNING)
    claimed = (
        {
            "taskId": t.task_id,
            "runId": t.latest.run_id,
            "workerGroup": t.latest.worker_group,
            "workerId": t.latest.worker_id,
            "claimed": format_date(since),
            "task": t.task_json(),
        }
        for t, since in rows
    )
    return page("tasks", claimed, token)
