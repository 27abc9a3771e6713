"""The workers table (tables.WorkerInfoRow): task queues and workers as the queue sees them.

Every write is an UpdateItem of the queue's own attributes — never a whole-item put, so attributes
another component adds to a row survive — guarded by the row's `version` (or by its absence for a
new row). A failed guard is reported as False; the caller re-reads and merges again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime

from pynamodb.exceptions import UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from ..domain.model import format_date, parse_date
from ..domain.worker_info import (
    Provisioner,
    QuarantineDetail,
    QueueWorker,
    RecentTask,
    TaskQueue,
    WorkerKey,
    provisioners,
    split_task_queue_id,
)
from .pagination import HIGHEST, decode_token, encode_token, equal, next_token, prefixed
from .tables import WorkerInfoRow

CONDITION_FAILED = "ConditionalCheckFailedException"
QUEUE_SK = "#queue"
QUEUE_KIND = "queue"
WORKER_PREFIX = "worker/"
# Task-queue ids are `<provisionerId>/<workerType>` and '0' follows '/' in ASCII: every id of
# provisioner P sorts before P + "0", and nothing else sorts in between.
AFTER_PROVISIONER = "0"


def _worker_sk(worker_group: str, worker_id: str) -> str:
    return f"{WORKER_PREFIX}{worker_group}/{worker_id}"


def _date(text: str | None) -> datetime | None:
    return parse_date(text) if text else None


def _task_queue(row: WorkerInfoRow) -> TaskQueue:
    expires, active = _date(row.expires), _date(row.lastDateActive)
    assert expires is not None and active is not None
    return TaskQueue(row.pk, expires, active, int(row.version or 0))


def _worker(row: WorkerInfoRow) -> QueueWorker:
    group, worker_id = row.sk[len(WORKER_PREFIX) :].split("/", 1)
    first, active, expires = _date(row.firstClaim), _date(row.lastDateActive), _date(row.expires)
    assert first is not None and active is not None and expires is not None
    recent = tuple(
        RecentTask(t["taskId"], int(t["runId"]), parse_date(t["claimed"])) for t in json.loads(row.recentTasks or "[]")
    )
    details = tuple(
        QuarantineDetail(
            d["clientId"], parse_date(d["updatedAt"]), parse_date(d["quarantineUntil"]), d["quarantineInfo"]
        )
        for d in json.loads(row.quarantineDetails or "[]")
    )
    return QueueWorker(
        task_queue_id=row.pk,
        worker_group=group,
        worker_id=worker_id,
        first_claim=first,
        last_date_active=active,
        expires=expires,
        recent_tasks=recent,
        quarantine_until=_date(row.quarantineUntil),
        quarantine_details=details,
        version=int(row.version or 0),
    )


def _recent_json(tasks: Iterable[RecentTask]) -> str:
    items = [{"taskId": t.task_id, "runId": t.run_id, "claimed": format_date(t.claimed)} for t in tasks]
    return json.dumps(items, separators=(",", ":"))


class DynamoWorkerStore:
    def __init__(self, model: type[WorkerInfoRow]) -> None:
        self.model = model

    # --- task queues ----------------------------------------------------------------------------
    def task_queue(self, task_queue_id: str) -> TaskQueue | None:
        try:
            return _task_queue(self.model.get(task_queue_id, QUEUE_SK, consistent_read=True))
        except self.model.DoesNotExist:
            return None

    def task_queues(
        self, now: datetime, limit: int, continuation: str | None, provisioner_id: str | None = None
    ) -> tuple[list[TaskQueue], str | None]:
        condition = self.model.pk.startswith(f"{provisioner_id}/") if provisioner_id is not None else None
        bounds = {"kind": equal(QUEUE_KIND)}
        if provisioner_id is not None:
            bounds["pk"] = prefixed(f"{provisioner_id}/")
        rows = self.model.byKind.query(
            QUEUE_KIND,
            condition,
            filter_condition=self.model.expires > format_date(now),
            limit=limit,
            page_size=limit,
            last_evaluated_key=decode_token(continuation, {"kind", "pk", "sk"}, bounds),
        )
        found = [_task_queue(r) for r in rows]
        return found, next_token(rows.last_evaluated_key, len(found), limit)

    def provisioners(self, now: datetime, limit: int, continuation: str | None) -> tuple[list[Provisioner], str | None]:
        """Reads the task queues from the one after the token's provisioner, until a provisioner
        beyond the page shows up (so every listed one has all its task queues summed up)."""
        start = decode_token(continuation, {"provisionerId"}, {"provisionerId": (" ", HIGHEST)})
        condition = self.model.pk >= start["provisionerId"]["S"] + AFTER_PROVISIONER if start else None
        queues: list[TaskQueue] = []
        seen: set[str] = set()
        for row in self.model.byKind.query(
            QUEUE_KIND, condition, filter_condition=self.model.expires > format_date(now), page_size=100
        ):
            provisioner_id, _ = split_task_queue_id(row.pk)
            if provisioner_id not in seen:
                if len(seen) == limit:
                    page = provisioners(queues)
                    return page, encode_token({"provisionerId": {"S": page[-1].provisioner_id}})
                seen.add(provisioner_id)
            queues.append(_task_queue(row))
        return provisioners(queues), None

    # --- workers --------------------------------------------------------------------------------
    def worker(self, key: WorkerKey) -> QueueWorker | None:
        try:
            row = self.model.get(key.task_queue_id, _worker_sk(key.worker_group, key.worker_id), consistent_read=True)
        except self.model.DoesNotExist:
            return None
        return _worker(row)

    def workers(
        self, task_queue_id: str, now: datetime, limit: int, continuation: str | None, quarantined: bool | None
    ) -> tuple[list[QueueWorker], str | None]:
        at = format_date(now)
        m = self.model
        under_quarantine = m.quarantineUntil.exists() & (m.quarantineUntil > at)
        not_quarantined = m.quarantineUntil.does_not_exist() | (m.quarantineUntil <= at)
        # Taskcluster: an expired worker is left out, unless it is quarantined.
        visible: Condition = (m.expires >= at) | under_quarantine
        if quarantined is True:
            visible = under_quarantine
        elif quarantined is False:
            visible = (m.expires >= at) & not_quarantined
        rows = m.query(
            task_queue_id,
            m.sk.startswith(WORKER_PREFIX),
            filter_condition=visible,
            limit=limit,
            page_size=limit,
            last_evaluated_key=decode_token(
                continuation, {"pk", "sk"}, {"pk": equal(task_queue_id), "sk": prefixed(WORKER_PREFIX)}
            ),
        )
        found = [_worker(r) for r in rows]
        return found, next_token(rows.last_evaluated_key, len(found), limit)

    def quarantine_until(self, key: WorkerKey) -> datetime | None:
        sk = _worker_sk(key.worker_group, key.worker_id)
        try:
            # Eventually consistent and one attribute: the cheapest read there is (claimWork's gate).
            row = self.model.get(key.task_queue_id, sk, attributes_to_get=["quarantineUntil"])
        except self.model.DoesNotExist:
            return None
        return _date(row.quarantineUntil)

    # --- both -----------------------------------------------------------------------------------
    def load(
        self, task_queue_ids: Iterable[str], workers: Iterable[WorkerKey]
    ) -> tuple[dict[str, TaskQueue], dict[WorkerKey, QueueWorker]]:
        keys = [(q, QUEUE_SK) for q in dict.fromkeys(task_queue_ids)]
        keys += [(w.task_queue_id, _worker_sk(w.worker_group, w.worker_id)) for w in dict.fromkeys(workers)]
        queues: dict[str, TaskQueue] = {}
        found: dict[WorkerKey, QueueWorker] = {}
        if not keys:
            return queues, found
        for row in self.model.batch_get(keys, consistent_read=True):
            if row.sk == QUEUE_SK:
                queues[row.pk] = _task_queue(row)
            else:
                w = _worker(row)
                found[w.key] = w
        return queues, found

    def save_task_queue(self, queue: TaskQueue, expected_version: int | None) -> bool:
        m = self.model
        actions = [
            m.kind.set(QUEUE_KIND),
            m.expires.set(format_date(queue.expires)),
            m.lastDateActive.set(format_date(queue.last_date_active)),
            m.ttl.set(int(queue.expires.timestamp())),
        ]
        return self._update(queue.task_queue_id, QUEUE_SK, actions, expected_version)

    def save_worker(self, worker: QueueWorker, expected_version: int | None) -> bool:
        m = self.model
        actions = [
            m.firstClaim.set(format_date(worker.first_claim)),
            m.lastDateActive.set(format_date(worker.last_date_active)),
            m.expires.set(format_date(worker.expires)),
            m.recentTasks.set(_recent_json(worker.recent_tasks)),
            m.ttl.set(int(worker.keep_until.timestamp())),
        ]
        if worker.quarantine_until is not None:
            actions.append(m.quarantineUntil.set(format_date(worker.quarantine_until)))
        if worker.quarantine_details:
            details = [d.to_json() for d in worker.quarantine_details]
            actions.append(m.quarantineDetails.set(json.dumps(details, separators=(",", ":"))))
        sk = _worker_sk(worker.worker_group, worker.worker_id)
        return self._update(worker.task_queue_id, sk, actions, expected_version)

    def _update(self, pk: str, sk: str, actions: Sequence[Action], expected_version: int | None) -> bool:
        m = self.model
        condition: Condition
        if expected_version is None:
            condition = m.version.does_not_exist()
            version = 1
        else:
            condition = m.version == expected_version
            version = expected_version + 1
        try:
            m(pk, sk).update(actions=[*actions, m.version.set(version)], condition=condition)
        except UpdateError as err:
            if getattr(err, "cause_response_code", None) == CONDITION_FAILED:
                return False
            raise
        return True
