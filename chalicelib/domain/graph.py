"""Task groups and dependencies: the pure rules."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .errors import RequestConflict
from .model import Task, TaskState, format_date, parse_date

ALL_RESOLVED = "all-resolved"
GROUP_EXPIRY_MARGIN = timedelta(hours=1)


def satisfies(resolved: TaskState, requires: str) -> bool:
    """Whether a dependency that resolved as `resolved` satisfies a dependent with `requires`."""
    if requires == ALL_RESOLVED:
        return resolved in (TaskState.COMPLETED, TaskState.FAILED, TaskState.EXCEPTION)
    return resolved is TaskState.COMPLETED


def satisfied_by(task: Task, requires: str) -> bool:
    """Whether a dependency task, as it stands now, satisfies a dependent with `requires`."""
    return satisfies(task.state, requires)


@dataclass(frozen=True)
class TaskGroup:
    task_group_id: str
    scheduler_id: str
    expires: datetime
    sealed: datetime | None = None

    def to_json(self) -> dict[str, str]:
        out = {
            "taskGroupId": self.task_group_id,
            "schedulerId": self.scheduler_id,
            "expires": format_date(self.expires),
        }
        if self.sealed is not None:
            out["sealed"] = format_date(self.sealed)
        return out


def group_expiry_for(task: Task) -> datetime:
    """A group outlives its tasks by an hour; rounded up to the hour so its row is rarely rewritten."""
    target = parse_date(task.definition["expires"]) + GROUP_EXPIRY_MARGIN
    rounded = target.replace(minute=0, second=0, microsecond=0)
    return rounded if rounded == target else rounded + timedelta(hours=1)


def check_membership(group: TaskGroup, task: Task) -> None:
    """createTask into an existing group: same schedulerId, and not sealed."""
    if group.scheduler_id != task.scheduler_id:
        raise RequestConflict(
            f"Task group {group.task_group_id} belongs to schedulerId {group.scheduler_id}, not {task.scheduler_id}",
            taskGroupId=group.task_group_id,
        )
    if group.sealed is not None:
        raise RequestConflict(f"Task group {group.task_group_id} is sealed: no more tasks can join it")


def seal(group: TaskGroup, now: datetime) -> TaskGroup:
    return group if group.sealed is not None else replace(group, sealed=now)
