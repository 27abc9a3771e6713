"""The AWS provider: workers are EC2 spot instances, one RunInstances call per launch.

- Spot unless the launch specification says otherwise: a spec without `InstanceMarketOptions`
  gets one-time spot options (interruption: terminate); an explicit `"InstanceMarketOptions": {}`
  asks for on-demand capacity.
- `MinCount = MaxCount` (all or nothing), `ClientToken` = the launch's idempotency token,
  `InstanceInitiatedShutdownBehavior = terminate` (a worker that exits ends its instance).
- Tags on the instance and its volumes name the pool and the launch config; they are merged with
  the spec's own TagSpecifications per resource type (EC2 refuses a resource type twice).
- The worker's user data is JSON (what the reference worker reads at boot).

Throttling (RequestLimitExceeded) is retried by botocore's standard retry mode; still throttled after
those retries it becomes LaunchThrottled (the provisioner launches nothing more in that region until
its next run, and records no error); any other refusal becomes LaunchFailed, which the provisioner
records as a pool error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from typing import Any

from botocore.exceptions import ClientError

from ..domain.pools import PoolWorker, WorkerPool
from ..domain.provisioning import CloudState, Launch, WorkerKey
from ..services.ports import Launched, LaunchFailed, LaunchThrottled

SPOT = {
    "MarketType": "spot",
    "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"},
}
DESCRIBE_CHUNK = 200
CENSUS_PAGE = 1000  # DescribeInstances' largest page
# What a census lists: every state but terminated (an instance stays listed as terminated for about
# an hour; left out, it is not-found, which the scan treats alike).
LISTED_STATES = ["pending", "running", "shutting-down", "stopping", "stopped"]
THROTTLED = frozenset({"RequestLimitExceeded", "Throttling", "ThrottlingException"})  # EC2's rate refusals


DEFAULT_OWNER = "taskqueue"
# Workers read their metadata with session tokens only (IMDSv2): a request forged through a task
# (SSRF) cannot reach the instance's credentials. The provisioner's IAM policy requires it too.
METADATA_OPTIONS = {"HttpTokens": "required", "HttpEndpoint": "enabled"}


def owner_of(queue_prefix: str) -> str:
    """The `ManagedBy` tag of a stage's instances: its queue prefix without the dash
    (`taskqueue-dev`), so one stage's provisioner may end only its own workers."""
    return queue_prefix.rstrip("-") or DEFAULT_OWNER


def _tags(pool: WorkerPool, launch: Launch, owner: str = DEFAULT_OWNER) -> list[dict[str, str]]:
    return [
        {"Key": "CreatedBy", "Value": f"taskqueue-wm-{pool.provider_id}"},
        {"Key": "ManagedBy", "Value": owner},
        {"Key": "Owner", "Value": pool.owner},
        {"Key": "Name", "Value": pool.worker_pool_id},
        {"Key": "WorkerPoolId", "Value": pool.worker_pool_id},
        {"Key": "LaunchConfigId", "Value": launch.launch_config.launch_config_id},
    ]


def _tag_specifications(spec: dict[str, Any], tags: list[dict[str, str]]) -> list[dict[str, Any]]:
    merged: dict[str, list[dict[str, str]]] = {}
    for ts in spec.get("TagSpecifications") or []:
        merged.setdefault(ts["ResourceType"], []).extend(ts.get("Tags") or [])
    for resource in ("instance", "volume"):
        ours = {t["Key"] for t in tags}
        merged[resource] = [t for t in merged.get(resource, []) if t["Key"] not in ours] + tags
    return [{"ResourceType": r, "Tags": t} for r, t in merged.items()]


class Ec2Provider:
    def __init__(
        self,
        ec2: Callable[[str], Any],
        instance_profile: str = "",
        provider_id: str = "aws",
        owner: str = DEFAULT_OWNER,
    ) -> None:
        """`ec2(region)` returns a boto3 EC2 client for that region; `instance_profile` (an ARN)
        gives the workers AWS credentials to read their SQS queues (claim mode sqs); `owner` is the
        `ManagedBy` tag of every instance launched (`owner_of(queue_prefix)`)."""
        self.ec2 = ec2
        self.instance_profile = instance_profile
        self.provider_id = provider_id
        self.owner = owner

    def launch(self, pool: WorkerPool, launch: Launch, user_data: dict[str, Any], token: str) -> list[Launched]:
        lc = launch.launch_config
        spec = dict(lc.launch_spec)
        market = spec.get("InstanceMarketOptions", SPOT)
        spec.pop("InstanceMarketOptions", None)
        if market:
            spec["InstanceMarketOptions"] = market
        spec.setdefault("InstanceInitiatedShutdownBehavior", "terminate")
        spec["MetadataOptions"] = {**(spec.get("MetadataOptions") or {}), **METADATA_OPTIONS}
        if self.instance_profile:
            spec["IamInstanceProfile"] = {"Arn": self.instance_profile}
        spec.update(
            MinCount=launch.instances,
            MaxCount=launch.instances,
            ClientToken=token,
            UserData=json.dumps(user_data),  # boto3 base64-encodes RunInstances' UserData itself
            TagSpecifications=_tag_specifications(spec, _tags(pool, launch, self.owner)),
        )
        try:
            reservation = self.ec2(lc.region).run_instances(**spec)
        except ClientError as err:
            error = err.response.get("Error", {})
            code = error.get("Code", "Unknown")
            refused = LaunchThrottled if code in THROTTLED else LaunchFailed
            raise refused(code, error.get("Message", str(err))) from err
        return [
            Launched(
                worker_group=lc.region,
                worker_id=instance["InstanceId"],
                provider_data={
                    "region": lc.region,
                    "imageId": instance.get("ImageId"),
                    "instanceType": instance.get("InstanceType"),
                    "availabilityZone": (instance.get("Placement") or {}).get("AvailabilityZone"),
                    "privateIp": instance.get("PrivateIpAddress"),
                    "lifecycle": instance.get("InstanceLifecycle", "on-demand"),
                    "state": (instance.get("State") or {}).get("Name"),
                },
            )
            for instance in reservation["Instances"]
        ]

    def observe(self, workers: Sequence[PoolWorker]) -> dict[WorkerKey, str]:
        seen: dict[WorkerKey, str] = {}
        for region, ids in _by_region(workers).items():
            for start in range(0, len(ids), DESCRIBE_CHUNK):
                chunk = ids[start : start + DESCRIBE_CHUNK]
                # A filter, not InstanceIds: one unknown id must not fail the whole call.
                seen.update(self._states(region, [{"Name": "instance-id", "Values": chunk}]))
        return {
            (w.worker_group, w.worker_id): seen.get((w.worker_group, w.worker_id), CloudState.NOT_FOUND)
            for w in workers
        }

    def census(self, regions: Collection[str]) -> dict[WorkerKey, str]:
        """One DescribeInstances listing per region (paginated) of the instances tagged as this
        stage's (`ManagedBy`), not terminated."""
        seen: dict[WorkerKey, str] = {}
        for region in regions:
            mine = [
                {"Name": "tag:ManagedBy", "Values": [self.owner]},
                {"Name": "instance-state-name", "Values": LISTED_STATES},
            ]
            seen.update(self._states(region, mine, CENSUS_PAGE))
        return seen

    def _states(self, region: str, filters: list[dict[str, Any]], page_size: int | None = None) -> dict[WorkerKey, str]:
        """The state of every instance of `region` DescribeInstances lists with `filters` (all pages)."""
        paging = {"PaginationConfig": {"PageSize": page_size}} if page_size else {}
        pages = self.ec2(region).get_paginator("describe_instances").paginate(Filters=filters, **paging)
        return {
            (region, instance["InstanceId"]): instance["State"]["Name"]
            for page in pages
            for reservation in page["Reservations"]
            for instance in reservation["Instances"]
        }

    def terminate(self, workers: Sequence[PoolWorker]) -> None:
        for region, ids in _by_region(workers).items():
            try:
                self.ec2(region).terminate_instances(InstanceIds=ids)
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") != "InvalidInstanceID.NotFound":
                    raise
                # One unknown id fails the whole call: end the others one by one.
                for instance_id in ids:
                    self._terminate_one(region, instance_id)

    def _terminate_one(self, region: str, instance_id: str) -> None:
        try:
            self.ec2(region).terminate_instances(InstanceIds=[instance_id])
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "InvalidInstanceID.NotFound":
                raise


def _by_region(workers: Sequence[PoolWorker]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for w in workers:
        out.setdefault(w.worker_group, []).append(w.worker_id)
    return out
