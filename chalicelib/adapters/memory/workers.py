"""The in-memory workers table: MemoryWorkerStore, task queues and workers as the queue sees them.

It stands for adapters/worker_store.py: saves guarded by `version`, listings of live queues,
provisioners and workers (quarantined or not) with the adapter's continuation tokens.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from ...domain.worker_info import (
    Provisioner,
    QuarantineDetail,
    QueueWorker,
    RecentTask,
    TaskQueue,
    WorkerKey,
    provisioners,
    split_task_queue_id,
)
from ..pagination import HIGHEST, decode_token, encode_token, equal, prefixed
from .common import _ms, _opt_ms, _query, _start, _token, _worker_sk

QUEUE_SK = "#queue"


class MemoryWorkerStore:
    """The workers table (adapters/worker_store.py). A save writes only the queue's attributes,
    guarded by `version`: a worker saved without a quarantine keeps the one stored."""

    def __init__(self) -> None:
        self._queues: dict[str, TaskQueue] = {}
        self._workers: dict[WorkerKey, QueueWorker] = {}
        self._lock = threading.Lock()

    def task_queue(self, task_queue_id: str) -> TaskQueue | None:
        with self._lock:
            return self._queues.get(task_queue_id)

    def task_queues(
        self, now: datetime, limit: int, continuation: str | None, provisioner_id: str | None = None
    ) -> tuple[list[TaskQueue], str | None]:
        names = ("kind", "pk", "sk")
        bounds = {"kind": equal("queue")}
        if provisioner_id is not None:
            bounds["pk"] = prefixed(f"{provisioner_id}/")
        start = _start(continuation, names, ("pk", "sk"), bounds)
        with self._lock:
            rows = [
                ((q.task_queue_id, QUEUE_SK), q)
                for q in self._queues.values()
                if q.expires > _ms(now) and (provisioner_id is None or q.task_queue_id.startswith(f"{provisioner_id}/"))
            ]
        queues, last = _query(rows, start, limit)
        return queues, _token(names, ("queue", *last) if last else None)

    def provisioners(self, now: datetime, limit: int, continuation: str | None) -> tuple[list[Provisioner], str | None]:
        start = decode_token(continuation, {"provisionerId"}, {"provisionerId": (" ", HIGHEST)})
        after = start["provisionerId"]["S"] + "0" if start else ""
        with self._lock:
            live = sorted(
                (q for q in self._queues.values() if q.expires > _ms(now) and q.task_queue_id >= after),
                key=lambda q: q.task_queue_id,
            )
        queues: list[TaskQueue] = []
        seen: set[str] = set()
        for q in live:
            provisioner_id, _ = split_task_queue_id(q.task_queue_id)
            if provisioner_id not in seen:
                if len(seen) == limit:
                    page = provisioners(queues)
                    return page, encode_token({"provisionerId": {"S": page[-1].provisioner_id}})
                seen.add(provisioner_id)
            queues.append(q)
        return provisioners(queues), None

    def worker(self, key: WorkerKey) -> QueueWorker | None:
        with self._lock:
            return self._workers.get(key)

    def workers(
        self, task_queue_id: str, now: datetime, limit: int, continuation: str | None, quarantined: bool | None
    ) -> tuple[list[QueueWorker], str | None]:
        at = _ms(now)

        def shown(w: QueueWorker) -> bool:
            under = w.quarantine_until is not None and w.quarantine_until > at
            if quarantined is True:
                return under
            if quarantined is False:
                return w.expires >= at and not under
            return w.expires >= at or under

        names = ("pk", "sk")
        start = _start(continuation, names, ("sk",), {"pk": equal(task_queue_id), "sk": prefixed("worker/")})
        with self._lock:
            rows = [
                ((_worker_sk(k.worker_group, k.worker_id),), w)
                for k, w in self._workers.items()
                if k.task_queue_id == task_queue_id and shown(w)
            ]
        found, last = _query(rows, start, limit)
        return found, _token(names, (task_queue_id, *last) if last else None)

    def quarantine_until(self, key: WorkerKey) -> datetime | None:
        with self._lock:
            worker = self._workers.get(key)
        return worker.quarantine_until if worker else None

    def load(
        self, task_queue_ids: Iterable[str], workers: Iterable[WorkerKey]
    ) -> tuple[dict[str, TaskQueue], dict[WorkerKey, QueueWorker]]:
        with self._lock:
            queues = {q: self._queues[q] for q in task_queue_ids if q in self._queues}
            found = {k: self._workers[k] for k in workers if k in self._workers}
        return queues, found

    def save_task_queue(self, queue: TaskQueue, expected_version: int | None) -> bool:
        with self._lock:
            old = self._queues.get(queue.task_queue_id)
            if (old.version if old else None) != expected_version:
                return False
            self._queues[queue.task_queue_id] = TaskQueue(
                queue.task_queue_id, _ms(queue.expires), _ms(queue.last_date_active), (expected_version or 0) + 1
            )
        return True

    def save_worker(self, worker: QueueWorker, expected_version: int | None) -> bool:
        with self._lock:
            old = self._workers.get(worker.key)
            if (old.version if old else None) != expected_version:
                return False
            # Only set attributes are written: no quarantine in `worker` leaves the stored one.
            until = worker.quarantine_until
            if until is None and old is not None:
                until = old.quarantine_until
            details = worker.quarantine_details or (old.quarantine_details if old else ())
            self._workers[worker.key] = replace(
                worker,
                first_claim=_ms(worker.first_claim),
                last_date_active=_ms(worker.last_date_active),
                expires=_ms(worker.expires),
                recent_tasks=tuple(RecentTask(t.task_id, t.run_id, _ms(t.claimed)) for t in worker.recent_tasks),
                quarantine_until=_opt_ms(until),
                quarantine_details=tuple(
                    QuarantineDetail(d.client_id, _ms(d.updated_at), _ms(d.quarantine_until), d.quarantine_info)
                    for d in details
                ),
                version=(expected_version or 0) + 1,
            )
        return True
