"""The AWS provider against the AWS stand-in: spot instances with the right tags, token and user data."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.adapters.ec2_provider import Ec2Provider, owner_of
from chalicelib.domain.pools import LaunchConfig, PoolWorker, WorkerPool, WorkerState
from chalicelib.domain.provisioning import CloudState, Launch
from chalicelib.services.ports import LaunchFailed, LaunchThrottled

NOW = datetime(2026, 11, 28, tzinfo=UTC)
REGION = "us-west-2"


@pytest.fixture
def ec2() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)


def ami(ec2: Any) -> str:
    return str(ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"])


def pool() -> WorkerPool:
    return WorkerPool("proj/linux", "aws", "d", "ops@example.com", False, {}, NOW, NOW)


def launch(image: str, instances: int = 2, **spec: Any) -> Launch:
    return Launch(LaunchConfig("lc1", REGION, {"ImageId": image, "InstanceType": "m5.large", **spec}, 2), instances)


def worker(launched: Any) -> PoolWorker:
    return PoolWorker(
        "proj/linux",
        launched.worker_group,
        launched.worker_id,
        "aws",
        "lc1",
        WorkerState.REQUESTED,
        2,
        NOW,
        NOW,
        NOW,
        NOW,
    )


def provider(ec2: Any) -> Ec2Provider:
    return Ec2Provider(lambda region: boto3.client("ec2", region_name=region))


def test_launches_spot_instances_with_tags_token_and_user_data(ec2: Any) -> None:
    spec_tags = [{"ResourceType": "instance", "Tags": [{"Key": "team", "Value": "ci"}, {"Key": "Name", "Value": "x"}]}]
    started = provider(ec2).launch(pool(), launch(ami(ec2), TagSpecifications=spec_tags), {"rootUrl": "u"}, "tok-1")
    assert len(started) == 2 and all(s.worker_group == REGION for s in started)
    described = ec2.describe_instances(InstanceIds=[s.worker_id for s in started])
    instances = [i for r in described["Reservations"] for i in r["Instances"]]
    for instance in instances:
        assert instance["InstanceLifecycle"] == "spot"
        assert instance["ClientToken"] == "tok-1"
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["WorkerPoolId"] == "proj/linux" and tags["LaunchConfigId"] == "lc1"
        assert tags["ManagedBy"] == "taskqueue" and tags["Owner"] == "ops@example.com"
        assert tags["team"] == "ci" and tags["Name"] == "proj/linux"  # the spec's own tags kept, ours win
    user_data = ec2.describe_instance_attribute(InstanceId=instances[0]["InstanceId"], Attribute="userData")
    assert json.loads(base64.b64decode(user_data["UserData"]["Value"])) == {"rootUrl": "u"}
    assert started[0].provider_data["lifecycle"] == "spot"


def test_an_explicitly_empty_market_option_is_on_demand(ec2: Any) -> None:
    started = provider(ec2).launch(pool(), launch(ami(ec2), 1, InstanceMarketOptions={}), {}, "tok-2")
    instance = ec2.describe_instances(InstanceIds=[started[0].worker_id])["Reservations"][0]["Instances"][0]
    assert "InstanceLifecycle" not in instance


def test_a_refused_launch_raises_launch_failed(ec2: Any) -> None:
    with pytest.raises(LaunchFailed) as failed:
        provider(ec2).launch(pool(), launch(ami(ec2), SubnetId="subnet-nope"), {}, "tok-3")
    assert failed.value.code == "InvalidSubnetID.NotFound"


def test_a_launch_still_throttled_after_the_clients_retries_raises_launch_throttled(ec2: Any) -> None:
    from botocore.stub import Stubber

    with Stubber(ec2) as stub:
        for _ in range(10):  # the first call and every retry of the client's
            stub.add_client_error("run_instances", "RequestLimitExceeded", "Request limit exceeded.", 503)
        with pytest.raises(LaunchThrottled) as throttled:
            Ec2Provider(lambda region: ec2).launch(pool(), launch("ami-12345678"), {}, "tok-throttled")
    assert throttled.value.code == "RequestLimitExceeded"
    with pytest.raises(LaunchFailed) as failed:  # any other refusal stays a plain LaunchFailed
        provider(ec2).launch(pool(), launch(ami(ec2), SubnetId="subnet-nope"), {}, "tok-other")
    assert not isinstance(failed.value, LaunchThrottled)


def test_observe_and_terminate(ec2: Any) -> None:
    p = provider(ec2)
    workers = [worker(s) for s in p.launch(pool(), launch(ami(ec2)), {}, "tok-4")]
    unknown = PoolWorker(
        "proj/linux", REGION, "i-0123456789abcdef0", "aws", "lc1", WorkerState.RUNNING, 2, NOW, NOW, NOW, NOW
    )
    seen = p.observe([*workers, unknown])
    assert seen[(REGION, workers[0].worker_id)] in (CloudState.PENDING, CloudState.RUNNING)
    assert seen[(REGION, unknown.worker_id)] == CloudState.NOT_FOUND
    p.terminate([workers[0], unknown])  # an unknown instance is not an error
    assert p.observe(workers)[(REGION, workers[0].worker_id)] in ("shutting-down", "terminated")
    assert p.observe(workers)[(REGION, workers[1].worker_id)] in (CloudState.PENDING, CloudState.RUNNING)


def test_instances_require_imdsv2_and_carry_their_stage_as_owner_whatever_the_spec_says(ec2: Any) -> None:
    stage = Ec2Provider(lambda region: boto3.client("ec2", region_name=region), owner=owner_of("taskqueue-dev-"))
    imdsv1 = {"HttpTokens": "optional", "HttpEndpoint": "disabled", "HttpPutResponseHopLimit": 2}
    started = stage.launch(pool(), launch(ami(ec2), MetadataOptions=imdsv1), {}, "tok-imds")
    described = ec2.describe_instances(InstanceIds=[s.worker_id for s in started])
    for instance in (i for r in described["Reservations"] for i in r["Instances"]):
        options = instance["MetadataOptions"]
        assert (options["HttpTokens"], options["HttpEndpoint"], options["HttpPutResponseHopLimit"]) == (
            "required",
            "enabled",
            2,
        )
        assert {t["Key"]: t["Value"] for t in instance["Tags"]}["ManagedBy"] == "taskqueue-dev"


def test_a_census_lists_its_own_stages_instances_only(ec2: Any) -> None:
    dev = Ec2Provider(lambda region: boto3.client("ec2", region_name=region), owner=owner_of("taskqueue-dev-"))
    prod = Ec2Provider(lambda region: boto3.client("ec2", region_name=region), owner=owner_of("taskqueue-prod-"))
    ours = dev.launch(pool(), launch(ami(ec2)), {}, "tok-dev")
    theirs = prod.launch(pool(), launch(ami(ec2), 1), {}, "tok-prod")
    ec2.run_instances(ImageId=ami(ec2), MinCount=1, MaxCount=1)  # nobody's: no ManagedBy tag
    seen = dev.census([REGION])
    assert set(seen) == {(REGION, s.worker_id) for s in ours}
    assert set(prod.census([REGION])) == {(REGION, s.worker_id) for s in theirs}
    dev.terminate([worker(ours[0])])
    assert set(dev.census([REGION])) == {(REGION, ours[1].worker_id)}  # terminated: left out
