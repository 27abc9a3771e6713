"""Queue v1 routes about tasks themselves: monitoring, definitions and statuses, createTask and
the scheduler's actions on a task (schedule, rerun, cancel, change priority).

The worker's side of the queue (claims, reports, task queue counts and listings) is in work_api.py.
"""

from __future__ import annotations

import time
from typing import Any

from chalice import Blueprint

from .. import container
from ..domain.model import Task
from ..domain.scopes import create_task_parameters, in_scheduler_or_project
from ..services.queue import QueueService
from .api import Api, page
from .http import Call

tasks_bp = Blueprint(__name__)
api = Api(tasks_bp, "/api/queue/v1")
_started = time.monotonic()


def _queue() -> QueueService:
    return container.get().queue


def _status(task: Task) -> dict[str, Any]:
    return {"status": task.status_json()}


# --- monitoring -----------------------------------------------------------------------------------
@api.route("GET", "/ping", "ping", scopes=None, category="Monitoring")
def ping(call: Call) -> dict[str, Any]:
    """Ping Server

    Respond without doing anything. This endpoint is used to check that the service is up."""
    return {"alive": True, "uptime": time.monotonic() - _started}


@api.route("GET", "/__lbheartbeat__", "lbheartbeat", scopes=None, category="Monitoring")
def lbheartbeat(call: Call) -> dict[str, Any]:
    """Load Balancer Heartbeat

    Respond without doing anything: the service is reachable."""
    return {}


@api.route("GET", "/__heartbeat__", "heartbeat", scopes=None, category="Monitoring")
def heartbeat(call: Call) -> dict[str, Any]:
    """Heartbeat

    Respond without doing anything (Taskcluster's `__heartbeat__` stub)."""
    return {}


@api.route("GET", "/__version__", "version", scopes=None, category="Monitoring")
def version(call: Call) -> dict[str, Any]:
    """Taskcluster Version

    Respond with the Dockerflow version object: `version`, `commit`, `source`, `build`."""
    return {
        "version": "0.1.0",
        "commit": "unknown",
        "source": "https://github.com/taskqueue/taskqueue",
        "build": "local",
    }


# --- tasks ------------------------------------------------------------------------------------------
@api.route("GET", "/task/{taskId}", "task", scopes="queue:get-task:<taskId>", output="task", category="Tasks")
def task(call: Call) -> dict[str, Any]:
    """Get Task Definition

    The task definition, as created, with every default filled in (both `taskQueueId` and
    `provisionerId`/`workerType`, `projectId`, …) and the task's current priority."""
    result: dict[str, Any] = _queue().task(call.params["taskId"]).task_json()
    return result


@api.route(
    "GET",
    "/task/{taskId}/status",
    "status",
    scopes="queue:status:<taskId>",
    output="task-status-response",
    category="Tasks",
)
def status(call: Call) -> dict[str, Any]:
    """Get task status

    The task's status: its state (derived from its latest run, or `unscheduled`), retries left and
    runs."""
    return _status(_queue().task(call.params["taskId"]))


@api.route(
    "POST",
    "/tasks",
    "tasks",
    scopes={"AllOf": [{"for": "taskId", "in": "taskIds", "each": "queue:get-task:<taskId>"}]},
    input="tasks-request",
    output="tasks-response",
    paged=True,
    category="Tasks",
    stability="experimental",
)
def tasks(call: Call) -> dict[str, Any]:
    """Get task definitions

    The definitions of the tasks whose ids are given. Tasks that do not exist are left out; the
    order is not guaranteed. The caller needs `queue:get-task:<taskId>` for every id asked for."""
    call.authorize(taskIds=call.body["taskIds"])
    found, token = _queue().tasks(call.body["taskIds"], call.limit(), call.continuation)
    return page("tasks", ({"taskId": t.task_id, "task": t.task_json()} for t in found), token)


@api.route(
    "POST",
    "/tasks/status",
    "statuses",
    scopes={"AllOf": [{"for": "taskId", "in": "taskIds", "each": "queue:status:<taskId>"}]},
    input="tasks-request",
    output="tasks-statuses-response",
    paged=True,
    category="Tasks",
    stability="experimental",
)
def statuses(call: Call) -> dict[str, Any]:
    """Get task statuses

    The statuses of the tasks whose ids are given. Tasks that do not exist are left out."""
    call.authorize(taskIds=call.body["taskIds"])
    found, token = _queue().tasks(call.body["taskIds"], call.limit(), call.continuation)
    return page("statuses", ({"taskId": t.task_id, "status": t.status_json()} for t in found), token)


@api.route(
    "PUT",
    "/task/{taskId}",
    "createTask",
    scopes={
        "AllOf": [
            {"for": "scope", "in": "scopes", "each": "<scope>"},
            {"for": "route", "in": "routes", "each": "queue:route:<route>"},
            "queue:create-task:project:<projectId>",
            "queue:scheduler-id:<schedulerId>",
            {
                "AnyOf": [
                    {
                        "for": "priority",
                        "in": "priorities",
                        "each": "queue:create-task:<priority>:<provisionerId>/<workerType>",
                    }
                ]
            },
        ]
    },
    input="create-task-request",
    output="task-status-response",
    category="Tasks",
)
def create_task(call: Call) -> dict[str, Any]:
    """Create New Task

    Create a task from its definition; `taskId` is chosen by the caller (a slugid).

    Without dependencies the task is pending at once (run 0, `reasonCreated: scheduled`); with
    dependencies it stays `unscheduled` until they resolve as its `requires` says, its deadline
    passes, or `scheduleTask` is called. Every dependency must exist and outlive the task's deadline
    (else 400).

    Idempotent: the same taskId with the same definition answers with the current status; a
    different definition is a 409. `created` and `deadline` may be at most 15 minutes off the
    queue's clock; `deadline` at most `maxTaskDeadlineDays` (5) days ahead; `expires` defaults to
    one year after the deadline.

    Scopes: every scope in `scopes`, `queue:route:<route>` for every route,
    `queue:create-task:project:<projectId>`, `queue:scheduler-id:<schedulerId>`, and
    `queue:create-task:<priority>:<taskQueueId>` for the task's priority or a higher one."""

    def authorize(definition: dict[str, Any]) -> None:
        call.authorize(**create_task_parameters(definition))

    return _status(_queue().create_task(call.params["taskId"], call.body, authorize))


def authorized_task(call: Call) -> Task:
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


@api.route(
    "POST",
    "/task/{taskId}/schedule",
    "scheduleTask",
    scopes=in_scheduler_or_project("schedule-task"),
    output="task-status-response",
    category="Tasks",
)
def schedule_task(call: Call) -> dict[str, Any]:
    """Schedule Defined Task

    Make an `unscheduled` task pending now, whatever its dependencies. A task that already has runs
    is left as it is (idempotent). 409 after the task's deadline."""
    return _status(_queue().schedule_task(call.params["taskId"], authorized_task(call)))


@api.route(
    "POST",
    "/task/{taskId}/rerun",
    "rerunTask",
    scopes=in_scheduler_or_project("rerun-task"),
    output="task-status-response",
    category="Tasks",
)
def rerun_task(call: Call) -> dict[str, Any]:
    """Rerun a Resolved Task

    Add a new pending run (`reasonCreated: rerun`) to a resolved task, resetting its retries. A task
    still pending or running is left as it is. 409 after the deadline or past 50 runs."""
    return _status(_queue().rerun_task(call.params["taskId"], authorized_task(call)))


@api.route(
    "POST",
    "/task/{taskId}/cancel",
    "cancelTask",
    scopes=in_scheduler_or_project("cancel-task"),
    output="task-status-response",
    category="Tasks",
)
def cancel_task(call: Call) -> dict[str, Any]:
    """Cancel Task

    Resolve the task's unfinished run as `exception`/`canceled` (an unscheduled task gets one such
    run). A resolved task is left as it is. The worker running it learns from its next reclaim or
    report (409). 409 after the deadline."""
    return _status(_queue().cancel_task(call.params["taskId"], authorized_task(call)))


@api.route(
    "POST",
    "/task/{taskId}/priority",
    "changeTaskPriority",
    scopes={"AnyOf": ["queue:change-task-priority:<taskId>", "queue:change-task-priority-in-queue:<taskQueueId>"]},
    input="change-task-priority-request",
    output="task-status-response",
    category="Tasks",
)
def change_task_priority(call: Call) -> dict[str, Any]:
    """Change Task Priority

    Give an unresolved task a new priority; a pending run is announced again on the hint queue of
    its new priority. 409 for a task ever resolved, or one that already has that priority."""
    task, _old = _queue().change_priority(call.params["taskId"], call.body["newPriority"], authorized_task(call))
    return _status(task)
