"""The provisioner end to end on the AWS stand-in: a burst of 100 tasks on a pool of maxCapacity 10.

The pool uses the EC2 provider (moto's EC2); the queue, the stores and the provisioner are the
real ones; time is the injected clock. Each step prints the capacity decision it made.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3

from chalicelib.domain.pools import WorkerState
from tests.harness import (
    EC2_POOL,
    EC2_REGION,
    WM,
    Harness,
    claim_on_pool,
    ec2_pool_body,
    instances,
    register_all,
    registration,
)


def test_a_burst_of_100_tasks_scales_to_10_and_back_to_zero(stack: Harness, capsys: Any) -> None:
    ec2 = boto3.client("ec2", region_name=EC2_REGION)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    stack.c.worker_manager.create_worker_pool(EC2_POOL, ec2_pool_body(image))
    p = stack.c.provisioner
    task_ids = [stack.create() for _ in range(100)]

    def decide(run: str) -> int:
        [report] = p.provision(run)
        print("decision:", report.line())
        return report.launched

    assert decide("run-1") == 10  # 5 instances of capacity 2
    assert len(instances(ec2)) == 5
    assert decide("run-1") == 0  # a retried invocation: nothing twice
    assert decide("run-2") == 0  # 10 requested = the maximum
    assert len(instances(ec2)) == 5

    register_all(stack, ec2)
    workers = stack.c.pool_store.alive_workers(EC2_POOL)
    assert {w.state for w in workers} == {WorkerState.RUNNING}
    held = {w.worker_id: claim_on_pool(stack, w.worker_id, 2) for w in workers}
    assert sum(len(c) for c in held.values()) == 10
    assert decide("run-3") == 0  # 90 pending, 10 claimed, all 10 busy: at the maximum
    [scan] = p.scan()
    assert scan.removed == []

    # a spot interruption: that worker's runs retry at once
    doomed = workers[0]
    assert stack.c.registration.interrupted(doomed.worker_id, "terminate")
    for c in held[doomed.worker_id]:
        status = stack.status(c["status"]["taskId"])
        assert status["runs"][0]["reasonResolved"] == "worker-shutdown"
        assert status["runs"][1]["state"] == "pending"
    assert stack.c.pool_store.get_worker(EC2_POOL, EC2_REGION, doomed.worker_id).state is WorkerState.STOPPING  # type: ignore[union-attr]
    assert decide("run-4") == 0  # the stopping capacity still counts against the maximum

    # the queue drains: everything resolved or cancelled
    for worker_id, claims in held.items():
        if worker_id == doomed.worker_id:
            continue
        for c in claims:
            r = stack.call("POST", f"/task/{c['status']['taskId']}/runs/{c['runId']}/completed")
            assert r.status_code == 200, r.body
    for task_id in task_ids:
        stack.call("POST", f"/task/{task_id}/cancel")
    stack.pump.step()
    ec2.terminate_instances(InstanceIds=[doomed.worker_id])  # EC2 ends the interrupted instance
    [scan] = p.scan()
    print("scan:", scan.line(), "stopped", scan.stopped)
    marked = [w for w in stack.c.pool_store.alive_workers(EC2_POOL) if w.should_terminate]
    assert len(marked) == 4 and scan.stopped == 1  # told to stop; the interrupted one is gone
    asked = stack.call(
        "GET",
        f"{WM}/workers/{EC2_POOL.replace('/', '%2F')}/{EC2_REGION}/{marked[0].worker_id}/should-terminate",
    )
    assert asked.status_code == 200 and asked.json_body == {"terminate": True, "reason": "over capacity"}
    assert decide("run-5") == 0
    [scan] = p.scan()  # still idle at the next scan: terminated
    print("scan:", scan.line())
    assert len(scan.removed) == 4
    assert instances(ec2) == []
    [scan] = p.scan()  # EC2 reports them terminated
    assert stack.c.pool_store.alive_workers(EC2_POOL) == []
    out = capsys.readouterr().out
    assert "to_spawn=10" in out


def test_the_user_data_tells_a_worker_where_the_api_and_its_dispatch_queues_are(stack: Harness) -> None:
    ec2 = boto3.client("ec2", region_name=EC2_REGION)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    body = ec2_pool_body(image)
    body["config"]["launchConfigs"][0]["workerConfig"] = {"shell": "bash"}
    body["config"]["launchConfigs"][0]["additionalUserData"] = {"site": "eu-lab"}
    stack.c.worker_manager.create_worker_pool(EC2_POOL, body)
    stack.create()
    stack.c.provisioner.provision("run-1")
    [instance] = instances(ec2)
    raw = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
    data = json.loads(base64.b64decode(raw["UserData"]["Value"]))
    assert len(data.pop("registrationToken")) >= 32
    assert data == {
        "site": "eu-lab",
        "rootUrl": stack.c.provisioner.root_url,
        "workerPoolId": EC2_POOL,
        "providerId": "aws",
        "workerGroup": EC2_REGION,
        "launchConfigId": "m5",
        "workerConfig": {"shell": "bash"},
        "capacity": 2,
        "queuePrefix": stack.settings.queue_prefix,
        "awsRegion": stack.settings.region,
    }


def test_additional_user_data_may_not_set_what_the_provisioner_writes(stack: Harness) -> None:
    body = ec2_pool_body("ami-12345678")
    body["config"]["launchConfigs"][0]["additionalUserData"] = {"queuePrefix": "elsewhere-"}
    r = stack.call("PUT", f"/api/worker-manager/v1/worker-pool/{EC2_POOL.replace('/', '%2F')}", body)
    assert r.status_code == 400 and "additionalUserData may not set queuePrefix" in r.json_body["message"], r.body


def one_instance(stack: Harness, body: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """The pool (pool_body unless given), one task, one provisioner run: (EC2 client, its instance)."""
    ec2 = boto3.client("ec2", region_name=EC2_REGION)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    stack.c.worker_manager.create_worker_pool(EC2_POOL, body or ec2_pool_body(image))
    stack.create()
    stack.c.provisioner.provision("run-1")
    [instance] = instances(ec2)
    return ec2, instance


def test_remove_worker_ends_the_instance_and_the_worker_stops(stack: Harness) -> None:
    ec2, instance = one_instance(stack)
    path = f"/api/worker-manager/v1/workers/{EC2_POOL.replace('/', '%2F')}/{EC2_REGION}/{instance['InstanceId']}"

    r = stack.call("DELETE", path)
    assert r.status_code == 200 and r.json_body == {}, r.body
    assert instances(ec2) == []  # terminated
    assert stack.call("GET", path).json_body["state"] == "stopping"
    assert stack.call("DELETE", path).status_code == 200  # already on its way: left as it is
    stack.c.provisioner.scan()  # EC2 reports it terminated
    assert stack.call("GET", path).json_body["state"] == "stopped"

    missing = stack.call("DELETE", path.rsplit("/", 1)[0] + "/i-0123456789abcdef0")
    assert missing.status_code == 404 and missing.json_body["code"] == "ResourceNotFound"


def test_a_registered_worker_reregisters_with_its_one_time_secret(stack: Harness) -> None:
    ec2, instance = one_instance(stack)
    registered = stack.call(
        "POST", "/api/worker-manager/v1/worker/register", registration(ec2, instance["InstanceId"]), credentials=None
    )
    assert registered.status_code == 200, registered.body
    first = registered.json_body
    assert len(first["secret"]) == 44
    body = {
        "workerPoolId": EC2_POOL,
        "workerGroup": EC2_REGION,
        "workerId": instance["InstanceId"],
        "secret": first["secret"],
    }
    path = "/api/worker-manager/v1/worker/reregister"

    stack.advance(3600)
    renewed = stack.call("POST", path, body, credentials=first["credentials"])
    assert renewed.status_code == 200, renewed.body
    assert set(renewed.json_body) == {"expires", "credentials", "secret"}
    assert renewed.json_body["expires"] > first["expires"] and renewed.json_body["secret"] != first["secret"]
    worker = stack.c.pool_store.get_worker(EC2_POOL, EC2_REGION, instance["InstanceId"])
    assert worker is not None and worker.terminate_after is not None
    assert worker.terminate_after.isoformat()[:19] == renewed.json_body["expires"][:19]

    used = stack.call("POST", path, body, credentials=renewed.json_body["credentials"])  # the secret is one-time
    assert used.status_code == 400 and used.json_body["code"] == "InputError", used.body
    again = {**body, "secret": renewed.json_body["secret"]}
    other = {**again, "workerId": "i-0123456789abcdef0"}  # another worker's name: not in these credentials
    refused = stack.call("POST", path, other, credentials=renewed.json_body["credentials"])
    assert refused.status_code == 403 and refused.json_body["code"] == "InsufficientScopes"
    assert stack.call("POST", path, again, credentials=renewed.json_body["credentials"]).status_code == 200
