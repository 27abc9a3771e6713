"""The estimator, the launch split and the scan planner (domain/provisioning.py): pure arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain.errors import InputError
from chalicelib.domain.pools import (
    LaunchConfig,
    PoolConfig,
    PoolError,
    PoolWorker,
    QueueActivity,
    WorkerState,
    pool_config,
    terminate_after,
)
from chalicelib.domain.provisioning import (
    CloudState,
    PoolStats,
    ScanPlan,
    errors_matter,
    estimate,
    plan_launches,
    plan_scan,
    pool_stats,
    rotation,
    target_capacity,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def lc(lc_id: str = "a", cpi: int = 1, max_capacity: int | None = None, weight: float = 1.0) -> LaunchConfig:
    return LaunchConfig(lc_id, "us-east-1", {"ImageId": "ami-1"}, cpi, weight, max_capacity)


def cfg(min_c: int = 0, max_c: int = 10, ratio: float = 1.0, lcs: tuple[LaunchConfig, ...] = (lc(),)) -> PoolConfig:
    return PoolConfig(min_c, max_c, ratio, registration_timeout=600, queue_inactivity_timeout=1200, launch_configs=lcs)


def worker(
    wid: str,
    state: WorkerState = WorkerState.RUNNING,
    capacity: int = 1,
    lc_id: str = "a",
    age: float = 3600,
    registered: bool = True,
    should_terminate: str = "",
    terminate_in: float | None = 86400,
) -> PoolWorker:
    created = NOW - timedelta(seconds=age)
    return PoolWorker(
        "prov/pool",
        "us-east-1",
        wid,
        "aws",
        lc_id,
        state,
        capacity,
        created,
        created,
        created,
        NOW + timedelta(days=7),
        None if terminate_in is None else NOW + timedelta(seconds=terminate_in),
        registered=created if registered else None,
        should_terminate=should_terminate,
    )


def stats(existing: int = 0, stopping: int = 0, requested: int = 0, alive: int | None = None) -> PoolStats:
    return PoolStats(existing, stopping, requested, 0, existing + stopping if alive is None else alive, {})


# --- the estimator -----------------------------------------------------------------------------------
def test_taskclusters_worked_example_asks_for_twenty() -> None:
    # max 100, pending 30, claimed 10, existing 15 (10 busy + 5 requested) -> 20, not 25.
    est = estimate(cfg(max_c=100), stats(existing=15, requested=5), pending=30, claimed=10)
    assert (est.idle, est.adjusted_pending, est.desired, est.to_spawn) == (5, 25, 40, 20)


def test_idle_capacity_absorbs_pending_tasks() -> None:
    assert estimate(cfg(), stats(existing=4), pending=3, claimed=0).to_spawn == 0


def test_stopping_capacity_counts_against_the_maximum() -> None:
    est = estimate(cfg(max_c=10), stats(existing=2, stopping=8), pending=50, claimed=2)
    assert est.desired == 10 and est.to_spawn == 0


def test_min_capacity_is_kept_with_an_empty_queue() -> None:
    assert estimate(cfg(min_c=3), stats(), pending=0, claimed=0).to_spawn == 3


def test_scaling_ratio_scales_pending() -> None:
    assert estimate(cfg(max_c=100, ratio=0.5), stats(), pending=10, claimed=0).to_spawn == 5


def test_over_provisioning_alarm() -> None:
    assert estimate(cfg(max_c=20), stats(existing=30), 0, 0).over_provisioned
    assert not estimate(cfg(max_c=20), stats(existing=24), 0, 0).over_provisioned


def test_scale_in_target_ignores_existing_workers() -> None:
    assert target_capacity(cfg(min_c=1, max_c=10), pending=3, claimed=2) == 5
    assert target_capacity(cfg(min_c=1, max_c=10), pending=0, claimed=0) == 1
    assert target_capacity(cfg(max_c=10), pending=100, claimed=0) == 10


def test_pool_stats_by_state_and_quarantine() -> None:
    workers = [
        worker("i-1"),
        worker("i-2", WorkerState.REQUESTED, capacity=2),
        worker("i-3", WorkerState.STOPPING),
        worker("i-4", WorkerState.STOPPED),
        worker("i-5"),
    ]
    quarantined = {("us-east-1", "i-5"): QueueActivity(quarantine_until=NOW + timedelta(hours=1))}
    s = pool_stats(workers, quarantined, NOW)
    assert (s.existing, s.requested, s.stopping, s.quarantined, s.alive) == (3, 2, 1, 1, 5)


# --- the launch split --------------------------------------------------------------------------------
def test_split_evenly_in_whole_instances() -> None:
    config = cfg(max_c=100, lcs=(lc("a", cpi=2), lc("b", cpi=3)))
    launches = plan_launches(config, stats(), estimate(config, stats(), 10, 0), [], NOW, shuffle=lambda _: None)
    assert [(x.launch_config.launch_config_id, x.instances, x.capacity) for x in launches] == [("a", 3, 6), ("b", 2, 6)]


def test_never_over_the_pool_maximum_even_when_counts_disagree() -> None:
    config = cfg(max_c=10, lcs=(lc("a", cpi=4),))
    # the estimator believes there is room for 10, but 7 capacity is alive (e.g. quarantined)
    disagreeing = PoolStats(existing=0, stopping=0, requested=0, quarantined=7, alive=7)
    launches = plan_launches(config, disagreeing, estimate(config, disagreeing, 50, 0), [], NOW)
    assert launches == []  # 7 + 4 > 10
    launches = plan_launches(config, stats(), estimate(config, stats(), 50, 0), [], NOW)
    assert sum(x.capacity for x in launches) == 8  # two instances of 4; a third would make 12


def test_launch_config_maximum() -> None:
    config = cfg(max_c=100, lcs=(lc("a", max_capacity=3), lc("b")))
    s = PoolStats(3, 0, 0, 0, 3, {"a": 3})
    launches = plan_launches(config, s, estimate(config, s, 10, 3), [], NOW, shuffle=lambda _: None)
    assert [x.launch_config.launch_config_id for x in launches] == ["b"]


def test_recent_errors_take_a_config_out_for_an_hour() -> None:
    config = cfg(max_c=100, lcs=(lc("a"), lc("b")))
    error = PoolError("prov/pool", "e1", NOW - timedelta(minutes=10), "creation-error", "t", "d", "a")
    est = estimate(config, stats(), 4, 0)
    assert [x.launch_config.launch_config_id for x in plan_launches(config, stats(), est, [error], NOW)] == ["b"]
    old = PoolError("prov/pool", "e1", NOW - timedelta(minutes=61), "creation-error", "t", "d", "a")
    assert len(plan_launches(config, stats(), est, [old], NOW)) == 2


def test_a_single_config_is_never_starved_by_its_errors() -> None:
    config = cfg(max_c=10)
    error = PoolError("prov/pool", "e1", NOW, "creation-error", "t", "d", "a")
    assert plan_launches(config, stats(), estimate(config, stats(), 2, 0), [error], NOW)[0].instances == 2


def test_errors_change_nothing_for_a_single_config_so_they_need_not_be_read() -> None:
    errors = [PoolError("prov/pool", f"e{i}", NOW, "creation-error", "t", "d", "a") for i in range(3)]
    for weight in (0.0, 0.5, 1.0):
        config = cfg(max_c=10, lcs=(lc("a", weight=weight),))
        assert not errors_matter(config)
        for alive in range(0, 11, 2):
            s = PoolStats(alive, 0, 0, 0, alive, {"a": alive})
            est = estimate(config, s, 12, alive)
            assert plan_launches(config, s, est, errors, NOW) == plan_launches(config, s, est, [], NOW)
    assert errors_matter(cfg(lcs=(lc("a"), lc("b"))))


def test_weight_zero_disables_a_config() -> None:
    config = cfg(lcs=(lc("a", weight=0.0),))
    assert plan_launches(config, stats(), estimate(config, stats(), 5, 0), [], NOW) == []


def test_burst_of_100_tasks_on_max_10_converges_without_overshoot() -> None:
    """Ten loops of the provisioner as workers register and drain the queue: never above 10."""
    config = cfg(max_c=10)
    requested = running = 0
    pending = 100
    for _ in range(10):
        s = PoolStats(requested + running, 0, requested, 0, requested + running, {"a": requested + running})
        launches = plan_launches(config, s, estimate(config, s, pending, running), [], NOW)
        requested += sum(x.capacity for x in launches)
        assert requested + running <= 10
        running, requested = running + requested, 0  # they register
        pending = max(0, pending - running)
    assert running == 10


# --- config validation -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "config, message",
    [
        ({"minCapacity": 5, "maxCapacity": 1, "launchConfigs": []}, "exceeds"),
        ({"minCapacity": 0, "maxCapacity": 1, "launchConfigs": [{"region": "r", "launchConfig": {}}]}, "ImageId"),
        (
            {
                "minCapacity": 0,
                "maxCapacity": 1,
                "launchConfigs": [{"region": "r", "launchConfig": {"ImageId": "a", "UserData": "x"}}],
            },
            "UserData",
        ),
        ({"minCapacity": 0, "maxCapacity": 1, "scalingRatio": 2, "launchConfigs": []}, "scalingRatio"),
        ({"minCapacity": 0, "maxCapacity": 1, "lifecycle": {"queueInactivityTimeout": 5}, "launchConfigs": []}, "1200"),
    ],
)
def test_bad_configs_say_what_is_wrong(config: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        pool_config(config)


def test_terminate_after_prefers_the_shorter_registration_timeout() -> None:
    assert terminate_after(cfg(), NOW) == NOW + timedelta(seconds=600)
    assert terminate_after(PoolConfig(0, 1), NOW) == NOW + timedelta(days=4)


# --- the scan planner --------------------------------------------------------------------------------
def scan(workers: list[PoolWorker], **kw: object) -> ScanPlan:
    args: dict[str, object] = dict(activity={}, cloud={}, busy=frozenset(), pending=0, claimed=0, now=NOW)
    args.update(kw)
    return plan_scan(cfg(max_c=10), workers, **args)  # type: ignore[arg-type]


def test_instances_gone_from_the_cloud_are_stopped() -> None:
    gone = worker("i-1")
    stopped = worker("i-2")
    plan = scan([gone, stopped], cloud={("us-east-1", "i-1"): CloudState.NOT_FOUND, ("us-east-1", "i-2"): "stopped"})
    assert plan.stopped == [gone, stopped]
    assert plan.removals == [(stopped, "instance stopped")]


def test_a_worker_that_never_registers_is_removed() -> None:
    late = worker("i-1", WorkerState.REQUESTED, registered=False, terminate_in=-1)
    on_time = worker("i-2", WorkerState.REQUESTED, registered=False, terminate_in=60)
    assert scan([late, on_time]).removals == [(late, "did not register in time")]


def test_zombies_are_removed() -> None:
    never = worker("i-1", age=1300)
    silent = worker("i-2")
    active = worker("i-3")
    activity = {
        ("us-east-1", "i-2"): QueueActivity(
            first_claim=NOW - timedelta(hours=1), last_date_active=NOW - timedelta(seconds=1201)
        ),
        ("us-east-1", "i-3"): QueueActivity(
            first_claim=NOW - timedelta(hours=1), last_date_active=NOW - timedelta(seconds=60)
        ),
    }
    plan = scan([never, silent, active], activity=activity, pending=1)
    assert [w.worker_id for w, _ in plan.removals] == ["i-1", "i-2"]


def test_over_capacity_is_marked_then_removed_when_still_idle() -> None:
    active = {("us-east-1", f"i-{n}"): QueueActivity(last_date_active=NOW) for n in range(4)}
    workers = [worker(f"i-{n}", age=100 * (n + 1)) for n in range(4)]  # i-0 newest
    plan = scan(workers, activity=active, pending=1, claimed=1)
    assert plan.target == 2
    assert [(w.worker_id, r) for w, r in plan.marks] == [("i-2", "over capacity"), ("i-3", "over capacity")]
    assert plan.removals == []
    marked = workers[:2] + [
        worker("i-2", age=300, should_terminate="over capacity"),
        worker("i-3", age=400, should_terminate="over capacity"),
    ]
    plan = scan(marked, activity=active, pending=1, claimed=1, busy=frozenset({("us-east-1", "i-3")}))
    assert [(w.worker_id, r) for w, r in plan.removals] == [("i-2", "over capacity, idle")]


def active(*worker_ids: str) -> dict[tuple[str, str], QueueActivity]:
    return {("us-east-1", w): QueueActivity(first_claim=NOW, last_date_active=NOW) for w in worker_ids}


def test_a_two_slot_worker_is_kept_for_one_pending_task() -> None:
    # The target is one slot; the only worker has two: removing it would strand the task.
    w = worker("i-1", capacity=2)
    plan = scan([w], activity=active("i-1"), pending=1)
    assert plan.target == 1
    assert (plan.marks, plan.removals) == ([], [])


def test_the_target_is_rounded_up_to_whole_workers() -> None:
    workers = [worker(f"i-{n}", capacity=2, age=100 * (n + 1)) for n in range(4)]
    plan = scan(workers, activity=active(*(f"i-{n}" for n in range(4))), pending=2, claimed=1)
    assert plan.target == 3
    # two workers (4 slots) cover 3; the older two are over capacity
    assert [(w.worker_id, r) for w, r in plan.marks] == [("i-2", "over capacity"), ("i-3", "over capacity")]


def test_a_worker_that_has_not_claimed_yet_gets_a_grace_period() -> None:
    fresh = worker("i-1", capacity=2, age=10)  # registered 10 s ago, nothing claimed yet
    stale = worker("i-2", capacity=2, age=200)  # registered long ago, nothing claimed
    plan = scan([fresh, stale], pending=0)
    assert [(w.worker_id, r) for w, r in plan.marks] == [("i-2", "over capacity")]
    # once it claimed something, the grace is over: it is judged on the queue's needs alone
    plan = scan([fresh], activity=active("i-1"), pending=0)
    assert [(w.worker_id, r) for w, r in plan.marks] == [("i-1", "over capacity")]


@pytest.mark.parametrize("capacity", [1, 2, 3])
def test_a_pool_serving_single_tasks_does_not_churn(capacity: int) -> None:
    """Estimator and scanner together, scan after scan: one pending task at a time on a min-0
    pool gets one worker, which is neither removed while the task waits nor joined by others."""
    config = cfg(max_c=4 * capacity, lcs=(lc("a", cpi=capacity),))
    workers: list[PoolWorker] = []
    launched = 0
    for round_ in range(10):
        activity = active(*(w.worker_id for w in workers)) if round_ >= 5 else {}
        st = pool_stats(workers, activity, NOW)
        for launch in plan_launches(config, st, estimate(config, st, pending=1, claimed=0), [], NOW):
            launched += launch.instances
            workers += [worker(f"i-{launched}-{i}", capacity=capacity, age=0) for i in range(launch.instances)]
        plan = plan_scan(config, workers, activity, {}, frozenset(), 1, 0, NOW)
        assert (plan.marks, plan.removals) == ([], []), round_
    assert launched == 1


def test_a_mark_is_lifted_when_work_returns() -> None:
    w = worker("i-1", should_terminate="over capacity")
    plan = scan([w], activity={("us-east-1", "i-1"): QueueActivity(last_date_active=NOW)}, pending=5)
    assert plan.marks == [(w, "")]


def test_a_run_starts_where_the_last_one_stopped_and_wraps_around() -> None:
    pools = ["c/x", "a/x", "d/x", "b/x"]
    assert rotation(pools, "") == ["a/x", "b/x", "c/x", "d/x"]
    assert rotation(pools, "c/x") == ["c/x", "d/x", "a/x", "b/x"]
    assert rotation(pools, "bb/x") == ["c/x", "d/x", "a/x", "b/x"]  # deleted meanwhile: the next one
    assert rotation(pools, "z/x") == ["a/x", "b/x", "c/x", "d/x"]  # past the last: from the start
