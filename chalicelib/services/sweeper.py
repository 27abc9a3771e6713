"""The sweeper: what time alone changes — expired claims, passed deadlines, lost hints, and
expired artifacts.

It finds due tasks through the sparse `byDue` index and applies `transitions.expire` (claim
expiry with retry, deadline-exceeded) or `transitions.redispatch` with the same version-guarded
write as any API call, so two sweeps at once, or a sweep racing a worker, resolve each task once.
A redispatch of an unscheduled task re-checks its dependencies (a release may have been lost).
Each tick handles at most `sweep_batch` tasks; what is left is due again at the next tick.
Artifact expiry is a separate step after it (services/artifacts.py), bounded the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..domain import transitions
from ..domain.errors import RequestConflict, ResourceNotFound
from ..domain.model import Task, TaskState
from .artifacts import ArtifactService
from .queue import QueueService


@dataclass
class SweepReport:
    examined: int = 0
    changed: list[str] = field(default_factory=list)
    artifacts_purged: int = 0


class Sweeper:
    def __init__(self, queue: QueueService, artifacts: ArtifactService | None = None) -> None:
        self.queue = queue
        self.artifacts = artifacts

    def sweep(self) -> SweepReport:
        settings = self.queue.settings
        base = settings.redispatch_base
        report = SweepReport()

        def step(task: Task, now: datetime) -> Task:
            expired = transitions.expire(task, now)
            return expired if expired is not task else transitions.redispatch(task, now, base)

        for task_id in self.queue.store.due(self.queue.clock.now(), settings.sweep_batch):
            report.examined += 1
            try:
                result = self.queue.transition(task_id, step)
            except (ResourceNotFound, RequestConflict):
                continue  # expired and deleted, or contended: the next tick sees it again
            if result.changed:
                report.changed.append(task_id)
                if result.task.state is TaskState.UNSCHEDULED:
                    self.queue.dependencies.recheck(result.task)
        if self.artifacts is not None:
            report.artifacts_purged = self.artifacts.expire(settings.sweep_batch)
        return report
