"""QueueFacts (services/ports.py) from the queue's own service and its record of its workers (the
workers table): what the provisioner and worker registration ask the queue.

`runs_held_by` (a spot interruption, an instance gone) reads one worker's record — its
recentTasks, the last RECENT_TASKS claims, written by the tasks stream — and those tasks: one
GetItem and one BatchGetItem of at most RECENT_TASKS, whatever else runs on the queue. The record
is complete unless the worker made more claims than it keeps and some of its slots are not
accounted for by the recent ones: only then are the queue's running tasks listed (`held_runs`).
A claim the stream has not recorded yet (a second or so) is not seen; the instance's state change
to terminated, two minutes after the warning, asks again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from ..domain.errors import RequestConflict
from ..domain.model import ReasonResolved, TaskState
from ..domain.pools import QueueActivity
from ..domain.provisioning import WorkerKey
from ..domain.worker_info import RECENT_TASKS
from ..domain.worker_info import WorkerKey as QueueWorkerKey
from .ports import WorkerStore
from .queue import QueueService


class QueueServiceFacts:
    def __init__(self, queue: QueueService, workers: WorkerStore) -> None:
        self.queue = queue
        self.workers = workers

    def counts(self, task_queue_id: str) -> tuple[int, int]:
        return self.queue.queue_counts(task_queue_id)

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

    def runs_held_by(self, task_queue_id: str, worker: WorkerKey, capacity: int) -> list[tuple[str, int]]:
        record = self.workers.worker(QueueWorkerKey(task_queue_id, *worker))
        claims = record.recent_tasks if record is not None else ()
        tasks, _ = self.queue.tasks([c.task_id for c in claims], RECENT_TASKS, None) if claims else ([], None)
        by_id = {t.task_id: t for t in tasks}
        held = []
        for claim in claims:
            task = by_id.get(claim.task_id)
            run = task.run(claim.run_id) if task is not None else None
            if run is not None and run.state is TaskState.RUNNING and (run.worker_group, run.worker_id) == worker:
                held.append((claim.task_id, claim.run_id))
        if len(claims) >= RECENT_TASKS and len(held) < capacity:
            return self.held_runs(task_queue_id).get(worker, [])  # older claims may still be held
        return held

    def activity(self, task_queue_id: str, workers: Sequence[WorkerKey]) -> dict[WorkerKey, QueueActivity]:
        if not workers:
            return {}
        _, found = self.workers.load([], [QueueWorkerKey(task_queue_id, g, i) for g, i in workers])
        return {
            (k.worker_group, k.worker_id): QueueActivity(w.first_claim, w.last_date_active, w.quarantine_until)
            for k, w in found.items()
        }

    def worker_shutdown(self, task_id: str, run_id: int) -> None:
        # A run resolved otherwise meanwhile (completed, failed, expired) has nothing left to free.
        with contextlib.suppress(RequestConflict):
            self.queue.report_exception(task_id, run_id, ReasonResolved.WORKER_SHUTDOWN)
