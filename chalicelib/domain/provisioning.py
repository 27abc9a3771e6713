"""How much capacity a worker pool needs, where to launch it, and which workers to retire.

Pure functions over a pool's config, its workers, the queue's counts and recent errors; the
provisioner service executes the plans (services/provisioner.py). The arithmetic is Taskcluster
worker-manager's estimator and scanner, including the
terms that each exist because of a real over-provisioning incident:

- idle capacity absorbs pending tasks before anything is launched;
- stopping capacity counts against the maximum (slow shutdowns must not cause runaway launches);
- requested capacity (launched, not yet registered) is subtracted from what to launch.

On top of the estimator, one hard rule: the capacity of every worker not yet stopped — whatever its
state, quarantined or not — plus what is launched never exceeds maxCapacity (or a launch config's
own maxCapacity), even when the counts above disagree with each other.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .pools import ERROR_WINDOW, LaunchConfig, PoolConfig, PoolError, PoolWorker, QueueActivity, WorkerState

WorkerKey = tuple[str, str]  # (workerGroup, workerId)
OVER_PROVISIONED_FLOOR = 25  # Taskcluster's sanity alarm: existing > 25 and > 1.25 × max
SINGLE_CONFIG_WEIGHT = 0.01  # the only config with room is never starved by its own errors
# How long a newly registered worker that has claimed nothing is safe from scale-in: long enough
# for its first claimWork or SQS poll (it makes one at once), short against what an idle worker
# costs — one launched for a task another worker took meanwhile goes soon after.
SCALE_IN_GRACE = timedelta(seconds=15)


def key(worker: PoolWorker) -> WorkerKey:
    return (worker.worker_group, worker.worker_id)


@dataclass(frozen=True)
class PoolStats:
    existing: int  # capacity not stopped, stopping nor quarantined (requested included)
    stopping: int
    requested: int
    quarantined: int
    alive: int  # every worker not yet stopped, whatever its state: what the hard maximum bounds
    alive_by_config: Mapping[str, int] = field(default_factory=dict)


def pool_stats(workers: Iterable[PoolWorker], activity: Mapping[WorkerKey, QueueActivity], now: datetime) -> PoolStats:
    existing = stopping = requested = quarantined = alive = 0
    by_config: dict[str, int] = {}
    for w in workers:
        if not w.alive:
            continue
        alive += w.capacity
        by_config[w.launch_config_id] = by_config.get(w.launch_config_id, 0) + w.capacity
        if w.state is WorkerState.STOPPING:
            stopping += w.capacity
        elif activity.get(key(w), QueueActivity()).quarantined(now):
            quarantined += w.capacity
        else:
            existing += w.capacity
            if w.state is WorkerState.REQUESTED:
                requested += w.capacity
    return PoolStats(existing, stopping, requested, quarantined, alive, by_config)


@dataclass(frozen=True)
class Estimate:
    pending: int
    claimed: int
    idle: int
    adjusted_pending: int
    desired: int
    to_spawn: int  # capacity to launch now
    over_provisioned: bool


def estimate(config: PoolConfig, stats: PoolStats, pending: int, claimed: int) -> Estimate:
    """Taskcluster's Estimator.simple, term by term."""
    idle = max(0, stats.existing - claimed)
    adjusted_pending = max(0, pending - idle)
    non_stopped = stats.existing + stats.stopping
    desired = max(
        config.min_capacity,
        min(math.ceil(adjusted_pending * config.scaling_ratio) + non_stopped, config.max_capacity),
    )
    to_spawn = max(0, max(0, desired - non_stopped) - stats.requested)
    over = stats.existing > OVER_PROVISIONED_FLOOR and stats.existing > 1.25 * config.max_capacity
    return Estimate(pending, claimed, idle, adjusted_pending, desired, to_spawn, over)


def target_capacity(config: PoolConfig, pending: int, claimed: int) -> int:
    """The scanner's scale-in target: what the queue needs now, within [min, max] (taskcluster#8328)."""
    return max(config.min_capacity, min(math.ceil((pending + claimed) * config.scaling_ratio), config.max_capacity))


@dataclass(frozen=True)
class Launch:
    launch_config: LaunchConfig
    instances: int

    @property
    def capacity(self) -> int:
        return self.instances * self.launch_config.capacity_per_instance


def config_weights(
    config: PoolConfig, stats: PoolStats, errors: Sequence[PoolError], now: datetime
) -> dict[str, tuple[float, int]]:
    """Per launch config: (weight, capacity it may still add). Weight 0 means not used this time."""
    recent = [e for e in errors if e.launch_config_id and now - e.reported <= ERROR_WINDOW]
    out: dict[str, tuple[float, int]] = {}
    for lc in config.launch_configs:
        cap = min(config.max_capacity, lc.max_capacity if lc.max_capacity is not None else config.max_capacity)
        existing = stats.alive_by_config.get(lc.launch_config_id, 0)
        weight = lc.initial_weight
        if cap > 0:
            weight -= existing / cap
        if recent:
            weight -= sum(1 for e in recent if e.launch_config_id == lc.launch_config_id) / len(recent)
        out[lc.launch_config_id] = (weight, max(0, cap - existing))
    with_room = [i for i, (_, room) in out.items() if room > 0]
    initial = {lc.launch_config_id: lc.initial_weight for lc in config.launch_configs}
    if len(with_room) == 1 and out[with_room[0]][0] <= 0 and initial[with_room[0]] > 0:
        out[with_room[0]] = (SINGLE_CONFIG_WEIGHT, out[with_room[0]][1])
    return {i: (max(0.0, w), room) for i, (w, room) in out.items()}


def errors_matter(config: PoolConfig) -> bool:
    """Whether recent errors can change plan_launches' answer: only between launch configs. A single
    config is used or not by its initialWeight alone (never starved by its own errors), so its
    pool's errors need not be read."""
    return len(config.launch_configs) > 1


def plan_launches(
    config: PoolConfig,
    stats: PoolStats,
    est: Estimate,
    errors: Sequence[PoolError],
    now: datetime,
    shuffle: Callable[[list[LaunchConfig]], None] = random.shuffle,
) -> list[Launch]:
    """Split `est.to_spawn` evenly over the usable launch configs (as the AWS provider does), in
    whole instances, never past the pool's or a config's maximum."""
    headroom = config.max_capacity - stats.alive
    wanted = min(est.to_spawn, headroom)
    weights = config_weights(config, stats, errors, now)
    usable = [lc for lc in config.launch_configs if weights[lc.launch_config_id][0] > 0]
    if wanted <= 0 or not usable:
        return []
    shuffle(usable)
    per_config = math.ceil(wanted / len(usable))
    launches: list[Launch] = []
    for lc in usable:
        if wanted <= 0:
            break
        room = min(weights[lc.launch_config_id][1], headroom)
        instances = min(math.ceil(min(wanted, per_config) / lc.capacity_per_instance), room // lc.capacity_per_instance)
        if instances <= 0:
            continue
        launches.append(Launch(lc, instances))
        wanted -= instances * lc.capacity_per_instance
        headroom -= instances * lc.capacity_per_instance
    return launches


# --- the scanner ------------------------------------------------------------------------------------
class CloudState:
    """What the provider saw of a worker's instance or process (EC2's names)."""

    PENDING, RUNNING, SHUTTING_DOWN, STOPPING = "pending", "running", "shutting-down", "stopping"
    STOPPED, TERMINATED, NOT_FOUND = "stopped", "terminated", "not-found"
    GONE = frozenset({STOPPED, TERMINATED, NOT_FOUND})


@dataclass(frozen=True)
class ScanPlan:
    stopped: list[PoolWorker]  # the cloud says gone: mark stopped
    removals: list[tuple[PoolWorker, str]]  # terminate now, with the reason
    marks: list[tuple[PoolWorker, str]]  # new shouldTerminate decisions ("" lifts one)
    target: int


def plan_scan(
    config: PoolConfig,
    workers: Sequence[PoolWorker],
    activity: Mapping[WorkerKey, QueueActivity],
    cloud: Mapping[WorkerKey, str],
    busy: frozenset[WorkerKey],
    pending: int,
    claimed: int,
    now: datetime,
) -> ScanPlan:
    """Reconcile a pool's workers with what the cloud and the queue say.

    - gone from the cloud → stopped (a `stopped` instance is also terminated: never left around);
    - past terminateAfter (never registered in time, or its registration lapsed) → removed;
    - a zombie (registered but never claimed, or silent, for queueInactivityTimeout) → removed;
    - running workers beyond the scale-in target, newest kept, get shouldTerminate; one still idle
      (holding no claim) when the next scan finds it over the target again is removed. The
      reference worker asks shouldWorkerTerminate between tasks and exits by itself first.

    The target is in task slots and workers come in `capacity` slots: workers are kept until
    they cover the target, so it is rounded up to whole workers as the estimator rounds its
    launches up (rounding down would remove the worker a pending task was launched for, every
    scan). A worker that has not claimed anything SCALE_IN_GRACE after registering is not over
    capacity yet: it was launched for work that another worker may just have taken.
    """
    stopped: list[PoolWorker] = []
    removals: list[tuple[PoolWorker, str]] = []
    marks: list[tuple[PoolWorker, str]] = []
    inactivity = timedelta(seconds=config.queue_inactivity_timeout)
    candidates: list[PoolWorker] = []
    for w in workers:
        if not w.alive:
            continue
        seen = cloud.get(key(w))
        if seen in CloudState.GONE:
            stopped.append(w)
            if seen == CloudState.STOPPED:
                removals.append((w, "instance stopped"))
            continue
        if w.state is WorkerState.STOPPING:
            continue
        act = activity.get(key(w), QueueActivity())
        if w.terminate_after is not None and now > w.terminate_after:
            reason = "terminateAfter time exceeded" if w.registered else "did not register in time"
            removals.append((w, reason))
        elif w.state is WorkerState.RUNNING and _zombie(w, act, now, inactivity):
            removals.append((w, "zombie: no claim for queueInactivityTimeout"))
        elif w.state is WorkerState.RUNNING and not act.quarantined(now):
            candidates.append(w)
    target = target_capacity(config, pending, claimed)
    kept = 0
    for w in sorted(candidates, key=lambda w: w.created, reverse=True):
        if config.launch_config(w.launch_config_id) is None:
            decision = "launch config archived"
        elif kept < target or _in_grace(w, activity.get(key(w), QueueActivity()), now):
            kept += w.capacity
            decision = ""
        else:
            decision = "over capacity"
        if decision and w.should_terminate and key(w) not in busy:
            removals.append((w, f"{decision}, idle"))
        elif decision != w.should_terminate:
            marks.append((w, decision))
    return ScanPlan(stopped, removals, marks, target)


def _in_grace(w: PoolWorker, act: QueueActivity, now: datetime) -> bool:
    """Registered lately and not claimed anything yet: give it the time to claim."""
    never_claimed = act.first_claim is None and act.last_date_active is None
    return never_claimed and now - (w.registered or w.created) < SCALE_IN_GRACE


def _zombie(w: PoolWorker, act: QueueActivity, now: datetime, inactivity: timedelta) -> bool:
    since = act.last_date_active or act.first_claim
    if since is None:
        return now - (w.registered or w.created) > inactivity
    return now - since > inactivity


# --- runs of the provisioner ------------------------------------------------------------------------
@dataclass(frozen=True)
class Lease:
    """The provisioner's lease: one run at a time. `holder` runs until `until` (then anyone may take
    it over); `resume_at` is the pool the next run starts with (where the last one stopped)."""

    holder: str
    until: datetime
    resume_at: str = ""


def rotation(pool_ids: Sequence[str], resume_at: str) -> list[str]:
    """The pools in the order a run handles them: by id, starting with `resume_at` (or the first id
    after it, if it is gone) and wrapping around, so the pools a run did not reach come first in
    the next run — every pool waits at most as long as the others."""
    ordered = sorted(pool_ids)
    start = next((i for i, p in enumerate(ordered) if p >= resume_at), 0) if resume_at else 0
    return ordered[start:] + ordered[:start]
