"""Dispatch hints: which SQS queue a pending run is announced on, and what the message says.

A hint says "run R of task T may be pending". It is never trusted: the claim is a conditional
write on the task row, so stale, duplicate or reordered hints are harmless (invariant 1).

SQS has no priorities, so each task queue gets one SQS queue per priority level, created on
demand; claimers drain them highest first. SQS names allow 80 characters of [A-Za-z0-9_-]; a
task queue id has up to 77, so long ids are shortened and made unique with a hash.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .model import PRIORITIES, PRIORITY_LEVEL, Task, TaskState

SQS_NAME_MAX = 80


def queue_name(prefix: str, task_queue_id: str, priority: str) -> str:
    """The SQS queue holding hints for `task_queue_id` at `priority`, e.g. `taskqueue-proj_linux_1`.

    "<provisionerId>_<workerType>_<level>" is unambiguous because a workerType has no '_'. Ids too
    long for that are shortened and given a hash marked by an 'H', an upper-case letter no
    workerType contains — so no id's full name can spell another id's shortened one.
    """
    provisioner_id, worker_type = task_queue_id.split("/", 1)
    suffix = f"_{PRIORITY_LEVEL[priority]}"
    name = f"{prefix}{provisioner_id}_{worker_type}{suffix}"
    if len(name) <= SQS_NAME_MAX:
        return name
    digest = "H" + hashlib.sha256(task_queue_id.encode()).hexdigest()[:16]
    room = SQS_NAME_MAX - len(prefix) - len(suffix) - len(digest) - 1
    if room < 2:
        raise ValueError(f"queue prefix {prefix!r} is too long to name SQS queues")
    return f"{prefix}{provisioner_id[: room // 2]}_{worker_type[: room - room // 2]}{digest}{suffix}"


def queue_names(prefix: str, task_queue_id: str) -> list[str]:
    """All the hint queues of a task queue, highest priority first."""
    return [queue_name(prefix, task_queue_id, p) for p in PRIORITIES]


@dataclass(frozen=True)
class Hint:
    task_id: str
    run_id: int
    task_queue_id: str
    priority: str

    def body(self) -> str:
        return json.dumps(
            {"taskId": self.task_id, "runId": self.run_id, "priority": self.priority}, separators=(",", ":")
        )

    @classmethod
    def parse(cls, body: str, task_queue_id: str) -> Hint | None:
        """A hint from a message body, or None for a body that is not one (dropped, never retried)."""
        try:
            data: dict[str, Any] = json.loads(body)
            return cls(str(data["taskId"]), int(data["runId"]), task_queue_id, str(data["priority"]))
        except (ValueError, KeyError, TypeError):
            return None


def pending_hint(task: Task) -> Hint | None:
    latest = task.latest
    if latest is None or latest.state is not TaskState.PENDING:
        return None
    return Hint(task.task_id, latest.run_id, task.task_queue_id, task.priority)


def hint_needed(old: Task | None, new: Task) -> Hint | None:
    """The hint to send for a row change, if the change made (or re-announced) a pending run.

    A new pending run, a priority change of a pending run, and a sweeper's request for another
    hint (hint_seq bumped) each need one; any other change of a pending task does not.
    """
    hint = pending_hint(new)
    if hint is None:
        return None
    if old is None or pending_hint(old) != hint or old.hint_seq != new.hint_seq:
        return hint
    return None
