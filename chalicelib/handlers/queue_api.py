"""Queue v1 routes: parse, call one service method, render."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from chalice import Blueprint

from .. import container
from ..domain.model import ReasonResolved, Task, TaskState, Worker, claim_json, format_date
from ..domain.scopes import create_task_parameters
from ..services.queue import QueueService
from .http import Api, Call

queue_bp = Blueprint(__name__)
api = Api(queue_bp, "/api/queue/v1")
_started = time.monotonic()
API_GATEWAY_TIMEOUT = 29.0


def _queue() -> QueueService:
    return container.get().queue


def _run_id(call: Call) -> int:
    return int(call.params["runId"])


def _status(task: Any) -> dict[str, Any]:
    return {"status": task.status_json()}


# --- monitoring -----------------------------------------------------------------------------------
@api.route("GET", "/ping", "ping")
def ping(call: Call) -> dict[str, Any]:
    return {"alive": True, "uptime": time.monotonic() - _started}


@api.route("GET", "/__lbheartbeat__", "lbheartbeat")
def lbheartbeat(call: Call) -> dict[str, Any]:
    return {}


@api.route("GET", "/__heartbeat__", "heartbeat")
def heartbeat(call: Call) -> dict[str, Any]:
    return {}


@api.route("GET", "/__version__", "version")
def version(call: Call) -> dict[str, Any]:
    return {
        "version": "0.1.0",
        "commit": "unknown",
        "source": "https://github.com/taskqueue/taskqueue",
        "build": "local",
    }


# --- tasks ------------------------------------------------------------------------------------------
@api.route("GET", "/task/{taskId}", "task")
def task(call: Call) -> dict[str, Any]:
    result: dict[str, Any] = _queue().task(call.params["taskId"]).task_json()
    return result


@api.route("GET", "/task/{taskId}/status", "status")
def status(call: Call) -> dict[str, Any]:
    return _status(_queue().task(call.params["taskId"]))


@api.route("POST", "/tasks", "tasks", input="tasks-request")
def tasks(call: Call) -> dict[str, Any]:
    call.authorize(taskIds=call.body["taskIds"])
    found, token = _queue().tasks(call.body["taskIds"], call.limit(), call.continuation)
    out: dict[str, Any] = {"tasks": [{"taskId": t.task_id, "task": t.task_json()} for t in found]}
    if token:
        out["continuationToken"] = token
    return out


@api.route("POST", "/tasks/status", "statuses", input="tasks-request")
def statuses(call: Call) -> dict[str, Any]:
    call.authorize(taskIds=call.body["taskIds"])
    found, token = _queue().tasks(call.body["taskIds"], call.limit(), call.continuation)
    out: dict[str, Any] = {"statuses": [{"taskId": t.task_id, "status": t.status_json()} for t in found]}
    if token:
        out["continuationToken"] = token
    return out


@api.route("PUT", "/task/{taskId}", "createTask", input="create-task-request")
def create_task(call: Call) -> dict[str, Any]:
    def authorize(definition: dict[str, Any]) -> None:
        call.authorize(**create_task_parameters(definition))

    return _status(_queue().create_task(call.params["taskId"], call.body, authorize))


def _authorized_task(call: Call) -> Task:
    """The task a deferred expression is about: 404 before 403, as Taskcluster; then its scopes checked."""
    task = _queue().task(call.params["taskId"])
    d = task.definition
    call.authorize(
        schedulerId=d["schedulerId"],
        taskGroupId=d["taskGroupId"],
        projectId=d.get("projectId", "none"),
        taskQueueId=task.task_queue_id,
        provisionerId=d["provisionerId"],
        workerType=d["workerType"],
        **{k: v for k, v in (call.body or {}).items() if k in ("workerGroup", "workerId")},
    )
    return task


@api.route("POST", "/task/{taskId}/schedule", "scheduleTask")
def schedule_task(call: Call) -> dict[str, Any]:
    return _status(_queue().schedule_task(call.params["taskId"], _authorized_task(call)))


@api.route("POST", "/task/{taskId}/rerun", "rerunTask")
def rerun_task(call: Call) -> dict[str, Any]:
    return _status(_queue().rerun_task(call.params["taskId"], _authorized_task(call)))


@api.route("POST", "/task/{taskId}/cancel", "cancelTask")
def cancel_task(call: Call) -> dict[str, Any]:
    return _status(_queue().cancel_task(call.params["taskId"], _authorized_task(call)))


@api.route("POST", "/task/{taskId}/priority", "changeTaskPriority", input="change-task-priority-request")
def change_task_priority(call: Call) -> dict[str, Any]:
    task, _old = _queue().change_priority(call.params["taskId"], call.body["newPriority"], _authorized_task(call))
    return _status(task)


# --- workers ----------------------------------------------------------------------------------------
def _claim_work_budget() -> tuple[Callable[[], float], Callable[[], float]]:
    """claimWork's clocks: (waiting left: Taskcluster's 20 s, within the request's own time left).

    The request's time is the Lambda's remaining time, less what API Gateway's 29 s cuts off.
    """
    settings = container.get().settings
    context = queue_bp.lambda_context
    start = time.monotonic()
    lambda_left = context.get_remaining_time_in_millis() / 1000 if context is not None else API_GATEWAY_TIMEOUT
    end = start + min(lambda_left, API_GATEWAY_TIMEOUT) - 1.0
    wait_end = min(end - 3.0, start + settings.claim_work_timeout)
    return (lambda: wait_end - time.monotonic()), (lambda: end - time.monotonic())


@api.route("POST", "/claim-work/{taskQueueId}", "claimWork", input="claim-work-request")
def claim_work(call: Call) -> dict[str, Any]:
    call.authorize(workerGroup=call.body["workerGroup"], workerId=call.body["workerId"])
    worker = Worker(call.body["workerGroup"], call.body["workerId"])
    wait_left, time_left = _claim_work_budget()
    claims = _queue().claim_work(call.params["taskQueueId"], worker, call.body["tasks"], wait_left, time_left)
    return {"tasks": [_claim(task, run_id) for task, run_id in claims]}


def _claim(task: Task, run_id: int) -> dict[str, Any]:
    """A claim as its worker receives it, with temporary credentials for this run only."""
    claim = claim_json(task, run_id)
    credentials = container.get().auth.task_credentials(task, run_id)
    if credentials is not None:
        claim["credentials"] = credentials
    return claim


@api.route("POST", "/task/{taskId}/runs/{runId}/claim", "claimTask", input="task-claim-request")
def claim_task(call: Call) -> dict[str, Any]:
    worker = Worker(call.body["workerGroup"], call.body["workerId"])
    run_id = _run_id(call)
    return _claim(_queue().claim_task(call.params["taskId"], run_id, worker, _authorized_task(call)), run_id)


@api.route("POST", "/task/{taskId}/runs/{runId}/reclaim", "reclaimTask")
def reclaim_task(call: Call) -> dict[str, Any]:
    run_id = _run_id(call)
    claim = _claim(_queue().reclaim_task(call.params["taskId"], run_id), run_id)
    del claim["task"]
    return claim


@api.route("POST", "/task/{taskId}/runs/{runId}/completed", "reportCompleted", parse_body=True)
def report_completed(call: Call) -> dict[str, Any]:
    # Legacy: reportCompleted with {"success": false} resolves the run as failed.
    failed = isinstance(call.raw_json, dict) and call.raw_json.get("success") is False
    outcome = ReasonResolved.FAILED if failed else ReasonResolved.COMPLETED
    return _status(_queue().resolve(call.params["taskId"], _run_id(call), outcome))


@api.route("POST", "/task/{taskId}/runs/{runId}/failed", "reportFailed")
def report_failed(call: Call) -> dict[str, Any]:
    return _status(_queue().resolve(call.params["taskId"], _run_id(call), ReasonResolved.FAILED))


@api.route("POST", "/task/{taskId}/runs/{runId}/exception", "reportException", input="task-exception-request")
def report_exception(call: Call) -> dict[str, Any]:
    reason = ReasonResolved(call.body["reason"])
    return _status(_queue().report_exception(call.params["taskId"], _run_id(call), reason))


# --- task queues ------------------------------------------------------------------------------------
def _queue_ids(task_queue_id: str) -> dict[str, str]:
    provisioner_id, worker_type = task_queue_id.split("/", 1)
    return {"provisionerId": provisioner_id, "workerType": worker_type, "taskQueueId": task_queue_id}


@api.route("GET", "/pending/{taskQueueId}", "pendingTasks")
def pending_tasks(call: Call) -> dict[str, Any]:
    tq = call.params["taskQueueId"]
    return {**_queue_ids(tq), "pendingTasks": _queue().pending_count(tq)}


@api.route("GET", "/task-queues/{taskQueueId}/counts", "taskQueueCounts")
def task_queue_counts(call: Call) -> dict[str, Any]:
    tq = call.params["taskQueueId"]
    q = _queue()
    return {**_queue_ids(tq), "pendingTasks": q.pending_count(tq), "claimedTasks": q.claimed_count(tq)}


def _listing(call: Call, state: TaskState) -> tuple[list[Any], str | None]:
    result: tuple[list[Any], str | None] = _queue().queue_listing(
        call.params["taskQueueId"], state, call.limit(), call.continuation
    )
    return result


@api.route("GET", "/task-queues/{taskQueueId}/pending", "listPendingTasks")
def list_pending_tasks(call: Call) -> dict[str, Any]:
    rows, token = _listing(call, TaskState.PENDING)
    out: dict[str, Any] = {
        "tasks": [
            {"taskId": t.task_id, "runId": t.latest.run_id, "task": t.task_json(), "inserted": format_date(since)}
            for t, since in rows
        ]
    }
    if token:
        out["continuationToken"] = token
    return out


@api.route("GET", "/task-queues/{taskQueueId}/claimed", "listClaimedTasks")
def list_claimed_tasks(call: Call) -> dict[str, Any]:
    rows, token = _listing(call, TaskState.RUNNING)
    out: dict[str, Any] = {
        "tasks": [
            {
                "taskId": t.task_id,
                "runId": t.latest.run_id,
                "workerGroup": t.latest.worker_group,
                "workerId": t.latest.worker_id,
                "claimed": format_date(since),
                "task": t.task_json(),
            }
            for t, since in rows
        ]
    }
    if token:
        out["continuationToken"] = token
    return out
