"""Task groups: the group check createTask makes, membership until resolution, and what the API
does with a group (get, list, seal, cancel, change priority).

A group is one small item of the graph table (`group#<taskGroupId>`), its unresolved members one
item each (`active#<taskGroupId>`): a task joins when created and leaves when resolved for good, and
the group whose last member leaves is resolved (`task-group-resolved`, published by the outbox).
Sealing is advisory across processes: each trusts a group it checked for GROUP_CACHE_SECONDS.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..domain import transitions
from ..domain.errors import RequestConflict, ResourceNotFound
from ..domain.events import Event, group_event, group_priority_changed
from ..domain.graph import TaskGroup, check_membership, group_expiry_for, seal
from ..domain.model import ACTIVE_STATES, Task, TaskState, format_date
from .ports import EventBus, GraphStore, TaskStore
from .transition import transition

GROUP_CACHE_SECONDS = 10.0  # how long a process trusts a group it checked (sealing is advisory)


class TaskGroups:
    def __init__(self, store: TaskStore, graph: GraphStore, events: EventBus, clock: Any) -> None:
        self.store = store
        self.graph = graph
        self.events = events
        self.clock = clock
        self._groups: dict[str, tuple[float, TaskGroup]] = {}
        self._lock = threading.Lock()

    # --- createTask ----------------------------------------------------------------------------
    def admit(self, task: Task) -> None:
        """The group check createTask makes before inserting."""
        gid = task.task_group_id
        needed = group_expiry_for(task)
        with self._lock:
            cached = self._groups.get(gid)
        if cached and time.monotonic() - cached[0] < GROUP_CACHE_SECONDS and cached[1].expires >= needed:
            check_membership(cached[1], task)
            return
        group = self.graph.ensure_group(gid, task.scheduler_id, needed)
        if group is None:  # it exists: another scheduler, sealed, or already long-lived enough
            group = self.graph.group(gid, consistent=True)
            if group is None:
                raise RequestConflict(f"Task group {gid} changed while joining it; try again", taskGroupId=gid)
            check_membership(group, task)
        with self._lock:
            self._groups[gid] = (time.monotonic(), group)

    def join(self, task: Task) -> None:
        """A created task is one of its group's unresolved members until it resolves for good."""
        self.graph.add_member(task.task_group_id, task.task_id, task.expires)

    # --- resolution ----------------------------------------------------------------------------
    def resolved_for_good(self, tasks: Sequence[Task]) -> list[Event]:
        """Tasks resolved for good leave their groups' unresolved sets; emptied groups are resolved."""
        if not tasks:
            return []
        self.graph.remove_members([(t.task_group_id, t.task_id) for t in tasks])
        events = []
        for gid in dict.fromkeys(t.task_group_id for t in tasks):
            if not self.graph.has_members(gid):
                group = self.graph.group(gid)
                if group is not None:
                    events.append(
                        group_event(
                            "task-group-resolved", gid, group.scheduler_id, format_date(group.expires), _sealed(group)
                        )
                    )
        return events

    # --- the API -------------------------------------------------------------------------------
    def group(self, task_group_id: str) -> TaskGroup:
        group = self.graph.group(task_group_id, consistent=True)
        if group is None or group.expires <= self.clock.now():
            raise ResourceNotFound(f"Task group {task_group_id} not found", taskGroupId=task_group_id)
        return group

    def seal_group(self, task_group_id: str) -> TaskGroup:
        group = seal(self.group(task_group_id), self.clock.now())
        self.graph.seal_group(group)
        with self._lock:
            self._groups.pop(task_group_id, None)  # other processes notice within GROUP_CACHE_SECONDS
        group = self.group(task_group_id)  # the first seal wins
        self.events.publish(
            [
                group_event(
                    "task-group-sealed", task_group_id, group.scheduler_id, format_date(group.expires), _sealed(group)
                )
            ]
        )
        return group

    def members(self, task_group_id: str, limit: int, continuation: str | None) -> tuple[list[Task], str | None]:
        ids, token = self.store.group_page(task_group_id, limit, continuation)
        found = self.store.get_many(ids)
        return [found[i] for i in ids if i in found], token

    def all_members(self, task_group_id: str) -> list[Task]:
        tasks: list[Task] = []
        token: str | None = None
        while True:
            page, token = self.members(task_group_id, 1000, token)
            tasks += page
            if token is None:
                return tasks

    def cancel_group(self, task_group_id: str) -> tuple[int, list[str]]:
        """Cancel every unresolved, not-yet-past-deadline member of a sealed group."""
        group = self.group(task_group_id)
        if group.sealed is None:
            raise RequestConflict(f"Task group {task_group_id} must be sealed before it can be cancelled")
        members = self.all_members(task_group_id)
        now = self.clock.now()
        cancelled = []
        for task in members:
            if task.deadline <= now or not (task.state in ACTIVE_STATES or task.state is TaskState.UNSCHEDULED):
                continue
            result = transition(self.store, self.clock, task.task_id, _cancel_unless_done)
            if result.changed:
                cancelled.append(task.task_id)
        return len(members), cancelled

    def change_group_priority(self, task_group_id: str, new_priority: str) -> tuple[Event, list[str]]:
        """Every unresolved member gets `new_priority`; one `task-group-priority-changed` event is
        published (and returned) for the tasks affected, whose ids come with it."""
        group = self.group(task_group_id)
        changed = []
        for task in self.all_members(task_group_id):

            def step(t: Task, now: datetime) -> Task:
                if t.ever_resolved or t.deadline <= now or t.priority == new_priority:
                    return t
                return transitions.change_priority(t, new_priority, now)

            if transition(self.store, self.clock, task.task_id, step).changed:
                changed.append(task.task_id)
        event = group_priority_changed(task_group_id, group.scheduler_id, new_priority, len(changed))
        self.events.publish([event])
        return event, changed


def _cancel_unless_done(task: Task, now: datetime) -> Task:
    try:
        return transitions.cancel(task, now)
    except RequestConflict:
        return task


def _sealed(group: TaskGroup) -> str | None:
    return format_date(group.sealed) if group.sealed else None
