"""Task queues and workers as the queue sees them (Taskcluster's workerinfo).

A task queue is "seen" when a task is created on it or a worker claims or reclaims one of its
tasks; a worker when it claims or reclaims. Provisioners and worker types are not stored: they are
derived from task queue ids (`<provisionerId>/<workerType>`). A worker keeps its 20 most recent
claims and its quarantine.

Expiries never move backward: a worker lives a day past its last activity, a task queue five days.
What a batch of task-row changes says ("seen") is derived here from the rows' old and new images,
and merged into the stored rows by pure functions, so redelivered or reordered changes give the
same result (invariant 4).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from .model import Task, format_date

WORKER_EXPIRY = timedelta(days=1)  # a worker lives this long past its last claim or reclaim
TASK_QUEUE_EXPIRY = timedelta(days=5)  # a task queue this long past its last activity
RECENT_TASKS = 20  # claims a worker keeps (Taskcluster's recentTasks)
QUARANTINE_DETAILS_KEPT = 50  # the row must stay far below DynamoDB's 400 KB (each ≤ ~4 KB)
# Without a new claim, `lastDateActive` (and the expiry with it) is written at most this often:
# reclaims and task creations then cost no write (Taskcluster throttles to 30 minutes).
SEEN_RESOLUTION = timedelta(minutes=5)
DEFAULT_QUARANTINE_INFO = "[unspecified]"
DESCRIPTION = ""  # Taskcluster no longer lets anyone set these: every task queue has the defaults
STABILITY = "experimental"


def split_task_queue_id(task_queue_id: str) -> tuple[str, str]:
    provisioner_id, worker_type = task_queue_id.split("/", 1)
    return provisioner_id, worker_type


@dataclass(frozen=True)
class WorkerKey:
    task_queue_id: str
    worker_group: str
    worker_id: str


@dataclass(frozen=True)
class RecentTask:
    """A claim in a worker's recentTasks; `claimed` orders them (and is not shown)."""

    task_id: str
    run_id: int
    claimed: datetime

    def to_json(self) -> dict[str, Any]:
        return {"taskId": self.task_id, "runId": self.run_id}


@dataclass(frozen=True)
class QuarantineDetail:
    client_id: str
    updated_at: datetime
    quarantine_until: datetime
    quarantine_info: str

    def to_json(self) -> dict[str, Any]:
        return {
            "clientId": self.client_id,
            "updatedAt": format_date(self.updated_at),
            "quarantineUntil": format_date(self.quarantine_until),
            "quarantineInfo": self.quarantine_info,
        }


@dataclass(frozen=True)
class TaskQueue:
    task_queue_id: str
    expires: datetime
    last_date_active: datetime
    version: int = 0  # counts writes: the guard of every read-modify-write

    def live(self, now: datetime) -> bool:
        return self.expires > now

    def to_json(self) -> dict[str, Any]:
        """A task queue as listTaskQueues and getTaskQueue show it."""
        return {
            "taskQueueId": self.task_queue_id,
            "stability": STABILITY,
            "description": DESCRIPTION,
            "expires": format_date(self.expires),
            "lastDateActive": format_date(self.last_date_active),
        }

    def worker_type_json(self) -> dict[str, Any]:
        """The same task queue as a worker type (listWorkerTypes, getWorkerType)."""
        provisioner_id, worker_type = split_task_queue_id(self.task_queue_id)
        return {"provisionerId": provisioner_id, "workerType": worker_type, **self.to_json()}


@dataclass(frozen=True)
class Provisioner:
    """Every live task queue with this provisionerId, summed up (Taskcluster derives it the same way)."""

    provisioner_id: str
    expires: datetime
    last_date_active: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "provisionerId": self.provisioner_id,
            "stability": STABILITY,
            "description": DESCRIPTION,
            "expires": format_date(self.expires),
            "lastDateActive": format_date(self.last_date_active),
        }


def provisioners(queues: Iterable[TaskQueue]) -> list[Provisioner]:
    """One provisioner per provisionerId among `queues`, in order of first appearance; its expiry
    and last activity are the latest of its task queues'."""
    found: dict[str, Provisioner] = {}
    for q in queues:
        pid, _ = split_task_queue_id(q.task_queue_id)
        p = found.get(pid)
        if p is None:
            found[pid] = Provisioner(pid, q.expires, q.last_date_active)
        else:
            found[pid] = Provisioner(pid, max(p.expires, q.expires), max(p.last_date_active, q.last_date_active))
    return list(found.values())


@dataclass(frozen=True)
class QueueWorker:
    """A worker of a task queue, as the queue knows it (Taskcluster's queue_workers row)."""

    task_queue_id: str
    worker_group: str
    worker_id: str
    first_claim: datetime
    last_date_active: datetime
    expires: datetime
    recent_tasks: tuple[RecentTask, ...] = ()  # oldest first, at most RECENT_TASKS
    quarantine_until: datetime | None = None
    quarantine_details: tuple[QuarantineDetail, ...] = ()
    version: int = 0

    @property
    def key(self) -> WorkerKey:
        return WorkerKey(self.task_queue_id, self.worker_group, self.worker_id)

    @property
    def latest_task(self) -> RecentTask | None:
        return self.recent_tasks[-1] if self.recent_tasks else None

    def quarantined(self, now: datetime) -> bool:
        return self.quarantine_until is not None and self.quarantine_until > now

    def visible(self, now: datetime) -> bool:
        """Shown unless expired — but a quarantined worker stays visible until its quarantine ends."""
        return self.expires >= now or self.quarantined(now)

    @property
    def keep_until(self) -> datetime:
        """When the row may be deleted (its TTL): after both its expiry and its quarantine."""
        return max(self.expires, self.quarantine_until or self.expires)

    def to_json(self) -> dict[str, Any]:
        """The worker as getWorker, quarantineWorker and declareWorker answer."""
        provisioner_id, worker_type = split_task_queue_id(self.task_queue_id)
        out: dict[str, Any] = {
            "provisionerId": provisioner_id,
            "workerType": worker_type,
            "taskQueueId": self.task_queue_id,
            "workerGroup": self.worker_group,
            "workerId": self.worker_id,
            "recentTasks": [t.to_json() for t in self.recent_tasks],
            "expires": format_date(self.expires),
            "firstClaim": format_date(self.first_claim),
            "lastDateActive": format_date(self.last_date_active),
            "quarantineDetails": [d.to_json() for d in self.quarantine_details],
            "actions": [],
        }
        if self.quarantine_until is not None:
            out["quarantineUntil"] = format_date(self.quarantine_until)
        return out

    def list_entry(self, now: datetime) -> dict[str, Any]:
        """The worker as listWorkers shows it: quarantineUntil only while it is in the future."""
        out: dict[str, Any] = {
            "workerGroup": self.worker_group,
            "workerId": self.worker_id,
            "firstClaim": format_date(self.first_claim),
            "lastDateActive": format_date(self.last_date_active),
        }
        latest = self.latest_task
        if latest is not None:
            out["latestTask"] = latest.to_json()
        if self.quarantine_until is not None and self.quarantined(now):
            out["quarantineUntil"] = format_date(self.quarantine_until)
        return out


# --- what task-row changes say ------------------------------------------------------------------
@dataclass
class WorkerSeen:
    last: datetime
    claims: list[RecentTask] = field(default_factory=list)


@dataclass
class Seen:
    """What a batch of task-row changes says: each task queue's and each worker's latest
    activity, and the workers' new claims."""

    queues: dict[str, datetime] = field(default_factory=dict)
    workers: dict[WorkerKey, WorkerSeen] = field(default_factory=dict)

    def queue(self, task_queue_id: str, at: datetime) -> None:
        known = self.queues.get(task_queue_id)
        self.queues[task_queue_id] = at if known is None else max(known, at)

    def worker(self, key: WorkerKey, at: datetime, claim: RecentTask | None = None) -> None:
        self.queue(key.task_queue_id, at)
        known = self.workers.setdefault(key, WorkerSeen(at))
        known.last = max(known.last, at)
        if claim is not None:
            known.claims.append(claim)


def seen(changes: Iterable[tuple[Task | None, Task | None]], now: datetime, claim_timeout: timedelta) -> Seen:
    """The activity a batch of (old, new) task rows shows.

    A new task: its task queue was seen `now` (when the change is processed). A run that has
    started since the old image: a claim by its worker at `started`. A running run whose lease
    grew: a reclaim, at the new `takenUntil` less the claim timeout (when the reclaim happened).
    """
    out = Seen()
    for old, new in changes:
        if new is None:
            continue  # removed by TTL
        if old is None:
            out.queue(new.task_queue_id, now)
        for run in new.runs:
            if run.worker_group is None or run.worker_id is None or run.started is None:
                continue
            key = WorkerKey(new.task_queue_id, run.worker_group, run.worker_id)
            before = old.run(run.run_id) if old is not None else None
            if before is None or before.started is None:
                out.worker(key, run.started, RecentTask(new.task_id, run.run_id, run.started))
            elif run.taken_until and before.taken_until and run.taken_until > before.taken_until:
                out.worker(key, min(now, run.taken_until - claim_timeout))
    return out


def _recent(*lists: Iterable[RecentTask]) -> tuple[RecentTask, ...]:
    """The union of claims, without repeats, oldest first, the last RECENT_TASKS of them."""
    unique: dict[tuple[str, int], RecentTask] = {}
    for items in lists:
        for t in items:
            known = unique.get((t.task_id, t.run_id))
            if known is None or t.claimed < known.claimed:
                unique[(t.task_id, t.run_id)] = t
    ordered = sorted(unique.values(), key=lambda t: (t.claimed, t.task_id, t.run_id))
    return tuple(ordered[-RECENT_TASKS:])


def worker_seen(old: QueueWorker | None, key: WorkerKey, activity: WorkerSeen) -> QueueWorker | None:
    """The worker after `activity`, or None when nothing worth a write changed (a repeat, or only
    a reclaim within SEEN_RESOLUTION of the last recorded activity)."""
    first = min([activity.last, *(c.claimed for c in activity.claims)])
    if old is None:
        return QueueWorker(
            key.task_queue_id,
            key.worker_group,
            key.worker_id,
            first_claim=first,
            last_date_active=activity.last,
            expires=activity.last + WORKER_EXPIRY,
            recent_tasks=_recent(activity.claims),
        )
    recent = _recent(old.recent_tasks, activity.claims)
    if recent == old.recent_tasks and activity.last - old.last_date_active < SEEN_RESOLUTION:
        return None
    return replace(
        old,
        first_claim=min(old.first_claim, first),
        last_date_active=max(old.last_date_active, activity.last),
        expires=max(old.expires, activity.last + WORKER_EXPIRY),
        recent_tasks=recent,
    )


def task_queue_seen(old: TaskQueue | None, task_queue_id: str, at: datetime) -> TaskQueue | None:
    """The task queue after activity `at`, or None when its record is recent enough already."""
    if old is None:
        return TaskQueue(task_queue_id, at + TASK_QUEUE_EXPIRY, at)
    if at - old.last_date_active < SEEN_RESOLUTION:
        return None
    return replace(old, last_date_active=at, expires=max(old.expires, at + TASK_QUEUE_EXPIRY))


# --- what API calls change ----------------------------------------------------------------------
def declared_task_queue(old: TaskQueue | None, task_queue_id: str, expires: datetime, now: datetime) -> TaskQueue:
    """declareWorker's effect on the worker's task queue: active now, expiry never earlier."""
    if old is None:
        return TaskQueue(task_queue_id, expires, now)
    return replace(old, last_date_active=max(old.last_date_active, now), expires=max(old.expires, expires))


def declared_worker(old: QueueWorker | None, key: WorkerKey, expires: datetime, now: datetime) -> QueueWorker:
    """declareWorker: the worker exists (first seen now), active now, its expiry never earlier."""
    if old is None:
        return QueueWorker(key.task_queue_id, key.worker_group, key.worker_id, now, now, expires)
    return replace(old, last_date_active=max(old.last_date_active, now), expires=max(old.expires, expires))


def quarantined_worker(
    old: QueueWorker, until: datetime, info: str | None, client_id: str, now: datetime
) -> QueueWorker:
    """quarantineWorker: the new quarantineUntil (a past one lifts the quarantine), and a record
    of who changed it, when and why."""
    detail = QuarantineDetail(client_id, now, until, info if info is not None else DEFAULT_QUARANTINE_INFO)
    details = (*old.quarantine_details, detail)[-QUARANTINE_DETAILS_KEPT:]
    return replace(old, quarantine_until=until, quarantine_details=details)
