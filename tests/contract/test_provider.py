"""Provider: where workers run. Launches are all or none, observed, and ended."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.domain.pools import LaunchConfig, PoolWorker, WorkerPool, WorkerState
from chalicelib.domain.provisioning import CloudState, Launch
from chalicelib.services.ports import Launched, LaunchFailed
from tests.contract.backends import EC2_REGION, Cloud, moto_xfail

T0 = datetime(2030, 1, 1, tzinfo=UTC)
POOL = WorkerPool("proj/linux", "aws", "d", "ops@example.com", False, {}, T0, T0)
ALIVE = (CloudState.PENDING, CloudState.RUNNING)


def launch(cloud: Cloud, instances: int = 2, **spec: object) -> Launch:
    config = LaunchConfig("lc1", EC2_REGION, {"ImageId": cloud.image, "InstanceType": "m5.large", **spec}, 2)
    return Launch(config, instances)


def as_worker(started: Launched) -> PoolWorker:
    return PoolWorker(
        "proj/linux", started.worker_group, started.worker_id, "aws", "lc1", WorkerState.REQUESTED, 2, T0, T0, T0, T0
    )


def test_a_launch_starts_every_instance_asked_for_in_the_configs_region(cloud: Cloud) -> None:
    started = cloud.provider.launch(POOL, launch(cloud, 3), {"rootUrl": "https://example.com"}, "token-1")
    assert len(started) == 3 and len({s.worker_id for s in started}) == 3
    assert all(s.worker_group == EC2_REGION for s in started)
    seen = cloud.provider.observe([as_worker(s) for s in started])
    assert set(seen) == {(EC2_REGION, s.worker_id) for s in started}
    assert set(seen.values()) <= set(ALIVE)


@moto_xfail("moto's RunInstances ignores ClientToken; EC2 answers a token used before with the same instances")
def test_a_launch_retried_with_its_token_starts_nothing_more(cloud: Cloud) -> None:
    first = cloud.provider.launch(POOL, launch(cloud), {}, "token-2")
    again = cloud.provider.launch(POOL, launch(cloud), {}, "token-2")
    assert sorted(s.worker_id for s in again) == sorted(s.worker_id for s in first)


def test_a_refused_launch_raises_launch_failed_with_the_clouds_code(cloud: Cloud) -> None:
    spec = cloud.refuse()
    with pytest.raises(LaunchFailed) as failed:
        cloud.provider.launch(POOL, launch(cloud, **spec), {}, "token-3")
    assert failed.value.code == "InvalidSubnetID.NotFound"


def test_terminated_workers_are_seen_ending_and_the_others_not(cloud: Cloud) -> None:
    workers = [as_worker(s) for s in cloud.provider.launch(POOL, launch(cloud), {}, "token-4")]
    cloud.provider.terminate(workers[:1])
    seen = cloud.provider.observe(workers)
    assert seen[(EC2_REGION, workers[0].worker_id)] in (CloudState.SHUTTING_DOWN, CloudState.TERMINATED)
    assert seen[(EC2_REGION, workers[1].worker_id)] in ALIVE


def test_an_unknown_worker_is_not_found_and_ending_it_is_no_error(cloud: Cloud) -> None:
    unknown = PoolWorker(
        "proj/linux", EC2_REGION, "i-0123456789abcdef0", "aws", "lc1", WorkerState.RUNNING, 2, T0, T0, T0, T0
    )
    known = [as_worker(s) for s in cloud.provider.launch(POOL, launch(cloud, 1), {}, "token-5")]
    cloud.provider.terminate([unknown, *known])
    seen = cloud.provider.observe([unknown, *known])
    assert seen[(EC2_REGION, unknown.worker_id)] == CloudState.NOT_FOUND
    assert seen[(EC2_REGION, known[0].worker_id)] in (CloudState.SHUTTING_DOWN, CloudState.TERMINATED)


def test_a_census_lists_the_instances_of_the_regions_asked_for_and_not_those_ended(cloud: Cloud) -> None:
    workers = [as_worker(s) for s in cloud.provider.launch(POOL, launch(cloud), {}, "token-6")]
    cloud.provider.terminate(workers[:1])
    seen = cloud.provider.census([EC2_REGION])
    ended, alive = ((w.worker_group, w.worker_id) for w in workers)
    assert seen[alive] in ALIVE
    assert seen.get(ended, CloudState.NOT_FOUND) in (CloudState.SHUTTING_DOWN, *CloudState.GONE)
    assert cloud.provider.census(["eu-north-1"]) == {}  # another region: none of these
