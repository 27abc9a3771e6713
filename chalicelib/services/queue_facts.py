"""QueueFacts (services/ports.py) from the queue's own service and its record of its workers: what
the provisioner and worker registration ask the queue."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence

from ..domain.errors import RequestConflict
from ..domain.model import ReasonResolved, TaskState
from ..domain.pools import QueueActivity
from ..domain.provisioning import WorkerKey
from .queue import QueueService

ActivityReader = Callable[[str, Sequence[WorkerKey]], Mapping[WorkerKey, QueueActivity]]


class QueueServiceFacts:
    def __init__(self, queue: QueueService, activity: ActivityReader) -> None:
        self.queue = queue
        self.reader = activity  # (taskQueueId, keys) -> {key: QueueActivity}

    def counts(self, task_queue_id: str) -> tuple[int, int]:
        return self.queue.pending_count(task_queue_id), self.queue.claimed_count(task_queue_id)

    def held_runs(self, task_queue_id: str) -> dict[WorkerKey, list[tuple[str, int]]]:
        held: dict[WorkerKey, list[tuple[str, int]]] = {}
        token: str | None = None
        while True:
            rows, token = self.queue.queue_listing(task_queue_id, TaskState.RUNNING, 1000, token)
            for task, _ in rows:
                run = task.latest
                if run is None or run.worker_group is None or run.worker_id is None:
                    continue  # never so for a running task (and no worker would be keyed so anyway)
                held.setdefault((run.worker_group, run.worker_id), []).append((task.task_id, run.run_id))
            if not token:
                return held

    def activity(self, task_queue_id: str, workers: Sequence[WorkerKey]) -> dict[WorkerKey, QueueActivity]:
        return dict(self.reader(task_queue_id, workers)) if workers else {}

    def worker_shutdown(self, task_id: str, run_id: int) -> None:
        # A run resolved otherwise meanwhile (completed, failed, expired) has nothing left to free.
        with contextlib.suppress(RequestConflict):
            self.queue.report_exception(task_id, run_id, ReasonResolved.WORKER_SHUTDOWN)
