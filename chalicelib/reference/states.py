"""The task state machine, derived by running domain/transitions.py — so its picture cannot lie.

Every transition function is applied to a task in every state, with and without retries left;
each call that changes the task's state is an edge. docs/architecture.md embeds the Mermaid
diagram and the table rendered from these edges (`python -m chalicelib.reference render docs`),
and a test fails when they differ from what the code does now.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from ..domain import transitions
from ..domain.errors import QueueError
from ..domain.model import (
    WORKER_EXCEPTION_REASONS,
    ReasonCreated,
    ReasonResolved,
    Run,
    Task,
    TaskState,
    Worker,
    format_date,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)
CLAIM_TIMEOUT = timedelta(minutes=20)
WORKER = Worker("wg", "w1")
ORDER = list(TaskState)


@dataclass(frozen=True, order=True)
class Edge:
    source: str  # a TaskState value, or "[*]" for creation
    target: str
    event: str  # the API call or sweeper step
    detail: str = ""  # reasons, for reportException
    condition: str = ""  # "retries left" / "no retries left" when only one of them leads here


def _task(state: TaskState, retries_left: int) -> Task:
    definition = {
        "taskQueueId": "p/w",
        "provisionerId": "p",
        "workerType": "w",
        "schedulerId": "-",
        "taskGroupId": "g",
        "projectId": "none",
        "retries": 5,
        "created": format_date(NOW - timedelta(minutes=1)),
        "deadline": format_date(NOW + timedelta(hours=1)),
        "expires": format_date(NOW + timedelta(days=1)),
    }
    task = Task("t", definition, "lowest", retries_left)
    if state is TaskState.UNSCHEDULED:
        return task
    run = Run(0, TaskState.PENDING, ReasonCreated.SCHEDULED, scheduled=NOW - timedelta(minutes=1))
    if state is not TaskState.PENDING:
        run = replace(
            run, state=TaskState.RUNNING, worker_group="wg", worker_id="w1", taken_until=NOW + timedelta(minutes=5)
        )
    if state in (TaskState.COMPLETED, TaskState.FAILED, TaskState.EXCEPTION):
        reason = {TaskState.COMPLETED: ReasonResolved.COMPLETED, TaskState.FAILED: ReasonResolved.FAILED}.get(
            state, ReasonResolved.MALFORMED_PAYLOAD
        )
        run = replace(run, state=state, reason_resolved=reason, resolved=NOW)
    return task.with_runs((run,))


def _latest_id(task: Task) -> int:
    return len(task.runs) - 1 if task.runs else 0


Step = Callable[[Task], Task]


def _steps() -> list[tuple[str, str, Step]]:
    after_deadline = NOW + timedelta(hours=2)
    after_lease = NOW + timedelta(minutes=10)
    steps: list[tuple[str, str, Step]] = [
        ("scheduleTask / dependencies satisfied", "", lambda t: transitions.schedule(t, NOW)),
        ("rerunTask", "", lambda t: transitions.rerun(t, NOW)),
        ("cancelTask", "", lambda t: transitions.cancel(t, NOW)),
        ("claimWork / claimTask", "", lambda t: transitions.claim(t, _latest_id(t), WORKER, NOW, CLAIM_TIMEOUT)),
        ("reclaimTask", "", lambda t: transitions.reclaim(t, _latest_id(t), NOW, CLAIM_TIMEOUT)),
        ("reportCompleted", "", lambda t: transitions.resolve(t, _latest_id(t), ReasonResolved.COMPLETED, NOW)),
        ("reportFailed", "", lambda t: transitions.resolve(t, _latest_id(t), ReasonResolved.FAILED, NOW)),
        ("changeTaskPriority", "", lambda t: transitions.change_priority(t, "highest", NOW)),
        ("sweeper deadline-exceeded", "", lambda t: transitions.expire(t, after_deadline)),
        ("sweeper claim-expired", "", lambda t: transitions.expire(t, after_lease)),
    ]
    for reason in WORKER_EXCEPTION_REASONS:

        def report(t: Task, reason: ReasonResolved = reason) -> Task:
            return transitions.report_exception(t, _latest_id(t), reason, NOW)

        steps.append(("reportException", reason.value, report))
    return steps


def edges() -> list[Edge]:
    """Every state change transitions.py allows, each labelled with what causes it."""
    outcomes: dict[tuple[str, str, str, str], set[int]] = {}
    for state in TaskState:
        for retries_left in (0, 1):
            task = _task(state, retries_left)
            for event, detail, step in _steps():
                try:
                    after = step(task)
                except QueueError:
                    continue  # forbidden here (409/404): no edge
                if after.state is not state:
                    outcomes.setdefault((state.value, after.state.value, event, detail), set()).add(retries_left)
    found: set[Edge] = set()
    for (source, target, event, detail), retries in outcomes.items():
        condition = "" if retries == {0, 1} else ("retries left" if retries == {1} else "no retries left")
        found.add(Edge(source, target, event, detail, condition))
    found.add(Edge("[*]", TaskState.PENDING.value, "createTask", condition="no unsatisfied dependencies"))
    found.add(Edge("[*]", TaskState.UNSCHEDULED.value, "createTask", condition="unsatisfied dependencies"))
    return sorted(found, key=_edge_order)


def _rank(state: str) -> int:
    return -1 if state == "[*]" else ORDER.index(TaskState(state))


def _edge_order(e: Edge) -> tuple[int, int, str, str, str]:
    return (_rank(e.source), _rank(e.target), e.event, e.condition, e.detail)


def _labels(found: list[Edge]) -> dict[tuple[str, str], list[str]]:
    """Edge labels per (source, target): reportException's reasons with the same condition merged."""
    grouped: dict[tuple[str, str], dict[tuple[str, str], list[str]]] = {}
    for e in found:
        details = grouped.setdefault((e.source, e.target), {}).setdefault((e.event, e.condition), [])
        if e.detail:
            details.append(e.detail)
    labels: dict[tuple[str, str], list[str]] = {}
    for pair, events in grouped.items():
        for (event, condition), details in events.items():
            text = event + (" " + ", ".join(details) if details else "")
            labels.setdefault(pair, []).append(text + (f" ({condition})" if condition else ""))
    return labels


def mermaid() -> str:
    lines = ["```mermaid", "stateDiagram-v2"]
    for (source, target), texts in _labels(edges()).items():
        lines.append(f"    {source} --> {target}: {'<br/>'.join(texts)}")
    lines += ["    completed --> [*]", "    failed --> [*]", "    exception --> [*]", "```"]
    return "\n".join(lines)


def table() -> str:
    lines = ["| from | to | caused by |", "|---|---|---|"]
    for (source, target), texts in _labels(edges()).items():
        shown = "(created)" if source == "[*]" else f"`{source}`"
        lines.append(f"| {shown} | `{target}` | {'; '.join(texts)} |")
    return "\n".join(lines)
