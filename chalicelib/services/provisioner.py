"""The provisioner: per worker pool, on a schedule, reconcile its workers with the cloud and the
queue (the scan), then launch what the estimate asks for (provision).

Every decision is made by domain/provisioning.py from what the stores and the cloud report; this
module only gathers those facts and carries the decisions out (services/pool_workers.py):

- `run(run_id, remaining)` (Lambda on a schedule): one run at a time — it takes the lease in the
  pools table first (a conditional write with an expiry; a run that finds it held does nothing),
  releases it at the end, and takes over one that expired (its holder died). Pools are handled
  concurrently (POOL_CONCURRENCY at once), each independently: scan, then provision, from one
  read of its workers, their activity and the queue's counts. What the cloud says of the
  workers comes from a census taken as the run starts: one listing per provider and region for
  every pool (`Provider.census`), not a call per pool; a worker in a region no pool launches in
  any more is observed on its own. A pool handled late in a run sees the cloud as it was at the
  start: what changed meanwhile is seen by the next run. A pool's failure is that pool's
  error. No pool is started with less than RUN_MARGIN seconds left in the invocation: the pools
  not reached come first in the next run (the lease records where to resume), so none is always
  the one left out.
- `scan()`, `provision(run_id)`: each phase alone over every pool (tests, tools).
- The idempotency token of each launch derives from the scheduled event's id, so a retried
  invocation launches nothing twice (EC2 answers a reused token with the original instances, or
  refuses a changed request), and each launch's one-time registration token derives from it too.

What a launched worker does next — register, reregister, ask whether to terminate, be removed,
be interrupted — is worker registration's (services/registration.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta

from ..clock import Clock
from ..domain.pools import (
    ERROR_WINDOW,
    WORKER_EXPIRES,
    PoolConfig,
    PoolWorker,
    QueueActivity,
    WorkerPool,
    WorkerState,
    terminate_after,
    token_hash,
)
from ..domain.provisioning import (
    CloudState,
    Estimate,
    Launch,
    Lease,
    WorkerKey,
    errors_matter,
    estimate,
    key,
    plan_launches,
    plan_scan,
    pool_stats,
    rotation,
)
from .auth import Auth
from .pool_workers import PoolWorkers
from .ports import LaunchFailed, LaunchThrottled, PoolStore, Provider, QueueFacts

log = logging.getLogger(__name__)
NULL_PROVIDER = "null-provider"  # a pool being deleted: its workers are removed, then the pool
MAX_USER_DATA = 16384  # EC2's limit on raw user data
EXPIRY_MARGIN = timedelta(days=1)  # a live worker's row is extended before its TTL could reach it
POOL_CONCURRENCY = 32  # pools handled at once: each mostly waits on DynamoDB and EC2 (boto3 keeps 50 connections)
RUN_MARGIN = 10.0  # seconds: no pool is started with less left in the invocation
LEASE_SLACK = timedelta(seconds=5)  # the lease outlasts the invocation's end by this much


@dataclass
class _Run:
    """One run's shared state: its id (launch tokens derive from it) and the (provider, region)
    pairs whose API refused a launch for its request rate: nothing more is launched there until the
    next run (each further call would wait through the client's retries and be refused too)."""

    id: str
    throttled: set[tuple[str, str]] = field(default_factory=set)


@dataclass
class PoolReport:
    worker_pool_id: str
    estimate: Estimate | None = None
    launched: int = 0  # capacity
    stopped: int = 0
    removed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    deferred: int = 0  # capacity not launched: the cloud's API throttled launches in its region

    def line(self) -> str:
        e = self.estimate
        counts = (
            f"pending={e.pending} claimed={e.claimed} idle={e.idle} desired={e.desired} to_spawn={e.to_spawn}"
            if e
            else ""
        )
        deferred = f" deferred={self.deferred} (throttled)" if self.deferred else ""
        return f"{self.worker_pool_id}: {counts} launched={self.launched}{deferred} removed={len(self.removed)}".strip()


@dataclass
class RunReport:
    pools: list[PoolReport] = field(default_factory=list)  # the pools handled
    skipped: int = 0  # not started before the margin: first in the next run
    busy: Lease | None = None  # another run holds the lease: this one did nothing


# By provider id: the regions a census listed, and what it listed there (a run's view of the cloud).
Census = Mapping[str, tuple[frozenset[str], Mapping[WorkerKey, str]]]


@dataclass
class PoolFacts:
    """What one pass over a pool decides from: read once, for the scan and the provision."""

    workers: list[PoolWorker]
    activity: dict[WorkerKey, QueueActivity]
    pending: int
    claimed: int


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
        concurrency: int = POOL_CONCURRENCY,
    ) -> None:
        """`root_url`, `queue_prefix` and `region` are what workers are told: where the API is, and
        the dispatch queues they may read (--claim-mode sqs); `concurrency`: pools handled at once."""
        self.pools = pools
        self.providers = providers
        self.queue = queue
        self.auth = auth
        self.clock = clock
        self.workers = PoolWorkers(pools, providers, clock)
        self.root_url = root_url
        self.queue_prefix = queue_prefix
        self.region = region
        self.concurrency = concurrency
        self._threads: ThreadPoolExecutor | None = None
        self._threads_lock = threading.Lock()

    # --- a scheduled run -----------------------------------------------------------------------
    def run(self, run_id: str, remaining: Callable[[], float]) -> RunReport:
        """Scan and provision every pool, if no other run holds the lease. `remaining()`: seconds
        left in the invocation."""
        holder = f"{run_id}/{uuid.uuid4().hex[:12]}"
        now = self.clock.now()
        lease = self.pools.take_lease(holder, now, now + timedelta(seconds=remaining()) + LEASE_SLACK)
        if lease.holder != holder:
            log.warning("provisioner run %s: %s holds the lease until %s, nothing done", run_id, lease.holder,
                        lease.until.isoformat())  # fmt: skip
            return RunReport(busy=lease)
        resume_at = ""
        try:
            pools = {p.worker_pool_id: p for p in self.pools.all_pools()}
            order = [pools[i] for i in rotation(list(pools), lease.resume_at)]
            census, run = self._census(order), _Run(run_id)
            done = self._each(order, lambda p, r: self._run_pool(p, census, run, r), lambda: remaining() > RUN_MARGIN)
            skipped = [p.worker_pool_id for p, r in zip(order, done, strict=True) if r is None]
            resume_at = skipped[0] if skipped else ""
            if skipped:
                log.warning("provisioner run %s: %d pools left for the next run, from %s", run_id, len(skipped),
                            resume_at)  # fmt: skip
            return RunReport([r for r in done if r is not None], len(skipped))
        finally:
            self.pools.release_lease(holder, resume_at)

    def _each(
        self,
        pools: Sequence[WorkerPool],
        work: Callable[[WorkerPool, PoolReport], None],
        may_start: Callable[[], bool] = lambda: True,
    ) -> list[PoolReport | None]:
        """`work` on each pool, `concurrency` at once, started in order while `may_start()`; a
        report per pool (None: not started). One pool's failure is recorded in its report only."""

        def one(pool: WorkerPool) -> PoolReport | None:
            if not may_start():
                return None
            report = PoolReport(pool.worker_pool_id)
            try:
                work(pool, report)
            except Exception as err:  # one broken pool must not starve the others
                log.exception("provisioning %s failed", pool.worker_pool_id)
                report.errors.append(str(err))
            # A line per pool that changed (on the embedded stack the provisioner runs every few seconds).
            changed = report.launched or report.removed or report.stopped or report.errors
            log.log(logging.INFO if changed else logging.DEBUG, "provision %s", report.line())
            return report

        if len(pools) <= 1 or self.concurrency <= 1:
            return [one(p) for p in pools]
        return list(self._pool_threads().map(one, pools))  # started in submission order

    def _pool_threads(self) -> ThreadPoolExecutor:
        """The threads pools are handled on, made once: they live as long as this process, as a
        worker process the local provider starts from one of them must (it ends with its thread)."""
        with self._threads_lock:
            if self._threads is None:
                self._threads = ThreadPoolExecutor(self.concurrency, thread_name_prefix="provisioner")
            return self._threads

    def _census(self, pools: Sequence[WorkerPool]) -> Census:
        """Each provider's census of the regions its pools launch in. A census that fails is left
        out: its pools' workers are then observed pool by pool."""
        regions: dict[str, set[str]] = {}
        for pool in pools:
            if pool.provider_id in self.providers:
                regions.setdefault(pool.provider_id, set()).update(lc.region for lc in pool.settings.launch_configs)
        census: dict[str, tuple[frozenset[str], Mapping[WorkerKey, str]]] = {}
        for provider_id, listed in regions.items():
            try:
                census[provider_id] = (frozenset(listed), self.providers[provider_id].census(listed))
            except Exception:
                log.exception("the census of provider %s failed: its workers are observed pool by pool", provider_id)
        return census

    def _facts(self, pool_id: str) -> PoolFacts:
        workers = self.pools.alive_workers(pool_id)
        activity = self.queue.activity(pool_id, [key(w) for w in workers])
        pending, claimed = self.queue.counts(pool_id)
        return PoolFacts(workers, activity, pending, claimed)

    def _run_pool(self, pool: WorkerPool, census: Census, run: _Run, report: PoolReport) -> None:
        facts = self._facts(pool.worker_pool_id)
        try:
            self._scan_pool(pool, facts, census, report)
        except Exception as err:  # a failed scan (the cloud not answering, say) still lets the pool launch
            log.exception("scanning %s failed", pool.worker_pool_id)
            report.errors.append(str(err))
        if report.stopped or report.removed or report.errors:  # states may have changed: re-read them
            facts = replace(facts, workers=self.pools.alive_workers(pool.worker_pool_id))
        self._provision_pool(pool, facts, run, report)

    # --- provisioning --------------------------------------------------------------------------
    def provision(self, run_id: str) -> list[PoolReport]:
        """Provision every pool (no scan, no lease)."""
        run = _Run(run_id)

        def work(pool: WorkerPool, report: PoolReport) -> None:
            self._provision_pool(pool, self._facts(pool.worker_pool_id), run, report)

        return [r for r in self._each(self.pools.all_pools(), work) if r is not None]

    def _provision_pool(self, pool: WorkerPool, facts: PoolFacts, run: _Run, report: PoolReport) -> None:
        provider = self.providers.get(pool.provider_id)
        if provider is None:
            if pool.provider_id != NULL_PROVIDER:
                report.errors.append(f"unknown provider {pool.provider_id!r}")
            return
        config = pool.settings
        now = self.clock.now()
        stats = pool_stats(facts.workers, facts.activity, now)
        report.estimate = est = estimate(config, stats, facts.pending, facts.claimed)
        if est.over_provisioned:
            log.error(
                "%s is over-provisioned: %s capacity for a maximum of %s",
                pool.worker_pool_id,
                stats.existing,
                config.max_capacity,
            )
        if est.to_spawn <= 0 or stats.alive >= config.max_capacity:
            return  # nothing to launch: no need for the errors that weigh the launch configs
        errors = (
            self.pools.errors(pool.worker_pool_id, now - ERROR_WINDOW, 1000, None)[0] if errors_matter(config) else []
        )
        for launch in plan_launches(config, stats, est, errors, now):
            if not self._launch(pool, config, provider, launch, run, report):
                return  # as Taskcluster: after a failure the other configs wait for the next run

    def _launch(
        self, pool: WorkerPool, config: PoolConfig, provider: Provider, launch: Launch, run: _Run, report: PoolReport
    ) -> bool:
        lc = launch.launch_config
        where = (pool.provider_id, lc.region)
        if where in run.throttled:
            report.deferred += launch.instances * lc.capacity_per_instance
            return False
        token = hashlib.sha256(f"{run.id}\n{pool.worker_pool_id}\n{lc.launch_config_id}".encode()).hexdigest()[:64]
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
        except LaunchThrottled as err:
            run.throttled.add(where)
            log.warning("provisioner run %s: launches in %s/%s throttled (%s): none more there until the next run",
                        run.id, *where, err)  # fmt: skip
            report.deferred += launch.instances * lc.capacity_per_instance
            return False
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
        """Scan every pool (no provision, no lease)."""

        pools = self.pools.all_pools()
        census = self._census(pools)

        def work(pool: WorkerPool, report: PoolReport) -> None:
            self._scan_pool(pool, self._facts(pool.worker_pool_id), census, report)

        return [r for r in self._each(pools, work) if r is not None]

    def _scan_pool(self, pool: WorkerPool, facts: PoolFacts, census: Census, report: PoolReport) -> None:
        now = self.clock.now()
        workers, activity, pending, claimed = facts.workers, facts.activity, facts.pending, facts.claimed
        if pool.provider_id == NULL_PROVIDER and not workers:
            self.pools.delete_pool(pool.worker_pool_id)
            return
        cloud = self._cloud(workers, census)
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

    def _cloud(self, workers: Sequence[PoolWorker], census: Census) -> dict[WorkerKey, str]:
        """What the cloud says of each worker: from its provider's census if that listed the
        worker's region (not listed there: not-found), else from the provider, asked now."""
        cloud: dict[WorkerKey, str] = {}
        for provider_id in {w.provider_id for w in workers}:
            provider = self.providers.get(provider_id)
            if provider is None:
                continue
            regions, listed = census.get(provider_id, (frozenset(), {}))
            theirs = [w for w in workers if w.provider_id == provider_id]
            cloud.update(
                {key(w): listed.get(key(w), CloudState.NOT_FOUND) for w in theirs if w.worker_group in regions}
            )
            unlisted = [w for w in theirs if w.worker_group not in regions]
            if unlisted:
                cloud.update(provider.observe(unlisted))
        return cloud
