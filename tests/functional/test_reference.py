"""The reference over HTTP: served without credentials where Taskcluster serves it, and every output
schema it names describes what the endpoints really answer."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import slugid
from chalice.test import HTTPResponse
from fastjsonschema import JsonSchemaException

from chalicelib import reference
from chalicelib.domain.model import format_date
from chalicelib.schemas import load
from tests.harness import Harness

HOST = "localhost"


def fetch(stack: Harness, path: str, headers: dict[str, str] | None = None) -> HTTPResponse:
    """A plain GET outside the services' APIs, with no credentials at all."""
    return stack.client.http.get(path, headers={"Host": HOST, **(headers or {})})


def get_public(stack: Harness, path: str) -> Any:
    r = fetch(stack, path)
    assert r.status_code == 200, (path, r.body)
    assert r.headers["Content-Type"] == "application/json"
    return json.loads(r.body)


def test_the_manifest_lists_every_service_reference_and_each_is_served_without_credentials(stack: Harness) -> None:
    root = f"http://{HOST}"
    manifest = get_public(stack, "/references/manifest.json")
    assert manifest == {"references": [f"{root}/references/{s}/v1/api.json" for s in reference.services()]}
    assert {"queue", "auth"} <= set(reference.services())
    for url, service in zip(manifest["references"], reference.services(), strict=True):
        served = get_public(stack, url.removeprefix(root))
        assert served == reference.api_reference(service, root)
        assert served["baseUrl"] == f"{root}/api/{service}/v1"


def test_every_schema_an_entry_names_is_served_and_is_the_file_the_code_uses(stack: Harness) -> None:
    for service in reference.services():
        for e in reference.api_reference(service)["entries"]:
            for kind in ("input", "output"):
                if kind in e:
                    path = f"/schemas/{service}/{e[kind].rstrip('#')}"
                    name = e[kind].rsplit("/", 1)[1].removesuffix(".json#")
                    assert get_public(stack, path) == load(name)


def test_unknown_references_and_schemas_are_taskcluster_shaped_404s(stack: Harness) -> None:
    for path in ("/references/nope/v1/api.json", "/references/queue/v2/api.json", "/schemas/queue/v1/nope.json"):
        r = fetch(stack, path)
        assert r.status_code == 404
        assert r.json_body["code"] == "ResourceNotFound"


def test_the_reference_reflects_the_host_the_request_came_to(stack: Harness) -> None:
    r = fetch(stack, "/references/manifest.json", {"Host": "tc.example.com", "X-Forwarded-Proto": "https"})
    assert r.json_body["references"][0] == "https://tc.example.com/references/queue/v1/api.json"


# --- real responses against the output schemas --------------------------------------------------------
class Checker:
    """Calls endpoints by name and validates each answer against that endpoint's output schema."""

    def __init__(self, stack: Harness) -> None:
        self.stack = stack
        self.entries = {e.name: e for e in reference.entries("queue")}
        self.checked: set[str] = set()

    def __call__(self, name: str, method: str, path: str, body: Any = None) -> Any:
        entry = self.entries[name]
        assert entry.endpoint.method == method
        r = self.stack.call(method, path, body)
        assert r.status_code == 200, (name, r.body)
        answer = r.json_body
        if entry.output:
            try:
                reference.output_validator(entry.output)(answer)
            except JsonSchemaException as e:
                raise AssertionError(f"{name}'s answer does not match {entry.output}: {e}\n{answer}") from None
            self.checked.add(name)
        return answer


def test_real_responses_match_the_output_schemas_of_their_entries(stack: Harness) -> None:
    check = Checker(stack)
    clock = stack.clock
    tq = "proj%2Flinux"

    build = slugid.nice()
    check("createTask", "PUT", f"/task/{build}", _task(stack))
    test = slugid.nice()
    created = check(
        "createTask", "PUT", f"/task/{test}", _task(stack, dependencies=[build], taskGroupId=build, retries=1)
    )
    assert created["status"]["state"] == "unscheduled"
    check("task", "GET", f"/task/{build}")
    check("status", "GET", f"/task/{test}/status")
    check("tasks", "POST", "/tasks?limit=1", {"taskIds": [build, test, slugid.nice()]})
    check("statuses", "POST", "/tasks/status", {"taskIds": [build, test]})
    check("pendingTasks", "GET", f"/pending/{tq}")
    check("taskQueueCounts", "GET", f"/task-queues/{tq}/counts")
    stack.pump.step()
    assert check("listPendingTasks", "GET", f"/task-queues/{tq}/pending")["tasks"]
    stack.pump.step()

    [claim] = check("claimWork", "POST", f"/claim-work/{tq}", {"workerGroup": "wg", "workerId": "w1", "tasks": 1})[
        "tasks"
    ]
    assert claim["status"]["taskId"] == build and "credentials" in claim
    assert check("listClaimedTasks", "GET", f"/task-queues/{tq}/claimed")["tasks"]
    clock.advance(60)
    check("reclaimTask", "POST", f"/task/{build}/runs/0/reclaim")
    artifact = {
        "storageType": "reference",
        "expires": format_date(clock.now() + timedelta(days=1)),
        "contentType": "text/plain",
        "url": "https://example.com/log.txt",
    }
    check("createArtifact", "POST", f"/task/{build}/runs/0/artifacts/public%2Flog.txt", artifact)
    check("listArtifacts", "GET", f"/task/{build}/runs/0/artifacts")
    check("listLatestArtifacts", "GET", f"/task/{build}/artifacts?limit=5")
    check("reportCompleted", "POST", f"/task/{build}/runs/0/completed")
    stack.pump.step()

    assert check("listDependentTasks", "GET", f"/task/{build}/dependents")["tasks"]
    check("getTaskGroup", "GET", f"/task-group/{build}")
    assert len(check("listTaskGroup", "GET", f"/task-group/{build}/list")["tasks"]) == 2
    check("changeTaskPriority", "POST", f"/task/{test}/priority", {"newPriority": "high"})
    stack.pump.step()
    claimed = check("claimTask", "POST", f"/task/{test}/runs/0/claim", {"workerGroup": "wg", "workerId": "w2"})
    assert claimed["status"]["state"] == "running"
    retried = check("reportException", "POST", f"/task/{test}/runs/0/exception", {"reason": "worker-shutdown"})
    assert [r["state"] for r in retried["status"]["runs"]] == ["exception", "pending"]
    check("cancelTask", "POST", f"/task/{test}/cancel")
    check("rerunTask", "POST", f"/task/{test}/rerun")
    check("claimTask", "POST", f"/task/{test}/runs/2/claim", {"workerGroup": "wg", "workerId": "w2"})
    check("reportFailed", "POST", f"/task/{test}/runs/2/failed")
    check("sealTaskGroup", "POST", f"/task-group/{build}/seal")

    unscheduled = slugid.nice()
    check("createTask", "PUT", f"/task/{unscheduled}", _task(stack, dependencies=[unscheduled]))
    check("scheduleTask", "POST", f"/task/{unscheduled}/schedule")

    stack.pump.step()  # the stream records the task queues and workers seen
    check("listTaskQueues", "GET", "/task-queues")
    check("getTaskQueue", "GET", f"/task-queues/{tq}")
    check("listProvisioners", "GET", "/provisioners?limit=1")
    check("getProvisioner", "GET", "/provisioners/proj")
    check("listWorkerTypes", "GET", "/provisioners/proj/worker-types")
    check("getWorkerType", "GET", "/provisioners/proj/worker-types/linux")
    workers = "/provisioners/proj/worker-types/linux/workers"
    until = format_date(clock.now() + timedelta(hours=1))
    check("quarantineWorker", "PUT", f"{workers}/wg/w1", {"quarantineUntil": until, "quarantineInfo": "a test"})
    assert len(check("listWorkers", "GET", f"{workers}?limit=1")["workers"]) == 1
    assert check("getWorker", "GET", f"{workers}/wg/w1")["recentTasks"]
    expires = format_date(clock.now() + timedelta(days=2))
    check("declareWorker", "PUT", "/provisioners/proj/worker-types/linux/wg/w3", {"expires": expires})

    with_output = {name for name, e in check.entries.items() if e.output}
    assert check.checked == with_output, f"no response checked for {sorted(with_output - check.checked)}"


def _task(stack: Harness, **overrides: Any) -> dict[str, Any]:
    from tests.harness import task_def

    return task_def(stack.clock, **overrides)
