"""The task and its runs: Taskcluster's vocabulary as plain Python values.

The task row is the single source of truth (architecture.md, invariant 1). Its status — state,
runs, retriesLeft — is what the queue's API shows; everything else (hints, counts) is derived.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any


class TaskState(StrEnum):
    UNSCHEDULED = "unscheduled"
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    EXCEPTION = "exception"


RESOLVED_STATES = frozenset({TaskState.COMPLETED, TaskState.FAILED, TaskState.EXCEPTION})
ACTIVE_STATES = frozenset({TaskState.PENDING, TaskState.RUNNING})


class ReasonCreated(StrEnum):
    SCHEDULED = "scheduled"
    RETRY = "retry"
    TASK_RETRY = "task-retry"
    RERUN = "rerun"
    EXCEPTION = "exception"


class ReasonResolved(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    DEADLINE_EXCEEDED = "deadline-exceeded"
    CANCELED = "canceled"
    CLAIM_EXPIRED = "claim-expired"
    WORKER_SHUTDOWN = "worker-shutdown"
    MALFORMED_PAYLOAD = "malformed-payload"
    RESOURCE_UNAVAILABLE = "resource-unavailable"
    INTERNAL_ERROR = "internal-error"
    INTERMITTENT_TASK = "intermittent-task"
    SUPERSEDED = "superseded"


# Reasons a worker may give to reportException, and the retry each one earns.
WORKER_EXCEPTION_REASONS: dict[ReasonResolved, ReasonCreated | None] = {
    ReasonResolved.WORKER_SHUTDOWN: ReasonCreated.RETRY,
    ReasonResolved.MALFORMED_PAYLOAD: None,
    ReasonResolved.RESOURCE_UNAVAILABLE: None,
    ReasonResolved.INTERNAL_ERROR: None,
    ReasonResolved.INTERMITTENT_TASK: ReasonCreated.TASK_RETRY,
}

# Highest first; the number is Taskcluster's internal priority level (highest = 7).
PRIORITIES: tuple[str, ...] = ("highest", "very-high", "high", "medium", "low", "very-low", "lowest")
PRIORITY_LEVEL: dict[str, int] = {p: 7 - i for i, p in enumerate(PRIORITIES)}

MAX_RUNS = 50

# The definition's fields a task's status shows (`Task.status_json`). The tasks table keeps them in
# the task's small status item too, so a write's answer shows the status without reading the definition.
STATUS_FIELDS = (
    "provisionerId",
    "workerType",
    "taskQueueId",
    "schedulerId",
    "projectId",
    "taskGroupId",
    "deadline",
    "expires",
)

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:?\d{2})$")


# What any date the service is given must lie within: a DynamoDB TTL is an epoch second (so
# not before 1970), and expiries get a year or a margin added (so never near year 9999's end,
# where Python's datetime stops). JavaScript's years ±275760 never parse at all.
EARLIEST_DATE = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_DATE = datetime(9999, 1, 1, tzinfo=UTC)


def parse_date(text: str) -> datetime:
    """Parse an RFC 3339 date-time, truncated to milliseconds as JavaScript's Date does.

    ValueError for anything that is not one, or that a datetime cannot hold."""
    m = _DATE.match(text)
    if not m:
        raise ValueError(f"not a date-time: {text!r}")
    year, month, day, hour, minute, second, frac, tz = m.groups()
    micros = int((frac or "0")[:3].ljust(3, "0")) * 1000
    offset = timedelta(0)
    if tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        offset = sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    try:
        dt = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micros)
        return (dt - offset).replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"not a date-time: {text!r}") from None


def storable_date(text: str) -> bool:
    """A date-time the service can store and compute with (EARLIEST_DATE to LATEST_DATE)."""
    try:
        return EARLIEST_DATE <= parse_date(text) < LATEST_DATE
    except ValueError:
        return False


def format_date(dt: datetime) -> str:
    """JavaScript's Date.toJSON(): exactly three fractional digits and a Z."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Run:
    run_id: int
    state: TaskState
    reason_created: ReasonCreated
    scheduled: datetime
    reason_resolved: ReasonResolved | None = None
    worker_group: str | None = None
    worker_id: str | None = None
    taken_until: datetime | None = None
    started: datetime | None = None
    resolved: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "runId": self.run_id,
            "state": self.state.value,
            "reasonCreated": self.reason_created.value,
        }
        if self.reason_resolved is not None:
            out["reasonResolved"] = self.reason_resolved.value
        if self.worker_group is not None:
            out["workerGroup"] = self.worker_group
        if self.worker_id is not None:
            out["workerId"] = self.worker_id
        if self.taken_until is not None:
            out["takenUntil"] = format_date(self.taken_until)
        out["scheduled"] = format_date(self.scheduled)
        if self.started is not None:
            out["started"] = format_date(self.started)
        if self.resolved is not None:
            out["resolved"] = format_date(self.resolved)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Run:
        def date(key: str) -> datetime | None:
            return parse_date(data[key]) if data.get(key) else None

        scheduled = date("scheduled")
        assert scheduled is not None
        return cls(
            run_id=int(data["runId"]),
            state=TaskState(data["state"]),
            reason_created=ReasonCreated(data["reasonCreated"]),
            scheduled=scheduled,
            reason_resolved=ReasonResolved(data["reasonResolved"]) if data.get("reasonResolved") else None,
            worker_group=data.get("workerGroup"),
            worker_id=data.get("workerId"),
            taken_until=date("takenUntil"),
            started=date("started"),
            resolved=date("resolved"),
        )


@dataclass(frozen=True)
class Task:
    """A task: its immutable definition plus the mutable status the queue keeps for it.

    `definition` is the normalised task definition exactly as `task()` returns it, except that
    `priority` there is the one it was created with; the current one is `priority` here.
    `version` counts writes to the row; `hint_seq` counts dispatch hints asked for the pending run.
    `link` names the dependency edges of the createTask request that stored this task (empty for
    tasks stored before edges were named): edges another request wrote for the same taskId are
    not this task's, whichever way the two raced (services/dependencies.py).
    `partial`: `definition` holds only STATUS_FIELDS — the answer of a write that read nothing
    (TaskStore.patch_run); `with_definition` completes it.
    """

    task_id: str
    definition: dict[str, Any]
    priority: str
    retries_left: int
    runs: tuple[Run, ...] = ()
    version: int = 0
    hint_seq: int = 0
    link: str = ""
    partial: bool = False

    # --- derived views -------------------------------------------------------------------------
    @property
    def state(self) -> TaskState:
        return self.runs[-1].state if self.runs else TaskState.UNSCHEDULED

    @property
    def latest(self) -> Run | None:
        return self.runs[-1] if self.runs else None

    @property
    def deadline(self) -> datetime:
        return parse_date(self.definition["deadline"])

    @property
    def expires(self) -> datetime:
        return parse_date(self.definition["expires"])

    @property
    def task_queue_id(self) -> str:
        return str(self.definition["taskQueueId"])

    @property
    def task_group_id(self) -> str:
        return str(self.definition["taskGroupId"])

    @property
    def scheduler_id(self) -> str:
        return str(self.definition["schedulerId"])

    @property
    def retries(self) -> int:
        return int(self.definition["retries"])

    @property
    def taken_until(self) -> datetime | None:
        """The lease of the running run; None unless the task is running."""
        latest = self.latest
        return latest.taken_until if latest and latest.state is TaskState.RUNNING else None

    @property
    def ever_resolved(self) -> bool:
        """Whether a run of this task ever resolved for good, i.e. without an automatic retry.

        Taskcluster marks a task `ever_resolved` when its resolution reaches dependency
        resolution, which a run followed by an automatic retry never does.
        """
        retried = {ReasonCreated.RETRY, ReasonCreated.TASK_RETRY}
        return any(
            run.state in RESOLVED_STATES and (i + 1 == len(self.runs) or self.runs[i + 1].reason_created not in retried)
            for i, run in enumerate(self.runs)
        )

    def run(self, run_id: int) -> Run | None:
        return self.runs[run_id] if 0 <= run_id < len(self.runs) else None

    def status_only(self) -> Task:
        """This task as a write answers it: the definition cut to STATUS_FIELDS."""
        return replace(self, definition={k: self.definition[k] for k in STATUS_FIELDS}, partial=True)

    def with_definition(self, definition: dict[str, Any]) -> Task:
        """This status with the whole (immutable) definition."""
        return replace(self, definition=definition, partial=False)

    def task_json(self) -> dict[str, Any]:
        """The definition as `task()` returns it (with the current priority)."""
        assert not self.partial, "the definition was not read"
        return {**self.definition, "priority": self.priority}

    def status_json(self) -> dict[str, Any]:
        d = self.definition
        return {
            "taskId": self.task_id,
            "provisionerId": d["provisionerId"],
            "workerType": d["workerType"],
            "taskQueueId": d["taskQueueId"],
            "schedulerId": d["schedulerId"],
            "projectId": d["projectId"],
            "taskGroupId": d["taskGroupId"],
            "priority": self.priority,
            "deadline": d["deadline"],
            "expires": d["expires"],
            "retriesLeft": self.retries_left,
            "state": self.state.value,
            "runs": [r.to_json() for r in self.runs],
        }

    def with_runs(self, runs: tuple[Run, ...], **changes: Any) -> Task:
        return replace(self, runs=runs, **changes)


@dataclass(frozen=True)
class Worker:
    worker_group: str
    worker_id: str


def claim_json(task: Task, run_id: int) -> dict[str, Any]:
    """One entry of claimWork's answer (also claimTask's): the run as its worker sees it."""
    run = task.runs[run_id]
    assert run.taken_until is not None
    return {
        "status": task.status_json(),
        "runId": run_id,
        "workerGroup": run.worker_group,
        "workerId": run.worker_id,
        "takenUntil": format_date(run.taken_until),
        "task": task.task_json(),
    }
