"""The ports the services need; adapters/ implements them over DynamoDB and SQS."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ..domain.dispatch import Hint
from ..domain.model import Task, TaskState
from ..domain.transitions import RunPatch


@dataclass(frozen=True)
class QueueEntry:
    """One pending or running task in a task queue's index."""

    task_id: str
    since: datetime
    taken_until: datetime | None = None


@dataclass(frozen=True)
class Page:
    entries: list[QueueEntry]
    continuation: str | None


class TaskStore(Protocol):
    def get(self, task_id: str) -> Task | None: ...

    def get_many(self, task_ids: Sequence[str]) -> dict[str, Task]: ...

    def create(self, task: Task) -> Task | None:
        """Insert a new task; if the id is taken, return the stored task instead."""

    def save(self, task: Task, expected_version: int) -> Task | None:
        """Write `task`'s status if the row still has `expected_version`; None if it has not."""

    def patch_run(self, task_id: str, patch: RunPatch) -> Task | None:
        """Apply `patch` with one conditional write (no read); None if its guard does not hold."""

    def queue_page(self, task_queue_id: str, state: TaskState, limit: int, continuation: str | None) -> Page: ...

    def queue_count(self, task_queue_id: str, state: TaskState, live_at: datetime) -> int: ...

    def due(self, now: datetime, limit: int) -> list[str]:
        """Ids of tasks the sweeper must look at by `now`."""


@dataclass(frozen=True)
class ReceivedHint:
    hint: Hint
    receipt: str
    queue_url: str


class HintQueues(Protocol):
    def send(self, hints: Sequence[Hint]) -> None: ...

    def receive(self, task_queue_id: str, max_hints: int, wait_seconds: float) -> list[ReceivedHint]:
        """Hints for a task queue, highest priority first; waits up to `wait_seconds` for the first."""

    def delete(self, received: Sequence[ReceivedHint]) -> None: ...
