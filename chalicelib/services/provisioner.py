"""The provisioner, the scanner, worker registration and the cloud's events: plans executed.

Every decision is made by domain/provisioning.py from what the stores and the cloud report; this
module only gathers those facts and carries the decisions out:

- `provision(run_id)` (Lambda on a schedule): per pool, launch what the estimator asks for. The
  idempotency token of each launch derives from the scheduled event's id, so a retried invocation
  launches nothing twice (EC2 answers a reused token with the original instances, or refuses a
  changed request), and each launch's one-time registration token derives from it too.
- `scan()` (same schedule): reconcile workers with the cloud and the queue (stopped, removed,
  marked to terminate).
- `register(...)`: a launched worker proves it was launched (its registration token), becomes
  running and gets credentials for its pool until `reregistrationTimeout`.
- `instance_gone(...)`/`interrupted(...)` (EventBridge): an instance's end resolves the runs it
  held as exception/worker-shutdown, so they retry at once instead of waiting for their claims to
  expire.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from ..clock import Clock
from ..domain.errors import InputError, QueueError, RequestConflict, ResourceNotFound
from ..domain.model import ReasonResolved, TaskState, format_date
from ..domain.pools import (
    ERROR_WINDOW,
    WORKER_EXPIRES,
    PoolConfig,
    PoolError,
    PoolWorker,
    QueueActivity,
    WorkerPool,
    WorkerState,
    new_error_id,
    terminate_after,
    worker_credential_scopes,
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
from .ports import LaunchFailed, PoolStore, Provider

log = logging.getLogger("taskqueue.provisioner")
NULL_PROVIDER = "null-provider"  # a pool being deleted: its workers are removed, then the pool
MAX_USER_DATA = 16384  # EC2's limit on raw user data
EXPIRY_MARGIN = timedelta(days=1)  # a live worker's row is extended before its TTL could reach it


class QueueFacts(Protocol):
    """What the provisioner needs to know from the queue about a task queue and its workers."""

    def counts(self, task_queue_id: str) -> tuple[int, int]:
        """(pendingTasks, claimedTasks)."""
        ...

    def held_runs(self, task_queue_id: str) -> dict[WorkerKey, list[tuple[str, int]]]:
        """The runs each worker holds a claim on now."""
        ...

    def activity(self, task_queue_id: str, workers: Sequence[WorkerKey]) -> dict[WorkerKey, QueueActivity]: ...

    def worker_shutdown(self, task_id: str, run_id: int) -> None:
        """Resolve the run exception/worker-shutdown (it retries); no error if already resolved."""
        ...


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


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


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
            self._error(
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

    def _error(
        self, pool_id: str, kind: str, title: str, description: str, lc_id: str | None = None, **extra: Any
    ) -> None:
        error = PoolError(pool_id, new_error_id(), self.clock.now(), kind, title, description, lc_id, dict(extra))
        log.warning("%s %s: %s", pool_id, kind, description)
        self.pools.add_error(error)

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
            if self._set(w, state=WorkerState.STOPPED):
                report.stopped += 1
        self._remove(pool, [(w, r) for w, r in plan.removals], report, keep_state=gone)
        removed = {key(w) for w, _ in plan.removals} | gone
        for w, decision in plan.marks:
            if key(w) not in removed:
                self._set(w, should_terminate=decision)
        for w in workers:
            if key(w) not in removed and w.expires - now < EXPIRY_MARGIN:
                self._set(w, expires=now + WORKER_EXPIRES)
        if pool.provider_id == NULL_PROVIDER:  # no worker will come back: remove all now
            rest = [(w, "worker pool deleted") for w in workers if key(w) not in removed]
            self._remove(pool, rest, report, keep_state=set())

    def _remove(
        self,
        pool: WorkerPool,
        removals: Sequence[tuple[PoolWorker, str]],
        report: PoolReport,
        keep_state: set[WorkerKey],
    ) -> None:
        for w, reason in removals:
            provider = self.providers.get(w.provider_id)
            if provider is None:
                continue
            try:
                provider.terminate([w])
            except Exception as err:
                self._error(
                    pool.worker_pool_id, "termination-error", "Instance Termination Error", str(err), w.launch_config_id
                )
                continue
            log.info("removed %s/%s/%s: %s", pool.worker_pool_id, w.worker_group, w.worker_id, reason)
            report.removed.append(f"{w.worker_id}: {reason}")
            if key(w) not in keep_state:
                self._set(w, state=WorkerState.STOPPING)

    def _set(self, w: PoolWorker, **changes: Any) -> bool:
        """One conditional write on the state the decision was made from (invariant 2)."""
        now = self.clock.now()
        updated = replace(w, last_modified=now, last_checked=now, **changes)
        return self.pools.put_worker(updated, expected_state=w.state)

    # --- the worker's side -----------------------------------------------------------------------
    def register(self, body: Mapping[str, Any]) -> dict[str, Any]:
        pool_id, provider_id = body["workerPoolId"], body["providerId"]
        pool = self.pools.get_pool(pool_id)
        if pool is None:
            raise ResourceNotFound(f"Worker pool {pool_id} does not exist")
        if provider_id not in (pool.provider_id, *pool.previous_provider_ids):
            raise InputError(f"Worker pool {pool_id} does not use provider {provider_id}")
        worker = self.pools.get_worker(pool_id, body["workerGroup"], body["workerId"])
        if worker is None or worker.provider_id != provider_id:
            raise ResourceNotFound(f"Worker {body['workerGroup']}/{body['workerId']} does not exist in {pool_id}")
        proof = body.get("workerIdentityProof") or {}
        token = proof.get("registrationToken")
        if not isinstance(token, str) or not hmac.compare_digest(token_hash(token), worker.registration_hash):
            raise InputError("workerIdentityProof: registrationToken does not match this worker's launch")
        now = self.clock.now()
        if worker.state is not WorkerState.REQUESTED:
            raise RequestConflict(f"Worker is {worker.state}, not requested: registration is one-time")
        if worker.terminate_after is not None and now > worker.terminate_after:
            raise InputError("The registration window of this worker has passed")
        granted = self._grant(pool, worker, now, None, state=WorkerState.RUNNING, registered=now)
        lc = pool.settings.launch_config(worker.launch_config_id)
        return {**granted, "workerConfig": lc.worker_config if lc else {}}

    def reregister(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """New credentials for a running worker before its current ones expire, against the
        one-time secret of its last (re)registration, which is replaced; terminateAfter moves on."""
        pool_id = body["workerPoolId"]
        pool = self.pools.get_pool(pool_id)
        worker = self.pools.get_worker(pool_id, body["workerGroup"], body["workerId"])
        if pool is None or worker is None:
            raise ResourceNotFound(f"Worker {body['workerGroup']}/{body['workerId']} does not exist in {pool_id}")
        if not worker.secret_hash or not hmac.compare_digest(token_hash(body["secret"]), worker.secret_hash):
            raise InputError("secret does not match this worker's last registration (it is one-time)")
        now = self.clock.now()
        if worker.state is not WorkerState.RUNNING:
            raise RequestConflict(f"Worker is {worker.state}: only a running worker reregisters")
        if worker.terminate_after is not None and now > worker.terminate_after:
            raise InputError("This worker's registration has expired")
        return self._grant(pool, worker, now, worker.secret_hash)

    def _grant(
        self, pool: WorkerPool, worker: PoolWorker, now: datetime, secret_hash: str | None, **changes: Any
    ) -> dict[str, Any]:
        """Credentials until reregistrationTimeout from now, and a new one-time secret (only its
        hash is kept), written on the state (and secret) the caller checked; 409 if either moved."""
        expires = now + timedelta(seconds=pool.settings.reregistration_timeout)
        secret = secrets.token_urlsafe(33)  # 44 characters, as Taskcluster's
        updated = replace(worker, terminate_after=expires, last_modified=now, secret_hash=token_hash(secret), **changes)
        if not self.pools.put_worker(updated, expected_state=worker.state, expected_secret_hash=secret_hash):
            raise RequestConflict("Worker changed while registering; a registration and its secret are one-time")
        return {"expires": format_date(expires), "credentials": self._credentials(worker, expires), "secret": secret}

    def _credentials(self, worker: PoolWorker, expires: datetime) -> dict[str, str]:
        """Temporary credentials with the pool's worker scopes (worker-manager's createCredentials)."""
        pool_id, group, worker_id = worker.worker_pool_id, worker.worker_group, worker.worker_id
        name = f"worker/{worker.provider_id}/{pool_id}/{group}/{worker_id}"
        return self.auth.worker_credentials(name, worker_credential_scopes(pool_id, group, worker_id), expires) or {}

    def should_terminate(self, pool_id: str, worker_group: str, worker_id: str) -> dict[str, Any]:
        worker = self.pools.get_worker(pool_id, worker_group, worker_id)
        if worker is None:
            raise ResourceNotFound(f"Worker {worker_group}/{worker_id} does not exist in {pool_id}")
        if worker.state in (WorkerState.STOPPING, WorkerState.STOPPED):
            return {"terminate": True, "reason": f"worker is {worker.state}"}
        return {"terminate": bool(worker.should_terminate), "reason": worker.should_terminate or None}

    def remove_worker(self, pool_id: str, worker_group: str, worker_id: str) -> None:
        """Terminate a worker now (an operator's or the worker's own request): its instance is
        ended and it becomes stopping, then stopped once the cloud confirms. A worker already
        stopping or stopped is left as it is. A refused termination is listed as a pool error and
        the worker stays as it was."""
        worker = self.pools.get_worker(pool_id, worker_group, worker_id)
        if worker is None:
            raise ResourceNotFound(f"Worker {worker_group}/{worker_id} does not exist in {pool_id}")
        if not worker.alive or worker.state is WorkerState.STOPPING:
            return
        pool = self.pools.get_pool(pool_id)
        if pool is None:
            raise ResourceNotFound(f"Worker pool {pool_id} does not exist")
        self._remove(pool, [(worker, "removed by request (removeWorker)")], PoolReport(pool_id), set())

    # --- the cloud's events --------------------------------------------------------------------
    def instance_gone(self, instance_id: str, state: str) -> bool:
        """EC2 says an instance stopped or terminated: its worker is stopped, its runs retried."""
        worker = self.pools.find_worker(instance_id)
        if worker is None or not worker.alive:
            return False
        self._shutdown_runs(worker)
        self._set(worker, state=WorkerState.STOPPED, provider_data={**worker.provider_data, "state": state})
        return True

    def interrupted(self, instance_id: str, action: str) -> bool:
        """A spot interruption warning: the instance has two minutes. Its runs retry now."""
        worker = self.pools.find_worker(instance_id)
        if worker is None or not worker.alive:
            return False
        self._shutdown_runs(worker)
        if worker.state is not WorkerState.STOPPING:
            self._set(worker, state=WorkerState.STOPPING, should_terminate=f"spot interruption: {action}")
        return True

    def _shutdown_runs(self, worker: PoolWorker) -> None:
        for task_id, run_id in self.queue.held_runs(worker.worker_pool_id).get(key(worker), []):
            try:
                self.queue.worker_shutdown(task_id, run_id)
            except QueueError as err:  # resolved meanwhile: nothing to do
                log.info("run %s/%s of %s: %s", task_id, run_id, worker.worker_id, err)


class QueueServiceFacts:
    """QueueFacts from the queue's own service, and the queue's record of its workers."""

    def __init__(self, queue: Any, activity: Any) -> None:
        self.queue = queue  # services.queue.QueueService
        self.reader = activity  # (taskQueueId, keys) -> {key: QueueActivity}

    def counts(self, task_queue_id: str) -> tuple[int, int]:
        return self.queue.pending_count(task_queue_id), self.queue.claimed_count(task_queue_id)

    def held_runs(self, task_queue_id: str) -> dict[WorkerKey, list[tuple[str, int]]]:
        held: dict[WorkerKey, list[tuple[str, int]]] = {}
        token: str | None = None
        while True:
            rows, token = self.queue.queue_listing(task_queue_id, TaskState.RUNNING, 1000, token)
            for task, _ in rows:
                run = task.latest
                held.setdefault((run.worker_group, run.worker_id), []).append((task.task_id, run.run_id))
            if not token:
                return held

    def activity(self, task_queue_id: str, workers: Sequence[WorkerKey]) -> dict[WorkerKey, QueueActivity]:
        return dict(self.reader(task_queue_id, workers)) if workers else {}

    def worker_shutdown(self, task_id: str, run_id: int) -> None:
        self.queue.report_exception(task_id, run_id, ReasonResolved.WORKER_SHUTDOWN)
