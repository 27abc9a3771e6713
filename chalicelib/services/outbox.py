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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..domain.dispatch import Hint, hint_needed
from ..domain.events import Event, resolution, task_events
from ..domain.model import Task, TaskState
from .dependencies import RELEASE_MARGIN, Dependencies
from .ports import EventBus, HintQueues
from .task_groups import TaskGroups
from .worker_info import WorkerInfo

log = logging.getLogger(__name__)

INLINE_RELEASE_SECONDS = 5.0  # release work a stream invocation does before handing on the rest


@dataclass(frozen=True)
class RowChange:
    old: Task | None
    new: Task | None


@dataclass(frozen=True)
class StreamRecord:
    """One record of the tasks table's stream as Lambda delivers it: the row's images, undecoded."""

    event_id: str
    old_image: Mapping[str, Any] | None
    new_image: Mapping[str, Any] | None


# Reads a row image of the tasks table (the adapter's format): a task's status as a partial Task
# (its definition is read for the whole batch at once), None for an item that is no task's status.
ImageDecoder = Callable[[Mapping[str, Any]], Task | None]
# The definitions of tasks, by taskId (TaskStore.definitions).
DefinitionReader = Callable[[Sequence[str]], Mapping[str, dict[str, Any]]]


@dataclass
class OutboxReport:
    records: int = 0  # the row changes read (an unreadable record is skipped, not counted)
    hints: list[Hint] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    seen_written: int = 0  # task-queue and worker rows written


class Outbox:
    def __init__(
        self,
        hints: HintQueues,
        events: EventBus,
        groups: TaskGroups,
        dependencies: Dependencies,
        decode: ImageDecoder,
        definitions: DefinitionReader,
        workers: WorkerInfo | None = None,
    ) -> None:
        self.decode = decode
        self.definitions = definitions
        self.hints = hints
        self.events = events
        self.groups = groups
        self.dependencies = dependencies
        self.workers = workers

    def process_records(self, records: Sequence[StreamRecord], time_left: Callable[[], float]) -> OutboxReport:
        """A batch of the stream: each record decoded, then `process`. A record that cannot be read
        is logged and skipped: it must not block the shard, and the sweeper re-derives anything it
        should have caused from the row itself."""
        changes: list[tuple[str, RowChange]] = []
        for record in records:
            try:
                change = RowChange(self._task(record.old_image), self._task(record.new_image))
            except Exception:
                log.exception("skipping unreadable stream record %s", record.event_id)
                continue
            if change.old is not None or change.new is not None:  # else a definition item's record
                changes.append((record.event_id, change))
        return self.process(self._whole(changes), time_left)

    def _task(self, image: Mapping[str, Any] | None) -> Task | None:
        return self.decode(image) if image else None

    def _whole(self, changes: Sequence[tuple[str, RowChange]]) -> list[RowChange]:
        """The changes with their tasks' definitions, read in one go (immutable, and written before
        the status, so always there but for expired tasks: a removal needs none)."""
        wanted = [c.new.task_id for _, c in changes if c.new is not None and c.new.partial]
        found = self.definitions(wanted) if wanted else {}
        whole: list[RowChange] = []
        for event_id, c in changes:
            if c.new is None or not c.new.partial:
                whole.append(c)
            elif c.new.task_id in found:
                d = found[c.new.task_id]
                old = c.old.with_definition(d) if c.old is not None and c.old.partial else c.old
                whole.append(RowChange(old, c.new.with_definition(d)))
            else:
                log.error("skipping stream record %s: task %s has no definition", event_id, c.new.task_id)
        return whole

    def process(self, changes: Sequence[RowChange], time_left: Callable[[], float]) -> OutboxReport:
        report = OutboxReport(records=len(changes))
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
        report.events += self.groups.resolved_for_good([t for t, _ in resolved])
        if report.events:
            self.events.publish(report.events)
        # One query each finds out whether anything depends on them (usually nothing does). Large
        # releases continue on the release queue, so they never hold up the stream for long.
        at_start = time_left()

        def inline_left() -> float:
            spent = at_start - time_left()
            return min(time_left(), RELEASE_MARGIN + INLINE_RELEASE_SECONDS - spent)

        report.released += self.dependencies.release_all([(t.task_id, s) for t, s in resolved], inline_left)
        # Last: who was seen is informational, and must not delay dependents becoming pending.
        if self.workers is not None:
            try:
                report.seen_written = self.workers.record_seen([(c.old, c.new) for c in changes])
            except Exception:
                # Failing the batch would re-send its hints and events; a worker's next claim
                # or reclaim records it again.
                log.exception("could not record the task queues and workers seen")
        return report
