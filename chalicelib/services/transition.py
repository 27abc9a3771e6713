"""The one way a task changes: read the row, apply a pure transition, write it back guarded by
the version read. A lost race re-reads and re-decides, so a repeat of something already done is
success and anything else is the domain's 409 (invariants 2 and 3)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ..clock import Clock
from ..domain.errors import RequestConflict, ResourceNotFound
from ..domain.model import Task
from .ports import TaskStore

MAX_ATTEMPTS = 10


@dataclass(frozen=True)
class Transitioned:
    task: Task
    changed: bool


def load(store: TaskStore, task_id: str) -> Task:
    task = store.get(task_id)
    if task is None:
        raise ResourceNotFound(f"Task {task_id} not found", taskId=task_id)
    return task


def transition(
    store: TaskStore, clock: Clock, task_id: str, step: Callable[[Task, datetime], Task], task: Task | None = None
) -> Transitioned:
    for _ in range(MAX_ATTEMPTS):
        current = task or load(store, task_id)
        task = None
        new = step(current, clock.now())
        if new is current:
            return Transitioned(current, False)
        saved = store.save(new, current.version)
        if saved is not None:
            # The store answers with the status it wrote; the definition never changes.
            return Transitioned(saved if current.partial else saved.with_definition(current.definition), True)
    raise RequestConflict(f"Task {task_id} is changing too fast; try again", taskId=task_id)
