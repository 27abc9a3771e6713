"""The sweeper: what time alone changes — expired claims, passed deadlines, lost hints, and
expired artifacts.

It finds due tasks through the sparse `byDue` index and applies `transitions.expire` (claim
expiry with retry, deadline-exceeded) or `transitions.redispatch` with the same version-guarded
write as any API call, so two sweeps at once, or a sweep racing a worker, resolve each task once.
A redispatch of an unscheduled task re-checks its dependencies (a release may have been lost).

A tick works in rounds. A round reads every shard of the index at once, at most `sweep_batch`
entries from each (so no shard waits behind another, however much it holds), then sweeps the
entries on `SWEEP_CONCURRENCY` threads, in chunks of up to 100: one BatchGetItem for a chunk's
tasks, then one conditional write per task that has something due. Rounds go on while a shard
returned a full page, each shard's next page starting after its last entry (an entry that stays
due, e.g. a contended task, is not read twice in a tick). A tick takes no new task once `time_left()` is down to
`SAFETY_MARGIN` or it has run `TICK_SECONDS`; what is left is due again at the next tick.
Artifact expiry is a separate step after it (services/artifacts.py), bounded by `sweep_batch`.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from ..domain import transitions
from ..domain.errors import RequestConflict, ResourceNotFound
from ..domain.model import Task, TaskState
from .artifacts import ArtifactService
from .ports import DueEntry
from .queue import QueueService

SWEEP_CONCURRENCY = 16  # index queries, batch reads and writes in flight at once (they wait on I/O)
SAFETY_MARGIN = 10.0  # seconds of the invocation left when a tick stops taking tasks (one write takes ms)
TICK_SECONDS = 50.0  # longest tick: the schedule fires every minute (handlers/events.py), so ticks rarely overlap
READ_BATCH = 100  # BatchGetItem's most keys per request


@dataclass
class SweepReport:
    examined: int = 0
    changed: list[str] = field(default_factory=list)
    rounds: int = 0
    out_of_time: bool = False  # stopped with due work possibly left (the next tick continues)
    artifacts_purged: int = 0


def _round_robin(pages: Sequence[list[DueEntry]]) -> list[DueEntry]:
    """The pages' entries, one from each shard in turn: work cut short by time is shared fairly."""
    return [e for group in itertools.zip_longest(*pages) for e in group if e is not None]


class Sweeper:
    def __init__(
        self, queue: QueueService, artifacts: ArtifactService | None = None, concurrency: int = SWEEP_CONCURRENCY
    ) -> None:
        self.queue = queue
        self.artifacts = artifacts
        self._concurrency = concurrency
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="sweep")

    def sweep(self, time_left: Callable[[], float] = lambda: math.inf) -> SweepReport:
        """One tick. `time_left`: seconds the invocation has left (Lambda's remaining time)."""
        settings = self.queue.settings
        started = time.monotonic()
        report = SweepReport()

        def in_time() -> bool:
            return time_left() > SAFETY_MARGIN and time.monotonic() - started < TICK_SECONDS

        shards = list(range(settings.due_shards_swept))
        after: dict[int, DueEntry | None] = dict.fromkeys(shards)
        while shards:
            if not in_time():
                report.out_of_time = True
                break
            report.rounds += 1
            pages = self._round(shards, after, in_time, report)
            for shard, page in zip(shards, pages, strict=True):
                if page:
                    after[shard] = page[-1]
            shards = [s for s, page in zip(shards, pages, strict=True) if len(page) == settings.sweep_batch]
        if self.artifacts is not None and in_time():
            report.artifacts_purged = self.artifacts.expire(settings.sweep_batch)
        return report

    def _round(
        self,
        shards: list[int],
        after: dict[int, DueEntry | None],
        in_time: Callable[[], bool],
        report: SweepReport,
    ) -> list[list[DueEntry]]:
        """One page of each shard, swept; returns the pages. The entries, one shard after another in
        turn, are cut into chunks for the threads; a chunk's tasks are read with one request, then
        written one by one. A chunk begun out of time reads nothing."""
        store, now, batch = self.queue.store, self.queue.clock.now(), self.queue.settings.sweep_batch
        pages = list(self._pool.map(lambda s: store.due(s, now, batch, after[s]), shards))
        ids = [e.task_id for e in _round_robin(pages)]
        size = max(1, min(READ_BATCH, math.ceil(len(ids) / self._concurrency)))
        lock = threading.Lock()

        def chunk(task_ids: list[str]) -> None:
            if not in_time():
                report.out_of_time = True
                return
            tasks = store.get_many(task_ids)  # eventually consistent: a stale task fails its version guard
            for task_id in task_ids:  # and the transition reads it again, strongly (services/transition.py)
                if not in_time():
                    report.out_of_time = True
                    return
                changed = self._sweep_task(task_id, tasks.get(task_id))
                with lock:
                    report.examined += 1
                    if changed:
                        report.changed.append(task_id)

        list(self._pool.map(chunk, [ids[i : i + size] for i in range(0, len(ids), size)]))
        return pages

    def _sweep_task(self, task_id: str, task: Task | None) -> bool:
        """Apply what is due to one task (read already, unless it was not found): one conditional
        write, or none if nothing is due after all. True if the task changed."""
        base = self.queue.settings.redispatch_base

        rearmed = False

        def step(task: Task, now: datetime) -> Task:
            nonlocal rearmed
            rearmed = False
            expired = transitions.expire(task, now)
            if expired is not task:
                return expired
            again = transitions.redispatch(task, now, base)
            if again is not task:
                return again
            # Nothing due after all (a claim kept its pending run's earlier time, or the index lagged):
            # written again, the task's sweeper time becomes its real one. Not a change of the task.
            rearmed = True
            return transitions.rearm(task)

        try:
            result = self.queue.transition(task_id, step, task)
        except (ResourceNotFound, RequestConflict):
            return False  # expired and deleted, or contended: the next tick sees it again
        changed = result.changed and not rearmed
        if changed and result.task.state is TaskState.UNSCHEDULED:
            self.queue.dependencies.recheck(result.task)
        return changed
