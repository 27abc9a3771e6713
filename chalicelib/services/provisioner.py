"""The provisioner: per worker pool, on a schedule, reconcile its workers with the cloud and the
queue (the scan), then launch what the estimate asks for (provision).

Every decision is made by domain/provisioning.py from what the stores and the cloud report; this
module only gathers those facts and carries the decisions out (services/pool_workers.py):

- `scan()` (Lambda on a schedule): reconcile workers with the cloud and the queue (stopped,
  removed, marked to terminate); a pool being deleted loses its workers, then itself.
- `provision(run_id)` (same schedule): per pool, launch what the estimator asks for. The
  idempotency token of each launch derives from the scheduled event's id, so a retried invocation
  launches nothing twice (EC2 answers a reused token with the original instances, or refuses a
  changed request), and each launch's one-time registration token derives from it too.

What a launched worker does next — register, reregister, ask whether to terminate, be removed,
be interrupted — is worker registration's (services/registration.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta

from ..clock import Clock
from ..domain.pools import (
    ERROR_WINDOW,
    WORKER_EXPIRES,
    PoolConfig,
    PoolWorker,
    WorkerPool,
    WorkerState,
    terminate_after,
    token_hash,
)
from ..domain.provisioning import (
    Estimate,
    Launch,
    WorkerKey,
    estimate,
    key,
    plan_launches,
    plan_scan,
    pool_stats,
)
from .auth import Auth
from .pool_workers import PoolWorkers
from .ports import LaunchFailed, PoolStore, Provider, QueueFacts

log = logging.getLogger(__name__)
NULL_PROVIDER = "null-provider"  # a pool being deleted: its workers are removed, then the pool
MAX_USER_DATA = 16384  # EC2's limit on raw user data
EXPIRY_MARGIN = timedelta(days=1)  # a live worker's row is extended before its TTL could reach it


@dataclass
class PoolReport:
    worker_pool_id: str
    estimate: Estimate | None = None
    launched: int = 0  # capacity
    stopped: int = 0
    removed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        e = self.estimate
        counts = (
            f"pending={e.pending} claimed={e.claimed} idle={e.idle} desired={e.desired} to_spawn={e.to_spawn}"
            if e
            else ""
        )
        return f"{self.worker_pool_id}: {counts} launched={self.launched} removed={len(self.removed)}".strip()


class Provisioner:
    def __init__(
        self,
        pools: PoolStore,
        providers: Mapping[str, Provider],
        queue: QueueFacts,
        auth: Auth,
        clock: Clock,
        root_url: str,
        queue_prefix: str = "taskqueue-",
        region: str = "",
    ) -> None:
        """`root_url`, `queue_prefix` and `region` are what workers are told: where the API is, and
        the dispatch queues they may read (--claim-mode sqs)."""
        self.pools = pools
        self.providers = providers
        self.queue = queue
        self.auth = auth
        self.clock = clock
        self.workers = PoolWorkers(pools, providers, clock)
        self.root_url = root_url
        self.queue_prefix = queue_prefix
        self.region = region

    # --- provisioning --------------------------------------------------------------------------
    def provision(self, run_id: str) -> list[PoolReport]:
        reports = []
        for pool in self.pools.all_pools():
            report = PoolReport(pool.worker_pool_id)
            try:
                self._provision_pool(pool, run_id, report)
            except Exception as err:  # one broken pool must not starve the others
                log.exception("provisioning %s failed", pool.worker_pool_id)
                report.errors.append(str(err))
            # A line per pool that changed (on the embedded stack the provisioner runs every few seconds).
            log.log(logging.INFO if report.launched or report.removed or report.errors else logging.DEBUG,
                    "provision %s", report.line())  # fmt: skip
            reports.append(report)
        return reports

    def _provision_pool(self, pool: WorkerPool, run_id: str, report: PoolReport) -> None:
        provider = self.providers.get(pool.provider_id)
        if provider is None:
            if pool.provider_id != NULL_PROVIDER:
                report.errors.append(f"unknown provider {pool.provider_id!r}")
            return
        config = pool.settings
        now = self.clock.now()
        workers = self.pools.alive_workers(pool.worker_pool_id)
        activity = self.queue.activity(pool.worker_pool_id, [key(w) for w in workers])
        pending, claimed = self.queue.counts(pool.worker_pool_id)
        stats = pool_stats(workers, activity, now)
        report.estimate = est = estimate(config, stats, pending, claimed)
        if est.over_provisioned:
            log.error(
                "%s is over-provisioned: %s capacity for a maximum of %s",
                pool.worker_pool_id,
                stats.existing,
                config.max_capacity,
            )
        errors, _ = self.pools.errors(pool.worker_pool_id, now - ERROR_WINDOW, 1000, None)
        for launch in plan_launches(config, stats, est, errors, now):
            if not self._launch(pool, config, provider, launch, run_id, report):
                return  # as Taskcluster: after a failure the other configs wait for the next run

    def _launch(
        self, pool: WorkerPool, config: PoolConfig, provider: Provider, launch: Launch, run_id: str, report: PoolReport
    ) -> bool:
        lc = launch.launch_config
        token = hashlib.sha256(f"{run_id}\n{pool.worker_pool_id}\n{lc.launch_config_id}".encode()).hexdigest()[:64]
        registration = self.auth.derived_secret(f"register/{token}")
        user_data = {
            **lc.additional_user_data,
            "rootUrl": self.root_url,
            "workerPoolId": pool.worker_pool_id,
            "providerId": pool.provider_id,
            "workerGroup": lc.region,
            "launchConfigId": lc.launch_config_id,
            "workerConfig": lc.worker_config,
            "capacity": lc.capacity_per_instance,  # tasks the worker runs at once
            "queuePrefix": self.queue_prefix,
            "awsRegion": self.region,
            "registrationToken": registration,
        }
        now = self.clock.now()
        try:
            if len(json.dumps(user_data)) > MAX_USER_DATA:
                raise LaunchFailed("UserDataTooLong", f"User Data is too long (more than {MAX_USER_DATA} bytes)")
            launched = provider.launch(pool, launch, user_data, token)
        except LaunchFailed as err:
            self.workers.error(
                pool.worker_pool_id,
                "creation-error",
                "Instance Creation Error",
                err.message,
                lc.launch_config_id,
                code=err.code,
            )
            report.errors.append(str(err))
            return False
        for started in launched:
            worker = PoolWorker(
                worker_pool_id=pool.worker_pool_id,
                worker_group=started.worker_group,
                worker_id=started.worker_id,
                provider_id=pool.provider_id,
                launch_config_id=lc.launch_config_id,
                state=WorkerState.REQUESTED,
                capacity=lc.capacity_per_instance,
                created=now,
                last_modified=now,
                last_checked=now,
                expires=now + WORKER_EXPIRES,
                terminate_after=terminate_after(config, now),
                provider_data=started.provider_data,
                registration_hash=token_hash(registration),
            )
            self.pools.put_worker(worker)  # False: already recorded by an earlier try of this run
            report.launched += worker.capacity
        return True

    # --- scanning ------------------------------------------------------------------------------
    def scan(self) -> list[PoolReport]:
        reports = []
        for pool in self.pools.all_pools():
            report = PoolReport(pool.worker_pool_id)
            try:
                self._scan_pool(pool, report)
            except Exception as err:
                log.exception("scanning %s failed", pool.worker_pool_id)
                report.errors.append(str(err))
            reports.append(report)
        return reports

    def _scan_pool(self, pool: WorkerPool, report: PoolReport) -> None:
        now = self.clock.now()
        workers = self.pools.alive_workers(pool.worker_pool_id)
        if pool.provider_id == NULL_PROVIDER and not workers:
            self.pools.delete_pool(pool.worker_pool_id)
            return
        cloud: dict[WorkerKey, str] = {}
        for provider_id in {w.provider_id for w in workers}:
            provider = self.providers.get(provider_id)
            if provider is not None:
                cloud.update(provider.observe([w for w in workers if w.provider_id == provider_id]))
        activity = self.queue.activity(pool.worker_pool_id, [key(w) for w in workers])
        pending, claimed = self.queue.counts(pool.worker_pool_id)
        config = pool.settings
        if pool.provider_id == NULL_PROVIDER:
            config = replace(config, min_capacity=0, max_capacity=0)
        marked = any(w.should_terminate for w in workers)
        held = self.queue.held_runs(pool.worker_pool_id) if marked else {}
        plan = plan_scan(config, workers, activity, cloud, frozenset(held), pending, claimed, now)
        gone = {key(w) for w in plan.stopped}
        for w in plan.stopped:
            if self.workers.update(w, state=WorkerState.STOPPED):
                report.stopped += 1
        report.removed += self.workers.remove(pool.worker_pool_id, plan.removals, keep_state=gone)
        removed = {key(w) for w, _ in plan.removals} | gone
        for w, decision in plan.marks:
            if key(w) not in removed:
                self.workers.update(w, should_terminate=decision)
        for w in workers:
            if key(w) not in removed and w.expires - now < EXPIRY_MARGIN:
                self.workers.update(w, expires=now + WORKER_EXPIRES)
        if pool.provider_id == NULL_PROVIDER:  # no worker will come back: remove all now
            rest = [(w, "worker pool deleted") for w in workers if key(w) not in removed]
            report.removed += self.workers.remove(pool.worker_pool_id, rest)
