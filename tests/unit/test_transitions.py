"""The run state machine (chalicelib/domain/transitions.py) against Taskcluster's rules.

Each table is one event applied to every task state, so the matrix can be read top to bottom.
Expectations:
  SAME      the transition returns the very object it was given ("already there", idempotent success)
  CONFLICT  RequestConflict (409)
  NOT_FOUND ResourceNotFound (404)
  a function of the input task that builds the expected next task from plain values, without
  calling the code under test; the runner then also checks that repeating the event is SAME.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.domain import transitions as tr
from chalicelib.domain.errors import RequestConflict, ResourceNotFound
from chalicelib.domain.model import MAX_RUNS, Run, Task, Worker, format_date
from chalicelib.domain.model import ReasonCreated as RC
from chalicelib.domain.model import ReasonResolved as RR
from chalicelib.domain.model import TaskState as S

# --- a fixed clock and the task states it sees -----------------------------------------------------
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
TIMEOUT = timedelta(minutes=20)  # claim timeout
BASE = timedelta(seconds=30)  # redispatch base
CREATED = NOW - timedelta(hours=1)
T_SCHEDULED = NOW - timedelta(minutes=30)
T_STARTED = NOW - timedelta(minutes=20)
T_LEASE = NOW + timedelta(minutes=5)  # the running run's takenUntil: not expired at NOW
T_RESOLVED = NOW - timedelta(minutes=10)
DEADLINE = NOW + timedelta(hours=1)
PAST_DEADLINE = NOW - timedelta(minutes=1)
TASK_ID = "fN1SbArXTPSVFNUvaOlinQ"

W1 = Worker("group-1", "worker-1")
W2 = Worker("group-2", "worker-2")
W1_SAME_GROUP_OTHER_ID = Worker("group-1", "worker-2")
W1_SAME_ID_OTHER_GROUP = Worker("group-2", "worker-1")

WORKER_REASONS = [
    RR.WORKER_SHUTDOWN,
    RR.MALFORMED_PAYLOAD,
    RR.RESOURCE_UNAVAILABLE,
    RR.INTERNAL_ERROR,
    RR.INTERMITTENT_TASK,
]


def definition(deadline: datetime = DEADLINE, retries: int = 5) -> dict[str, Any]:
    return {
        "provisionerId": "proj",
        "workerType": "linux",
        "taskQueueId": "proj/linux",
        "schedulerId": "-",
        "projectId": "none",
        "taskGroupId": TASK_ID,
        "dependencies": [],
        "requires": "all-completed",
        "routes": [],
        "priority": "lowest",
        "retries": retries,
        "created": format_date(CREATED),
        "deadline": format_date(deadline),
        "expires": format_date(deadline + timedelta(days=365)),
        "scopes": [],
        "payload": {},
        "metadata": {"name": "t", "description": "d", "owner": "o@example.com", "source": "https://example.com"},
        "tags": {},
        "extra": {},
    }


def make_task(
    *runs: Run,
    retries_left: int = 3,
    retries: int = 5,
    deadline: datetime = DEADLINE,
    priority: str = "low",
    hint_seq: int = 2,
) -> Task:
    return Task(
        task_id=TASK_ID,
        definition=definition(deadline, retries),
        priority=priority,
        retries_left=retries_left,
        runs=runs,
        version=7,
        hint_seq=hint_seq,
    )


def pending_run(run_id: int = 0, reason: RC = RC.SCHEDULED, scheduled: datetime = T_SCHEDULED) -> Run:
    return Run(run_id=run_id, state=S.PENDING, reason_created=reason, scheduled=scheduled)


def running_run(
    run_id: int = 0, reason: RC = RC.SCHEDULED, worker: Worker = W1, taken_until: datetime = T_LEASE
) -> Run:
    return Run(
        run_id=run_id,
        state=S.RUNNING,
        reason_created=reason,
        scheduled=T_SCHEDULED,
        worker_group=worker.worker_group,
        worker_id=worker.worker_id,
        started=T_STARTED,
        taken_until=taken_until,
    )


def state_of(reason: RR) -> S:
    return {RR.COMPLETED: S.COMPLETED, RR.FAILED: S.FAILED}.get(reason, S.EXCEPTION)


def resolved_run(run: Run, reason: RR) -> Run:
    return replace(run, state=state_of(reason), reason_resolved=reason, resolved=T_RESOLVED)


SYNTHETIC_CANCELED = Run(
    run_id=0,
    state=S.EXCEPTION,
    reason_created=RC.EXCEPTION,
    scheduled=T_RESOLVED,
    reason_resolved=RR.CANCELED,
    resolved=T_RESOLVED,
)

STATES: dict[str, Task] = {
    "unscheduled": make_task(),
    "pending": make_task(pending_run()),
    "running": make_task(running_run()),
    "completed": make_task(resolved_run(running_run(), RR.COMPLETED)),
    "failed": make_task(resolved_run(running_run(), RR.FAILED)),
    "exception/canceled": make_task(resolved_run(pending_run(), RR.CANCELED)),
    "exception/canceled-unscheduled": make_task(SYNTHETIC_CANCELED),
    # a deadline-exceeded task is, by construction, past its deadline
    "exception/deadline-exceeded": make_task(resolved_run(pending_run(), RR.DEADLINE_EXCEEDED), deadline=PAST_DEADLINE),
    "exception/claim-expired": make_task(resolved_run(running_run(), RR.CLAIM_EXPIRED), retries_left=0),
    "exception/worker-shutdown": make_task(resolved_run(running_run(), RR.WORKER_SHUTDOWN), retries_left=0),
    "exception/malformed-payload": make_task(resolved_run(running_run(), RR.MALFORMED_PAYLOAD)),
    "exception/resource-unavailable": make_task(resolved_run(running_run(), RR.RESOURCE_UNAVAILABLE)),
    "exception/internal-error": make_task(resolved_run(running_run(), RR.INTERNAL_ERROR)),
    "exception/intermittent-task": make_task(resolved_run(running_run(), RR.INTERMITTENT_TASK), retries_left=0),
    # two runs: run 0 resolved, run 1 the latest
    "pending/retry": make_task(resolved_run(running_run(), RR.WORKER_SHUTDOWN), pending_run(1, RC.RETRY)),
    "running/retry": make_task(resolved_run(running_run(), RR.WORKER_SHUTDOWN), running_run(1, RC.RETRY)),
    "pending/rerun": make_task(resolved_run(running_run(), RR.COMPLETED), pending_run(1, RC.RERUN)),
}
RESOLVED_NAMES = [n for n in STATES if n.split("/")[0] in ("completed", "failed", "exception")]


# --- expectations -----------------------------------------------------------------------------------
SAME, CONFLICT, NOT_FOUND = "SAME", "CONFLICT", "NOT_FOUND"
Expect = str | Callable[[Task], Task]


def latest(**fields: Any) -> Callable[[Task], Task]:
    """The task with its latest run changed."""
    return lambda t: replace(t, runs=(*t.runs[:-1], replace(t.runs[-1], **fields)))


def resolve_latest(reason: RR) -> Callable[[Task], Task]:
    return latest(state=state_of(reason), reason_resolved=reason, resolved=NOW)


def new_pending(reason: RC, retries_left: int | None = None) -> Callable[[Task], Task]:
    """The task with a new pending run appended (scheduled now, hint sequence restarted)."""

    def build(t: Task) -> Task:
        run = Run(run_id=len(t.runs), state=S.PENDING, reason_created=reason, scheduled=NOW)
        left = t.retries_left if retries_left is None else retries_left
        return replace(t, runs=(*t.runs, run), retries_left=left, hint_seq=0)

    return build


def retried(reason: RR, retry: RC) -> Callable[[Task], Task]:
    """Latest run resolved exception/`reason`, plus a `retry` run; one retry used up."""

    def build(t: Task) -> Task:
        resolved = resolve_latest(reason)(t)
        return new_pending(retry, retries_left=t.retries_left - 1)(resolved)

    return build


def synthetic(reason: RR) -> Callable[[Task], Task]:
    run = Run(
        run_id=0, state=S.EXCEPTION, reason_created=RC.EXCEPTION, scheduled=NOW, reason_resolved=reason, resolved=NOW
    )
    return lambda t: replace(t, runs=(run,))


def claimed_by(worker: Worker) -> Callable[[Task], Task]:
    return latest(
        state=S.RUNNING,
        worker_group=worker.worker_group,
        worker_id=worker.worker_id,
        started=NOW,
        taken_until=NOW + TIMEOUT,
    )


def check(action: Callable[[Task], Task], task: Task, expected: Expect, *, repeat: bool = True) -> Task | None:
    if expected == SAME:
        assert action(task) is task
        return None
    if expected == CONFLICT:
        with pytest.raises(RequestConflict) as conflict:
            action(task)
        assert conflict.value.status == 409
        return None
    if expected == NOT_FOUND:
        with pytest.raises(ResourceNotFound) as missing:
            action(task)
        assert missing.value.status == 404
        return None
    assert callable(expected)
    want = expected(task)
    assert want != task, "table error: an expected change that changes nothing"
    got = action(task)
    assert got == want
    assert got.state is want.state
    if repeat:
        assert action(got) is got, "repeating the event must be an idempotent no-op"
    return got


def past_deadline(task: Task, deadline: datetime = PAST_DEADLINE) -> Task:
    return replace(task, definition=definition(deadline, task.retries))


def table(rows: dict[str, Expect], xfail: dict[str, str] | None = None) -> list[Any]:
    """One pytest param per state; a table that leaves out a state fails at collection."""
    assert set(rows) == set(STATES), f"table must cover every state; missing {set(STATES) - set(rows)}"
    xfail = xfail or {}
    return [
        pytest.param(
            name,
            expected,
            id=name,
            marks=[pytest.mark.xfail(strict=True, reason=xfail[name])] if name in xfail else [],
        )
        for name, expected in rows.items()
    ]


# --- scheduleTask -----------------------------------------------------------------------------------
SCHEDULE: dict[str, Expect] = {
    **{name: SAME for name in STATES},
    "unscheduled": new_pending(RC.SCHEDULED),
    "exception/deadline-exceeded": CONFLICT,
}


@pytest.mark.parametrize(("state", "expected"), table(SCHEDULE))
def test_schedule_creates_run_zero_only_for_an_unscheduled_task(state: str, expected: Expect) -> None:
    check(lambda t: tr.schedule(t, NOW), STATES[state], expected)


@pytest.mark.parametrize("state", list(STATES))
@pytest.mark.parametrize("deadline", [PAST_DEADLINE, NOW], ids=["deadline-passed", "deadline-now"])
def test_schedule_after_the_deadline_is_a_conflict(state: str, deadline: datetime) -> None:
    check(lambda t: tr.schedule(t, NOW), past_deadline(STATES[state], deadline), CONFLICT)


def test_scheduled_run_zero_keeps_retries_left_and_restarts_hints() -> None:
    t = tr.schedule(STATES["unscheduled"], NOW)
    assert t.runs == (Run(run_id=0, state=S.PENDING, reason_created=RC.SCHEDULED, scheduled=NOW),)
    assert (t.retries_left, t.hint_seq, t.priority, t.state) == (3, 0, "low", S.PENDING)


# --- rerunTask --------------------------------------------------------------------------------------
RERUN: dict[str, Expect] = {
    "unscheduled": new_pending(RC.RERUN, retries_left=5),
    "pending": SAME,
    "running": SAME,
    "pending/retry": SAME,
    "running/retry": SAME,
    "pending/rerun": SAME,
    **{name: new_pending(RC.RERUN, retries_left=5) for name in RESOLVED_NAMES},
    "exception/deadline-exceeded": CONFLICT,
}


@pytest.mark.parametrize(("state", "expected"), table(RERUN))
def test_rerun_adds_a_pending_rerun_run_to_an_unscheduled_or_resolved_task(state: str, expected: Expect) -> None:
    check(lambda t: tr.rerun(t, NOW), STATES[state], expected)


@pytest.mark.parametrize("state", list(STATES))
@pytest.mark.parametrize("deadline", [PAST_DEADLINE, NOW], ids=["deadline-passed", "deadline-now"])
def test_rerun_after_the_deadline_is_a_conflict(state: str, deadline: datetime) -> None:
    check(lambda t: tr.rerun(t, NOW), past_deadline(STATES[state], deadline), CONFLICT)


def test_rerun_of_a_pending_task_changes_nothing() -> None:
    assert tr.rerun(STATES["pending"], NOW) is STATES["pending"]


def test_rerun_of_an_unscheduled_task_yields_run_zero_with_reason_rerun() -> None:
    t = tr.rerun(STATES["unscheduled"], NOW)
    assert [r.to_json() for r in t.runs] == [
        {"runId": 0, "state": "pending", "reasonCreated": "rerun", "scheduled": "2030-01-01T12:00:00.000Z"}
    ]


def resolved_runs(n: int) -> tuple[Run, ...]:
    return tuple(resolved_run(running_run(i, RC.RERUN if i else RC.SCHEDULED), RR.FAILED) for i in range(n))


@pytest.mark.parametrize(
    ("runs_before", "retries", "retries_left"),
    [(0, 5, 5), (1, 5, 5), (44, 5, 5), (45, 5, 4), (48, 5, 1), (49, 5, 0), (1, 0, 0), (1, 49, 48), (10, 49, 39)],
)
def test_rerun_resets_retries_left_to_retries_capped_by_the_50_run_limit(
    runs_before: int, retries: int, retries_left: int
) -> None:
    t = make_task(*resolved_runs(runs_before), retries=retries, retries_left=0)
    after = tr.rerun(t, NOW)
    assert after.retries_left == retries_left == min(retries, MAX_RUNS - runs_before - 1)
    assert len(after.runs) == runs_before + 1
    assert after.runs[-1] == Run(run_id=runs_before, state=S.PENDING, reason_created=RC.RERUN, scheduled=NOW)
    assert after.runs[:-1] == t.runs


def test_rerun_of_a_task_with_50_runs_is_a_conflict() -> None:
    t = make_task(*resolved_runs(MAX_RUNS))
    with pytest.raises(RequestConflict, match="50"):
        tr.rerun(t, NOW)


def test_rerun_of_a_task_with_50_runs_whose_last_is_pending_changes_nothing() -> None:
    t = make_task(*resolved_runs(MAX_RUNS - 1), pending_run(MAX_RUNS - 1, RC.RERUN))
    assert tr.rerun(t, NOW) is t


def drive_retries(t: Task, reason: RR) -> Task:
    """Claim and report `reason` on the pending run until no retry run is created."""
    for _ in range(2 * MAX_RUNS):
        if t.state is not S.PENDING:
            return t
        run_id = len(t.runs) - 1
        t = tr.claim(t, run_id, W1, NOW, TIMEOUT)
        t = tr.report_exception(t, run_id, reason, NOW)
    raise AssertionError("retries never ran out")


@pytest.mark.parametrize("reason", [RR.WORKER_SHUTDOWN, RR.INTERMITTENT_TASK])
@pytest.mark.parametrize("runs_before", [0, 30, 45, 49])
def test_retries_after_a_rerun_stop_at_exactly_50_runs(reason: RR, runs_before: int) -> None:
    t = tr.rerun(make_task(*resolved_runs(runs_before), retries=49, retries_left=0), NOW)
    final = drive_retries(t, reason)
    assert len(final.runs) == MAX_RUNS
    assert [r.run_id for r in final.runs] == list(range(MAX_RUNS))
    assert (final.state, final.retries_left) == (S.EXCEPTION, 0)
    with pytest.raises(RequestConflict):
        tr.rerun(final, NOW)


def test_a_task_created_with_49_retries_ends_after_50_runs() -> None:
    t = tr.schedule(make_task(retries=49, retries_left=49), NOW)
    final = drive_retries(t, RR.WORKER_SHUTDOWN)
    assert len(final.runs) == MAX_RUNS
    assert [r.reason_created for r in final.runs] == [RC.SCHEDULED] + [RC.RETRY] * (MAX_RUNS - 1)


def test_claim_expiry_retries_also_stop_at_the_retry_budget() -> None:
    t = tr.schedule(make_task(retries=2, retries_left=2, deadline=NOW + timedelta(hours=4)), NOW)
    later = NOW
    for _ in range(3):
        t = tr.claim(t, len(t.runs) - 1, W1, later, TIMEOUT)
        later += TIMEOUT
        t = tr.expire(t, later)
    assert [(r.state, r.reason_created, r.reason_resolved) for r in t.runs] == [
        (S.EXCEPTION, RC.SCHEDULED, RR.CLAIM_EXPIRED),
        (S.EXCEPTION, RC.RETRY, RR.CLAIM_EXPIRED),
        (S.EXCEPTION, RC.RETRY, RR.CLAIM_EXPIRED),
    ]
    assert t.retries_left == 0


# --- cancelTask -------------------------------------------------------------------------------------
CANCEL: dict[str, Expect] = {
    "unscheduled": synthetic(RR.CANCELED),
    "pending": resolve_latest(RR.CANCELED),
    "running": resolve_latest(RR.CANCELED),
    "pending/retry": resolve_latest(RR.CANCELED),
    "running/retry": resolve_latest(RR.CANCELED),
    "pending/rerun": resolve_latest(RR.CANCELED),
    **{name: SAME for name in RESOLVED_NAMES},
    "exception/deadline-exceeded": CONFLICT,
}


@pytest.mark.parametrize(("state", "expected"), table(CANCEL))
def test_cancel_resolves_whatever_is_unfinished_as_canceled(state: str, expected: Expect) -> None:
    check(lambda t: tr.cancel(t, NOW), STATES[state], expected)


@pytest.mark.parametrize("state", list(STATES))
@pytest.mark.parametrize("deadline", [PAST_DEADLINE, NOW], ids=["deadline-passed", "deadline-now"])
def test_cancel_after_the_deadline_is_a_conflict(state: str, deadline: datetime) -> None:
    check(lambda t: tr.cancel(t, NOW), past_deadline(STATES[state], deadline), CONFLICT)


def test_cancel_of_an_unscheduled_task_adds_a_synthetic_exception_run() -> None:
    t = tr.cancel(STATES["unscheduled"], NOW)
    assert t.status_json()["runs"] == [
        {
            "runId": 0,
            "state": "exception",
            "reasonCreated": "exception",
            "reasonResolved": "canceled",
            "scheduled": "2030-01-01T12:00:00.000Z",
            "resolved": "2030-01-01T12:00:00.000Z",
        }
    ]
    assert (t.state, t.retries_left) == (S.EXCEPTION, 3)


def test_cancel_of_a_running_task_keeps_the_worker_and_taken_until_on_the_run() -> None:
    t = tr.cancel(STATES["running"], NOW)
    assert t.runs[0].to_json() == {
        "runId": 0,
        "state": "exception",
        "reasonCreated": "scheduled",
        "reasonResolved": "canceled",
        "workerGroup": "group-1",
        "workerId": "worker-1",
        "takenUntil": format_date(T_LEASE),
        "scheduled": format_date(T_SCHEDULED),
        "started": format_date(T_STARTED),
        "resolved": format_date(NOW),
    }
    assert t.taken_until is None  # the lease no longer matters
    assert t.retries_left == 3  # cancelled tasks are never retried


def test_cancel_of_a_pending_run_leaves_it_without_worker_fields() -> None:
    run = tr.cancel(STATES["pending"], NOW).runs[0]
    assert (run.worker_group, run.worker_id, run.started, run.taken_until) == (None, None, None, None)


# --- claimTask --------------------------------------------------------------------------------------
# (state, runId, worker, expected). Only the latest pending run can be claimed; the same worker may
# repeat its claim of a running run; everything else is 404 (no such run) or 409.
CLAIM: list[tuple[str, int, Worker, Expect]] = [
    ("unscheduled", 0, W1, NOT_FOUND),
    ("pending", 0, W1, claimed_by(W1)),
    ("pending", 0, W2, claimed_by(W2)),
    ("pending", 1, W1, NOT_FOUND),
    ("pending", -1, W1, NOT_FOUND),
    ("running", 0, W1, SAME),
    ("running", 0, W2, CONFLICT),
    ("running", 0, W1_SAME_GROUP_OTHER_ID, CONFLICT),
    ("running", 0, W1_SAME_ID_OTHER_GROUP, CONFLICT),
    ("running", 1, W1, NOT_FOUND),
    ("pending/retry", 1, W2, claimed_by(W2)),
    ("pending/retry", 0, W1, CONFLICT),
    ("pending/retry", 2, W1, NOT_FOUND),
    ("running/retry", 1, W1, SAME),
    ("running/retry", 1, W2, CONFLICT),
    ("running/retry", 0, W1, CONFLICT),
    ("pending/rerun", 1, W1, claimed_by(W1)),
    ("pending/rerun", 0, W1, CONFLICT),
    *[(name, 0, W1, CONFLICT) for name in RESOLVED_NAMES],
    *[(name, 0, W2, CONFLICT) for name in RESOLVED_NAMES],
    *[(name, 1, W1, NOT_FOUND) for name in RESOLVED_NAMES if name != "exception/deadline-exceeded"],
    # the deadline is checked before the run exists
    ("exception/deadline-exceeded", 1, W1, CONFLICT),
]


def test_the_claim_table_covers_every_state() -> None:
    assert {row[0] for row in CLAIM} == set(STATES)


@pytest.mark.parametrize(
    ("state", "run_id", "worker", "expected"),
    [pytest.param(*row, id=f"{row[0]}-run{row[1]}-{row[2].worker_group}/{row[2].worker_id}") for row in CLAIM],
)
def test_claim_makes_only_the_latest_pending_run_running(
    state: str, run_id: int, worker: Worker, expected: Expect
) -> None:
    check(lambda t: tr.claim(t, run_id, worker, NOW, TIMEOUT), STATES[state], expected)


@pytest.mark.parametrize("state", list(STATES))
@pytest.mark.parametrize("run_id", [0, 1, 5])
@pytest.mark.parametrize("deadline", [PAST_DEADLINE, NOW], ids=["deadline-passed", "deadline-now"])
def test_claim_after_the_deadline_is_a_conflict_even_for_a_missing_run(
    state: str, run_id: int, deadline: datetime
) -> None:
    check(lambda t: tr.claim(t, run_id, W1, NOW, TIMEOUT), past_deadline(STATES[state], deadline), CONFLICT)


def test_claim_records_the_worker_start_and_lease() -> None:
    t = tr.claim(STATES["pending"], 0, W2, NOW, TIMEOUT)
    assert t.runs[0].to_json() == {
        "runId": 0,
        "state": "running",
        "reasonCreated": "scheduled",
        "workerGroup": "group-2",
        "workerId": "worker-2",
        "takenUntil": "2030-01-01T12:20:00.000Z",
        "scheduled": format_date(T_SCHEDULED),
        "started": "2030-01-01T12:00:00.000Z",
    }
    assert (t.taken_until, t.retries_left, t.hint_seq) == (NOW + TIMEOUT, 3, 2)


def test_repeated_claim_by_the_same_worker_keeps_the_original_lease() -> None:
    first = tr.claim(STATES["pending"], 0, W1, NOW, TIMEOUT)
    later = NOW + timedelta(minutes=3)
    assert tr.claim(first, 0, W1, later, TIMEOUT) is first
    assert first.runs[0].taken_until == NOW + TIMEOUT


def test_claim_is_allowed_when_the_deadline_falls_inside_the_lease() -> None:
    t = past_deadline(STATES["pending"], NOW + timedelta(minutes=1))
    assert tr.claim(t, 0, W1, NOW, TIMEOUT).state is S.RUNNING


# --- reclaimTask ------------------------------------------------------------------------------------
RENEWED = latest(taken_until=NOW + TIMEOUT)
RECLAIM: list[tuple[str, int, Expect]] = [
    ("unscheduled", 0, NOT_FOUND),
    ("pending", 0, CONFLICT),
    ("pending", 1, NOT_FOUND),
    ("running", 0, RENEWED),
    ("running", 1, NOT_FOUND),
    ("running", -1, NOT_FOUND),
    ("pending/retry", 0, CONFLICT),
    ("pending/retry", 1, CONFLICT),
    ("running/retry", 1, RENEWED),
    ("running/retry", 0, CONFLICT),
    ("running/retry", 2, NOT_FOUND),
    ("pending/rerun", 1, CONFLICT),
    ("pending/rerun", 0, CONFLICT),
    *[(name, 0, CONFLICT) for name in RESOLVED_NAMES],
    *[(name, 1, NOT_FOUND) for name in RESOLVED_NAMES],  # the run is looked up before the deadline
]


def test_the_reclaim_table_covers_every_state() -> None:
    assert {row[0] for row in RECLAIM} == set(STATES)


@pytest.mark.parametrize(
    ("state", "run_id", "expected"), [pytest.param(*row, id=f"{row[0]}-run{row[1]}") for row in RECLAIM]
)
def test_reclaim_extends_the_lease_of_the_latest_running_run_only(state: str, run_id: int, expected: Expect) -> None:
    check(lambda t: tr.reclaim(t, run_id, NOW, TIMEOUT), STATES[state], expected)


@pytest.mark.parametrize("state", ["running", "running/retry"])
@pytest.mark.parametrize("deadline", [PAST_DEADLINE, NOW], ids=["deadline-passed", "deadline-now"])
def test_reclaim_after_the_deadline_is_a_conflict(state: str, deadline: datetime) -> None:
    t = past_deadline(STATES[state], deadline)
    check(lambda t: tr.reclaim(t, len(t.runs) - 1, NOW, TIMEOUT), t, CONFLICT)


@pytest.mark.parametrize("lease", [NOW + TIMEOUT, NOW + TIMEOUT + timedelta(milliseconds=1), NOW + timedelta(hours=1)])
def test_reclaim_never_moves_the_lease_backwards(lease: datetime) -> None:
    t = make_task(running_run(taken_until=lease))
    assert tr.reclaim(t, 0, NOW, TIMEOUT) is t


def test_reclaim_of_an_expired_but_unswept_lease_renews_it() -> None:
    t = make_task(running_run(taken_until=NOW - timedelta(seconds=1)))
    assert tr.reclaim(t, 0, NOW, TIMEOUT).runs[0].taken_until == NOW + TIMEOUT


def test_reclaim_changes_nothing_but_taken_until() -> None:
    before = STATES["running"]
    after = tr.reclaim(before, 0, NOW, TIMEOUT)
    assert replace(after.runs[0], taken_until=T_LEASE) == before.runs[0]
    assert (after.retries_left, after.hint_seq, after.priority) == (
        before.retries_left,
        before.hint_seq,
        before.priority,
    )


# --- reportCompleted / reportFailed -----------------------------------------------------------------
# (state, runId, expected on reportCompleted, expected on reportFailed)
RESOLVE: list[tuple[str, int, Expect, Expect]] = [
    ("unscheduled", 0, NOT_FOUND, NOT_FOUND),
    ("pending", 0, CONFLICT, CONFLICT),
    ("pending", 1, NOT_FOUND, NOT_FOUND),
    ("running", 0, resolve_latest(RR.COMPLETED), resolve_latest(RR.FAILED)),
    ("running", 1, NOT_FOUND, NOT_FOUND),
    ("completed", 0, SAME, CONFLICT),
    ("failed", 0, CONFLICT, SAME),
    *[(name, 0, CONFLICT, CONFLICT) for name in RESOLVED_NAMES if name.startswith("exception/")],
    *[(name, 1, NOT_FOUND, NOT_FOUND) for name in RESOLVED_NAMES],
    ("pending/retry", 1, CONFLICT, CONFLICT),
    ("pending/retry", 0, CONFLICT, CONFLICT),
    ("running/retry", 1, resolve_latest(RR.COMPLETED), resolve_latest(RR.FAILED)),
    ("running/retry", 0, CONFLICT, CONFLICT),
    # run 0 completed, but it is no longer the latest run
    ("pending/rerun", 0, CONFLICT, CONFLICT),
    ("pending/rerun", 1, CONFLICT, CONFLICT),
]


def test_the_resolve_table_covers_every_state() -> None:
    assert {row[0] for row in RESOLVE} == set(STATES)


@pytest.mark.parametrize(
    ("state", "run_id", "outcome", "expected"),
    [pytest.param(s, r, RR.COMPLETED, c, id=f"{s}-run{r}-completed") for s, r, c, _ in RESOLVE]
    + [pytest.param(s, r, RR.FAILED, f, id=f"{s}-run{r}-failed") for s, r, _, f in RESOLVE],
)
def test_report_completed_or_failed_resolves_only_the_latest_running_run(
    state: str, run_id: int, outcome: RR, expected: Expect
) -> None:
    check(lambda t: tr.resolve(t, run_id, outcome, NOW), STATES[state], expected)


@pytest.mark.parametrize("outcome", [RR.COMPLETED, RR.FAILED])
def test_a_running_run_can_be_resolved_after_the_deadline_until_the_sweeper_acts(outcome: RR) -> None:
    t = past_deadline(STATES["running"])
    check(lambda t: tr.resolve(t, 0, outcome, NOW), t, resolve_latest(outcome))


def test_report_completed_keeps_worker_fields_and_retries() -> None:
    t = tr.resolve(STATES["running"], 0, RR.COMPLETED, NOW)
    run = t.runs[0]
    assert (run.state, run.reason_resolved, run.resolved) == (S.COMPLETED, RR.COMPLETED, NOW)
    assert (run.worker_group, run.worker_id, run.started, run.taken_until) == (
        "group-1",
        "worker-1",
        T_STARTED,
        T_LEASE,
    )
    assert (t.retries_left, t.taken_until) == (3, None)


# --- reportException --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reason", "retries_left", "expected"),
    [
        (RR.WORKER_SHUTDOWN, 3, retried(RR.WORKER_SHUTDOWN, RC.RETRY)),
        (RR.WORKER_SHUTDOWN, 1, retried(RR.WORKER_SHUTDOWN, RC.RETRY)),
        (RR.WORKER_SHUTDOWN, 0, resolve_latest(RR.WORKER_SHUTDOWN)),
        (RR.INTERMITTENT_TASK, 3, retried(RR.INTERMITTENT_TASK, RC.TASK_RETRY)),
        (RR.INTERMITTENT_TASK, 1, retried(RR.INTERMITTENT_TASK, RC.TASK_RETRY)),
        (RR.INTERMITTENT_TASK, 0, resolve_latest(RR.INTERMITTENT_TASK)),
        (RR.MALFORMED_PAYLOAD, 3, resolve_latest(RR.MALFORMED_PAYLOAD)),
        (RR.MALFORMED_PAYLOAD, 0, resolve_latest(RR.MALFORMED_PAYLOAD)),
        (RR.RESOURCE_UNAVAILABLE, 3, resolve_latest(RR.RESOURCE_UNAVAILABLE)),
        (RR.RESOURCE_UNAVAILABLE, 0, resolve_latest(RR.RESOURCE_UNAVAILABLE)),
        (RR.INTERNAL_ERROR, 3, resolve_latest(RR.INTERNAL_ERROR)),
        (RR.INTERNAL_ERROR, 0, resolve_latest(RR.INTERNAL_ERROR)),
    ],
    ids=lambda v: str(v) if not callable(v) else "",
)
@pytest.mark.parametrize("state", ["running", "running/retry"])
def test_report_exception_retries_only_shutdown_and_intermittent_while_retries_are_left(
    state: str, reason: RR, retries_left: int, expected: Expect
) -> None:
    t = replace(STATES[state], retries_left=retries_left)
    run_id = len(t.runs) - 1
    check(lambda t: tr.report_exception(t, run_id, reason, NOW), t, expected)


def test_a_worker_shutdown_retry_run_is_pending_and_scheduled_now() -> None:
    t = tr.report_exception(STATES["running"], 0, RR.WORKER_SHUTDOWN, NOW)
    assert [r.to_json() for r in t.runs] == [
        {
            "runId": 0,
            "state": "exception",
            "reasonCreated": "scheduled",
            "reasonResolved": "worker-shutdown",
            "workerGroup": "group-1",
            "workerId": "worker-1",
            "takenUntil": format_date(T_LEASE),
            "scheduled": format_date(T_SCHEDULED),
            "started": format_date(T_STARTED),
            "resolved": "2030-01-01T12:00:00.000Z",
        },
        {"runId": 1, "state": "pending", "reasonCreated": "retry", "scheduled": "2030-01-01T12:00:00.000Z"},
    ]
    assert (t.state, t.retries_left, t.hint_seq) == (S.PENDING, 2, 0)


def same_if(reason: RR) -> str:
    return f"SAME-IF:{reason.value}"


# (state, runId, expected for every worker reason; SAME-IF:<r> = SAME for reason r, else CONFLICT)
REPORT_EXCEPTION_ELSEWHERE: list[tuple[str, int, str]] = [
    ("unscheduled", 0, NOT_FOUND),
    ("pending", 0, CONFLICT),
    ("pending", 1, NOT_FOUND),
    ("running", 1, NOT_FOUND),
    ("completed", 0, CONFLICT),
    ("failed", 0, CONFLICT),
    ("exception/canceled", 0, CONFLICT),
    ("exception/canceled-unscheduled", 0, CONFLICT),
    ("exception/deadline-exceeded", 0, CONFLICT),
    ("exception/claim-expired", 0, CONFLICT),
    ("exception/worker-shutdown", 0, same_if(RR.WORKER_SHUTDOWN)),
    ("exception/malformed-payload", 0, same_if(RR.MALFORMED_PAYLOAD)),
    ("exception/resource-unavailable", 0, same_if(RR.RESOURCE_UNAVAILABLE)),
    ("exception/internal-error", 0, same_if(RR.INTERNAL_ERROR)),
    ("exception/intermittent-task", 0, same_if(RR.INTERMITTENT_TASK)),
    *[(name, 1, NOT_FOUND) for name in RESOLVED_NAMES],
    # run 0 was resolved worker-shutdown and retried: repeating that report is still idempotent
    ("pending/retry", 0, same_if(RR.WORKER_SHUTDOWN)),
    ("pending/retry", 1, CONFLICT),
    ("pending/retry", 2, NOT_FOUND),
    ("running/retry", 0, same_if(RR.WORKER_SHUTDOWN)),
    ("pending/rerun", 0, CONFLICT),
    ("pending/rerun", 1, CONFLICT),
]


def test_the_report_exception_tables_cover_every_state() -> None:
    assert {row[0] for row in REPORT_EXCEPTION_ELSEWHERE} | {"running", "running/retry"} == set(STATES)


@pytest.mark.parametrize("reason", WORKER_REASONS, ids=str)
@pytest.mark.parametrize(
    ("state", "run_id", "rule"), [pytest.param(*row, id=f"{row[0]}-run{row[1]}") for row in REPORT_EXCEPTION_ELSEWHERE]
)
def test_report_exception_is_idempotent_only_for_the_same_reason_and_otherwise_conflicts(
    state: str, run_id: int, rule: str, reason: RR
) -> None:
    expected = rule
    if rule.startswith("SAME-IF:"):
        expected = SAME if rule == same_if(reason) else CONFLICT
    check(lambda t: tr.report_exception(t, run_id, reason, NOW), STATES[state], expected)


@pytest.mark.parametrize("reason", WORKER_REASONS, ids=str)
def test_report_exception_has_no_deadline_check(reason: RR) -> None:
    t = past_deadline(STATES["running"])
    assert tr.report_exception(t, 0, reason, NOW).runs[0].reason_resolved is reason


@pytest.mark.parametrize(
    "reason", [r for r in RR if r not in WORKER_REASONS and r not in (RR.COMPLETED, RR.FAILED)], ids=str
)
def test_report_exception_rejects_reasons_a_worker_may_not_give(reason: RR) -> None:
    with pytest.raises(ValueError):
        tr.report_exception(STATES["running"], 0, reason, NOW)


# --- changeTaskPriority -----------------------------------------------------------------------------
CHANGE_PRIORITY: dict[str, Expect] = {
    "unscheduled": lambda t: replace(t, priority="high"),
    "pending": lambda t: replace(t, priority="high"),
    "running": lambda t: replace(t, priority="high"),
    "pending/rerun": CONFLICT,  # run 0 completed: the task was resolved once
    **{name: CONFLICT for name in RESOLVED_NAMES},
    # a run followed by an automatic retry never resolved the task
    "pending/retry": lambda t: replace(t, priority="high"),
    "running/retry": lambda t: replace(t, priority="high"),
}


@pytest.mark.parametrize(
    ("state", "expected"),
    table(CHANGE_PRIORITY),
)
def test_change_priority_applies_only_to_a_task_never_resolved(state: str, expected: Expect) -> None:
    got = check(lambda t: tr.change_priority(t, "high", NOW), STATES[state], expected, repeat=False)
    if got is not None:
        # repeating with the now-current priority is a conflict, not an idempotent success
        with pytest.raises(RequestConflict):
            tr.change_priority(got, "high", NOW)


@pytest.mark.parametrize("state", list(STATES))
def test_change_priority_to_the_current_priority_is_a_conflict(state: str) -> None:
    check(lambda t: tr.change_priority(t, "low", NOW), STATES[state], CONFLICT)


@pytest.mark.parametrize("state", list(STATES))
@pytest.mark.parametrize("deadline", [PAST_DEADLINE, NOW], ids=["deadline-passed", "deadline-now"])
def test_change_priority_after_the_deadline_is_a_conflict(state: str, deadline: datetime) -> None:
    check(lambda t: tr.change_priority(t, "high", NOW), past_deadline(STATES[state], deadline), CONFLICT)


def test_change_priority_changes_only_the_priority() -> None:
    before = STATES["running"]
    after = tr.change_priority(before, "highest", NOW)
    assert after == replace(before, priority="highest")
    assert after.definition["priority"] == "lowest"  # the definition keeps the creation priority
    assert after.task_json()["priority"] == after.status_json()["priority"] == "highest"


def test_change_priority_rejects_an_unknown_priority() -> None:
    with pytest.raises(ValueError):
        tr.change_priority(STATES["pending"], "normal", NOW)


# --- expire (the sweeper: deadlines, then claim expiry) ---------------------------------------------
EXPIRED_LEASE = NOW - timedelta(seconds=1)
EXPIRE_BEFORE_DEADLINE: list[tuple[str, Task, Expect]] = [
    *[(name, STATES[name], SAME) for name in STATES if name != "exception/deadline-exceeded"],
    (
        "running, lease ends now, retries left",
        make_task(running_run(taken_until=NOW)),
        retried(RR.CLAIM_EXPIRED, RC.RETRY),
    ),
    (
        "running, lease expired, retries left",
        make_task(running_run(taken_until=EXPIRED_LEASE)),
        retried(RR.CLAIM_EXPIRED, RC.RETRY),
    ),
    (
        "running, lease expired, no retries left",
        make_task(running_run(taken_until=EXPIRED_LEASE), retries_left=0),
        resolve_latest(RR.CLAIM_EXPIRED),
    ),
    (
        "running/retry, lease expired",
        make_task(resolved_run(running_run(), RR.WORKER_SHUTDOWN), running_run(1, RC.RETRY, taken_until=EXPIRED_LEASE)),
        retried(RR.CLAIM_EXPIRED, RC.RETRY),
    ),
    ("running, lease 1ms ahead", make_task(running_run(taken_until=NOW + timedelta(milliseconds=1))), SAME),
]


@pytest.mark.parametrize(("task", "expected"), [pytest.param(t, e, id=name) for name, t, e in EXPIRE_BEFORE_DEADLINE])
def test_expire_before_the_deadline_only_resolves_expired_claims(task: Task, expected: Expect) -> None:
    check(lambda t: tr.expire(t, NOW), task, expected)


DEADLINE_EXCEEDED = resolve_latest(RR.DEADLINE_EXCEEDED)
EXPIRE_AFTER_DEADLINE: dict[str, Expect] = {
    "unscheduled": synthetic(RR.DEADLINE_EXCEEDED),
    "pending": DEADLINE_EXCEEDED,
    "running": DEADLINE_EXCEEDED,
    "pending/retry": DEADLINE_EXCEEDED,
    "running/retry": DEADLINE_EXCEEDED,
    "pending/rerun": DEADLINE_EXCEEDED,
    **{name: SAME for name in RESOLVED_NAMES},
}


@pytest.mark.parametrize(("state", "expected"), table(EXPIRE_AFTER_DEADLINE))
@pytest.mark.parametrize("deadline", [PAST_DEADLINE, NOW], ids=["deadline-passed", "deadline-now"])
def test_expire_after_the_deadline_resolves_anything_unfinished_as_deadline_exceeded(
    state: str, expected: Expect, deadline: datetime
) -> None:
    check(lambda t: tr.expire(t, NOW), past_deadline(STATES[state], deadline), expected)


@pytest.mark.parametrize("lease", [EXPIRED_LEASE, T_LEASE], ids=["lease-expired", "lease-valid"])
def test_an_expired_claim_past_the_deadline_is_deadline_exceeded_without_retry(lease: datetime) -> None:
    t = past_deadline(make_task(running_run(taken_until=lease), retries_left=3))
    after = tr.expire(t, NOW)
    assert len(after.runs) == 1
    assert (after.runs[0].reason_resolved, after.retries_left) == (RR.DEADLINE_EXCEEDED, 3)


# --- redispatch / next_hint_at / due_at ---------------------------------------------------------------
@pytest.mark.parametrize(("hint_seq", "multiple"), [(0, 1), (1, 3), (2, 7), (3, 15), (5, 63)])
@pytest.mark.parametrize("state", ["pending", "pending/retry", "pending/rerun"])
def test_next_hint_of_a_pending_run_backs_off_exponentially(state: str, hint_seq: int, multiple: int) -> None:
    t = replace(STATES[state], hint_seq=hint_seq)
    assert tr.next_hint_at(t, BASE) == T_SCHEDULED + BASE * multiple


@pytest.mark.parametrize("state", [n for n in STATES if not n.startswith("pending")])
def test_there_is_no_next_hint_unless_the_latest_run_is_pending(state: str) -> None:
    assert tr.next_hint_at(STATES[state], BASE) is None


@pytest.mark.parametrize(
    ("scheduled", "hint_seq", "expected"),
    [
        (NOW - BASE, 0, lambda t: replace(t, hint_seq=1)),
        (NOW - BASE + timedelta(milliseconds=1), 0, SAME),
        (NOW - 3 * BASE, 1, lambda t: replace(t, hint_seq=2)),
        (NOW - 3 * BASE + timedelta(milliseconds=1), 1, SAME),
        (NOW - 7 * BASE, 2, lambda t: replace(t, hint_seq=3)),
    ],
    ids=["due-now", "1ms-early", "second-due", "second-1ms-early", "third-due"],
)
def test_redispatch_asks_for_one_more_hint_once_it_is_due(scheduled: datetime, hint_seq: int, expected: Expect) -> None:
    t = make_task(pending_run(scheduled=scheduled), hint_seq=hint_seq)
    check(lambda t: tr.redispatch(t, NOW, BASE), t, expected)


def test_an_overdue_pending_run_gets_one_hint_per_sweep_not_a_burst() -> None:
    t = make_task(pending_run(scheduled=NOW - timedelta(hours=1)), hint_seq=0)
    once = tr.redispatch(t, NOW, BASE)
    assert once == replace(t, hint_seq=1)
    assert tr.redispatch(once, NOW, BASE) == replace(t, hint_seq=2)


@pytest.mark.parametrize("state", [n for n in STATES if not n.startswith("pending")])
def test_redispatch_leaves_tasks_without_a_pending_run_alone(state: str) -> None:
    t = replace(STATES[state], hint_seq=0)
    assert tr.redispatch(t, NOW + timedelta(days=1), BASE) is t


DUE_AT: list[tuple[str, Task, datetime | None]] = [
    ("unscheduled", STATES["unscheduled"], DEADLINE),
    ("pending seq 2", STATES["pending"], T_SCHEDULED + 7 * BASE),
    ("pending seq 0", make_task(pending_run(), hint_seq=0), T_SCHEDULED + BASE),
    ("pending, deadline before hint", make_task(pending_run(), hint_seq=20), DEADLINE),
    ("running", STATES["running"], T_LEASE),
    (
        "running, deadline before lease",
        past_deadline(STATES["running"], T_LEASE - timedelta(seconds=1)),
        T_LEASE - timedelta(seconds=1),
    ),
    ("running/retry", STATES["running/retry"], T_LEASE),
    ("pending/retry", STATES["pending/retry"], T_SCHEDULED + 7 * BASE),
    *[(name, STATES[name], None) for name in RESOLVED_NAMES],
]


@pytest.mark.parametrize(("task", "expected"), [pytest.param(t, e, id=n) for n, t, e in DUE_AT])
def test_due_at_is_the_earliest_of_deadline_lease_and_next_hint_and_none_once_resolved(
    task: Task, expected: datetime | None
) -> None:
    assert tr.due_at(task, BASE) == expected


def test_a_sweep_at_due_at_changes_every_unresolved_task() -> None:
    for name, t in STATES.items():
        due = tr.due_at(t, BASE)
        if due is None:
            continue
        swept = tr.expire(t, due)
        if swept is t:
            swept = tr.redispatch(t, due, BASE)
        assert swept is not t, name


# --- the blind patches: same change as the full transitions ------------------------------------------
# For the hot path the store applies claim_patch/resolve_patch as one conditional write, without
# reading the row. For every state: if the patch applies, it must give exactly the task the full
# function gives (and the due time the store writes must be that task's due_at); if it does not
# apply, the full function must not make that change.
PATCH_STATES: dict[str, Task] = dict(STATES) | {
    "pending, deadline inside the lease": past_deadline(STATES["pending"], NOW + TIMEOUT),
    "pending, deadline just after the lease": past_deadline(
        STATES["pending"], NOW + TIMEOUT + timedelta(milliseconds=1)
    ),
    "pending, deadline passed": past_deadline(STATES["pending"]),
    "running, deadline passed": past_deadline(STATES["running"]),
    "running/retry, lease expired": make_task(
        resolved_run(running_run(), RR.WORKER_SHUTDOWN), running_run(1, RC.RETRY, taken_until=EXPIRED_LEASE)
    ),
}

CLAIM_PATCH_APPLIES = {
    ("pending", 0),
    ("pending/retry", 1),
    ("pending/rerun", 1),
    ("pending, deadline just after the lease", 0),
}
RESOLVE_PATCH_APPLIES = {
    ("running", 0),
    ("running/retry", 1),
    ("running, deadline passed", 0),
    ("running/retry, lease expired", 1),
}


def outcome(action: Callable[[], Task], task: Task) -> Task | str:
    try:
        result = action()
    except (RequestConflict, ResourceNotFound) as e:
        return e.code
    return SAME if result is task else result


@pytest.mark.parametrize("run_id", [0, 1, 2])
@pytest.mark.parametrize("worker", [W1, W2], ids=["w1", "w2"])
@pytest.mark.parametrize("name", list(PATCH_STATES))
def test_a_blind_claim_applies_exactly_where_the_full_claim_makes_the_same_change(
    name: str, run_id: int, worker: Worker
) -> None:
    t = PATCH_STATES[name]
    patch = tr.claim_patch(run_id, worker, NOW, TIMEOUT)
    full = outcome(lambda: tr.claim(t, run_id, worker, NOW, TIMEOUT), t)
    applies = tr.patch_applies(t, patch)
    assert applies == ((name, run_id) in CLAIM_PATCH_APPLIES)
    if applies:
        patched = tr.apply_patch(t, patch)
        assert patched == full
        assert patch.due_at == tr.due_at(patched, BASE)
        assert patched.state is S.RUNNING
    elif name == "pending, deadline inside the lease" and run_id == 0:
        # the one deliberate gap: the careful path claims it (see claim_patch)
        assert isinstance(full, Task) and full.state is S.RUNNING
    else:
        assert not isinstance(full, Task)


@pytest.mark.parametrize("run_id", [0, 1, 2])
@pytest.mark.parametrize("outcome_reason", [RR.COMPLETED, RR.FAILED], ids=str)
@pytest.mark.parametrize("name", list(PATCH_STATES))
def test_a_blind_resolve_applies_exactly_where_the_full_resolve_makes_the_same_change(
    name: str, run_id: int, outcome_reason: RR
) -> None:
    t = PATCH_STATES[name]
    patch = tr.resolve_patch(run_id, outcome_reason, NOW)
    full = outcome(lambda: tr.resolve(t, run_id, outcome_reason, NOW), t)
    applies = tr.patch_applies(t, patch)
    assert applies == ((name, run_id) in RESOLVE_PATCH_APPLIES)
    assert applies == isinstance(full, Task)
    if applies:
        patched = tr.apply_patch(t, patch)
        assert patched == full
        assert patch.due_at == tr.due_at(patched, BASE) is None


def test_applying_a_patch_whose_guard_fails_is_refused() -> None:
    with pytest.raises(AssertionError):
        tr.apply_patch(STATES["running"], tr.claim_patch(0, W1, NOW, TIMEOUT))
    with pytest.raises(AssertionError):
        tr.apply_patch(STATES["unscheduled"], tr.resolve_patch(0, RR.COMPLETED, NOW))


def test_a_blind_claim_requires_the_deadline_to_outlive_the_lease() -> None:
    patch = tr.claim_patch(0, W1, NOW, TIMEOUT)
    assert (patch.expect, patch.deadline_after, patch.due_at) == (S.PENDING, NOW + TIMEOUT, NOW + TIMEOUT)
    assert tr.resolve_patch(0, RR.FAILED, NOW).deadline_after is None
