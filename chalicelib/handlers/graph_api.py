"""Queue v1 routes for task groups and dependents."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from .. import container
from ..domain.graph import TaskGroup
from ..domain.model import Task
from ..services.task_groups import TaskGroups
from .api import Api, page
from .http import Call

graph_bp = Blueprint(__name__)
api = Api(graph_bp, "/api/queue/v1")


def _groups() -> TaskGroups:
    return container.get().groups


def _entries(tasks: list[Task]) -> list[dict[str, Any]]:
    return [{"task": t.task_json(), "status": t.status_json()} for t in tasks]


@api.route(
    "GET",
    "/task-group/{taskGroupId}",
    "getTaskGroup",
    scopes="queue:list-task-group:<taskGroupId>",
    output="task-group-response",
    category="Task Groups",
)
def get_task_group(call: Call) -> dict[str, Any]:
    """Get Task Group

    The task group: its `schedulerId`, when it expires, and when it was sealed, if it was."""
    return _groups().group(call.params["taskGroupId"]).to_json()


@api.route(
    "GET",
    "/task-group/{taskGroupId}/list",
    "listTaskGroup",
    scopes="queue:list-task-group:<taskGroupId>",
    output="list-task-group-response",
    paged=True,
    category="Task Groups",
)
def list_task_group(call: Call) -> dict[str, Any]:
    """List Task Group

    The group and a page of its member tasks, each with its definition and status."""
    groups = _groups()
    group = groups.group(call.params["taskGroupId"])
    tasks, token = groups.members(group.task_group_id, call.limit(), call.continuation)
    return page("tasks", _entries(tasks), token, **group.to_json())


def _authorized_group(call: Call) -> TaskGroup:
    """The group a deferred expression is about (404 first), its schedulerId's scope checked."""
    group = _groups().group(call.params["taskGroupId"])
    call.authorize(schedulerId=group.scheduler_id)
    return group


@api.route(
    "POST",
    "/task-group/{taskGroupId}/seal",
    "sealTaskGroup",
    scopes="queue:seal-task-group:<schedulerId>/<taskGroupId>",
    output="task-group-response",
    category="Task Groups",
    stability="experimental",
)
def seal_task_group(call: Call) -> dict[str, Any]:
    """Seal Task Group

    Refuse new tasks in the group from now on (createTask answers 409). Sealing is advisory: a
    createTask racing it may still get in. Idempotent."""
    _authorized_group(call)
    return _groups().seal_group(call.params["taskGroupId"]).to_json()


@api.route(
    "POST",
    "/task-group/{taskGroupId}/cancel",
    "cancelTaskGroup",
    scopes="queue:cancel-task-group:<schedulerId>/<taskGroupId>",
    category="Task Groups",
    stability="experimental",
)
def cancel_task_group(call: Call) -> dict[str, Any]:
    """Cancel Task Group

    Cancel every unresolved task of the group, as `cancelTask` does. Answers with the group's size,
    how many tasks this call cancelled, and their ids."""
    gid = _authorized_group(call).task_group_id
    size, cancelled = _groups().cancel_group(gid)
    return {"taskGroupId": gid, "taskGroupSize": size, "cancelledCount": len(cancelled), "taskIds": cancelled}


@api.route(
    "POST",
    "/task-group/{taskGroupId}/priority",
    "changeTaskGroupPriority",
    scopes="queue:change-task-group-priority:<schedulerId>/<taskGroupId>",
    input="change-task-priority-request",
    category="Task Groups",
    stability="experimental",
)
def change_task_group_priority(call: Call) -> dict[str, Any]:
    """Change Task Group Priority

    Give every unresolved task of the group a new priority, as `changeTaskPriority` does, and
    publish one `task-group-priority-changed` event. Answers with the number of tasks affected and
    their ids."""
    gid = _authorized_group(call).task_group_id
    event, changed = _groups().change_group_priority(gid, call.body["newPriority"])
    return {**{k: v for k, v in event.body.items() if k != "version"}, "taskIds": changed}


@api.route(
    "GET",
    "/task/{taskId}/dependents",
    "listDependentTasks",
    scopes="queue:list-dependent-tasks:<taskId>",
    output="list-dependent-tasks-response",
    paged=True,
    category="Tasks",
)
def list_dependent_tasks(call: Call) -> dict[str, Any]:
    """List Dependent Tasks

    A page of the tasks that list `taskId` among their dependencies (satisfied or not), each with
    its definition and status. 404 when `taskId` does not exist."""
    task_id = call.params["taskId"]
    container.get().queue.task(task_id)  # 404 for an unknown task
    tasks, token = container.get().dependencies.dependents(task_id, call.limit(), call.continuation)
    return page("tasks", _entries(tasks), token, taskId=task_id)
