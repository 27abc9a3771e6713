"""createTask racing createTask for one taskId: whatever the interleaving, the dependency edges
that count are the stored definition's, and a losing request leaves nothing behind.

The interleavings are explored exhaustively and deterministically: request "outer" runs until
its n-th call to the task or graph store, request "inner" then runs from start to finish, and
outer goes on — for every n. (Threads would race too, but the in-process AWS stand-in does not
make a conditional write atomic under threads, so they would test the stand-in.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import slugid

from chalicelib.domain.errors import QueueError
from chalicelib.services.dependencies import Dependencies
from chalicelib.services.queue import QueueService
from chalicelib.services.task_groups import TaskGroups
from tests.harness import Harness, Interrupting, task_def


def interrupted_queue(stack: Harness, at: int, interrupt: Callable[[], None]) -> QueueService:
    """A QueueService over the stack's stores that lets `interrupt` run before its `at`-th store call."""
    c, counter = stack.c, [0]
    store = Interrupting(c.queue.store, counter, at, interrupt)
    graph_store = Interrupting(c.dependencies.graph, counter, at, interrupt)
    groups = TaskGroups(store, graph_store, c.groups.events, c.clock)  # type: ignore[arg-type]
    dependencies = Dependencies(store, graph_store, c.dependencies.releases, c.clock)  # type: ignore[arg-type]
    return QueueService(store, c.queue.hints, groups, dependencies, c.clock, c.settings)  # type: ignore[arg-type]


def create(queue: QueueService, task_id: str, body: dict[str, Any]) -> str:
    """What the request's caller sees: ok, or the error code."""
    from chalicelib.schemas import validator

    try:
        queue.create_task(task_id, validator("create-task-request")(dict(body)))
    except QueueError as err:
        return err.code
    return "ok"


def complete(stack: Harness, task_id: str) -> None:
    stack.pump.step()
    claim = stack.call("POST", f"/task/{task_id}/runs/0/claim", {"workerGroup": "wg", "workerId": "w1"})
    assert claim.status_code == 200, claim.body
    r = stack.call("POST", f"/task/{task_id}/runs/0/completed")
    assert r.status_code == 200, r.body
    stack.pump.step()


def state(stack: Harness, task_id: str) -> str:
    return str(stack.status(task_id)["state"])


def dependents(stack: Harness, task_id: str) -> list[str]:
    r = stack.call("GET", f"/task/{task_id}/dependents")
    assert r.status_code == 200, r.body
    return [t["status"]["taskId"] for t in r.json_body["tasks"]]


def race(stack: Harness, at: int, outer_deps: list[str], inner_deps: list[str]) -> tuple[str, str, str]:
    """One interleaving; returns (taskId, outer's outcome, inner's outcome)."""
    task_id = slugid.nice()
    outcomes: dict[str, str] = {}
    inner_body = task_def(stack.clock, dependencies=inner_deps)
    outer_body = task_def(stack.clock, dependencies=outer_deps)

    def inner() -> None:
        outcomes["inner"] = create(stack.c.queue, task_id, inner_body)

    outcomes["outer"] = create(interrupted_queue(stack, at, inner), task_id, outer_body)
    if "inner" not in outcomes:  # outer made fewer store calls than `at`
        inner()
    return task_id, outcomes["outer"], outcomes["inner"]


@pytest.mark.parametrize("loser_has_missing_dependency", [False, True])
def test_racing_creates_leave_only_the_stored_definitions_edges(
    stack: Harness, loser_has_missing_dependency: bool
) -> None:
    seen: set[tuple[str, str]] = set()
    for at in range(1, 16):
        shared, only_outer, only_inner = stack.create(), stack.create(), stack.create()
        outer_deps = [shared, only_outer]
        inner_deps = [shared, only_inner]
        if loser_has_missing_dependency:
            outer_deps.append(slugid.nice())  # never created: outer can only get 400
        task_id, outer, inner = race(stack, at, outer_deps, inner_deps)
        seen.add((outer, inner))
        stored = stack.c.queue.task(task_id).definition["dependencies"]
        winner_only, loser_only = (only_outer, only_inner) if stored == outer_deps else (only_inner, only_outer)
        # exactly one request stored its definition; the other was told so
        assert sorted([outer, inner]) in (["RequestConflict", "ok"], ["InputError", "ok"]), (at, outer, inner)
        assert stored == (outer_deps if outer == "ok" else inner_deps)

        # a task the stored definition does not name neither lists nor releases it
        assert task_id not in dependents(stack, loser_only)
        complete(stack, loser_only)
        assert state(stack, task_id) == "unscheduled", at
        # the stored dependencies release it, and only the last of them
        assert task_id in dependents(stack, shared)
        complete(stack, shared)
        assert state(stack, task_id) == "unscheduled", at
        complete(stack, winner_only)
        assert state(stack, task_id) == "pending", at
        # nothing of the loser's is left for the sweeper's re-check either
        assert stack.c.dependencies.recheck(stack.c.queue.task(task_id)).state.value == "pending"
    # the interleavings did include the conflicts this test is about
    expected = ("InputError", "ok") if loser_has_missing_dependency else ("RequestConflict", "ok")
    assert expected in seen
    if not loser_has_missing_dependency:
        assert ("ok", "RequestConflict") in seen


def test_a_losing_create_removes_its_own_edges(stack: Harness) -> None:
    shared, other = stack.create(), stack.create()
    before = _edge_count(stack)
    _, outer, inner = race(stack, 3, [shared, other], [shared])
    assert (outer, inner) == ("RequestConflict", "ok")
    # the winner's edge pair for `shared` (its dependents item; its requirement item)
    assert _edge_count(stack) - before == 2


def _edge_count(stack: Harness) -> int:
    model = stack.c.dependencies.graph._model  # type: ignore[attr-defined]
    return sum(1 for row in model.scan() if row.pk.startswith(("dependents#", "requires#")))
