"""Task events: what a row change means in Taskcluster's Pulse vocabulary.

`task_events(old, new)` derives the messages a committed change of a task row publishes. Each
event carries Taskcluster's message body, its exchange and its routing keys — the primary key and
one `route.<r>` per task route — so subscribers can match on anything Pulse bindings could.
Derived from the row, events are at-least-once like their stream records; a change that changes
nothing publishes nothing (Taskcluster re-sends on idempotent API repeats; we do not).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .model import RESOLVED_STATES, Task, TaskState, format_date

EXCHANGE_PREFIX = "exchange/taskcluster-queue/v1/"
RESOLVED_EXCHANGES = {
    TaskState.COMPLETED: "task-completed",
    TaskState.FAILED: "task-failed",
    TaskState.EXCEPTION: "task-exception",
}


@dataclass(frozen=True)
class Event:
    """One message: `name` is the exchange's short name (task-completed, …)."""

    name: str
    body: dict[str, Any]
    routing_key: str
    routes: tuple[str, ...] = field(default=())

    @property
    def exchange(self) -> str:
        return EXCHANGE_PREFIX + self.name

    def detail(self) -> dict[str, Any]:
        """The EventBridge `detail`: the message plus where Pulse would have routed it."""
        return {
            **self.body,
            "exchange": self.exchange,
            "routingKey": self.routing_key,
            "routes": [f"route.{r}" for r in self.routes],
        }


TRUNCATED = "truncated"  # detail key: the parts of the message cut short to fit the bus's entry limit
TAGS_PART = "task.tags"


def detail_json(detail: dict[str, Any]) -> str:
    """A detail as the bus carries it (ASCII JSON: its length is its size in bytes)."""
    return json.dumps(detail, separators=(",", ":"))


def trim_tags(detail: dict[str, Any], excess: int) -> dict[str, Any]:
    """`detail` made at least `excess` bytes smaller (as `detail_json`) by cutting `task.tags`.

    The task's tags are the only part of a message that grows with the task definition (up to
    its 256 KB; the status, routing keys and routes stay below 40 KB). As many tags as fit are
    kept, the smallest first (those a subscriber filters on are short), in the definition's order;
    the message keeps its Taskcluster shape (`task.tags`, an object of strings) and the detail says
    `"truncated": ["task.tags"]`. A detail without tags, or without excess, is returned unchanged.
    """
    task = detail.get("task")
    if excess <= 0 or not isinstance(task, dict) or not task.get("tags"):
        return detail
    tags: dict[str, Any] = task["tags"]
    marker = len(detail_json({TRUNCATED: [TAGS_PART]})) - 1  # `,"truncated":[...]` without its braces
    room = len(detail_json(tags)) - excess - marker - 2  # bytes of key-value pairs that may stay
    sizes = {key: len(detail_json({key: value})) - 1 for key, value in tags.items()}  # `"k":"v"` and a comma
    keep = set()
    for key in sorted(tags, key=lambda k: sizes[k]):
        if sizes[key] > room:
            break
        keep.add(key)
        room -= sizes[key]
    kept = {key: value for key, value in tags.items() if key in keep}
    return {**detail, "task": {**task, "tags": kept}, TRUNCATED: [TAGS_PART]}


def _part(value: Any) -> str:
    return "_" if value is None or value == "" else str(value)


def task_routing_key(task: Task, run_id: int | None) -> str:
    run = task.run(run_id) if run_id is not None else None
    d = task.definition
    parts = [
        "primary",
        task.task_id,
        run_id,
        run.worker_group if run else None,
        run.worker_id if run else None,
        d["provisionerId"],
        d["workerType"],
        d["schedulerId"],
        d["taskGroupId"],
    ]
    return ".".join(_part(p) for p in parts) + "._"


def _event(name: str, subject: Task, run_id: int | None, **extra: Any) -> Event:
    body: dict[str, Any] = {"version": 1, "status": subject.status_json()}
    if run_id is not None:
        body["runId"] = run_id
    body.update(extra)
    return Event(name, body, task_routing_key(subject, run_id), tuple(subject.definition.get("routes", [])))


def _tags(task: Task) -> dict[str, Any]:
    return {"tags": task.definition.get("tags", {})}


def task_events(old: Task | None, new: Task) -> list[Event]:
    events: list[Event] = []
    if old is None:
        defined = Task(new.task_id, new.definition, new.priority, new.retries_left)  # status as created
        events.append(_event("task-defined", defined, None, task=_tags(new)))
    old_runs = old.runs if old else ()
    for run in new.runs:
        before = old_runs[run.run_id] if run.run_id < len(old_runs) else None
        if before is not None and before.state is run.state:
            continue
        worker = {"workerGroup": run.worker_group, "workerId": run.worker_id} if run.worker_id else {}
        if run.state is TaskState.PENDING:
            events.append(_event("task-pending", new, run.run_id, task=_tags(new)))
        elif run.state is TaskState.RUNNING:
            assert run.taken_until is not None
            events.append(
                _event(
                    "task-running", new, run.run_id, takenUntil=format_date(run.taken_until), task=_tags(new), **worker
                )
            )
        elif run.state in RESOLVED_STATES:
            extra = {"task": _tags(new)} if run.state is not TaskState.EXCEPTION else {}
            events.append(_event(RESOLVED_EXCHANGES[run.state], new, run.run_id, **worker, **extra))
    if old is not None and old.priority != new.priority:
        events.append(_event("task-priority-changed", new, None, oldPriority=old.priority, newPriority=new.priority))
    return events


def group_event(name: str, task_group_id: str, scheduler_id: str, expires: str, sealed: str | None) -> Event:
    """task-group-resolved / task-group-sealed."""
    body: dict[str, Any] = {"version": 1, "taskGroupId": task_group_id, "schedulerId": scheduler_id, "expires": expires}
    if sealed:
        body["sealed"] = sealed
    return Event(name, body, f"primary.{task_group_id}.{scheduler_id}._")


def group_priority_changed(task_group_id: str, scheduler_id: str, priority: str, affected: int) -> Event:
    """`task-group-priority-changed`: changeTaskGroupPriority gave `affected` tasks `priority`."""
    body = {
        "version": 1,
        "taskGroupId": task_group_id,
        "schedulerId": scheduler_id,
        "newPriority": priority,
        "tasksAffected": affected,
    }
    return Event("task-group-priority-changed", body, f"primary.{task_group_id}.{scheduler_id}._")


def resolution(old: Task | None, new: Task) -> TaskState | None:
    """The state `new` resolved to for good by this change, if it did (a retried run does not count).

    Dependents are released and the group checked on every such resolution, including those of
    later reruns (a rerun that completes releases dependents still waiting).
    """
    if new.state not in RESOLVED_STATES:
        return None
    if old is not None and old.state is new.state and len(old.runs) == len(new.runs):
        return None  # nothing new resolved (a repeat, or an unrelated change)
    return new.state
