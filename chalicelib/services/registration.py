"""Worker registration: what happens to a launched worker after the provisioner started it.

- `register(...)` (registerWorker): a launched worker proves it was launched (the one-time
  registration token of its user data), becomes running and gets credentials for its pool until
  `reregistrationTimeout`, with a one-time secret for its next reregistration.
- `reregister(...)` (reregisterWorker): new credentials and a new secret against the last one.
- `should_terminate(...)` (shouldWorkerTerminate): the scanner's decision for a worker.
- `remove_worker(...)` (removeWorker): an operator's or the worker's own request to end it now.
- `instance_gone(...)`/`interrupted(...)` (EventBridge): an instance's end resolves the runs it
  held as exception/worker-shutdown, so they retry at once instead of waiting for their claims to
  expire. Only that worker's runs are read (QueueFacts.runs_held_by), not the queue's.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from ..clock import Clock
from ..domain.errors import InputError, QueueError, RequestConflict, ResourceNotFound
from ..domain.pools import (
    PoolWorker,
    RegistrationGrant,
    TerminationAdvice,
    WorkerPool,
    WorkerState,
    token_hash,
    worker_credential_scopes,
)
from ..domain.provisioning import key
from .auth import Auth
from .pool_workers import PoolWorkers
from .ports import PoolStore, Provider, QueueFacts

log = logging.getLogger(__name__)


class WorkerRegistration:
    def __init__(
        self, pools: PoolStore, providers: Mapping[str, Provider], queue: QueueFacts, auth: Auth, clock: Clock
    ) -> None:
        self.pools = pools
        self.queue = queue
        self.auth = auth
        self.clock = clock
        self.workers = PoolWorkers(pools, providers, clock)

    # --- registerWorker, reregisterWorker --------------------------------------------------------
    def register(self, body: Mapping[str, Any]) -> RegistrationGrant:
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
        return replace(granted, worker_config=lc.worker_config if lc else {})

    def reregister(self, body: Mapping[str, Any]) -> RegistrationGrant:
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
    ) -> RegistrationGrant:
        """Credentials until reregistrationTimeout from now, and a new one-time secret (only its
        hash is kept), written on the state (and secret) the caller checked; 409 if either moved."""
        expires = now + timedelta(seconds=pool.settings.reregistration_timeout)
        secret = secrets.token_urlsafe(33)  # 44 characters, as Taskcluster's
        updated = replace(worker, terminate_after=expires, last_modified=now, secret_hash=token_hash(secret), **changes)
        if not self.pools.put_worker(updated, expected_state=worker.state, expected_secret_hash=secret_hash):
            raise RequestConflict("Worker changed while registering; a registration and its secret are one-time")
        return RegistrationGrant(expires, self._credentials(worker, expires), secret)

    def _credentials(self, worker: PoolWorker, expires: datetime) -> dict[str, str]:
        """Temporary credentials with the pool's worker scopes (worker-manager's createCredentials)."""
        pool_id, group, worker_id = worker.worker_pool_id, worker.worker_group, worker.worker_id
        name = f"worker/{worker.provider_id}/{pool_id}/{group}/{worker_id}"
        return self.auth.worker_credentials(name, worker_credential_scopes(pool_id, group, worker_id), expires) or {}

    # --- shouldWorkerTerminate, removeWorker ----------------------------------------------------
    def should_terminate(self, pool_id: str, worker_group: str, worker_id: str) -> TerminationAdvice:
        worker = self.pools.get_worker(pool_id, worker_group, worker_id)
        if worker is None:
            raise ResourceNotFound(f"Worker {worker_group}/{worker_id} does not exist in {pool_id}")
        if worker.state in (WorkerState.STOPPING, WorkerState.STOPPED):
            return TerminationAdvice(True, f"worker is {worker.state}")
        return TerminationAdvice(bool(worker.should_terminate), worker.should_terminate or None)

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
        self.workers.remove(pool.worker_pool_id, [(worker, "removed by request (removeWorker)")])

    # --- the cloud's events --------------------------------------------------------------------
    def instance_gone(self, instance_id: str, state: str) -> bool:
        """EC2 says an instance stopped or terminated: its worker is stopped, its runs retried."""
        worker = self.pools.find_worker(instance_id)
        if worker is None or not worker.alive:
            return False
        self._shutdown_runs(worker)
        self.workers.update(worker, state=WorkerState.STOPPED, provider_data={**worker.provider_data, "state": state})
        return True

    def interrupted(self, instance_id: str, action: str) -> bool:
        """A spot interruption warning: the instance has two minutes. Its runs retry now."""
        worker = self.pools.find_worker(instance_id)
        if worker is None or not worker.alive:
            return False
        self._shutdown_runs(worker)
        if worker.state is not WorkerState.STOPPING:
            self.workers.update(worker, state=WorkerState.STOPPING, should_terminate=f"spot interruption: {action}")
        return True

    def _shutdown_runs(self, worker: PoolWorker) -> None:
        for task_id, run_id in self.queue.runs_held_by(worker.worker_pool_id, key(worker), worker.capacity):
            try:
                self.queue.worker_shutdown(task_id, run_id)
            except QueueError as err:  # resolved meanwhile: nothing to do
                log.info("run %s/%s of %s: %s", task_id, run_id, worker.worker_id, err)
