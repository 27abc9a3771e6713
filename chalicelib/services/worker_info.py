"""Task queues and workers as the queue sees them: the worker-metadata endpoints,
recording what the tasks stream says was seen, and claimWork's quarantine gate.

Nothing is written on the claim path: the stream handler (services/outbox.py) calls `record_seen`
with each batch of task-row changes. Per batch that is one BatchGetItem of the rows concerned, then
at most one UpdateItem per worker with new claims and per task queue or worker whose recorded
activity is older than SEEN_RESOLUTION — usually far fewer requests than records. Task queues this
process recorded recently are not even read again.

The quarantine gate reads a worker's quarantineUntil at most once per `cache_seconds` per process
(as services/auth.py caches clients), so a quarantine set through another process takes effect
within that time; one set through this process at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from ..clock import Clock
from ..domain.errors import RequestConflict, ResourceNotFound
from ..domain.model import Task, Worker
from ..domain.worker_info import (
    SEEN_RESOLUTION,
    Provisioner,
    QueueWorker,
    TaskQueue,
    WorkerKey,
    declared_task_queue,
    declared_worker,
    quarantined_worker,
    seen,
    split_task_queue_id,
    task_queue_seen,
    worker_seen,
)
from .ports import WorkerStore

log = logging.getLogger(__name__)

SAVE_ATTEMPTS = 5  # a row's version guard failing this often in a row means something is wrong
CACHE_LIMIT = 10_000  # entries of each per-process cache before it starts afresh


class WorkerInfo:
    def __init__(self, store: WorkerStore, clock: Clock, claim_timeout: timedelta, cache_seconds: float = 5.0) -> None:
        self.store = store
        self.clock = clock
        self.claim_timeout = claim_timeout
        self.cache = timedelta(seconds=cache_seconds)
        self._lock = threading.Lock()
        self._quarantine: dict[WorkerKey, tuple[datetime, datetime | None]] = {}
        self._queues_recorded: dict[str, datetime] = {}  # lastDateActive this process knows is stored

    # --- task queues, provisioners, worker types ------------------------------------------------
    def task_queues(
        self, limit: int, continuation: str | None, provisioner_id: str | None = None
    ) -> tuple[list[TaskQueue], str | None]:
        return self.store.task_queues(self.clock.now(), limit, continuation, provisioner_id)

    def task_queue(self, task_queue_id: str) -> TaskQueue:
        found = self.store.task_queue(task_queue_id)
        if found is None or not found.live(self.clock.now()):
            raise ResourceNotFound(f"Task queue {task_queue_id} not found", taskQueueId=task_queue_id)
        return found

    def provisioners(self, limit: int, continuation: str | None) -> tuple[list[Provisioner], str | None]:
        return self.store.provisioners(self.clock.now(), limit, continuation)

    def provisioner(self, provisioner_id: str) -> Provisioner:
        # Its task queues are one range of the index; one Query reads them all (1 MB a page).
        queues, token = self.store.task_queues(self.clock.now(), 1000, None, provisioner_id)
        while token:
            more, token = self.store.task_queues(self.clock.now(), 1000, token, provisioner_id)
            queues += more
        if not queues:
            raise ResourceNotFound(f"Provisioner {provisioner_id} not found", provisionerId=provisioner_id)
        max_expires = max(q.expires for q in queues)
        return Provisioner(provisioner_id, max_expires, max(q.last_date_active for q in queues))

    # --- workers --------------------------------------------------------------------------------
    def workers(
        self, task_queue_id: str, limit: int, continuation: str | None, quarantined: bool | None
    ) -> tuple[list[QueueWorker], str | None]:
        return self.store.workers(task_queue_id, self.clock.now(), limit, continuation, quarantined)

    def worker(self, key: WorkerKey) -> QueueWorker:
        """404 if the worker is unknown, its task queue unknown or expired, or it expired and is
        not quarantined (Taskcluster's rules)."""
        now = self.clock.now()
        queues, workers = self.store.load([key.task_queue_id], [key])
        queue, worker = queues.get(key.task_queue_id), workers.get(key)
        if worker is None or queue is None or not queue.live(now) or not worker.visible(now):
            raise _worker_not_found(key)
        return worker

    def quarantine(self, key: WorkerKey, until: datetime, info: str | None, client_id: str) -> QueueWorker:
        now = self.clock.now()

        def step(old: QueueWorker | None) -> QueueWorker:
            if old is None:
                raise _worker_not_found(key)
            return quarantined_worker(old, until, info, client_id, now)

        worker = self._change_worker(key, step)
        with self._lock:  # this process knows at once; the others within `cache`
            self._quarantine[key] = (now, worker.quarantine_until)
        return worker

    def declare(self, key: WorkerKey, expires: datetime) -> QueueWorker:
        """The worker and its task queue exist from now on, until `expires` at least."""
        now = self.clock.now()
        queue = self.store.task_queue(key.task_queue_id)
        for _ in range(SAVE_ATTEMPTS):
            new = declared_task_queue(queue, key.task_queue_id, expires, now)
            if self.store.save_task_queue(new, queue.version if queue else None):
                break
            queue = self.store.task_queue(key.task_queue_id)
        else:
            raise RequestConflict(f"Task queue {key.task_queue_id} is being changed concurrently; try again")
        return self._change_worker(key, lambda old: declared_worker(old, key, expires, now))

    def _change_worker(self, key: WorkerKey, step: Callable[[QueueWorker | None], QueueWorker]) -> QueueWorker:
        """Read, change and write one worker row under its version guard; re-read on a race."""
        for _ in range(SAVE_ATTEMPTS):
            old = self.store.worker(key)
            new = step(old)
            if self.store.save_worker(new, old.version if old else None):
                return new
        raise RequestConflict(f"Worker {key.worker_group}/{key.worker_id} is being changed concurrently; try again")

    # --- claimWork's gate -----------------------------------------------------------------------
    def quarantined(self, task_queue_id: str, worker: Worker) -> bool:
        """Whether the worker is quarantined now, as this process last read it (≤ cache old)."""
        key = WorkerKey(task_queue_id, worker.worker_group, worker.worker_id)
        now = self.clock.now()
        with self._lock:
            cached = self._quarantine.get(key)
        if cached is None or now - cached[0] >= self.cache:
            cached = (now, self.store.quarantine_until(key))
            with self._lock:
                if len(self._quarantine) >= CACHE_LIMIT:
                    self._quarantine.clear()
                self._quarantine[key] = cached
        until = cached[1]
        return until is not None and until > now

    # --- what the tasks stream says -------------------------------------------------------------
    def record_seen(self, changes: Iterable[tuple[Task | None, Task | None]]) -> int:
        """Record the task queues and workers a batch of task-row changes shows active; returns
        the number of rows written. Idempotent: a repeated batch finds its claims recorded."""
        now = self.clock.now()
        activity = seen(changes, now, self.claim_timeout)
        with self._lock:
            known = dict(self._queues_recorded)
        # A task queue this process recorded as active lately needs neither a read nor a write.
        queue_ids = [q for q, at in activity.queues.items() if q not in known or at - known[q] >= SEEN_RESOLUTION]
        if not queue_ids and not activity.workers:
            return 0
        queues, workers = self.store.load(queue_ids, activity.workers)
        written = 0
        for task_queue_id in queue_ids:
            saved = _record(
                partial(task_queue_seen, task_queue_id=task_queue_id, at=activity.queues[task_queue_id]),
                queues.get(task_queue_id),
                partial(self.store.task_queue, task_queue_id),
                self.store.save_task_queue,
            )
            written += saved is not None
            stored = saved or queues.get(task_queue_id)
            if stored is not None:
                with self._lock:
                    if len(self._queues_recorded) >= CACHE_LIMIT:
                        self._queues_recorded.clear()
                    self._queues_recorded[task_queue_id] = stored.last_date_active
        for key, worker_activity in activity.workers.items():
            saved_worker = _record(
                partial(worker_seen, key=key, activity=worker_activity),
                workers.get(key),
                partial(self.store.worker, key),
                self.store.save_worker,
            )
            written += saved_worker is not None
        return written


Row = TypeVar("Row", TaskQueue, QueueWorker)


def _record(
    step: Callable[[Row | None], Row | None],
    old: Row | None,
    reread: Callable[[], Row | None],
    save: Callable[[Row, int | None], bool],
) -> Row | None:
    """Merge and write under the row's version guard; on a race re-read and merge again.
    Returns the row written, or None when nothing needed writing."""
    for _ in range(SAVE_ATTEMPTS):
        new = step(old)
        if new is None:
            return None
        if save(new, old.version if old is not None else None):
            return new
        old = reread()
    log.warning("gave up recording activity after %d races on %s", SAVE_ATTEMPTS, old)
    return None


def _worker_not_found(key: WorkerKey) -> ResourceNotFound:
    provisioner_id, worker_type = split_task_queue_id(key.task_queue_id)
    return ResourceNotFound(
        f"Worker {key.worker_group}/{key.worker_id} of worker type {worker_type} and provisioner"
        f" {provisioner_id} not found",
        provisionerId=provisioner_id,
        workerType=worker_type,
        workerGroup=key.worker_group,
        workerId=key.worker_id,
    )
