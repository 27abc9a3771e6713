"""Queue use cases: the task lifecycle behind Queue v1's endpoints.

Every change is a `transition` (services/transition.py) — or, on the hot path, a guarded patch
that needs no read — and so one conditional write.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from ..clock import Clock
from ..config import Settings
from ..domain import transitions
from ..domain.definition import new_task, normalize, same_definition
from ..domain.errors import InputError, InputTooLarge, RequestConflict, ResourceNotFound
from ..domain.model import ReasonResolved, Task, TaskState, Worker
from ..domain.transitions import RunPatch
from .dependencies import Dependencies
from .ports import HintQueues, Page, ReceivedHint, TaskStore
from .task_groups import TaskGroups
from .transition import Transitioned, load, transition

CLAIM_CONCURRENCY = 16  # claims claimWork makes at once
CLAIM_MARGIN = 2.0  # seconds: claimWork starts no claim this close to its request's end
DELETE_BATCH = 10  # the hints one request deletes (SQS's DeleteMessageBatch takes ten at most)
# The index entries pendingTasks reads at most (≤ 32 read units): an exact count up to this depth,
# SQS's estimate beyond (architecture.md, Capacity).
EXACT_COUNT_ENTRIES = 1000


def _never_quarantined(task_queue_id: str, worker: Worker) -> bool:
    return False


class QueueService:
    def __init__(
        self,
        store: TaskStore,
        hints: HintQueues,
        groups: TaskGroups,
        dependencies: Dependencies,
        clock: Clock,
        settings: Settings,
        quarantined: Callable[[str, Worker], bool] = _never_quarantined,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.hints = hints
        self.groups = groups
        self.dependencies = dependencies
        self.clock = clock
        self.settings = settings
        # Whether a worker is quarantined (services/worker_info.py: cached per process, so
        # asking costs a read at most every few seconds per worker).
        self.quarantined = quarantined
        self._sleep = sleep
        self._pool = ThreadPoolExecutor(max_workers=CLAIM_CONCURRENCY, thread_name_prefix="claim")
        self.exact_count_entries = EXACT_COUNT_ENTRIES

    # --- plumbing ------------------------------------------------------------------------------
    def _load(self, task_id: str) -> Task:
        return load(self.store, task_id)

    def transition(
        self, task_id: str, step: Callable[[Task, datetime], Task], task: Task | None = None
    ) -> Transitioned:
        return transition(self.store, self.clock, task_id, step, task)

    def _patch(self, task_id: str, patch: RunPatch, step: Callable[[Task, datetime], Task]) -> Transitioned:
        """The hot path: one blind conditional write; the careful path only if its guard fails."""
        patched = self.store.patch_run(task_id, patch)
        if patched is not None:
            return Transitioned(patched, True)
        return self.transition(task_id, step)

    # --- tasks ---------------------------------------------------------------------------------
    def create_task(
        self, task_id: str, body: dict[str, Any], authorize: Callable[[dict[str, Any]], None] = lambda d: None
    ) -> Task:
        """Create (or idempotently repeat) a task; `authorize` sees the normalized definition before any write."""
        now = self.clock.now()
        definition = normalize(task_id, body, now, self.settings.max_task_deadline_days)
        authorize(definition)
        size = len(json.dumps(definition, separators=(",", ":")).encode())
        if size > self.settings.max_definition_bytes:
            raise InputTooLarge(
                f"Task definition is {size} bytes; the limit is {self.settings.max_definition_bytes}", taskId=task_id
            )
        linked = bool(definition["dependencies"])
        # The edges this request writes carry its own link, so racing requests for one taskId
        # never touch each other's (services/dependencies.py).
        task = new_task(task_id, definition, link=secrets.token_urlsafe(9) if linked else "")
        if linked:
            # Edges are written before the row: an existing task needs none of them.
            existing = self.store.get(task_id)
            if existing is not None:
                return self._repeat(existing, definition)
        # Dependencies first: a refused one (400) leaves nothing, not even a new task group.
        if not linked or not self.dependencies.link(task):
            task = transitions.schedule(task, now)
        try:
            self.groups.admit(task)
        except RequestConflict:
            if linked:
                self.dependencies.unlink(task)
            raise
        existing = self.store.create(task)
        if existing is not None:
            if linked:
                self.dependencies.unlink(task)  # another request's task won: ours are nobody's edges
            return self._repeat(existing, definition)
        self.groups.join(task)
        return self.dependencies.settle(task)

    def _repeat(self, existing: Task, definition: dict[str, Any]) -> Task:
        """createTask for a taskId in use: the same definition is an idempotent success."""
        if not same_definition(existing, definition):
            raise RequestConflict("taskId already used by another task", taskId=existing.task_id)
        if not existing.ever_resolved:
            self.groups.join(existing)
        return existing

    def task(self, task_id: str) -> Task:
        return self._load(task_id)

    def tasks(self, task_ids: Sequence[str], limit: int, continuation: str | None) -> tuple[list[Task], str | None]:
        """The known tasks among `task_ids` (unknown ones are left out), a page at a time."""
        start = _offset(continuation)
        window = list(task_ids[start : start + limit])
        found = self.store.get_many(window)
        following = start + len(window)
        token = str(following) if following < len(task_ids) else None
        return [found[t] for t in dict.fromkeys(window) if t in found], token

    # `task`, when given, is the row the caller just read (to authorize): it saves reading it again.
    def schedule_task(self, task_id: str, task: Task | None = None) -> Task:
        return self.transition(task_id, transitions.schedule, task).task

    def rerun_task(self, task_id: str, task: Task | None = None) -> Task:
        return self.transition(task_id, transitions.rerun, task).task

    def cancel_task(self, task_id: str, task: Task | None = None) -> Task:
        return self.transition(task_id, transitions.cancel, task).task

    def change_priority(self, task_id: str, new_priority: str, task: Task | None = None) -> tuple[Task, str]:
        old = task or self._load(task_id)
        result = self.transition(task_id, lambda t, now: transitions.change_priority(t, new_priority, now), old)
        return result.task, old.priority

    # --- workers -------------------------------------------------------------------------------
    def claim_task(self, task_id: str, run_id: int, worker: Worker, task: Task | None = None) -> Task:
        timeout = self.settings.claim_timeout_delta
        task = task or self._load(task_id)
        if self.quarantined(task.task_queue_id, worker):
            # Taskcluster answers `{}` here, which its own output schema refuses:
            # a 409 tells the worker the same — this run is not for it — in Taskcluster's shape.
            raise RequestConflict(
                f"Worker {worker.worker_group}/{worker.worker_id} is quarantined and may not claim tasks",
                taskId=task_id,
                runId=run_id,
                workerGroup=worker.worker_group,
                workerId=worker.worker_id,
            )
        return self.transition(task_id, lambda t, now: transitions.claim(t, run_id, worker, now, timeout), task).task

    def claim_work(
        self,
        task_queue_id: str,
        worker: Worker,
        wanted: int,
        wait_left: Callable[[], float],
        time_left: Callable[[], float],
        budget: int | None = None,
    ) -> list[tuple[Task, int]]:
        """Claim up to `wanted` pending runs, waiting for the first one while `wait_left()` > 0.

        `time_left()` is what remains of the request's own budget: no claim is started within
        CLAIM_MARGIN of its end, so nothing is claimed that the worker would not receive
        (invariant 7). Likewise `budget`, the bytes the answer may hold: a run is claimed only
        while the size bounds its hint carries (domain/dispatch.py `claim_bytes`) of all claimed so far
        and of it fit (the first always does); the hints of the others go back on the queue.
        """
        timeout = self.settings.claim_timeout_delta
        claimed: list[tuple[Task, int]] = []
        size = 0
        while True:
            if self.quarantined(task_queue_id, worker):
                # As Taskcluster: a quarantined worker waits out its long poll (so it does not
                # call again at once) and gets nothing.
                self._sleep(max(0.0, wait_left()))
                return claimed
            received = self.hints.receive(task_queue_id, wanted - len(claimed), max(0.0, wait_left()))
            # Hints left unused for lack of time stay on the queue: SQS shows them again later.
            used = received if time_left() > CLAIM_MARGIN else []
            if budget is not None and used:
                used, size = self._within(used, budget, size)
            # The claims are independent conditional writes: made side by side, a batch of 32
            # costs about one round trip instead of 32.
            results = self._pool.map(
                lambda r: self._claim_hinted(task_queue_id, r.hint.task_id, r.hint.run_id, worker, timeout), used
            )
            won = [(task, r.hint.run_id) for r, task in zip(used, results, strict=True) if task is not None]
            # Each used hint was either claimed or stale: delete them all. We never receive more
            # hints than we still want, so no valid hint is dropped unclaimed. Deleted a batch at a
            # time side by side, while the definitions are read: none waits for another.
            deleting = [
                self._pool.submit(self.hints.delete, used[i : i + DELETE_BATCH])
                for i in range(0, len(used), DELETE_BATCH)
            ]
            try:
                claimed += self._whole(won)
            finally:
                for done in deleting:
                    done.result()
            if claimed or not received or wait_left() <= 0 or time_left() <= CLAIM_MARGIN:
                return claimed

    def _whole(self, claims: list[tuple[Task, int]]) -> list[tuple[Task, int]]:
        """Claims with their tasks' definitions: the claims' writes answer the status alone, so one
        read of the (immutable) definitions per round, not one per task."""
        wanted = [t.task_id for t, _ in claims if t.partial]
        if not wanted:
            return claims
        found = self.store.definitions(wanted)
        # A claimed task always has its definition (written before its status, deleted only after
        # its deadline): no claim is left out.
        return [(t.with_definition(found[t.task_id]) if t.partial else t, run_id) for t, run_id in claims]

    def _within(self, received: list[ReceivedHint], budget: int, size: int) -> tuple[list[ReceivedHint], int]:
        """The hints whose claims fit `budget` with the `size` already taken (at least one when
        none is taken yet), by the bound each hint carries (no read of the tasks), and the size then
        taken. The others are announced again and deleted: at once visible to the next claimWork."""
        used: list[ReceivedHint] = []
        again: list[ReceivedHint] = []
        for r in received:
            need = r.hint.claim_bound
            if again or (size + need > budget and size > 0):
                again.append(r)
                continue
            used.append(r)
            size += need
        if again:
            self.hints.send([r.hint for r in again])
            self.hints.delete(again)
        return used, size

    def _claim_hinted(
        self, task_queue_id: str, task_id: str, run_id: int, worker: Worker, timeout: timedelta
    ) -> Task | None:
        def careful(t: Task, now: datetime) -> Task:
            latest = t.latest
            if latest is None or latest.run_id != run_id or latest.state is not TaskState.PENDING:
                return t  # a stale or duplicate hint: nothing to claim
            if t.task_queue_id != task_queue_id:
                return t  # a hint on the wrong queue is never honoured
            return transitions.claim(t, run_id, worker, now, timeout)

        patch = transitions.claim_patch(run_id, worker, self.clock.now(), timeout, task_queue_id)
        try:
            result = self._patch(task_id, patch, careful)
        except (ResourceNotFound, RequestConflict):
            return None  # gone, or past its deadline
        return result.task if result.changed else None

    def reclaim_task(self, task_id: str, run_id: int) -> Task:
        timeout = self.settings.claim_timeout_delta
        return self.transition(task_id, lambda t, now: transitions.reclaim(t, run_id, now, timeout)).task

    def resolve(self, task_id: str, run_id: int, outcome: ReasonResolved) -> Task:
        patch = transitions.resolve_patch(run_id, outcome, self.clock.now())
        return self._patch(task_id, patch, lambda t, now: transitions.resolve(t, run_id, outcome, now)).task

    def report_exception(self, task_id: str, run_id: int, reason: ReasonResolved) -> Task:
        return self.transition(task_id, lambda t, now: transitions.report_exception(t, run_id, reason, now)).task

    # --- task queues ---------------------------------------------------------------------------
    def queue_counts(self, task_queue_id: str) -> tuple[int, int]:
        """(pendingTasks, claimedTasks), from one read of the queue's index. Claimed is exact (the
        running entries are at most the workers' capacity). Pending is exact as Taskcluster counts
        (pending and before the deadline) while the task queue holds fewer than
        `exact_count_entries` pending tasks; beyond, the larger of the live ones among those read
        and SQS's estimate of the queue's hints: one read of bounded cost, however deep."""
        counts = self.store.queue_counts(task_queue_id, self.clock.now(), self.exact_count_entries)
        if counts.complete:
            return counts.pending, counts.claimed
        return max(counts.pending, self.hints.approximate_count(task_queue_id)), counts.claimed

    def pending_count(self, task_queue_id: str) -> int:
        return self.queue_counts(task_queue_id)[0]

    def queue_listing(
        self, task_queue_id: str, state: TaskState, limit: int, continuation: str | None
    ) -> tuple[list[tuple[Task, datetime]], str | None]:
        page: Page = self.store.queue_page(task_queue_id, state, limit, continuation)
        tasks = self.store.get_many([e.task_id for e in page.entries])
        # The index may lag the table: keep only tasks really in that state.
        out = [
            (tasks[e.task_id], e.since) for e in page.entries if e.task_id in tasks and tasks[e.task_id].state is state
        ]
        return out, page.continuation


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        value = int(token)
    except ValueError:
        raise InputError(f"Invalid continuationToken {token!r}") from None
    if value < 0:
        raise InputError(f"Invalid continuationToken {token!r}")
    return value
