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
from dataclasses import dataclass, field, replace
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


# What a claim adds to claimWork's answer beyond its task's definition, status and the scopes of its
# credentials (the run's fields, the credentials' other fields, the certificate's own), generously.
CLAIM_OVERHEAD = 8 * 1024
# A claim of a task whose size its hint does not say: a row holds at most 400 KB, and escaping
# inside Lambda's response can at most double it.
WORST_CLAIM_BYTES = 2 * 400 * 1024 + CLAIM_OVERHEAD


# Lambda returns at most 6 MB (6,291,456 bytes) from a synchronous invocation, measured on the
# proxy response it serializes (the JSON body as an escaped string, plus status and headers); API
# Gateway REST's own limit (10 MB) is higher. A larger answer is a 502. Every listing and claimWork
# keeps its body within this budget, counted as the escaped string Lambda sends
# (`escaped_json_bytes`), leaving over 1 MB for the envelope and headers.
DEFAULT_RESPONSE_BUDGET = 5 * 1024 * 1024


def escaped_json_bytes(value: Any) -> int:
    """Bytes `value` adds to Lambda's serialized response: its compact JSON (ASCII, as Chalice
    writes it) with every `"` and `\\` escaped once more inside the proxy envelope's body string."""
    text = json.dumps(value, separators=(",", ":"))
    return len(text) + text.count('"') + text.count("\\")


def claim_bytes(task: Task) -> int:
    """An upper bound of the bytes the claim of `task` (pending) adds to claimWork's answer: its
    definition and runs, the certificate's copy of its scopes (escaped twice: a JSON string inside
    the body's JSON), and CLAIM_OVERHEAD for every other field of the claim and its status."""
    scopes = task.definition.get("scopes", [])
    return (
        escaped_json_bytes(task.definition)
        + escaped_json_bytes([run.to_json() for run in task.runs])
        + 4 * escaped_json_bytes(scopes)
        + CLAIM_OVERHEAD
    )


@dataclass(frozen=True)
class Hint:
    task_id: str
    run_id: int
    task_queue_id: str
    priority: str
    # The bound of its claim's size (`claim_bytes`), so claimWork can keep its answer within Lambda's
    # limit without reading the task; 0: unknown (WORST_CLAIM_BYTES is assumed).
    claim_bytes: int = field(default=0, compare=False)

    def body(self) -> str:
        data: dict[str, Any] = {"taskId": self.task_id, "runId": self.run_id, "priority": self.priority}
        if self.claim_bytes:
            data["claimBytes"] = self.claim_bytes
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def parse(cls, body: str, task_queue_id: str) -> Hint | None:
        """A hint from a message body, or None for a body that is not one (dropped, never retried)."""
        try:
            data: dict[str, Any] = json.loads(body)
            size = int(data.get("claimBytes", 0))
            return cls(str(data["taskId"]), int(data["runId"]), task_queue_id, str(data["priority"]), max(0, size))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    @property
    def claim_bound(self) -> int:
        return self.claim_bytes or WORST_CLAIM_BYTES


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
        return replace(hint, claim_bytes=claim_bytes(new))
    return None
