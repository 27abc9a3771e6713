"""The tasks table's stream is the outbox: what a committed row change must cause elsewhere.

- a change that makes (or re-announces) a pending run puts a dispatch hint on its task queue;
- every change publishes its task events (task-defined, task-pending, task-running, …);
- a task resolved for good leaves its group's unresolved set (an emptied group publishes
  task-group-resolved) and releases its dependents;
- new tasks, claims and reclaims mark their task queue and worker as seen (services/worker_info.py),
  so the API's claim path writes nothing for it.

Records are at-least-once and may come out of order across tasks: hints are re-checked by the
claim, events are at-least-once by contract, and every release step is idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..domain.dispatch import Hint, hint_needed
from ..domain.events import Event, resolution, task_events
from ..domain.model import Task, TaskState
from .graph import RELEASE_MARGIN, TaskGraph
from .ports import EventBus, HintQueues
from .worker_info import WorkerInfo

log = logging.getLogger("taskqueue.outbox")

INLINE_RELEASE_SECONDS = 5.0  # release work a stream invocation does before handing on the rest


@dataclass(frozen=True)
class RowChange:
    old: Task | None
    new: Task | None


@dataclass
class OutboxReport:
    hints: list[Hint] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    seen_written: int = 0  # task-queue and worker rows written


class Outbox:
    def __init__(
        self, hints: HintQueues, events: EventBus, graph: TaskGraph, workers: WorkerInfo | None = None
    ) -> None:
        self.hints = hints
        self.events = events
        self.graph = graph
        self.workers = workers

    def process(self, changes: Sequence[RowChange], time_left: Callable[[], float]) -> OutboxReport:
        report = OutboxReport()
        resolved: list[tuple[Task, TaskState]] = []
        for c in changes:
            if c.new is None:
                continue  # a row removed by TTL: nothing to announce
            hint = hint_needed(c.old, c.new)
            if hint is not None:
                report.hints.append(hint)
            report.events += task_events(c.old, c.new)
            state = resolution(c.old, c.new)
            if state is not None:
                resolved.append((c.new, state))
        if report.hints:
            self.hints.send(report.hints)
        report.events += self.graph.resolved_for_good([t for t, _ in resolved])
        if report.events:
            self.events.publish(report.events)
        # One query each finds out whether anything depends on them (usually nothing does). Large
        # releases continue on the release queue, so they never hold up the stream for long.
        at_start = time_left()

        def inline_left() -> float:
            spent = at_start - time_left()
            return min(time_left(), RELEASE_MARGIN + INLINE_RELEASE_SECONDS - spent)

        report.released += self.graph.release_all([(t.task_id, s) for t, s in resolved], inline_left)
        # Last: who was seen is informational, and must not delay dependents becoming pending.
        if self.workers is not None:
            try:
                report.seen_written = self.workers.record_seen([(c.old, c.new) for c in changes])
            except Exception:
                # Failing the batch would re-send its hints and events; a worker's next claim
                # or reclaim records it again.
                log.exception("could not record the task queues and workers seen")
        return report
