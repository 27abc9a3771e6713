"""The run state machine: every transition a task can make, as pure functions.

Each function takes the current task and returns the next one. Returning the *same* object means
"already in the target state": the caller treats that as idempotent success and writes nothing.
Forbidden transitions raise RequestConflict (409) or ResourceNotFound (404), exactly where
Taskcluster's queue does.

The two transitions on the hot path — claiming a pending run and resolving a running one — are
also expressed as a `RunPatch`: a change to the latest run that is valid for *any* task whose
latest run is in the expected state. The repository can apply such a patch as one conditional
write without reading the row first; the full functions below apply the very same patch, so the
semantics live in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from .errors import RequestConflict, ResourceNotFound
from .model import (
    ACTIVE_STATES,
    MAX_RUNS,
    PRIORITIES,
    RESOLVED_STATES,
    WORKER_EXCEPTION_REASONS,
    ReasonCreated,
    ReasonResolved,
    Run,
    Task,
    TaskState,
    Worker,
    parse_date,
)


@dataclass(frozen=True)
class RunPatch:
    """Set `fields` on run `run_id`, provided it is the latest run and in state `expect`.

    `deadline_after`: additionally require the task's deadline to be later than this instant.
    `task_queue_id`: additionally require the task to be on this task queue.
    `due_at`: the task's next sweeper time after the change (None: nothing left to sweep).
    `keep_due`: leave the task's sweeper time as it is, requiring it no later than `due_at` (the
    sweeper then looks earlier than it must; finding nothing due it moves the time: `rearm`).
    """

    run_id: int
    expect: TaskState
    fields: dict[str, Any]
    deadline_after: datetime | None
    due_at: datetime | None
    task_queue_id: str | None = None
    keep_due: bool = False


def claim_patch(
    run_id: int, worker: Worker, now: datetime, claim_timeout: timedelta, task_queue_id: str | None = None
) -> RunPatch:
    """Claim from a hint: `task_queue_id` is the queue the hint came from (a hint is never trusted)."""
    taken_until = now + claim_timeout
    return RunPatch(
        run_id=run_id,
        expect=TaskState.PENDING,
        fields={
            "state": TaskState.RUNNING,
            "worker_group": worker.worker_group,
            "worker_id": worker.worker_id,
            "taken_until": taken_until,
            "started": now,
        },
        # Blind claims insist the deadline outlives the lease, so the sweeper's next look at the
        # task (its lease) comes before its deadline. Other claims take the careful path.
        deadline_after=taken_until,
        # The pending run's sweeper time (its re-announcement, `base` after it was scheduled) is
        # almost always before the lease ends: kept, the claim moves no `byDue` entry (2 write units
        # fewer), and a task resolved before that time never has it moved at all. A run still
        # running then is re-armed by the sweeper (one write). Otherwise: the careful path.
        due_at=taken_until,
        keep_due=True,
        task_queue_id=task_queue_id,
    )


def resolve_patch(run_id: int, outcome: ReasonResolved, now: datetime) -> RunPatch:
    state = {ReasonResolved.COMPLETED: TaskState.COMPLETED, ReasonResolved.FAILED: TaskState.FAILED}.get(
        outcome, TaskState.EXCEPTION
    )
    return RunPatch(
        run_id=run_id,
        expect=TaskState.RUNNING,
        fields={"state": state, "reason_resolved": outcome, "resolved": now},
        deadline_after=None,
        due_at=None,
    )


def patch_applies(task: Task, patch: RunPatch) -> bool:
    latest = task.latest
    return (
        latest is not None
        and latest.run_id == patch.run_id
        and latest.state is patch.expect
        and (patch.deadline_after is None or task.deadline > patch.deadline_after)
        and (patch.task_queue_id is None or task.task_queue_id == patch.task_queue_id)
    )


def apply_patch(task: Task, patch: RunPatch) -> Task:
    assert patch_applies(task, patch)
    runs = task.runs[:-1] + (replace(task.runs[-1], **patch.fields),)
    return task.with_runs(runs)


# --- helpers --------------------------------------------------------------------------------------
def _require_run(task: Task, run_id: int) -> Run:
    run = task.run(run_id)
    if run is None:
        raise ResourceNotFound(f"Run {run_id} not found on task {task.task_id}", taskId=task.task_id, runId=run_id)
    return run


def _require_before_deadline(task: Task, now: datetime) -> None:
    if task.deadline <= now:
        raise RequestConflict(
            f"Task {task.task_id} Can't be modified after its deadline ({task.definition['deadline']})"
        )


def _new_run(task: Task, reason: ReasonCreated, now: datetime) -> Run:
    return Run(run_id=len(task.runs), state=TaskState.PENDING, reason_created=reason, scheduled=now)


def _resolve_latest(task: Task, reason: ReasonResolved, now: datetime) -> tuple[Run, ...]:
    state = TaskState.EXCEPTION
    if reason is ReasonResolved.COMPLETED:
        state = TaskState.COMPLETED
    elif reason is ReasonResolved.FAILED:
        state = TaskState.FAILED
    latest = replace(task.runs[-1], state=state, reason_resolved=reason, resolved=now)
    return task.runs[:-1] + (latest,)


def _resolve_with_retry(task: Task, reason: ReasonResolved, retry: ReasonCreated | None, now: datetime) -> Task:
    """Resolve the running latest run as exception/`reason`, adding a retry run if one is earned."""
    runs = _resolve_latest(task, reason, now)
    if retry is not None and task.retries_left > 0:
        retry_run = Run(run_id=len(runs), state=TaskState.PENDING, reason_created=retry, scheduled=now)
        return task.with_runs(runs + (retry_run,), retries_left=task.retries_left - 1, hint_seq=0)
    return task.with_runs(runs)


# --- API transitions ------------------------------------------------------------------------------
def schedule(task: Task, now: datetime) -> Task:
    """scheduleTask, and release by dependencies: run 0 becomes pending."""
    _require_before_deadline(task, now)
    if task.runs:
        return task
    return task.with_runs((_new_run(task, ReasonCreated.SCHEDULED, now),), hint_seq=0)


def rerun(task: Task, now: datetime) -> Task:
    _require_before_deadline(task, now)
    if task.state in ACTIVE_STATES:
        return task
    if len(task.runs) >= MAX_RUNS:
        raise RequestConflict(f"Maximum number of runs reached ({MAX_RUNS})", taskId=task.task_id)
    retries_left = min(task.retries, MAX_RUNS - len(task.runs) - 1)
    return task.with_runs(
        task.runs + (_new_run(task, ReasonCreated.RERUN, now),), retries_left=retries_left, hint_seq=0
    )


def cancel(task: Task, now: datetime) -> Task:
    _require_before_deadline(task, now)
    return _resolve_unfinished(task, ReasonResolved.CANCELED, now)


def _resolve_unfinished(task: Task, reason: ReasonResolved, now: datetime) -> Task:
    """Cancel or time out whatever is unfinished: the latest active run, or an unscheduled task."""
    if not task.runs:
        run = Run(
            run_id=0,
            state=TaskState.EXCEPTION,
            reason_created=ReasonCreated.EXCEPTION,
            reason_resolved=reason,
            scheduled=now,
            resolved=now,
        )
        return task.with_runs((run,))
    if task.state in RESOLVED_STATES:
        return task
    return task.with_runs(_resolve_latest(task, reason, now))


def claim(task: Task, run_id: int, worker: Worker, now: datetime, claim_timeout: timedelta) -> Task:
    """claimTask (and claimWork for one hint). Repeating a claim by the same worker succeeds."""
    _require_before_deadline(task, now)
    run = _require_run(task, run_id)
    if run.run_id != len(task.runs) - 1 or run.state is not TaskState.PENDING:
        if (
            run.state is TaskState.RUNNING
            and run.run_id == len(task.runs) - 1
            and (run.worker_group, run.worker_id) == (worker.worker_group, worker.worker_id)
        ):
            return task
        raise RequestConflict(f"Run {run_id} of task {task.task_id} is not pending (it is {run.state.value})")
    patch = claim_patch(run_id, worker, now, claim_timeout)
    return apply_patch(task, replace(patch, deadline_after=None))


def reclaim(task: Task, run_id: int, now: datetime, claim_timeout: timedelta) -> Task:
    run = _require_run(task, run_id)
    _require_before_deadline(task, now)
    if run.run_id != len(task.runs) - 1 or run.state is not TaskState.RUNNING:
        raise RequestConflict(f"Run {run_id} of task {task.task_id} is not running, so it can't be reclaimed")
    taken_until = now + claim_timeout
    if run.taken_until is not None and run.taken_until >= taken_until:
        return task  # a lease never moves backwards
    return task.with_runs(task.runs[:-1] + (replace(run, taken_until=taken_until),))


def resolve(task: Task, run_id: int, outcome: ReasonResolved, now: datetime) -> Task:
    """reportCompleted / reportFailed: idempotent when the latest run already has this outcome."""
    run = _require_run(task, run_id)
    patch = resolve_patch(run_id, outcome, now)
    if patch_applies(task, patch):
        return apply_patch(task, patch)
    if run.run_id == len(task.runs) - 1 and run.state is patch.fields["state"] and run.reason_resolved is outcome:
        return task
    raise RequestConflict(
        f"Run {run_id} of task {task.task_id} can't be reported {outcome.value}: it is {run.state.value}"
    )


def report_exception(task: Task, run_id: int, reason: ReasonResolved, now: datetime) -> Task:
    if reason not in WORKER_EXCEPTION_REASONS:
        raise ValueError(f"not a worker exception reason: {reason}")
    run = _require_run(task, run_id)
    if run.run_id == len(task.runs) - 1 and run.state is TaskState.RUNNING:
        return _resolve_with_retry(task, reason, WORKER_EXCEPTION_REASONS[reason], now)
    if run.state is TaskState.EXCEPTION and run.reason_resolved is reason:
        return task
    raise RequestConflict(f"Run {run_id} of task {task.task_id} can't be reported exception: it is {run.state.value}")


def change_priority(task: Task, new_priority: str, now: datetime) -> Task:
    if new_priority not in PRIORITIES:
        raise ValueError(f"unknown priority {new_priority!r}")
    _require_before_deadline(task, now)
    if task.ever_resolved or task.priority == new_priority:
        raise RequestConflict(f"Task {task.task_id} is already resolved or already has priority {new_priority}")
    return replace(task, priority=new_priority)


# --- sweeper transitions --------------------------------------------------------------------------
def expire(task: Task, now: datetime) -> Task:
    """What time alone does to a task: passed deadlines, then expired claims.

    Returns the task unchanged when nothing is due, so a stale or duplicate sweep is a no-op.
    """
    if task.deadline <= now:
        return _resolve_unfinished(task, ReasonResolved.DEADLINE_EXCEEDED, now)
    taken_until = task.taken_until
    if taken_until is not None and taken_until <= now:
        return _resolve_with_retry(task, ReasonResolved.CLAIM_EXPIRED, ReasonCreated.RETRY, now)
    return task


def rearm(task: Task) -> Task:
    """The task as it is, to be written again so that its sweeper time becomes `due_at` of it: the
    sweeper looked at a task with nothing due (a claim kept the pending run's earlier time)."""
    return replace(task)


def redispatch(task: Task, now: datetime, base: timedelta) -> Task:
    """Count one more look at a task whose progress may have been lost: another dispatch hint for
    a pending run, another check of an unscheduled task's dependencies."""
    due = next_hint_at(task, base)
    if due is None or due > now:
        return task
    return replace(task, hint_seq=task.hint_seq + 1)


def next_hint_at(task: Task, base: timedelta) -> datetime | None:
    """When the sweeper next re-announces a pending run, or re-checks an unscheduled task's
    dependencies: `base` after it became so, then 2×, 4×… after the previous look."""
    latest = task.latest
    if latest is not None and latest.state is TaskState.PENDING:
        since = latest.scheduled
    elif latest is None and task.definition.get("dependencies"):
        since = parse_date(task.definition["created"])
    else:
        return None
    return since + base * ((1 << (task.hint_seq + 1)) - 1)


def due_at(task: Task, redispatch_base: timedelta) -> datetime | None:
    """The next instant the sweeper must look at this task; None once it is resolved."""
    state = task.state
    if state in RESOLVED_STATES:
        return None
    candidates = [task.deadline]
    if state is TaskState.RUNNING and task.taken_until is not None:
        candidates.append(task.taken_until)
    hint = next_hint_at(task, redispatch_base)
    if hint is not None:
        candidates.append(hint)
    return min(candidates)
