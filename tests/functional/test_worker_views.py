"""Task queues, provisioners, worker types and workers as the queue shows them,
and quarantine: over raw HTTP through the harness, and through the official client.

What a claim or a new task records is written by the stream handler, so tests step the event
pump after the calls whose effect they look at.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import taskcluster
from moto import mock_aws
from taskcluster.exceptions import TaskclusterRestFailure

from chalicelib.domain.model import Worker, format_date, parse_date
from chalicelib.domain.worker_info import WorkerKey
from tests.harness import TEST_SETTINGS, Harness, assert_error, invoke_stream, make_client, stream_records

WORKERS = "/provisioners/proj/worker-types/linux/workers"
WORKER = f"{WORKERS}/wg/w1"
DECLARE = "/provisioners/proj/worker-types/linux/wg/w1"


def at(stack: Harness, seconds: float = 0) -> str:
    return format_date(stack.clock.now() + timedelta(seconds=seconds))


def ok(r: Any) -> dict[str, Any]:
    assert r.status_code == 200, r.body
    body: dict[str, Any] = r.json_body
    return body


def claim(stack: Harness, worker_id: str = "w1", tasks: int = 1, task_queue_id: str = "proj/linux") -> list[str]:
    """claimWork, then the stream records what it did; the claimed taskIds."""
    claims = stack.claim(task_queue_id, tasks=tasks, worker_id=worker_id)
    stack.pump.step()
    return [c["status"]["taskId"] for c in claims]


def collect(stack: Harness, path: str, key: str, limit: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token = None
    sep = "&" if "?" in path else "?"
    for _ in range(50):
        query = f"{sep}limit={limit}" + (f"&continuationToken={token}" if token else "")
        body = ok(stack.call("GET", path + query))
        assert len(body[key]) <= limit
        items += body[key]
        token = body.get("continuationToken")
        if not token:
            return items
    raise AssertionError("pagination never ended")


def quarantine(stack: Harness, until: str, info: str | None = None, path: str = WORKER) -> Any:
    body: dict[str, Any] = {"quarantineUntil": until}
    if info is not None:
        body["quarantineInfo"] = info
    return stack.call("PUT", path, body)


# --- what claims and new tasks record -------------------------------------------------------------
def test_a_claim_makes_its_worker_appear_with_first_claim_recent_tasks_and_latest_task(stack: Harness) -> None:
    first, second = stack.create(), stack.create()
    claimed_at = stack.clock.now()
    claimed = claim(stack, tasks=2)
    assert sorted(claimed) == sorted([first, second])

    worker = ok(stack.call("GET", WORKER))
    assert worker["provisionerId"] == "proj" and worker["workerType"] == "linux"
    assert worker["taskQueueId"] == "proj/linux"
    assert (worker["workerGroup"], worker["workerId"]) == ("wg", "w1")
    assert worker["firstClaim"] == worker["lastDateActive"] == format_date(claimed_at)
    assert worker["expires"] == format_date(claimed_at + timedelta(days=1))
    assert sorted(t["taskId"] for t in worker["recentTasks"]) == sorted(claimed)
    assert all(t["runId"] == 0 for t in worker["recentTasks"])
    assert worker["quarantineDetails"] == [] and "quarantineUntil" not in worker

    [entry] = ok(stack.call("GET", WORKERS))["workers"]
    assert entry == {
        "workerGroup": "wg",
        "workerId": "w1",
        "firstClaim": worker["firstClaim"],
        "lastDateActive": worker["lastDateActive"],
        "latestTask": worker["recentTasks"][-1],
    }


def test_recent_tasks_keep_the_last_20_claims_oldest_first(stack: Harness) -> None:
    claimed = []
    for _ in range(23):
        stack.create()
        stack.advance(1)
        claimed += claim(stack)
    stack.advance(60)
    worker = ok(stack.call("GET", WORKER))
    assert [t["taskId"] for t in worker["recentTasks"]] == claimed[-20:]
    [entry] = ok(stack.call("GET", WORKERS))["workers"]
    assert entry["latestTask"] == {"taskId": claimed[-1], "runId": 0}
    assert parse_date(worker["firstClaim"]) < parse_date(worker["lastDateActive"])


def test_redelivered_and_reordered_stream_records_record_each_claim_once(stack: Harness) -> None:
    for _ in range(3):
        stack.create()
    claimed = claim(stack, tasks=3)
    before = ok(stack.call("GET", WORKER))
    records = stream_records(stack)
    for batch in (records, records[::-1], records + records):
        invoke_stream(stack, batch)
    after = ok(stack.call("GET", WORKER))
    assert after == before
    assert sorted(t["taskId"] for t in after["recentTasks"]) == sorted(claimed)


def test_a_new_task_makes_its_task_queue_appear_before_any_claim(stack: Harness) -> None:
    assert ok(stack.call("GET", "/task-queues"))["taskQueues"] == []
    stack.create(taskQueueId="other/builder")
    created = stack.clock.now()
    stack.pump.step()
    [tq] = ok(stack.call("GET", "/task-queues"))["taskQueues"]
    assert tq == {
        "taskQueueId": "other/builder",
        "stability": "experimental",
        "description": "",
        "expires": format_date(created + timedelta(days=5)),
        "lastDateActive": format_date(created),
    }
    assert ok(stack.call("GET", "/task-queues/other%2Fbuilder")) == tq
    assert ok(stack.call("GET", "/provisioners/other/worker-types/builder")) == {
        "provisionerId": "other",
        "workerType": "builder",
        **tq,
        "actions": [],
    }
    assert ok(stack.call("GET", "/provisioners/other/worker-types/builder/workers")) == {"workers": []}


def test_reclaims_keep_a_worker_active_written_at_most_every_5_minutes(stack: Harness) -> None:
    task_id = stack.create()
    claim(stack)
    first = ok(stack.call("GET", WORKER))
    stack.advance(60)
    assert stack.call("POST", f"/task/{task_id}/runs/0/reclaim").status_code == 200
    stack.pump.step()
    assert ok(stack.call("GET", WORKER)) == first  # a minute later: not worth a write
    stack.advance(300)
    reclaimed_at = stack.clock.now()
    assert stack.call("POST", f"/task/{task_id}/runs/0/reclaim").status_code == 200
    stack.pump.step()
    worker = ok(stack.call("GET", WORKER))
    assert worker["lastDateActive"] == format_date(reclaimed_at)
    assert worker["expires"] == format_date(reclaimed_at + timedelta(days=1))
    assert worker["firstClaim"] == first["firstClaim"] and worker["recentTasks"] == first["recentTasks"]
    queue = ok(stack.call("GET", "/task-queues/proj%2Flinux"))
    assert queue["lastDateActive"] == format_date(reclaimed_at)


# --- listings -------------------------------------------------------------------------------------
def test_task_queues_provisioners_and_worker_types_are_listed_by_id_in_pages(stack: Harness) -> None:
    queues = ["p1/a", "p1/b", "p1-x/a", "p2/c", "p3/d", "p3/e"]
    for tq in reversed(queues):
        stack.create(taskQueueId=tq)
        stack.pump.step()
        stack.advance(1)
    listed = collect(stack, "/task-queues", "taskQueues", 4)
    assert [q["taskQueueId"] for q in listed] == sorted(queues)
    assert [q["taskQueueId"] for q in collect(stack, "/task-queues", "taskQueues", 1)] == sorted(queues)

    # In task-queue id order ('-' sorts before '/'), each provisioner once.
    provisioners = collect(stack, "/provisioners", "provisioners", 1)
    assert [p["provisionerId"] for p in provisioners] == ["p1-x", "p1", "p2", "p3"]
    by_id = {q["taskQueueId"]: q for q in listed}
    p1 = provisioners[1]
    # p1/a was created last: the provisioner shows the latest of its task queues'.
    assert p1["lastDateActive"] == by_id["p1/a"]["lastDateActive"] > by_id["p1/b"]["lastDateActive"]
    assert p1["expires"] == by_id["p1/a"]["expires"]
    assert ok(stack.call("GET", "/provisioners/p1")) == {**p1, "actions": []}
    assert collect(stack, "/provisioners", "provisioners", 3) == provisioners

    types = collect(stack, "/provisioners/p3/worker-types", "workerTypes", 1)
    assert [(t["provisionerId"], t["workerType"], t["taskQueueId"]) for t in types] == [
        ("p3", "d", "p3/d"),
        ("p3", "e", "p3/e"),
    ]
    assert ok(stack.call("GET", "/provisioners/p1/worker-types"))["workerTypes"][0]["taskQueueId"] == "p1/a"


def test_workers_are_listed_in_pages_and_filtered_by_quarantine(stack: Harness) -> None:
    for worker_id in ("w3", "w1", "w2"):
        stack.create()
        claim(stack, worker_id=worker_id)
    listed = collect(stack, WORKERS, "workers", 2)
    assert [w["workerId"] for w in listed] == ["w1", "w2", "w3"]
    ok(quarantine(stack, at(stack, 3600), path=f"{WORKERS}/wg/w2"))
    quarantined = ok(stack.call("GET", f"{WORKERS}?quarantined=true"))["workers"]
    assert [(w["workerId"], w["quarantineUntil"]) for w in quarantined] == [("w2", at(stack, 3600))]
    others = collect(stack, f"{WORKERS}?quarantined=false", "workers", 1)
    assert [w["workerId"] for w in others] == ["w1", "w3"]
    assert all("quarantineUntil" not in w for w in others)
    assert_error(stack.call("GET", f"{WORKERS}?quarantined=maybe"), 400, "InvalidRequestArguments")


def test_limit_caps_a_page(stack: Harness) -> None:
    for tq in ("a/x", "b/x", "c/x"):
        stack.create(taskQueueId=tq)
    stack.pump.step()
    page = ok(stack.call("GET", "/task-queues?limit=2"))
    assert [q["taskQueueId"] for q in page["taskQueues"]] == ["a/x", "b/x"]
    rest = ok(stack.call("GET", f"/task-queues?limit=2&continuationToken={page['continuationToken']}"))
    assert [q["taskQueueId"] for q in rest["taskQueues"]] == ["c/x"] and "continuationToken" not in rest
    assert_error(stack.call("GET", "/task-queues?limit=0"), 400, "InputError")
    assert_error(stack.call("GET", "/task-queues?limit=x"), 400, "InvalidRequestArguments")


@pytest.mark.parametrize("start", [{"a": {"S": "x"}}, {"pk": 5}, [], {}, "not json"])
def test_a_continuation_token_that_is_no_start_key_of_that_listing_is_400(stack: Harness, start: object) -> None:
    raw = start.encode() if isinstance(start, str) else json.dumps(start).encode()
    token = base64.urlsafe_b64encode(raw).decode()
    for path in ("/task-queues", "/provisioners", "/provisioners/proj/worker-types", WORKERS):
        r = stack.call("GET", f"{path}?continuationToken={token}")
        assert_error(r, 400, "InputError")


# --- 404s and expiry ------------------------------------------------------------------------------
def test_unknown_task_queues_provisioners_worker_types_and_workers_are_404(stack: Harness) -> None:
    for path in (
        "/task-queues/proj%2Flinux",
        "/provisioners/proj",
        "/provisioners/proj/worker-types/linux",
        WORKER,
    ):
        assert_error(stack.call("GET", path), 404, "ResourceNotFound")
    assert_error(quarantine(stack, at(stack, 60)), 404, "ResourceNotFound")
    stack.create()
    stack.pump.step()  # the task queue exists now, the worker still not
    assert_error(stack.call("GET", WORKER), 404, "ResourceNotFound")
    assert_error(quarantine(stack, at(stack, 60)), 404, "ResourceNotFound")
    assert ok(stack.call("GET", WORKERS)) == {"workers": []}


def test_expired_workers_and_task_queues_disappear_but_quarantine_keeps_a_worker(stack: Harness) -> None:
    for worker_id in ("w1", "w2"):
        stack.create()
        claim(stack, worker_id=worker_id)
    ok(quarantine(stack, at(stack, 3 * 86400), path=f"{WORKERS}/wg/w2"))
    stack.advance(86400 + 1)  # both workers expired; the task queue (5 days) not
    assert_error(stack.call("GET", WORKER), 404, "ResourceNotFound")
    assert ok(stack.call("GET", f"{WORKERS}/wg/w2"))["workerId"] == "w2"
    assert [w["workerId"] for w in ok(stack.call("GET", WORKERS))["workers"]] == ["w2"]
    stack.advance(4 * 86400)  # the task queue expired too
    assert ok(stack.call("GET", "/task-queues")) == {"taskQueues": []}
    assert ok(stack.call("GET", "/provisioners")) == {"provisioners": []}
    for path in ("/task-queues/proj%2Flinux", "/provisioners/proj", "/provisioners/proj/worker-types/linux"):
        assert_error(stack.call("GET", path), 404, "ResourceNotFound")
    assert_error(stack.call("GET", f"{WORKERS}/wg/w2"), 404, "ResourceNotFound")  # its task queue is gone


# --- quarantine -----------------------------------------------------------------------------------
def test_a_quarantined_worker_gets_no_work_until_the_quarantine_is_lifted(stack: Harness) -> None:
    stack.create()
    claim(stack)
    task_id = stack.create()
    until = at(stack, 3600)
    worker = ok(quarantine(stack, until, "broken disk"))
    assert worker["quarantineUntil"] == until
    assert worker["quarantineDetails"] == [
        {"clientId": "root", "updatedAt": at(stack), "quarantineUntil": until, "quarantineInfo": "broken disk"}
    ]
    assert claim(stack) == []
    assert stack.status(task_id)["state"] == "pending"
    r = stack.call("POST", f"/task/{task_id}/runs/0/claim", {"workerGroup": "wg", "workerId": "w1"})
    assert_error(r, 409, "RequestConflict")
    assert stack.status(task_id)["state"] == "pending"
    assert claim(stack, worker_id="w2") == [task_id]  # other workers still get work

    other = stack.create()
    stack.advance(60)
    lifted = ok(quarantine(stack, at(stack, -1)))  # a time in the past lifts it
    assert [d["quarantineInfo"] for d in lifted["quarantineDetails"]] == ["broken disk", "[unspecified]"]
    assert [w["workerId"] for w in ok(stack.call("GET", f"{WORKERS}?quarantined=true"))["workers"]] == []
    assert claim(stack) == [other]


def test_claim_task_by_a_quarantined_worker_is_refused(stack: Harness) -> None:
    stack.create()
    claim(stack)
    ok(quarantine(stack, at(stack, 600)))
    task_id = stack.create()
    stack.pump.step()
    r = stack.call("POST", f"/task/{task_id}/runs/0/claim", {"workerGroup": "wg", "workerId": "w1"})
    body = assert_error(r, 409, "RequestConflict")
    assert "quarantined" in body["message"]
    ok(quarantine(stack, at(stack)))  # until now: lifted
    assert (
        ok(stack.call("POST", f"/task/{task_id}/runs/0/claim", {"workerGroup": "wg", "workerId": "w1"}))["runId"] == 0
    )


def test_a_quarantined_worker_waits_out_its_long_poll() -> None:
    with mock_aws():
        stack = Harness.start(replace(TEST_SETTINGS, claim_work_timeout=20.0))
        try:
            slept: list[float] = []
            stack.c.queue._sleep = slept.append
            stack.create()
            claim(stack)
            ok(quarantine(stack, at(stack, 600)))
            stack.create()
            assert claim(stack) == []
            assert len(slept) == 1 and 16 < slept[0] <= 20  # the 20 s, less what the request itself took
        finally:
            stack.stop()


def test_a_quarantine_set_by_another_process_takes_effect_within_the_cache_time(stack: Harness) -> None:
    stack.create()
    claim(stack)
    task_id = stack.create()
    stack.pump.step()
    # This process has just read the worker (claimWork's gate): not quarantined.
    workers = stack.c.workers
    assert not workers.quarantined("proj/linux", Worker("wg", "w1"))
    # Another API process quarantines it: this one does not know yet.
    store = workers.store
    key = WorkerKey("proj/linux", "wg", "w1")
    row = store.worker(key)
    assert row is not None
    until = stack.clock.now() + timedelta(hours=1)
    assert store.save_worker(replace(row, quarantine_until=until), row.version)
    stack.advance(stack.settings.quarantine_cache_seconds - 1)
    assert not workers.quarantined("proj/linux", Worker("wg", "w1"))
    stack.advance(1)  # the cached answer is now too old: read again
    assert claim(stack) == []
    assert stack.status(task_id)["state"] == "pending"


def test_quarantine_input_is_validated(stack: Harness) -> None:
    stack.create()
    claim(stack)
    assert_error(stack.call("PUT", WORKER, {}), 400, "InputValidationError")
    assert_error(stack.call("PUT", WORKER, {"quarantineUntil": "tomorrow"}), 400, "InputValidationError")
    assert_error(
        stack.call("PUT", WORKER, {"quarantineUntil": at(stack, 60), "quarantineInfo": "x" * 4001}),
        400,
        "InputValidationError",
    )
    assert_error(stack.call("PUT", WORKER, {"quarantineUntil": at(stack, 60), "x": 1}), 400, "InputValidationError")
    assert_error(stack.call("PUT", WORKER, b"not json"), 400, "MalformedPayload")
    assert_error(stack.call("GET", f"{WORKERS}/w%20g/w1"), 400, "InvalidRequestArguments")


# --- declareWorker --------------------------------------------------------------------------------
def test_declare_worker_creates_the_worker_and_never_moves_its_expiry_backward(stack: Harness) -> None:
    later = at(stack, 2 * 86400)
    worker = ok(stack.call("PUT", DECLARE, {"expires": later}))
    assert worker["expires"] == later
    assert worker["firstClaim"] == worker["lastDateActive"] == at(stack)
    assert worker["recentTasks"] == []
    assert ok(stack.call("GET", WORKER)) == worker
    assert ok(stack.call("GET", "/task-queues/proj%2Flinux"))["expires"] == later

    stack.advance(60)
    again = ok(stack.call("PUT", DECLARE, {"expires": at(stack, 3600)}))  # earlier: unchanged
    assert again["expires"] == later and again["lastDateActive"] == at(stack)
    furthest = at(stack, 3 * 86400)
    assert ok(stack.call("PUT", DECLARE, {"expires": furthest}))["expires"] == furthest

    # A claim later keeps what was declared and adds the claim.
    task_id = stack.create()
    claim(stack)
    claimed = ok(stack.call("GET", WORKER))
    assert claimed["expires"] == furthest and claimed["firstClaim"] == worker["firstClaim"]
    assert claimed["recentTasks"] == [{"taskId": task_id, "runId": 0}]


def test_declare_worker_accepts_exactly_expires(stack: Harness) -> None:
    assert_error(stack.call("PUT", DECLARE, {}), 400, "InputValidationError")
    assert_error(stack.call("PUT", DECLARE, {"quarantineUntil": at(stack, 60)}), 400, "InputValidationError")
    r = stack.call("PUT", DECLARE, {"expires": at(stack, 60), "quarantineUntil": at(stack, 60)})
    assert_error(r, 400, "InputValidationError")
    assert_error(stack.call("PUT", DECLARE, {"expires": "soon"}), 400, "InputValidationError")
    assert_error(stack.call("GET", WORKER), 404, "ResourceNotFound")


def test_declare_worker_needs_the_scope_of_each_property(stack: Harness) -> None:
    scope = "queue:declare-worker:proj/linux/wg/w1#expires"
    without = make_client(stack, "no-declare", ["queue:declare-worker:proj/linux/wg/w1#other"])
    r = stack.call("PUT", DECLARE, {"expires": at(stack, 60)}, credentials=without)
    assert scope in json.dumps(assert_error(r, 403, "InsufficientScopes")["details"]["unsatisfied"])
    exact = make_client(stack, "declarer", [scope])
    assert ok(stack.call("PUT", DECLARE, {"expires": at(stack, 60)}, credentials=exact))["workerId"] == "w1"


# --- the official client --------------------------------------------------------------------------
@pytest.fixture
def queue(stack: Harness, monkeypatch: pytest.MonkeyPatch) -> taskcluster.Queue:
    stack.client_clock_follows_stack(monkeypatch)
    return taskcluster.Queue({"rootUrl": stack.root_url(), "maxRetries": 0, "credentials": stack.credentials})


def test_the_official_client_sees_task_queues_workers_and_quarantines(stack: Harness, queue: Any) -> None:
    for tq in ("proj/linux", "proj/win", "tools/lint"):
        stack.create(taskQueueId=tq)
    claimed = claim(stack)
    stack.create()
    stack.pump.step()

    pages: list[dict[str, Any]] = []
    queue.listTaskQueues(query={"limit": 1}, paginationHandler=pages.append)
    assert [q["taskQueueId"] for p in pages for q in p["taskQueues"]] == ["proj/linux", "proj/win", "tools/lint"]
    assert queue.getTaskQueue("proj/linux")["taskQueueId"] == "proj/linux"
    assert [p["provisionerId"] for p in queue.listProvisioners()["provisioners"]] == ["proj", "tools"]
    assert queue.getProvisioner("tools")["provisionerId"] == "tools"
    assert [t["workerType"] for t in queue.listWorkerTypes("proj")["workerTypes"]] == ["linux", "win"]
    assert queue.getWorkerType("proj", "win")["taskQueueId"] == "proj/win"

    [entry] = queue.listWorkers("proj", "linux")["workers"]
    assert entry["latestTask"] == {"taskId": claimed[0], "runId": 0}
    worker = queue.getWorker("proj", "linux", "wg", "w1")
    assert worker["recentTasks"] == [{"taskId": claimed[0], "runId": 0}]

    until = datetime.now(UTC) + timedelta(days=365)
    quarantined = queue.quarantineWorker(
        "proj", "linux", "wg", "w1", {"quarantineUntil": format_date(until), "quarantineInfo": "flaky"}
    )
    assert quarantined["quarantineDetails"][0]["quarantineInfo"] == "flaky"
    assert queue.claimWork("proj/linux", {"workerGroup": "wg", "workerId": "w1", "tasks": 1}) == {"tasks": []}
    assert [w["workerId"] for w in queue.listWorkers("proj", "linux", query={"quarantined": "true"})["workers"]] == [
        "w1"
    ]
    queue.quarantineWorker("proj", "linux", "wg", "w1", {"quarantineUntil": at(stack, -1)})
    assert len(queue.claimWork("proj/linux", {"workerGroup": "wg", "workerId": "w1", "tasks": 1})["tasks"]) == 1

    declared = queue.declareWorker("tools", "lint", "wg", "w9", {"expires": at(stack, 86400)})
    assert (declared["taskQueueId"], declared["workerId"]) == ("tools/lint", "w9")
    assert queue.getWorker("tools", "lint", "wg", "w9")["expires"] == at(stack, 86400)

    with pytest.raises(TaskclusterRestFailure) as missing:
        queue.getWorker("proj", "linux", "wg", "nobody")
    assert missing.value.status_code == 404
    with pytest.raises(TaskclusterRestFailure) as unknown:
        queue.getTaskQueue("nobody/here")
    assert unknown.value.status_code == 404
