"""AWS requests per task lifecycle on the embedded stack: createTask → dispatch → claim → reportCompleted.

Counts what the API handlers and the stream handler ask of DynamoDB, DynamoDB Streams and SQS
for N independent tasks, claimed 32 at a time, and divides by N.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import taskcluster
from taskcluster.utils import slugId

from .requests import counting_requests, per_task
from .workload import options, task_def

# The fewest requests this architecture can do one task's lifecycle in: one write to create,
# one conditional write to claim, one to resolve; one message sent, received and deleted.
FLOOR = {"dynamodb": 3.0, "sqs": 3.0}


def _wait_for_pending(queue: Any, task_queue_id: str, n: int) -> None:
    end = time.monotonic() + 60
    while queue.pendingTasks(task_queue_id)["pendingTasks"] < n and time.monotonic() < end:
        time.sleep(0.05)


def measure(root_url: str, n: int = 200) -> dict[str, Any]:
    queue = taskcluster.Queue(options(root_url, maxRetries=0))
    tq, group = f"bench/r{uuid.uuid4().hex[:8]}", slugId()
    queue.createTask(slugId(), task_def(tq, group))  # warm up: the SQS queue exists, caches are filled
    for c in queue.claimWork(tq, {"tasks": 1, "workerGroup": "b", "workerId": "w"})["tasks"]:
        queue.reportCompleted(c["status"]["taskId"], str(c["runId"]))
    with counting_requests() as counts:
        for _ in range(n):
            queue.createTask(slugId(), task_def(tq, group))
        time.sleep(0.5)  # let the pump dispatch (its GetRecords polls are counted too)
        done = 0
        while done < n:
            for c in queue.claimWork(tq, {"tasks": 32, "workerGroup": "b", "workerId": "w"})["tasks"]:
                queue.reportCompleted(c["status"]["taskId"], str(c["runId"]))
                done += 1
    by_op = per_task(counts, n)
    by_service: dict[str, float] = {}
    for key, value in by_op.items():
        service = key.split(":")[0]
        by_service[service] = round(by_service.get(service, 0) + value, 3)
    work = sum(v for k, v in by_service.items() if k in FLOOR)
    return {
        "tasks": n,
        "requests_per_task": by_op,
        "by_service": by_service,
        # Items written by BatchWriteItem (each billed as a write): the group memberships' deletes
        "batch_write_items_per_task": {f"{svc}:{op}": round(v / n, 3) for (svc, op), v in counts.batch_items.items()},
        "floor_per_task": sum(FLOOR.values()),
        "ratio_to_floor": round(work / sum(FLOOR.values()), 2),
        "note": "dynamodbstreams GetRecords are the event pump's polls "
        "(on AWS, Lambda's event source mapping does these, unbilled)",
    }
