"""The provisioner's Lambda handlers, called as Lambda calls them: the 1-minute schedule and the
EventBridge rule for EC2's spot interruption warnings and instance state changes (events shaped as
EventBridge delivers them). EC2 is the AWS stand-in; time is the injected clock."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import boto3
import pytest
from chalice.local import LambdaContext

from app import app
from bench.requests import counting_requests
from chalicelib.domain.model import format_date
from chalicelib.domain.pools import WorkerState
from tests.harness import (
    EC2_POOL,
    EC2_REGION,
    Harness,
    claim_on_pool,
    ec2_pool_body,
    instances,
    register_all,
    registration,
)


def invoke(name: str, event: dict[str, Any]) -> Any:
    return app.handler_map[name](event, LambdaContext(function_name=name, memory_size=512, max_runtime_ms=60_000))


def eventbridge(detail_type: str, detail: dict[str, Any], source: str = "aws.ec2") -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": "2026-11-29T10:00:00Z",
        "region": EC2_REGION,
        "resources": [f"arn:aws:ec2:{EC2_REGION}:123456789012:instance/{detail.get('instance-id', '')}"],
        "detail": detail,
    }


def scheduled(event_id: str) -> dict[str, Any]:
    event = eventbridge("Scheduled Event", {}, source="aws.events")
    return {**event, "id": event_id, "resources": ["arn:aws:events:us-east-1:123456789012:rule/provisioner"]}


@pytest.fixture
def busy_worker(stack: Harness) -> tuple[str, list[dict[str, Any]]]:
    """A pool of one registered EC2 worker holding two claimed runs: (instance id, claims)."""
    ec2 = boto3.client("ec2", region_name=EC2_REGION)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    stack.c.worker_manager.create_worker_pool(EC2_POOL, ec2_pool_body(image))
    stack.create()
    stack.create()
    result = invoke("provisioner", scheduled("run-1"))
    assert result["launched"] == 2 and result["errors"] == []
    register_all(stack, ec2)
    [instance] = instances(ec2)
    claims = claim_on_pool(stack, instance["InstanceId"], 2)
    assert len(claims) == 2
    stack.pump.step()  # the tasks stream records the claims in the worker's recentTasks
    return instance["InstanceId"], claims


def worker_state(stack: Harness, instance_id: str) -> WorkerState:
    worker = stack.c.pool_store.get_worker(EC2_POOL, EC2_REGION, instance_id)
    assert worker is not None
    return worker.state


def test_the_schedule_scans_then_provisions_and_a_retried_invocation_launches_nothing_twice(stack: Harness) -> None:
    ec2 = boto3.client("ec2", region_name=EC2_REGION)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    stack.c.worker_manager.create_worker_pool(EC2_POOL, ec2_pool_body(image))
    for _ in range(5):
        stack.create()
    first = invoke("provisioner", scheduled("event-1"))
    assert first == {"pools": 1, "skipped": 0, "launched": 6, "removed": 0, "stopped": 0, "errors": []}  # 3 of 2
    again = invoke("provisioner", scheduled("event-1"))  # Lambda retries the same event
    assert again["launched"] == 0
    assert len(instances(ec2)) == 3


def test_a_spot_interruption_warning_retries_the_workers_runs_at_once(
    stack: Harness, busy_worker: tuple[str, list[dict[str, Any]]]
) -> None:
    instance_id, claims = busy_worker
    warning = eventbridge(
        "EC2 Spot Instance Interruption Warning", {"instance-id": instance_id, "instance-action": "terminate"}
    )
    assert invoke("ec2_events", warning) == {"instance": instance_id, "handled": True}
    for c in claims:
        runs = stack.status(c["status"]["taskId"])["runs"]
        assert [(r["state"], r["reasonCreated"], r.get("reasonResolved")) for r in runs] == [
            ("exception", "scheduled", "worker-shutdown"),
            ("pending", "retry", None),
        ]
    assert worker_state(stack, instance_id) is WorkerState.STOPPING
    # EventBridge delivers at least once: the same warning again changes nothing
    assert invoke("ec2_events", warning)["handled"] is True
    assert all(len(stack.status(c["status"]["taskId"])["runs"]) == 2 for c in claims)


def test_an_instance_terminated_under_its_worker_stops_it_and_retries_its_runs(
    stack: Harness, busy_worker: tuple[str, list[dict[str, Any]]]
) -> None:
    instance_id, claims = busy_worker
    running = eventbridge("EC2 Instance State-change Notification", {"instance-id": instance_id, "state": "running"})
    assert invoke("ec2_events", running)["handled"] is False  # not an ending: ignored
    assert worker_state(stack, instance_id) is WorkerState.RUNNING

    gone = eventbridge("EC2 Instance State-change Notification", {"instance-id": instance_id, "state": "terminated"})
    assert invoke("ec2_events", gone) == {"instance": instance_id, "handled": True}
    assert worker_state(stack, instance_id) is WorkerState.STOPPED
    for c in claims:
        runs = stack.status(c["status"]["taskId"])["runs"]
        assert runs[0]["reasonResolved"] == "worker-shutdown" and runs[1]["state"] == "pending"
    assert invoke("ec2_events", gone)["handled"] is False  # already stopped


def test_events_about_instances_no_pool_launched_are_ignored(stack: Harness) -> None:
    for event in (
        eventbridge("EC2 Spot Instance Interruption Warning", {"instance-id": "i-0abc", "instance-action": "stop"}),
        eventbridge("EC2 Instance State-change Notification", {"instance-id": "i-0abc", "state": "stopped"}),
    ):
        assert invoke("ec2_events", event) == {"instance": "i-0abc", "handled": False}


def test_a_run_while_another_holds_the_lease_does_nothing_and_says_so(stack: Harness) -> None:
    ec2 = boto3.client("ec2", region_name=EC2_REGION)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    stack.c.worker_manager.create_worker_pool(EC2_POOL, ec2_pool_body(image))
    stack.create()
    now = stack.clock.now()
    # a run of the previous minute's event, still going (Lambda ran the next one beside it)
    stack.c.pool_store.take_lease("event-0/slow", now, now + timedelta(seconds=65))

    second = invoke("provisioner", scheduled("event-1"))
    assert second == {"busy": {"holder": "event-0/slow", "until": format_date(now + timedelta(seconds=65))}, "pools": 0}
    assert instances(ec2) == []  # it launched nothing

    stack.advance(66)  # the slow run died without releasing its lease (a timeout): it expired
    third = invoke("provisioner", scheduled("event-2"))
    assert third["pools"] == 1 and third["launched"] == 2
    assert len(instances(ec2)) == 1
    assert invoke("provisioner", scheduled("event-3"))["pools"] == 1  # released at the end: the next run runs


def test_pools_not_reached_before_the_margin_come_first_in_the_next_run(stack: Harness) -> None:
    ids = [f"proj/pool-{i}" for i in range(4)]
    for pool_id in ids:
        stack.c.worker_manager.create_worker_pool(pool_id, ec2_pool_body("ami-12345678"))
    short = app.handler_map["provisioner"](
        scheduled("event-1"), LambdaContext(function_name="provisioner", memory_size=512, max_runtime_ms=9_000)
    )
    assert short == {"pools": 0, "skipped": 4, "launched": 0, "removed": 0, "stopped": 0, "errors": []}

    p = stack.c.provisioner
    p.concurrency = 1  # one pool at a time: which pools a run reaches is certain
    left = iter([60.0, 60.0, 60.0])  # the lease, then two pools; then the invocation is nearly over
    first = p.run("event-2", lambda: next(left, 5.0))
    assert [r.worker_pool_id for r in first.pools] == ids[:2] and first.skipped == 2
    second = p.run("event-3", lambda: 60.0)
    assert [r.worker_pool_id for r in second.pools] == ids[2:] + ids[:2]  # the two left out first


def test_a_spot_warning_reads_only_the_interrupted_workers_runs(stack: Harness) -> None:
    ec2 = boto3.client("ec2", region_name=EC2_REGION)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    stack.c.worker_manager.create_worker_pool(EC2_POOL, ec2_pool_body(image))
    for _ in range(4):
        stack.create()
    assert invoke("provisioner", scheduled("run-1"))["launched"] == 4
    register_all(stack, ec2)
    first, second = (i["InstanceId"] for i in instances(ec2))
    held = {worker: claim_on_pool(stack, worker, 2) for worker in (first, second)}
    stack.pump.step()

    def warn(instance_id: str) -> int:
        """The AWS requests the spot warning for this instance made."""
        warning = eventbridge(
            "EC2 Spot Instance Interruption Warning", {"instance-id": instance_id, "instance-action": "terminate"}
        )
        with counting_requests() as counts:
            assert invoke("ec2_events", warning)["handled"] is True
        for c in held[instance_id]:
            runs = stack.status(c["status"]["taskId"])["runs"]
            assert runs[0]["reasonResolved"] == "worker-shutdown" and runs[1]["state"] == "pending"
        return sum(counts.values())

    alone = warn(first)
    for _ in range(150):  # unrelated running tasks on the same queue, held by workers of no pool
        stack.create()
    for n in range(5):
        assert len(claim_on_pool(stack, f"other-{n}", 30)) == 30
    stack.pump.step()
    assert stack.c.queue.queue_counts(EC2_POOL)[1] == 152
    assert warn(second) == alone  # the same work, whatever else runs


def test_a_spot_warning_finds_a_long_run_older_than_the_workers_recent_claims(
    stack: Harness, busy_worker: tuple[str, list[dict[str, Any]]]
) -> None:
    instance_id, claims = busy_worker
    long_run = claims[0]
    stack.call("POST", f"/task/{claims[1]['status']['taskId']}/runs/0/completed")
    for _ in range(20):  # its other slot works through 20 short tasks: the long run leaves recentTasks
        stack.advance(1)
        stack.create()
        [short] = claim_on_pool(stack, instance_id, 1)
        assert stack.call("POST", f"/task/{short['status']['taskId']}/runs/0/completed").status_code == 200
    stack.pump.step()
    path = f"/provisioners/proj/worker-types/linux/workers/{EC2_REGION}/{instance_id}"
    recent = stack.call("GET", path).json_body["recentTasks"]  # the queue's getWorker
    assert len(recent) == 20 and long_run["status"]["taskId"] not in {t["taskId"] for t in recent}

    warning = eventbridge(
        "EC2 Spot Instance Interruption Warning", {"instance-id": instance_id, "instance-action": "terminate"}
    )
    assert invoke("ec2_events", warning)["handled"] is True
    runs = stack.status(long_run["status"]["taskId"])["runs"]
    assert runs[0]["reasonResolved"] == "worker-shutdown" and runs[1]["state"] == "pending"


def test_one_pools_failure_is_its_own_error_and_the_other_pools_launch(stack: Harness, monkeypatch: Any) -> None:
    ec2 = boto3.client("ec2", region_name=EC2_REGION)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    broken = ec2_pool_body(image)
    broken["config"]["launchConfigs"][0]["launchConfig"]["SubnetId"] = "subnet-nope"  # EC2 refuses it
    pools = {"proj/a": ec2_pool_body(image), "proj/b": broken, "proj/c": ec2_pool_body(image)}
    for pool_id, body in pools.items():
        stack.c.worker_manager.create_worker_pool(pool_id, body)
        stack.create(taskQueueId=pool_id)
    answer = invoke("provisioner", scheduled("event-1"))
    assert answer["pools"] == 3 and answer["launched"] == 4  # a and c: one instance of 2 each
    assert len(answer["errors"]) == 1 and "subnet-nope" in answer["errors"][0]
    listed = stack.call("GET", "/api/worker-manager/v1/worker-pool-errors/proj%2Fb").json_body["workerPoolErrors"]
    assert [e["kind"] for e in listed] == ["creation-error"]

    # the run's census of the cloud fails, then the cloud fails on one pool's scan: that pool's
    # error; the others are handled, and it still provisions
    ec2_provider = stack.c.provisioner.providers["aws"]
    observe = ec2_provider.observe

    def failing(workers: Any) -> Any:
        if any(w.worker_pool_id == "proj/c" for w in workers):
            raise RuntimeError("RequestLimitExceeded: DescribeInstances")
        return observe(workers)

    def census_failing(regions: Any) -> Any:
        raise RuntimeError("RequestLimitExceeded: DescribeInstances")

    monkeypatch.setattr(ec2_provider, "observe", failing)
    monkeypatch.setattr(ec2_provider, "census", census_failing)
    [c_worker] = stack.c.pool_store.alive_workers("proj/c")
    r = stack.call("POST", "/api/worker-manager/v1/worker/register", registration(ec2, c_worker.worker_id), None)
    assert r.status_code == 200, r.body
    for _ in range(3):  # 4 pending on proj/c, its running worker's 2 slots idle: one more instance of 2
        stack.create(taskQueueId="proj/c")
    again = invoke("provisioner", scheduled("event-2"))
    assert again["pools"] == 3 and "RequestLimitExceeded: DescribeInstances" in again["errors"]
    assert again["launched"] == 2  # proj/c launched all the same
