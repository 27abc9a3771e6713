"""The tasks table: every task transition is one conditional write (invariant 2).

A task is two items (adapters/tables.py): its definition (`def#<taskId>`, written once) and its
small status (`<taskId>`), which every transition rewrites — 1 write unit whatever the task's size.
`save` guards on the status's version (the caller read it); `patch_run` guards on the latest run's
state instead, so the hot path (claim, resolve) needs no read at all, and answers with the status
alone (`Task.partial`). A failed guard is reported as None; the caller re-reads and decides between
"already done" and 409. Reads of a whole task get both items in one BatchGetItem.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.update import Action

from ..domain import transitions
from ..domain.errors import InputError
from ..domain.model import ACTIVE_STATES, Run, Task, TaskState, format_date, parse_date
from ..domain.transitions import RunPatch
from ..services.ports import DueEntry, Page, QueueCounts, QueueEntry
from .pagination import MAX_KEY_BYTES, decode_token, equal, next_token
from .tables import DefinitionRow, RunAttribute, TaskRow, definition_model

CONDITION_FAILED = "ConditionalCheckFailedException"
DEFINITION_PREFIX = "def#"  # a taskId (a slugid) never holds '#'
# byQueue keys per task queue: each takes 1/QUEUE_SHARDS of its writes, so a task queue sustains
# QUEUE_SHARDS × 250 lifecycles/s, 4 × 1,000 createTask/s (architecture.md, Capacity); listings merge
# them, counts add them up (a Query per key: why not more).
QUEUE_SHARDS = 4


def definition_key(task_id: str) -> str:
    return DEFINITION_PREFIX + task_id


def _run_attr(run: Run) -> RunAttribute:
    return RunAttribute(**run.to_json())


def _status_head(row: TaskRow) -> dict[str, Any]:
    """The definition's STATUS_FIELDS, from the status item."""
    provisioner_id, worker_type = row.taskQueueId.split("/", 1)
    return {
        "provisionerId": provisioner_id,
        "workerType": worker_type,
        "taskQueueId": row.taskQueueId,
        "schedulerId": row.schedulerId,
        "projectId": row.projectId,
        "taskGroupId": row.taskGroupId,
        "deadline": row.deadline,
        "expires": row.expires,
    }


def task_from_row(row: TaskRow, definition: dict[str, Any] | None = None) -> Task:
    """The task of a status item: whole with its `definition`, else partial (STATUS_FIELDS only)."""
    return Task(
        task_id=row.taskId,
        definition=definition if definition is not None else _status_head(row),
        priority=row.priority,
        retries_left=int(row.retriesLeft),
        runs=tuple(Run.from_json(r if isinstance(r, dict) else r.as_dict()) for r in row.runs or []),
        version=int(row.version or 0),
        hint_seq=int(row.hintSeq or 0),
        link=row.link or "",
        partial=definition is None,
    )


def image_decoder(model: type[TaskRow]) -> Callable[[Mapping[str, Any]], Task | None]:
    """Reads a stream record's image of the tasks table (DynamoDB JSON): a status item as a partial
    Task (the outbox reads the definitions of a batch at once), a definition item as None."""

    def decode(image: Mapping[str, Any]) -> Task | None:
        row = model.from_raw_data(dict(image))
        return None if row.taskId.startswith(DEFINITION_PREFIX) else task_from_row(row)

    return decode


def _hash(task_id: str) -> int:
    return int(hashlib.sha256(task_id.encode()).hexdigest()[:8], 16)


def _queue_sort(task: Task) -> str | None:
    latest = task.latest
    if latest is None or latest.state not in ACTIVE_STATES:
        return None
    since = latest.started if latest.state is TaskState.RUNNING else latest.scheduled
    assert since is not None
    return f"{latest.state.value}#{format_date(since)}"


class DynamoTaskStore:
    def __init__(
        self, model: type[TaskRow], due_shards: int, redispatch_base: timedelta, queue_shards: int = QUEUE_SHARDS
    ) -> None:
        self._model = model
        self._queue_shards = queue_shards
        meta: Any = model.Meta
        self._definitions: type[DefinitionRow] = definition_model(
            meta.table_name, meta.region, getattr(meta, "host", None)
        )
        self._shards = due_shards
        self._redispatch_base = redispatch_base
        # `runs[i]` as a document path, made once per index: pynamodb builds it by deep-copying each
        # of RunAttribute's attributes, three times per patch: about a fifth of a claim's CPU on our side.
        self._run_paths: dict[int, Any] = {}

    def _run(self, run_id: int) -> Any:
        path = self._run_paths.get(run_id)
        if path is None:
            path = self._run_paths[run_id] = self._model.runs[run_id]
        return path

    # --- reads ---------------------------------------------------------------------------------
    def _items(self, task_ids: Sequence[str], consistent: bool) -> dict[str, TaskRow]:
        """The status and definition items of `task_ids`, by key, in one BatchGetItem (per 50 tasks)."""
        keys = [k for t in dict.fromkeys(task_ids) for k in (t, definition_key(t))]
        return {row.taskId: row for row in self._model.batch_get(keys, consistent_read=consistent)}

    def _whole(self, task_ids: Sequence[str], consistent: bool) -> dict[str, Task]:
        rows = self._items(task_ids, consistent)
        out: dict[str, Task] = {}
        for task_id in dict.fromkeys(task_ids):
            status, definition = rows.get(task_id), rows.get(definition_key(task_id))
            # Both or neither, but for TTL's deletions (after `expires`), which may take one first.
            if status is not None and definition is not None and definition.definition is not None:
                out[task_id] = task_from_row(status, json.loads(definition.definition))
        return out

    def get(self, task_id: str) -> Task | None:
        return self._whole([task_id], consistent=True).get(task_id)

    def get_many(self, task_ids: Sequence[str], consistent: bool = False) -> dict[str, Task]:
        return self._whole(task_ids, consistent)

    def definitions(self, task_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The definitions of `task_ids` (immutable: read eventually consistent; a miss, consistent)."""
        unique = list(dict.fromkeys(task_ids))
        found: dict[str, dict[str, Any]] = {}
        for consistent in (False, True):
            missing = [definition_key(t) for t in unique if t not in found]
            if not missing:
                break
            for row in self._definitions.batch_get(missing, consistent_read=consistent):
                found[row.taskId.removeprefix(DEFINITION_PREFIX)] = json.loads(row.definition)
        return found

    def group_page(self, task_group_id: str, limit: int, continuation: str | None) -> tuple[list[str], str | None]:
        """A page of a task group's member ids, ordered by taskId."""
        result = self._model.byGroup.query(
            task_group_id,
            limit=limit,
            last_evaluated_key=decode_token(
                continuation, {"taskGroupId", "taskId"}, {"taskGroupId": equal(task_group_id)}
            ),
            page_size=limit,
        )
        ids = [r.taskId for r in result]
        return ids, next_token(result.last_evaluated_key, len(ids), limit)

    def _queue_key(self, task_queue_id: str, shard: int) -> str:
        return f"{task_queue_id}#{shard}"

    def _shard(self, task_id: str) -> str:
        return str(int(hashlib.sha256(task_id.encode()).hexdigest()[:8], 16) % self._shards)

    def _status_values(self, task: Task) -> dict[str, Any]:
        due = transitions.due_at(task, self._redispatch_base)
        taken_until = task.taken_until
        return {
            "priority": task.priority,
            "retriesLeft": task.retries_left,
            "runs": [_run_attr(r) for r in task.runs],
            "state": task.state.value,
            "hintSeq": task.hint_seq,
            "takenUntil": format_date(taken_until) if taken_until else None,
            "queueSort": _queue_sort(task),
            "dueAt": format_date(due) if due else None,
        }

    def _definition_row(self, task: Task) -> DefinitionRow:
        d = task.definition
        return self._definitions(
            definition_key(task.task_id),
            definition=json.dumps(d, separators=(",", ":")),
            ttl=int(parse_date(d["expires"]).timestamp()),
        )

    def _row(self, task: Task, version: int = 1) -> TaskRow:
        d = task.definition
        return self._model(
            task.task_id,
            taskQueueId=d["taskQueueId"],
            taskGroupId=d["taskGroupId"],
            schedulerId=d["schedulerId"],
            projectId=d["projectId"],
            deadline=d["deadline"],
            expires=d["expires"],
            ttl=int(parse_date(d["expires"]).timestamp()),
            version=version,
            dueShard=self._shard(task.task_id),
            queueShard=self._queue_key(d["taskQueueId"], _hash(task.task_id) % self._queue_shards),
            link=task.link or None,
            **self._status_values(task),
        )

    def create(self, task: Task) -> Task | None:
        """The definition first, then the status: a status item always has its definition."""
        try:
            self._definition_row(task).save(
                condition=self._definitions.taskId.does_not_exist(), add_version_condition=False
            )
        except PutError as e:
            if e.cause_response_code != CONDITION_FAILED:
                raise
            rows = self._items([task.task_id], consistent=True)
            stored = rows.get(definition_key(task.task_id))
            if stored is None or stored.definition is None:  # deleted in between (expiry): try once more
                return self.create(task)
            definition = json.loads(stored.definition)
            status = rows.get(task.task_id)
            if status is not None:
                return task_from_row(status, definition)
            if definition != task.definition:
                # Its status is not written (yet, or ever): the stored definition alone answers.
                return Task(task.task_id, definition, definition["priority"], int(definition["retries"]))
            # The same definition without a status: another request is writing it, or failed to.
        try:
            self._row(task).save(condition=self._model.taskId.does_not_exist(), add_version_condition=False)
        except PutError as e:
            if e.cause_response_code != CONDITION_FAILED:
                raise
            existing = self.get(task.task_id)
            if existing is None:  # deleted in between (expiry): try once more
                return self.create(task)
            return existing
        return None

    def put_many(self, tasks: Sequence[Task]) -> None:
        """Bulk-load rows as they are, unconditionally (benchmarks and imports, not the API)."""
        with self._definitions.batch_write() as definitions:
            for task in tasks:
                definitions.save(self._definition_row(task))
        with self._model.batch_write() as batch:
            for task in tasks:
                batch.save(self._row(task, version=task.version + 1))

    def save(self, task: Task, expected_version: int) -> Task | None:
        m = self._model
        actions: list[Action] = [m.version.set(expected_version + 1)]
        for name, value in self._status_values(task).items():
            attr = getattr(m, name)
            actions.append(attr.remove() if value is None else attr.set(value))
        return self._update(task.task_id, actions, m.version == expected_version)

    def patch_run(self, task_id: str, patch: RunPatch) -> Task | None:
        m = self._model
        run = self._run(patch.run_id)
        actions: list[Action] = [m.version.add(1)]
        for name, value in patch.fields.items():
            key = "".join(w.capitalize() if i else w for i, w in enumerate(name.split("_")))
            stored = format_date(value) if isinstance(value, datetime) else getattr(value, "value", value)
            actions.append(getattr(run, key).set(stored))
        state: TaskState = patch.fields.get("state", patch.expect)
        actions.append(m.state.set(state.value))
        taken_until = patch.fields.get("taken_until")
        if state is TaskState.RUNNING and taken_until is not None:
            actions.append(m.takenUntil.set(format_date(taken_until)))
            actions.append(m.queueSort.set(f"running#{format_date(patch.fields['started'])}"))
        elif state not in ACTIVE_STATES:
            actions += [m.takenUntil.remove(), m.queueSort.remove()]
        if not patch.keep_due:
            actions.append(m.dueAt.set(format_date(patch.due_at)) if patch.due_at else m.dueAt.remove())
        condition = (m.state == patch.expect.value) & (run.runId == patch.run_id)
        if patch.keep_due and patch.due_at is not None:
            condition &= m.dueAt <= format_date(patch.due_at)
        # the latest run: there is no run after this one
        condition &= self._run(patch.run_id + 1).does_not_exist()
        if patch.deadline_after is not None:
            condition &= m.deadline > format_date(patch.deadline_after)
        if patch.task_queue_id is not None:
            condition &= m.taskQueueId == patch.task_queue_id
        return self._update(task_id, actions, condition)

    def _update(self, task_id: str, actions: list[Action], condition: Any) -> Task | None:
        row = self._model(task_id)
        try:
            row.update(actions=actions, condition=condition, add_version_condition=False)
        except UpdateError as e:
            if e.cause_response_code == CONDITION_FAILED:
                return None
            raise
        return task_from_row(row)

    # --- indexes -------------------------------------------------------------------------------
    def queue_page(self, task_queue_id: str, state: TaskState, limit: int, continuation: str | None) -> Page:
        """A page of the task queue's entries in `state`, oldest first: the next `limit` of each
        shard, merged. The token holds each shard's last entry taken (or that it is done)."""
        m = self._model
        prefix = f"{state.value}#"
        positions = _decode_positions(continuation, task_queue_id, prefix, self._queue_shards)
        read: list[list[tuple[str, str, int, TaskRow]]] = []
        exhausted: dict[int, bool] = {}
        for shard in range(self._queue_shards):
            position = positions.get(shard)
            if position is _DONE:
                continue
            key = self._queue_key(task_queue_id, shard)
            start = None
            if isinstance(position, tuple):
                start = {"queueShard": {"S": key}, "queueSort": {"S": position[0]}, "taskId": {"S": position[1]}}
            result = m.byQueue.query(key, m.queueSort.startswith(prefix), limit=limit, last_evaluated_key=start)
            read.append([(r.queueSort, r.taskId, shard, r) for r in result])
            exhausted[shard] = result.last_evaluated_key is None or len(read[-1]) < limit
        taken = list(heapq.merge(*read, key=lambda e: (e[0], e[1])))[:limit]
        for sort, task_id, shard, _ in taken:
            positions[shard] = (sort, task_id)
        used = [e[2] for e in taken]
        got = {rows[0][2]: len(rows) for rows in read if rows}
        for shard, done in exhausted.items():
            if done and used.count(shard) == got.get(shard, 0):  # all it had is taken
                positions[shard] = _DONE
        entries = [
            QueueEntry(
                task_id=r.taskId,
                since=parse_date(r.queueSort.split("#", 1)[1]),
                taken_until=parse_date(r.takenUntil) if r.takenUntil else None,
            )
            for _, _, _, r in taken
        ]
        more = len(entries) >= limit and any(positions.get(s) is not _DONE for s in range(self._queue_shards))
        return Page(entries, _encode_positions(task_queue_id, prefix, positions) if more else None)

    def queue_counts(self, task_queue_id: str, live_at: datetime, examine: int | None = None) -> QueueCounts:
        """A Query per byQueue key, read in descending order: `running#` entries sort after
        `pending#` ones, so every running entry (at most the workers' capacity) comes before any
        pending one, and `examine` (a share per key) bounds the pending entries read only."""
        at = format_date(live_at)
        each = None if examine is None else max(1, -(-examine // self._queue_shards))
        m = self._model
        connection = m._get_connection()
        # Every entry is `pending#…` or `running#…`: the key condition only says so (and lets the
        # AWS stand-in bisect its sorted partition rather than look at every item).
        states = m.queueSort >= f"{TaskState.PENDING.value}#"
        pending = claimed = 0
        complete = True
        for shard in range(self._queue_shards):
            read = 0  # pending entries read from this key
            start: dict[str, Any] | None = None
            while True:
                page = connection.query(
                    self._queue_key(task_queue_id, shard),
                    range_key_condition=states,
                    index_name="byQueue",
                    attributes_to_get=["queueSort", "deadline", "takenUntil"],
                    scan_index_forward=False,
                    exclusive_start_key=start,
                    limit=None if each is None else each - read,
                )
                for item in page.get("Items", []):
                    live = item["deadline"]["S"] > at
                    if item["queueSort"]["S"].startswith(f"{TaskState.RUNNING.value}#"):
                        claimed += live and item.get("takenUntil", {}).get("S", "") > at
                    else:
                        read += 1
                        pending += live
                start = page.get("LastEvaluatedKey")
                if not start:
                    break
                if each is not None and read >= each:
                    complete = False
                    break
        return QueueCounts(pending, claimed, complete)

    def due(self, shard: int, now: datetime, limit: int, after: DueEntry | None = None) -> list[DueEntry]:
        start = None
        if after is not None:
            keys = {"dueShard": str(shard), "dueAt": format_date(after.due_at), "taskId": after.task_id}
            start = {name: {"S": value} for name, value in keys.items()}
        rows = self._model.byDue.query(
            str(shard), self._model.dueAt <= format_date(now), limit=limit, page_size=limit, last_evaluated_key=start
        )
        return [DueEntry(parse_date(row.dueAt), row.taskId) for row in rows]


# --- byQueue's continuation tokens: a position per shard ---------------------------------------------
class _Done:
    pass


_DONE = _Done()  # a shard listed to its end
Position = tuple[str, str] | _Done  # (queueSort, taskId) of the last entry taken


def _encode_positions(task_queue_id: str, prefix: str, positions: Mapping[int, Position]) -> str:
    shards = {str(s): (0 if isinstance(p, _Done) else list(p)) for s, p in positions.items()}
    return base64.urlsafe_b64encode(json.dumps({"q": task_queue_id, "s": prefix, "k": shards}).encode()).decode()


def _decode_positions(token: str | None, task_queue_id: str, prefix: str, shards: int) -> dict[int, Position]:
    """The positions a token stands for; 400 InputError for anything that is not one of this very
    listing (another task queue, another state, another number of shards, or no token at all)."""
    if not token:
        return {}
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError, RecursionError):
        data = None
    bad = InputError(f"Invalid continuationToken {token!r}")
    if not isinstance(data, dict) or not isinstance(data.get("k"), dict):
        raise bad
    if data.get("q") != task_queue_id or data.get("s") != prefix:
        raise InputError(f"Invalid continuationToken {token!r}: not one of this listing")
    positions: dict[int, Position] = {}
    for name, value in data["k"].items():
        if name not in {str(s) for s in range(shards)}:
            raise bad
        if value == 0:
            positions[int(name)] = _DONE
            continue
        if not (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, str) and 0 < len(v.encode(errors="replace")) <= MAX_KEY_BYTES for v in value)
            and value[0].startswith(prefix)
        ):
            raise InputError(f"Invalid continuationToken {token!r}: not one of this listing")
        positions[int(name)] = (value[0], value[1])
    return positions
