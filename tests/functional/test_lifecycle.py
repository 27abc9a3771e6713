"""The life of a task over HTTP: dispatch, claim, reclaim, report, retry, cancel, rerun, priority."""

from __future__ import annotations

import threading
from typing import Any

import slugid

from tests.harness import Harness, assert_error, claim_task, report, runs


# --- dispatch and claimWork ---------------------------------------------------------------------------
def test_claim_work_serves_highest_priority_first_then_oldest_first(stack: Harness) -> None:
    low1 = stack.create(priority="low")
    stack.clock.advance(1)
    high = stack.create(priority="very-high")
    stack.clock.advance(1)
    low2 = stack.create(priority="low")
    highest = stack.create(priority="highest")
    order = [c["status"]["taskId"] for c in stack.claim(tasks=1) + stack.claim(tasks=1) + stack.claim(tasks=2)]
    assert order[:2] == [highest, high]
    assert set(order[2:]) == {low1, low2}


def test_claim_work_never_claims_more_than_asked(stack: Harness) -> None:
    created = {stack.create() for _ in range(15)}
    first = stack.claim(tasks=4)
    assert len(first) == 4
    rest = stack.claim(tasks=32)
    assert len(rest) == 11
    assert {c["status"]["taskId"] for c in first + rest} == created
    assert stack.claim(tasks=32) == []


def test_claim_work_response_has_the_run_and_the_definition(stack: Harness) -> None:
    task_id = stack.create(retries=1)
    [claim] = stack.claim(worker_id="worker-7")
    assert claim["runId"] == 0
    assert (claim["workerGroup"], claim["workerId"]) == ("wg", "worker-7")
    assert claim["task"] == stack.call("GET", f"/task/{task_id}").json_body
    run = claim["status"]["runs"][0]
    assert run["state"] == "running"
    assert run["takenUntil"] == claim["takenUntil"]
    assert (run["workerGroup"], run["workerId"]) == ("wg", "worker-7")


def test_stale_hints_are_dropped(stack: Harness) -> None:
    task_id = stack.create()
    stack.pump.step()  # the hint is on SQS
    assert stack.call("POST", f"/task/{task_id}/cancel").status_code == 200
    assert stack.claim() == []
    assert stack.status(task_id)["state"] == "exception"


def test_duplicate_hints_never_hand_a_run_out_twice(stack: Harness) -> None:
    task_id = stack.create()
    stack.pump.step()
    task = stack.c.queue.store.get(task_id)
    assert task is not None
    stack.c.queue.hints.send([h for h in [stack_hint(task)] if h] * 3)
    claims = stack.claim(tasks=10)
    assert [c["status"]["taskId"] for c in claims] == [task_id]
    assert stack.claim(tasks=10) == []


def stack_hint(task: Any) -> Any:
    from chalicelib.domain.dispatch import pending_hint

    return pending_hint(task)


def test_a_hint_on_another_task_queue_is_never_honoured(stack: Harness) -> None:
    from dataclasses import replace

    task_id = stack.create(taskQueueId="proj/other")
    stack.pump.step()
    task = stack.c.queue.store.get(task_id)
    assert task is not None
    hint = stack_hint(task)
    stack.c.queue.hints.send([replace(hint, task_queue_id="proj/linux")])
    assert stack.claim("proj/linux") == []
    assert [c["status"]["taskId"] for c in stack.claim("proj/other")] == [task_id]


def test_claim_work_validates_its_input(stack: Harness) -> None:
    r = stack.call("POST", "/claim-work/proj%2Flinux", {"workerGroup": "wg", "workerId": "w", "tasks": 33})
    assert_error(r, 400, "InputValidationError")
    r = stack.call("POST", "/claim-work/1%2F1", {"workerGroup": "wg", "workerId": "w"})
    assert_error(r, 400, "InvalidRequestArguments")


def test_two_workers_racing_for_one_run_exactly_one_wins(stack: Harness) -> None:
    task_id = stack.create()
    results: list[int] = []

    def race(worker_id: str) -> None:
        results.append(claim_task(stack, task_id, 0, worker_id).status_code)

    threads = [threading.Thread(target=race, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 409, 409, 409]
    assert stack.claim() == []


def test_claim_task_by_the_same_worker_again_is_idempotent(stack: Harness) -> None:
    task_id = stack.create()
    first = claim_task(stack, task_id)
    again = claim_task(stack, task_id)
    assert again.status_code == 200
    assert again.json_body["takenUntil"] == first.json_body["takenUntil"]
    assert_error(claim_task(stack, task_id, worker_id="other"), 409, "RequestConflict")
    assert_error(claim_task(stack, task_id, run_id=1), 404, "ResourceNotFound")


# --- reclaim and resolution ---------------------------------------------------------------------------
def test_reclaim_extends_the_lease(stack: Harness) -> None:
    task_id = stack.create()
    [claim] = stack.claim()
    stack.advance(600)
    r = stack.call("POST", f"/task/{task_id}/runs/0/reclaim")
    assert r.status_code == 200
    assert "task" not in r.json_body
    assert r.json_body["takenUntil"] > claim["takenUntil"]
    assert r.json_body["status"]["runs"][0]["takenUntil"] == r.json_body["takenUntil"]


def test_reclaim_of_a_resolved_run_is_a_conflict(stack: Harness) -> None:
    task_id = stack.create()
    stack.claim()
    report(stack, task_id, 0, "completed")
    assert_error(stack.call("POST", f"/task/{task_id}/runs/0/reclaim"), 409, "RequestConflict")


def test_report_completed_twice_is_idempotent(stack: Harness) -> None:
    task_id = stack.create()
    stack.claim()
    first = report(stack, task_id, 0, "completed")
    second = report(stack, task_id, 0, "completed")
    assert first.status_code == second.status_code == 200
    assert first.json_body == second.json_body
    assert runs(second.json_body["status"]) == [(0, "completed", "scheduled", "completed")]


def test_reporting_another_outcome_after_resolution_is_a_conflict(stack: Harness) -> None:
    task_id = stack.create()
    stack.claim()
    report(stack, task_id, 0, "completed")
    assert_error(report(stack, task_id, 0, "failed"), 409, "RequestConflict")
    assert_error(report(stack, task_id, 0, "exception", {"reason": "internal-error"}), 409, "RequestConflict")
    assert stack.status(task_id)["state"] == "completed"


def test_reporting_a_pending_run_is_a_conflict_and_unknown_runs_are_not_found(stack: Harness) -> None:
    task_id = stack.create()
    assert_error(report(stack, task_id, 0, "completed"), 409, "RequestConflict")
    assert_error(report(stack, task_id, 3, "completed"), 404, "ResourceNotFound")
    assert_error(report(stack, slugid.nice(), 0, "failed"), 404, "ResourceNotFound")
    assert stack.status(task_id)["state"] == "pending"


def test_report_completed_with_success_false_resolves_failed(stack: Harness) -> None:
    task_id = stack.create()
    stack.claim()
    r = report(stack, task_id, 0, "completed", {"success": False})
    assert runs(r.json_body["status"]) == [(0, "failed", "scheduled", "failed")]


def test_worker_shutdown_retries_while_retries_are_left(stack: Harness) -> None:
    task_id = stack.create(retries=1)
    stack.claim()
    r = report(stack, task_id, 0, "exception", {"reason": "worker-shutdown"})
    assert runs(r.json_body["status"]) == [
        (0, "exception", "scheduled", "worker-shutdown"),
        (1, "pending", "retry", None),
    ]
    assert r.json_body["status"]["retriesLeft"] == 0
    [claim] = stack.claim()
    assert claim["runId"] == 1
    r = report(stack, task_id, 1, "exception", {"reason": "worker-shutdown"})
    assert r.json_body["status"]["state"] == "exception"
    assert len(r.json_body["status"]["runs"]) == 2


def test_intermittent_task_retries_as_task_retry(stack: Harness) -> None:
    task_id = stack.create()
    stack.claim()
    r = report(stack, task_id, 0, "exception", {"reason": "intermittent-task"})
    assert runs(r.json_body["status"])[1] == (1, "pending", "task-retry", None)
    again = report(stack, task_id, 0, "exception", {"reason": "intermittent-task"})
    assert again.status_code == 200
    assert len(again.json_body["status"]["runs"]) == 2
    assert_error(report(stack, task_id, 0, "exception", {"reason": "internal-error"}), 409, "RequestConflict")


def test_malformed_payload_is_final(stack: Harness) -> None:
    task_id = stack.create()
    stack.claim()
    r = report(stack, task_id, 0, "exception", {"reason": "malformed-payload"})
    assert runs(r.json_body["status"]) == [(0, "exception", "scheduled", "malformed-payload")]
    assert_error(report(stack, task_id, 0, "exception", {"reason": "bogus"}), 400, "InputValidationError")


# --- schedule, cancel, rerun, priority --------------------------------------------------------------------
def test_cancel_a_running_task_then_reclaim_gets_409(stack: Harness) -> None:
    task_id = stack.create()
    stack.claim()
    r = stack.call("POST", f"/task/{task_id}/cancel")
    assert runs(r.json_body["status"]) == [(0, "exception", "scheduled", "canceled")]
    assert stack.call("POST", f"/task/{task_id}/cancel").json_body == r.json_body
    assert_error(stack.call("POST", f"/task/{task_id}/runs/0/reclaim"), 409, "RequestConflict")
    assert_error(report(stack, task_id, 0, "completed"), 409, "RequestConflict")


def test_rerun_after_completion_adds_a_pending_run(stack: Harness) -> None:
    task_id = stack.create(retries=3)
    stack.claim()
    report(stack, task_id, 0, "completed")
    r = stack.call("POST", f"/task/{task_id}/rerun")
    assert runs(r.json_body["status"]) == [(0, "completed", "scheduled", "completed"), (1, "pending", "rerun", None)]
    assert r.json_body["status"]["retriesLeft"] == 3
    assert stack.call("POST", f"/task/{task_id}/rerun").json_body == r.json_body
    [claim] = stack.claim()
    assert claim["runId"] == 1


def test_schedule_task_of_a_scheduled_task_changes_nothing(stack: Harness) -> None:
    task_id = stack.create()
    r = stack.call("POST", f"/task/{task_id}/schedule")
    assert runs(r.json_body["status"]) == [(0, "pending", "scheduled", None)]
    assert_error(stack.call("POST", f"/task/{slugid.nice()}/schedule"), 404, "ResourceNotFound")


def test_change_task_priority_moves_a_pending_task_ahead(stack: Harness) -> None:
    first = stack.create(priority="low")
    second = stack.create(priority="low")
    stack.pump.step()
    r = stack.call("POST", f"/task/{second}/priority", {"newPriority": "high"})
    assert r.status_code == 200
    assert r.json_body["status"]["priority"] == "high"
    assert stack.call("GET", f"/task/{second}").json_body["priority"] == "high"
    order = [c["status"]["taskId"] for c in stack.claim(tasks=1) + stack.claim(tasks=1)]
    assert order == [second, first]
    assert stack.claim() == []


def test_change_task_priority_conflicts(stack: Harness) -> None:
    task_id = stack.create(priority="low")
    assert_error(stack.call("POST", f"/task/{task_id}/priority", {"newPriority": "low"}), 409, "RequestConflict")
    assert_error(
        stack.call("POST", f"/task/{task_id}/priority", {"newPriority": "normal"}), 400, "InputValidationError"
    )
    stack.claim()
    report(stack, task_id, 0, "completed")
    assert_error(stack.call("POST", f"/task/{task_id}/priority", {"newPriority": "high"}), 409, "RequestConflict")


def test_after_the_deadline_a_task_cannot_be_changed(stack: Harness) -> None:
    task_id = stack.create()
    stack.advance(3601)
    for action in ("schedule", "rerun", "cancel"):
        assert_error(stack.call("POST", f"/task/{task_id}/{action}"), 409, "RequestConflict")
    assert_error(claim_task(stack, task_id), 409, "RequestConflict")
    assert stack.claim() == []


def test_a_waiting_claim_work_wakes_for_the_first_task_of_a_new_queue(stack: Harness) -> None:
    import time

    from chalicelib.domain.model import Worker

    end = time.monotonic() + 15
    result: list[Any] = []

    def wait_for_work() -> None:
        result.extend(
            stack.c.queue.claim_work(
                "proj/fresh", Worker("wg", "w"), 1, lambda: end - time.monotonic(), lambda: end + 5 - time.monotonic()
            )
        )

    waiter = threading.Thread(target=wait_for_work)
    waiter.start()
    task_id = stack.create(taskQueueId="proj/fresh", priority="high")  # not the queue it waits on
    stack.pump.step()
    waiter.join(timeout=20)
    assert [task.task_id for task, _ in result] == [task_id]
