"""The in-memory tasks table: MemoryTaskStore, its three indexes and its stream of row changes.

It stands for adapters/task_store.py: each row is a `_TaskRow` as the table keeps it (the
definition as JSON text, dates to the millisecond), writes are conditional on the version or
patch_run's guard and answer the status alone (`Task.partial`), and every write appends a
RowChange (of whole tasks: what the outbox makes of the table's images) that `pump` hands to the outbox.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from ...domain import transitions
from ...domain.model import ACTIVE_STATES, Run, Task, TaskState, format_date, parse_date
from ...domain.transitions import RunPatch
from ...services.outbox import RowChange
from ...services.ports import DueEntry, Page, QueueCounts, QueueEntry
from ..pagination import equal, prefixed
from .common import _ms, _opt_ms, _query, _shard, _start, _token


@dataclass(frozen=True)
class _TaskRow:
    task_id: str
    definition: str  # JSON text, as the table keeps it
    task_queue_id: str
    task_group_id: str
    deadline: str
    expires: str
    priority: str
    retries_left: int
    runs: tuple[Run, ...]
    version: int
    hint_seq: int
    link: str
    due_at: datetime | None

    @property
    def state(self) -> TaskState:
        return self.runs[-1].state if self.runs else TaskState.UNSCHEDULED

    @property
    def queue_sort(self) -> str | None:
        latest = self.runs[-1] if self.runs else None
        if latest is None or latest.state not in ACTIVE_STATES:
            return None
        since = latest.started if latest.state is TaskState.RUNNING else latest.scheduled
        assert since is not None
        return f"{latest.state.value}#{format_date(since)}"

    @property
    def taken_until(self) -> datetime | None:
        latest = self.runs[-1] if self.runs else None
        return latest.taken_until if latest is not None and latest.state is TaskState.RUNNING else None

    def task(self) -> Task:
        return Task(
            self.task_id,
            json.loads(self.definition),
            self.priority,
            self.retries_left,
            self.runs,
            self.version,
            self.hint_seq,
            self.link,
        )


def _runs(runs: Iterable[Run]) -> tuple[Run, ...]:
    return tuple(Run.from_json(r.to_json()) for r in runs)


class MemoryTaskStore:
    """The tasks table (adapters/task_store.py), its three indexes and its stream."""

    def __init__(self, due_shards: int = 4, redispatch_base: timedelta = timedelta(seconds=600)) -> None:
        self._shards = due_shards
        self._base = redispatch_base
        self._rows: dict[str, _TaskRow] = {}
        self._changes: list[RowChange] = []
        self._lock = threading.RLock()

    # --- the stream ----------------------------------------------------------------------------
    def take_changes(self) -> list[RowChange]:
        """The row changes written since the last call, oldest first (the stream's records)."""
        with self._lock:
            changes, self._changes = self._changes, []
        return changes

    def _write(self, old: _TaskRow | None, new: _TaskRow | None) -> None:
        """Store `new` (None: delete `old`) and append the stream record of the change."""
        if new is not None:
            self._rows[new.task_id] = new
        elif old is not None:
            del self._rows[old.task_id]
        self._changes.append(RowChange(old.task() if old else None, new.task() if new else None))

    def remove_expired(self, now: datetime) -> list[str]:
        """What DynamoDB's TTL does, some time after `expires`: delete the rows (a REMOVE record each)."""
        with self._lock:
            gone = [r for r in self._rows.values() if r.expires <= format_date(now)]
            for row in gone:
                self._write(row, None)
        return [r.task_id for r in gone]

    # --- reads ---------------------------------------------------------------------------------
    def get(self, task_id: str) -> Task | None:
        with self._lock:
            row = self._rows.get(task_id)
        return row.task() if row else None

    def get_many(self, task_ids: Sequence[str], consistent: bool = False) -> dict[str, Task]:
        with self._lock:
            rows = [self._rows[t] for t in dict.fromkeys(task_ids) if t in self._rows]
        return {r.task_id: r.task() for r in rows}

    def definitions(self, task_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        with self._lock:
            rows = [self._rows[t] for t in dict.fromkeys(task_ids) if t in self._rows]
        return {r.task_id: json.loads(r.definition) for r in rows}

    def group_page(self, task_group_id: str, limit: int, continuation: str | None) -> tuple[list[str], str | None]:
        names = ("taskGroupId", "taskId")
        start = _start(continuation, names, ("taskId",), {"taskGroupId": equal(task_group_id)})
        with self._lock:
            rows = [((r.task_id,), r.task_id) for r in self._rows.values() if r.task_group_id == task_group_id]
        ids, last = _query(rows, start, limit)
        return ids, _token(names, (task_group_id, *last) if last else None)

    # --- writes --------------------------------------------------------------------------------
    def _due(self, task: Task) -> datetime | None:
        return _opt_ms(transitions.due_at(task, self._base))

    def create(self, task: Task) -> Task | None:
        d = task.definition
        with self._lock:
            existing = self._rows.get(task.task_id)
            if existing is not None:
                return existing.task()
            row = _TaskRow(
                task.task_id,
                json.dumps(d, separators=(",", ":")),
                d["taskQueueId"],
                d["taskGroupId"],
                d["deadline"],
                d["expires"],
                task.priority,
                task.retries_left,
                _runs(task.runs),
                1,
                task.hint_seq,
                task.link,
                self._due(task),
            )
            self._write(None, row)
        return None

    def save(self, task: Task, expected_version: int) -> Task | None:
        with self._lock:
            old = self._rows.get(task.task_id)
            if old is None or old.version != expected_version:
                return None
            new = replace(
                old,
                priority=task.priority,
                retries_left=task.retries_left,
                runs=_runs(task.runs),
                hint_seq=task.hint_seq,
                version=expected_version + 1,
                due_at=self._due(task),
            )
            self._write(old, new)
        return new.task().status_only()

    def patch_run(self, task_id: str, patch: RunPatch) -> Task | None:
        with self._lock:
            old = self._rows.get(task_id)
            if (
                old is None
                or old.state is not patch.expect
                or len(old.runs) != patch.run_id + 1
                or old.runs[patch.run_id].run_id != patch.run_id
                or (patch.deadline_after is not None and not old.deadline > format_date(patch.deadline_after))
                or (patch.task_queue_id is not None and old.task_queue_id != patch.task_queue_id)
                or (patch.keep_due and (old.due_at is None or old.due_at > _opt_ms(patch.due_at)))  # type: ignore[operator]
            ):
                return None
            runs = _runs((*old.runs[:-1], replace(old.runs[-1], **patch.fields)))
            due = old.due_at if patch.keep_due else _opt_ms(patch.due_at)
            new = replace(old, runs=runs, version=old.version + 1, due_at=due)
            self._write(old, new)
        return new.task().status_only()

    # --- indexes -------------------------------------------------------------------------------
    def queue_page(self, task_queue_id: str, state: TaskState, limit: int, continuation: str | None) -> Page:
        names = ("taskQueueId", "queueSort", "taskId")
        bounds = {"taskQueueId": equal(task_queue_id), "queueSort": prefixed(f"{state.value}#")}
        start = _start(continuation, names, names[1:], bounds)
        with self._lock:
            rows = [
                ((sort, r.task_id), QueueEntry(r.task_id, parse_date(sort.split("#", 1)[1]), r.taken_until))
                for r in self._rows.values()
                if r.task_queue_id == task_queue_id and (sort := r.queue_sort) and sort.startswith(f"{state.value}#")
            ]
        entries, last = _query(rows, start, limit)
        return Page(entries, _token(names, (task_queue_id, *last) if last else None))

    def queue_counts(self, task_queue_id: str, live_at: datetime, examine: int | None = None) -> QueueCounts:
        at = format_date(live_at)
        with self._lock:
            entries = sorted(
                (sort, r.task_id, r)
                for r in self._rows.values()
                if r.task_queue_id == task_queue_id and (sort := r.queue_sort)
            )
        running = [r for sort, _, r in entries if sort.startswith(f"{TaskState.RUNNING.value}#")]
        waiting = [r for sort, _, r in entries if sort.startswith(f"{TaskState.PENDING.value}#")]
        read = waiting if examine is None else waiting[:examine]
        return QueueCounts(
            pending=sum(1 for r in read if r.deadline > at),
            claimed=sum(
                1 for r in running if r.deadline > at and r.taken_until is not None and format_date(r.taken_until) > at
            ),
            complete=examine is None or len(read) < examine,
        )

    def due(self, shard: int, now: datetime, limit: int, after: DueEntry | None = None) -> list[DueEntry]:
        at = _ms(now)
        with self._lock:
            rows = list(self._rows.values())
        due = [
            ((format_date(r.due_at), r.task_id), DueEntry(r.due_at, r.task_id))
            for r in rows
            if r.due_at is not None and r.due_at <= at and _shard(r.task_id, self._shards) == str(shard)
        ]
        start = None if after is None else (format_date(after.due_at), after.task_id)
        return _query(due, start, limit)[0]
