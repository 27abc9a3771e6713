"""Task graphs over HTTP and the stream: dependencies, requires, release, task groups."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import slugid

from chalicelib.domain.definition import new_task, normalize
from chalicelib.domain.model import TaskState, format_date
from tests.harness import Harness, assert_error, claim_task, report, runs, stream_records, task_def


def finish(stack: Harness, task_id: str, outcome: str = "completed", run_id: int = 0) -> None:
    """Claim a task's run and resolve it; then let the stream do its work."""
    assert claim_task(stack, task_id, run_id).status_code == 200
    if outcome in ("completed", "failed"):
        assert report(stack, task_id, run_id, outcome).status_code == 200
    else:
        assert report(stack, task_id, run_id, "exception", {"reason": outcome}).status_code == 200
    stack.pump.step()


def state(stack: Harness, task_id: str) -> str:
    return str(stack.status(task_id)["state"])


# --- dependencies ---------------------------------------------------------------------------------
def test_a_dependent_waits_for_its_dependency_to_complete(stack: Harness) -> None:
    build = stack.create()
    test = stack.create(dependencies=[build])
    assert runs(stack.status(test)) == []
    assert state(stack, test) == "unscheduled"
    finish(stack, build)
    assert runs(stack.status(test)) == [(0, "pending", "scheduled", None)]
    claims = stack.claim(tasks=5)  # the build's own hint is stale by now (it was claimed by claimTask)
    assert [c["status"]["taskId"] for c in claims] == [test]


def test_a_dependent_of_several_waits_for_all(stack: Harness) -> None:
    deps = [stack.create() for _ in range(3)]
    report_id = stack.create(dependencies=deps)
    for dep in deps[:2]:
        finish(stack, dep)
        assert state(stack, report_id) == "unscheduled"
    finish(stack, deps[2])
    assert state(stack, report_id) == "pending"


def test_dependents_of_one_and_of_several_dependencies_released_together_each_get_their_due(
    stack: Harness,
) -> None:
    a, b = stack.create(), stack.create()
    only_a = [stack.create(dependencies=[a]) for _ in range(3)]
    a_and_b = [stack.create(dependencies=[a, b]) for _ in range(3)]
    finish(stack, a)
    assert [state(stack, t) for t in only_a + a_and_b] == ["pending"] * 3 + ["unscheduled"] * 3
    finish(stack, b)
    assert [state(stack, t) for t in a_and_b] == ["pending"] * 3


def test_an_edge_stored_without_its_dependents_count_still_releases(stack: Harness) -> None:
    """Edges written before release recorded how many dependencies a dependent has."""
    build = stack.create()
    test = stack.create(dependencies=[build])
    link = stack.c.queue.task(test).link
    row = stack.c.dependencies.graph._model.get(f"dependents#{build}", f"{test}#{link}")  # type: ignore[attr-defined]
    row.update(actions=[type(row).dependencies.remove()])
    assert stack.c.dependencies.graph.dependents(build, 10, None)[0] == [(test, link, "all-completed", None)]
    finish(stack, build)
    assert state(stack, test) == "pending"


def test_a_task_and_edges_stored_before_edges_had_links_are_still_released(stack: Harness) -> None:
    """Rows without `link` and edges keyed without one (the form before links) work as before."""
    build, other = stack.create(), stack.create()
    test = slugid.nice()
    definition = normalize(test, task_def(stack.clock, dependencies=[build, other]), stack.clock.now(), 5)
    task = new_task(test, definition)
    stack.c.dependencies.graph.add_edges(test, "", "all-completed", [build, other], 2, task.expires)
    assert stack.c.queue.store.create(task) is None
    assert [t.task_id for t in stack.c.dependencies.dependents(build, 10, None)[0]] == [test]
    finish(stack, build)
    assert state(stack, test) == "unscheduled"
    finish(stack, other)
    assert state(stack, test) == "pending"


def test_a_dependency_completed_before_the_dependent_exists_counts(stack: Harness) -> None:
    build = stack.create()
    finish(stack, build)
    test = stack.create(dependencies=[build])
    assert state(stack, test) == "pending"


def test_missing_dependencies_are_refused_and_nothing_is_stored(stack: Harness) -> None:
    build, ghost = stack.create(), slugid.nice()
    task_id = slugid.nice()
    r = stack.call("PUT", f"/task/{task_id}", _def(stack, dependencies=[build, ghost]))
    body = assert_error(r, 400, "InputError")
    assert body["details"]["missingTaskDependencies"] == [ghost]
    assert stack.call("GET", f"/task/{task_id}").status_code == 404
    assert stack.call("GET", f"/task/{build}/dependents").json_body["tasks"] == []


def test_dependencies_expiring_before_the_deadline_are_refused(stack: Harness) -> None:
    now = stack.clock.now()
    short = stack.create(expires=format_date(now + timedelta(hours=1)))
    r = stack.call(
        "PUT",
        f"/task/{slugid.nice()}",
        _def(stack, dependencies=[short], deadline=format_date(now + timedelta(hours=2))),
    )
    assert assert_error(r, 400, "InputError")["details"]["expiringTaskDependencies"] == [short]


def test_all_completed_waits_through_a_failed_dependency_until_its_deadline(stack: Harness) -> None:
    build = stack.create()
    test = stack.create(dependencies=[build])
    finish(stack, build, "failed")
    assert state(stack, test) == "unscheduled"
    stack.advance(3601)
    stack.sweep()
    assert runs(stack.status(test)) == [(0, "exception", "exception", "deadline-exceeded")]


@pytest.mark.parametrize("outcome", ["failed", "malformed-payload"])
def test_all_resolved_proceeds_after_a_failure_or_exception(stack: Harness, outcome: str) -> None:
    build = stack.create()
    cleanup = stack.create(dependencies=[build], requires="all-resolved")
    finish(stack, build, outcome)
    assert state(stack, cleanup) == "pending"


def test_all_resolved_proceeds_after_a_cancelled_dependency(stack: Harness) -> None:
    build = stack.create()
    cleanup = stack.create(dependencies=[build], requires="all-resolved")
    waiting = stack.create(dependencies=[build])
    stack.call("POST", f"/task/{build}/cancel")
    stack.pump.step()
    assert state(stack, cleanup) == "pending"
    assert state(stack, waiting) == "unscheduled"


@pytest.mark.parametrize("first", ["all-completed", "all-resolved"])
def test_two_dependents_of_a_failed_task_each_get_their_due(stack: Harness, first: str) -> None:
    # Taskcluster regression #7829: the all-resolved dependent runs whichever is handled first.
    build = stack.create()
    second = "all-resolved" if first == "all-completed" else "all-completed"
    a = stack.create(dependencies=[build], requires=first)
    b = stack.create(dependencies=[build], requires=second)
    finish(stack, build, "failed")
    expected = {"all-resolved": "pending", "all-completed": "unscheduled"}
    assert (state(stack, a), state(stack, b)) == (expected[first], expected[second])


def test_a_rerun_dependency_that_completes_releases_waiting_dependents(stack: Harness) -> None:
    build = stack.create()
    test = stack.create(dependencies=[build])
    finish(stack, build, "failed")
    assert stack.call("POST", f"/task/{build}/rerun").status_code == 200
    stack.pump.step()
    assert state(stack, test) == "unscheduled"
    finish(stack, build, "completed", run_id=1)
    assert state(stack, test) == "pending"


def test_a_retried_run_is_not_a_resolution(stack: Harness) -> None:
    build = stack.create()
    test = stack.create(dependencies=[build], requires="all-resolved")
    finish(stack, build, "worker-shutdown")  # retried: run 1 pending
    assert state(stack, test) == "unscheduled"
    finish(stack, build, "completed", run_id=1)
    assert state(stack, test) == "pending"


def test_self_dependency_waits_for_schedule_task(stack: Harness) -> None:
    task_id = slugid.nice()
    stack.create(task_id, dependencies=[task_id])
    stack.pump.step()
    stack.advance(stack.settings.redispatch_after * 4)
    stack.sweep()  # the backstop does not release it either
    assert state(stack, task_id) == "unscheduled"
    r = stack.call("POST", f"/task/{task_id}/schedule")
    assert runs(r.json_body["status"]) == [(0, "pending", "scheduled", None)]


def test_create_with_dependencies_is_idempotent(stack: Harness) -> None:
    build = stack.create()
    task_id = slugid.nice()
    body = _def(stack, dependencies=[build])
    first = stack.call("PUT", f"/task/{task_id}", body)
    again = stack.call("PUT", f"/task/{task_id}", body)
    assert first.json_body == again.json_body
    other = stack.call("PUT", f"/task/{task_id}", {**body, "dependencies": []})
    assert_error(other, 409, "RequestConflict")
    finish(stack, build)
    assert state(stack, task_id) == "pending"


def test_replayed_duplicated_and_reordered_records_release_once(stack: Harness) -> None:
    a, b = stack.create(), stack.create()
    dependent = stack.create(dependencies=[a, b])
    finish(stack, a)
    finish(stack, b)
    records = stream_records(stack)
    for batch in (records, records[::-1], records + records):
        stack.client.lambda_.invoke("tasks_stream", {"Records": batch})
    stack.pump.step()
    assert runs(stack.status(dependent)) == [(0, "pending", "scheduled", None)]


def test_a_lost_release_is_finished_by_the_sweeper(stack: Harness) -> None:
    build = stack.create()
    test = stack.create(dependencies=[build])
    stack.pump.step()
    claim_task(stack, build)
    report(stack, build, 0, "completed")
    stack.pump.shards_skip_to_end()  # the resolution's stream record is lost
    assert state(stack, test) == "unscheduled"
    stack.advance(stack.settings.redispatch_after + 1)
    stack.sweep()
    assert state(stack, test) == "pending"


def test_a_large_fan_out_continues_on_the_release_queue(stack: Harness) -> None:
    build = stack.create()
    dependents = [stack.create(dependencies=[build]) for _ in range(230)]
    claim_task(stack, build)
    report(stack, build, 0, "completed")
    # The stream invocation has no time to spare: release hands on after its first page.
    result = stack.c.dependencies.release(build, TaskState.COMPLETED, None, lambda: 0.0)
    assert result.continuation is not None
    assert 0 < len(result.released) < len(dependents)
    stack.pump.step()  # the release queue's handler finishes the rest
    assert {state(stack, d) for d in dependents} == {"pending"}


def test_list_dependent_tasks_pages_through_every_dependent(stack: Harness) -> None:
    build = stack.create()
    dependents = sorted(stack.create(dependencies=[build]) for _ in range(5))
    seen: list[dict[str, Any]] = []
    token = None
    while True:
        q = "?limit=2" + (f"&continuationToken={token}" if token else "")
        body = stack.call("GET", f"/task/{build}/dependents{q}").json_body
        assert body["taskId"] == build
        seen += body["tasks"]
        token = body.get("continuationToken")
        if not token:
            break
    assert [t["status"]["taskId"] for t in seen] == dependents
    assert all(t["task"]["dependencies"] == [build] for t in seen)
    assert_error(stack.call("GET", f"/task/{slugid.nice()}/dependents"), 404, "ResourceNotFound")


# --- task groups ----------------------------------------------------------------------------------
def _def(stack: Harness, **overrides: Any) -> dict[str, Any]:
    return task_def(stack.clock, **overrides)


def test_a_group_is_created_by_its_first_task_and_lists_its_members(stack: Harness) -> None:
    group = slugid.nice()
    ids = sorted(stack.create(taskGroupId=group, schedulerId="ci") for _ in range(3))
    body = stack.call("GET", f"/task-group/{group}").json_body
    assert (body["taskGroupId"], body["schedulerId"]) == (group, "ci")
    assert "sealed" not in body
    listed = stack.call("GET", f"/task-group/{group}/list?limit=2").json_body
    assert [t["status"]["taskId"] for t in listed["tasks"]] == ids[:2]
    rest = stack.call("GET", f"/task-group/{group}/list?continuationToken={listed['continuationToken']}").json_body
    assert [t["status"]["taskId"] for t in rest["tasks"]] == ids[2:]
    assert_error(stack.call("GET", f"/task-group/{slugid.nice()}"), 404, "ResourceNotFound")


def test_a_group_has_one_scheduler_id(stack: Harness) -> None:
    group = slugid.nice()
    stack.create(taskGroupId=group, schedulerId="ci")
    r = stack.call("PUT", f"/task/{slugid.nice()}", _def(stack, taskGroupId=group, schedulerId="other"))
    assert_error(r, 409, "RequestConflict")


def test_a_sealed_group_takes_no_more_tasks_and_keeps_its_first_seal(stack: Harness) -> None:
    group = slugid.nice()
    stack.create(taskGroupId=group)
    first = stack.call("POST", f"/task-group/{group}/seal").json_body
    stack.advance(5)
    again = stack.call("POST", f"/task-group/{group}/seal").json_body
    assert first["sealed"] == again["sealed"]
    r = stack.call("PUT", f"/task/{slugid.nice()}", _def(stack, taskGroupId=group))
    assert_error(r, 409, "RequestConflict")
    assert [e for e, _ in stack.events() if e == "task-group-sealed"] == ["task-group-sealed"] * 2


def test_cancel_task_group_needs_a_seal_and_cancels_what_is_unresolved(stack: Harness) -> None:
    group = slugid.nice()
    done, running, waiting = (stack.create(taskGroupId=group) for _ in range(3))
    finish(stack, done)
    claim_task(stack, running)
    assert_error(stack.call("POST", f"/task-group/{group}/cancel"), 409, "RequestConflict")
    stack.call("POST", f"/task-group/{group}/seal")
    body = stack.call("POST", f"/task-group/{group}/cancel").json_body
    assert (body["taskGroupSize"], body["cancelledCount"]) == (3, 2)
    assert sorted(body["taskIds"]) == sorted([running, waiting])
    assert state(stack, done) == "completed"
    assert runs(stack.status(running))[-1] == (0, "exception", "scheduled", "canceled")
    assert stack.call("POST", f"/task-group/{group}/cancel").json_body["cancelledCount"] == 0


def test_change_task_group_priority(stack: Harness) -> None:
    group = slugid.nice()
    done, pending = stack.create(taskGroupId=group), stack.create(taskGroupId=group)
    finish(stack, done)
    body = stack.call("POST", f"/task-group/{group}/priority", {"newPriority": "high"}).json_body
    assert (body["tasksAffected"], body["taskIds"], body["newPriority"]) == (1, [pending], "high")
    assert stack.status(pending)["priority"] == "high"
    assert stack.status(done)["priority"] == "lowest"


# --- events -----------------------------------------------------------------------------------------
def test_a_task_publishes_its_lifecycle_with_taskcluster_routing(stack: Harness) -> None:
    task_id = stack.create(routes=["index.project.x"], tags={"kind": "build"})
    finish(stack, task_id)
    events = stack.events()
    names = [e for e, d in events if d.get("status", {}).get("taskId") == task_id]
    assert names == ["task-defined", "task-pending", "task-running", "task-completed"]
    completed = next(d for e, d in events if e == "task-completed")
    assert completed["exchange"] == "exchange/taskcluster-queue/v1/task-completed"
    assert completed["routingKey"] == f"primary.{task_id}.0.wg.w1.proj.linux.-.{task_id}._"
    assert completed["routes"] == ["route.index.project.x"]
    assert (completed["version"], completed["runId"], completed["workerId"]) == (1, 0, "w1")
    assert completed["task"] == {"tags": {"kind": "build"}}
    assert completed["status"]["state"] == "completed"
    defined = next(d for e, d in events if e == "task-defined")
    assert (defined["status"]["state"], defined["status"]["runs"]) == ("unscheduled", [])


def test_task_group_resolved_fires_when_the_last_member_resolves(stack: Harness) -> None:
    group = slugid.nice()
    a, b = stack.create(taskGroupId=group), stack.create(taskGroupId=group)
    finish(stack, a)
    assert "task-group-resolved" not in [e for e, _ in stack.events()]
    finish(stack, b, "failed")
    resolved = [d for e, d in stack.events() if e == "task-group-resolved"]
    assert [d["taskGroupId"] for d in resolved] == [group]
    assert resolved[0]["schedulerId"] == "-"


def test_a_retry_does_not_resolve_the_group(stack: Harness) -> None:
    group = slugid.nice()
    a = stack.create(taskGroupId=group)
    finish(stack, a, "worker-shutdown")
    assert "task-group-resolved" not in [e for e, _ in stack.events()]
    finish(stack, a, "completed", run_id=1)
    assert "task-group-resolved" in [e for e, _ in stack.events()]
