"""Queue v1 routes for task groups and dependents."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from .. import container
from ..domain.events import Event
from ..domain.graph import TaskGroup
from ..domain.model import Task
from ..services.graph import TaskGraph
from .http import Api, Call

graph_bp = Blueprint(__name__)
api = Api(graph_bp, "/api/queue/v1")


def _graph() -> TaskGraph:
    return container.get().graph


def _entries(tasks: list[Task]) -> list[dict[str, Any]]:
    return [{"task": t.task_json(), "status": t.status_json()} for t in tasks]


@api.route("GET", "/task-group/{taskGroupId}", "getTaskGroup")
def get_task_group(call: Call) -> dict[str, Any]:
    return _graph().group(call.params["taskGroupId"]).to_json()


@api.route("GET", "/task-group/{taskGroupId}/list", "listTaskGroup")
def list_task_group(call: Call) -> dict[str, Any]:
    graph = _graph()
    group = graph.group(call.params["taskGroupId"])
    tasks, token = graph.members(group.task_group_id, call.limit(), call.continuation)
    out: dict[str, Any] = {**group.to_json(), "tasks": _entries(tasks)}
    if token:
        out["continuationToken"] = token
    return out


def _authorized_group(call: Call) -> TaskGroup:
    """The group a deferred expression is about (404 first), its schedulerId's scope checked."""
    group = _graph().group(call.params["taskGroupId"])
    call.authorize(schedulerId=group.scheduler_id)
    return group


@api.route("POST", "/task-group/{taskGroupId}/seal", "sealTaskGroup")
def seal_task_group(call: Call) -> dict[str, Any]:
    _authorized_group(call)
    return _graph().seal_group(call.params["taskGroupId"]).to_json()


@api.route("POST", "/task-group/{taskGroupId}/cancel", "cancelTaskGroup")
def cancel_task_group(call: Call) -> dict[str, Any]:
    gid = _authorized_group(call).task_group_id
    size, cancelled = _graph().cancel_group(gid)
    return {"taskGroupId": gid, "taskGroupSize": size, "cancelledCount": len(cancelled), "taskIds": cancelled}


@api.route(
    "POST", "/task-group/{taskGroupId}/priority", "changeTaskGroupPriority", input="change-task-priority-request"
)
def change_task_group_priority(call: Call) -> dict[str, Any]:
    graph, gid, priority = _graph(), call.params["taskGroupId"], call.body["newPriority"]
    group = _authorized_group(call)
    changed = graph.change_group_priority(gid, priority)
    body = {
        "taskGroupId": gid,
        "schedulerId": group.scheduler_id,
        "newPriority": priority,
        "tasksAffected": len(changed),
    }
    graph.events.publish(
        [Event("task-group-priority-changed", {"version": 1, **body}, f"primary.{gid}.{group.scheduler_id}._")]
    )
    return {**body, "taskIds": changed}


@api.route("GET", "/task/{taskId}/dependents", "listDependentTasks")
def list_dependent_tasks(call: Call) -> dict[str, Any]:
    task_id = call.params["taskId"]
    container.get().queue.task(task_id)  # 404 for an unknown task
    tasks, token = _graph().dependents(task_id, call.limit(), call.continuation)
    out: dict[str, Any] = {"taskId": task_id, "tasks": _entries(tasks)}
    if token:
        out["continuationToken"] = token
    return out
