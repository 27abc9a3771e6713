"""The tasks table's stream is the outbox: what a committed row change must cause elsewhere.

- a change that makes (or re-announces) a pending run puts a dispatch hint on its task queue;
- every change publishes its task events (task-defined, task-pending, task-running, …);
- a task resolved for good leaves its group's unresolved set (an emptied group publishes
  task-group-resolved) and releases its dependents;
- new tasks, claims and reclaims mark their task queue and worker as seen (services/worker_info.py),
  so the API's claim path writes nothing for it.

Records are at-least-once and may come out of order across tasks: hints are re-checked by the
claim, events are at-least-once by contract, and every release step is idempotent. When something
cannot be delivered, the report names the first change not carried out in full (`failed_at`); the
stream handler returns it as Lambda's `batchItemFailures`, so the stream is retried from that
record on, and the records before it are not redone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..domain.dispatch import Hint, hint_needed
from ..domain.events import Event, resolution, task_events
from ..domain.model import Task, TaskState
from .dependencies import RELEASE_MARGIN, Dependencies
from .ports import EventBus, HintQueues, Undelivered
from .task_groups import TaskGroups
from .worker_info import WorkerInfo

log = logging.getLogger(__name__)

INLINE_RELEASE_SECONDS = 5.0  # release work a stream invocation does before handing on the rest
T = TypeVar("T")


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
    sequence_number: str = ""


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
    # The first change (its position among those given) not carried out in full: it and every
    # change after it must be delivered again. None: all were carried out.
    failed_at: int | None = None
    failed_record: StreamRecord | None = None  # process_records: the record of that change


@dataclass
class _Effects:
    """What one row change causes."""

    hints: list[Hint]
    events: list[Event]
    resolved: TaskState | None


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
        changes: list[tuple[StreamRecord, RowChange]] = []
        for record in records:
            try:
                change = RowChange(self._task(record.old_image), self._task(record.new_image))
            except Exception:
                log.exception("skipping unreadable stream record %s", record.event_id)
                continue
            if change.old is not None or change.new is not None:  # else a definition item's record
                changes.append((record, change))
        whole = self._whole(changes)
        report = self.process([c for _, c in whole], time_left)
        if report.failed_at is not None:
            report.failed_record = whole[report.failed_at][0]
        return report

    def _task(self, image: Mapping[str, Any] | None) -> Task | None:
        return self.decode(image) if image else None

    def _whole(self, changes: Sequence[tuple[StreamRecord, RowChange]]) -> list[tuple[StreamRecord, RowChange]]:
        """The changes with their tasks' definitions, read in one go (immutable, and written before
        the status, so always there but for expired tasks: a removal needs none)."""
        wanted = [c.new.task_id for _, c in changes if c.new is not None and c.new.partial]
        found = self.definitions(wanted) if wanted else {}
        whole: list[tuple[StreamRecord, RowChange]] = []
        for record, c in changes:
            if c.new is None or not c.new.partial:
                whole.append((record, c))
            elif c.new.task_id in found:
                d = found[c.new.task_id]
                old = c.old.with_definition(d) if c.old is not None and c.old.partial else c.old
                whole.append((record, RowChange(old, c.new.with_definition(d))))
            else:
                log.error("skipping stream record %s: task %s has no definition", record.event_id, c.new.task_id)
        return whole

    def process(self, changes: Sequence[RowChange], time_left: Callable[[], float]) -> OutboxReport:
        """Carry out what the changes cause, in steps over the whole batch (hints, events, group
        resolutions, releases, then who was seen). When a step fails for some change, the later
        steps are done only for the changes before it, so every change before `failed_at` is done
        in full: the stream's checkpoint can move past them, and a change is never retried after
        a later change of the same row. Changes from `failed_at` on may have been partly carried
        out; all of that is idempotent or at-least-once, so doing it again is harmless."""
        report = OutboxReport(records=len(changes))
        effects = [self._effects(c) for c in changes]
        done = len(changes)  # changes[:done] are carried out so far

        hints = [(i, h) for i, e in enumerate(effects) for h in e.hints]
        done = _deliver("hints", self.hints.send, hints, done)
        report.hints = [h for i, h in hints if i < done]

        resolved: list[tuple[int, Task, TaskState]] = []
        for i, (c, e) in enumerate(zip(changes, effects, strict=True)):
            if e.resolved is not None and c.new is not None and i < done:
                resolved.append((i, c.new, e.resolved))
        by_group: dict[int, list[Event]] = {}
        try:
            group_events = self.groups.resolved_for_good([t for _, t, _ in resolved])
        except Exception:
            log.exception("could not take resolved tasks out of their groups")
            group_events = []
            done = min(done, resolved[0][0]) if resolved else done
        last = {t.task_group_id: i for i, t, _ in resolved}  # the last change resolving each group
        for event in group_events:
            by_group.setdefault(last[event.body["taskGroupId"]], []).append(event)
        events = [(i, ev) for i, e in enumerate(effects) if i < done for ev in [*e.events, *by_group.get(i, [])]]
        done = _deliver("events", self.events.publish, events, done)
        report.events = [ev for i, ev in events if i < done]

        # One query each finds out whether anything depends on them (usually nothing does). Large
        # releases continue on the release queue, so they never hold up the stream for long.
        at_start = time_left()

        def inline_left() -> float:
            spent = at_start - time_left()
            return min(time_left(), RELEASE_MARGIN + INLINE_RELEASE_SECONDS - spent)

        releases = [(i, t, state) for i, t, state in resolved if i < done]
        try:
            report.released += self.dependencies.release_all([(t.task_id, s) for _, t, s in releases], inline_left)
        except Exception:
            log.exception("could not release dependents")
            done = min(done, releases[0][0]) if releases else done
        # Last: who was seen is informational, and must not delay dependents becoming pending.
        if self.workers is not None:
            try:
                report.seen_written = self.workers.record_seen([(c.old, c.new) for c in changes[:done]])
            except Exception:
                # Failing the batch would re-send its hints and events; a worker's next claim
                # or reclaim records it again.
                log.exception("could not record the task queues and workers seen")
        report.failed_at = done if done < len(changes) else None
        return report

    @staticmethod
    def _effects(c: RowChange) -> _Effects:
        if c.new is None:
            return _Effects([], [], None)  # a row removed by TTL: nothing to announce
        hint = hint_needed(c.old, c.new)
        return _Effects([hint] if hint else [], task_events(c.old, c.new), resolution(c.old, c.new))


def _deliver(what: str, send: Callable[[list[T]], None], items: list[tuple[int, T]], done: int) -> int:
    """Send the items of the changes before `done` (each item with its change's position): how
    many changes from the start are still carried out so far."""
    items = [(i, x) for i, x in items if i < done]
    if not items:
        return done
    try:
        send([x for _, x in items])
    except Undelivered as e:
        log.warning("%s of %d changes: %s", what, done, e)
        return min([done, *(items[k][0] for k in e.indices if k < len(items))])
    except Exception:
        log.exception("could not send %s", what)
        return min(done, items[0][0])
    return done
