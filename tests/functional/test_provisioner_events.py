"""The provisioner's Lambda handlers, called as Lambda calls them: the 1-minute schedule and the
EventBridge rule for EC2's spot interruption warnings and instance state changes (events shaped as
EventBridge delivers them). EC2 is the AWS stand-in; time is the injected clock."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest
from chalice.local import LambdaContext

from app import app
from chalicelib.domain.pools import WorkerState
from tests.harness import EC2_POOL, EC2_REGION, Harness, claim_on_pool, ec2_pool_body, instances, register_all


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
    assert first == {"pools": 1, "launched": 6, "removed": 0, "stopped": 0, "errors": []}  # 3 instances of 2
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
