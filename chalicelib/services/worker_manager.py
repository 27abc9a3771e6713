"""Worker-manager's API use cases: worker pools (create, update, delete, read, list), their workers
and their errors, as Taskcluster's worker-manager shows them. Launching and scanning workers are
the provisioner's (services/provisioner.py), registering and removing them worker registration's
(services/registration.py); this service only defines pools and reads what those record. It
answers domain values (domain/pools.py: WorkerPoolView, PoolWorker, PoolError); the handlers
render them.

- createWorkerPool under a taken id is 409, whatever the definition, as Taskcluster answers it
  (deployment tools create, and update on 409; updateWorkerPool is the idempotent call).
- updateWorkerPool and deleteWorkerPool rewrite the pool only if it is still the one read (a
  conditional write on its lastModified and providerId), re-reading on a race (invariant 2).
- deleteWorkerPool, as Taskcluster, only marks the pool: its providerId becomes `null-provider`
  (the old one moves to previousProviderIds), the provisioner removes its workers, then the pool
  (`PoolStore.delete_pool`). Until then it is listed and can be given a real provider again.
- A pool's counters (currentCapacity, requestedCount …) are computed from its workers when it is
  shown: one Query of the pool's partition reading only each worker's state and capacity.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from ..clock import Clock
from ..domain.errors import InputError, RequestConflict, ResourceNotFound
from ..domain.pools import (
    ERROR_RETENTION,
    PoolError,
    PoolWorker,
    WorkerPool,
    WorkerPoolView,
    new_error_id,
    pool_config,
    pool_counters,
)
from .ports import PoolRecords

NULL_PROVIDER = "null-provider"  # Taskcluster's providerId of a pool pending deletion
UPDATE_ATTEMPTS = 5  # re-reads after a concurrent change before answering 409
ONE_MS = timedelta(milliseconds=1)


def _previous_providers(current: WorkerPool, new_provider_id: str) -> tuple[str, ...]:
    """The old provider joins previousProviderIds (its workers still need deprovisioning); the
    new one leaves it (it is current again); null-provider has no workers, so it never joins."""
    previous = [p for p in current.previous_provider_ids if p != new_provider_id]
    old = current.provider_id
    if old != new_provider_id and old != NULL_PROVIDER and old not in previous:
        previous.append(old)
    return tuple(previous)


class WorkerManager:
    def __init__(self, store: PoolRecords, clock: Clock, provider_ids: Collection[str] | None = None) -> None:
        """`provider_ids`: the providers pools may name (None: any; the provisioner then reports
        a pool whose provider it does not know). `null-provider` is always allowed."""
        self.store = store
        self.clock = clock
        self.provider_ids = None if provider_ids is None else {*provider_ids, NULL_PROVIDER}

    # --- pools ----------------------------------------------------------------------------------
    def create_worker_pool(self, worker_pool_id: str, body: Mapping[str, Any]) -> WorkerPoolView:
        self._check_definition(body)
        now = self.clock.now()
        pool = WorkerPool(
            worker_pool_id=worker_pool_id,
            provider_id=body["providerId"],
            description=body["description"],
            owner=body["owner"],
            email_on_error=body["emailOnError"],
            config=dict(body["config"]),
            created=now,
            last_modified=now,
        )
        if self.store.put_pool(pool, create=True):
            return WorkerPoolView(pool, pool_counters(()))
        # As Taskcluster, whatever the definition: tools such as tc-admin create, and update on 409.
        raise RequestConflict("Worker pool already exists", workerPoolId=worker_pool_id)

    def update_worker_pool(self, worker_pool_id: str, body: Mapping[str, Any]) -> WorkerPoolView:
        if body.get("workerPoolId", worker_pool_id) != worker_pool_id:
            raise InputError("Incorrect workerPoolId in request body")
        self._check_definition(body)
        fields = {
            "provider_id": body["providerId"],
            "description": body["description"],
            "owner": body["owner"],
            "email_on_error": body["emailOnError"],
            "config": dict(body["config"]),
        }
        return self._view(self._rewrite(worker_pool_id, **fields))

    def delete_worker_pool(self, worker_pool_id: str) -> WorkerPoolView:
        return self._view(self._rewrite(worker_pool_id, provider_id=NULL_PROVIDER))

    def worker_pool(self, worker_pool_id: str) -> WorkerPoolView:
        return self._view(self._existing(worker_pool_id))

    def list_worker_pools(self, limit: int, continuation: str | None) -> tuple[list[WorkerPoolView], str | None]:
        pools, token = self.store.list_pools(limit, continuation)
        return [self._view(p) for p in pools], token

    # --- workers and errors ---------------------------------------------------------------------
    def list_workers(
        self,
        worker_pool_id: str,
        limit: int,
        continuation: str | None,
        state: str | None = None,
        launch_config_id: str | None = None,
    ) -> tuple[list[PoolWorker], str | None]:
        self._existing(worker_pool_id)  # Taskcluster: 404 for a pool that does not exist
        return self.store.list_workers(worker_pool_id, limit, continuation, state, launch_config_id)

    def worker(self, worker_pool_id: str, worker_group: str, worker_id: str) -> PoolWorker:
        worker = self.store.get_worker(worker_pool_id, worker_group, worker_id)
        if worker is None:
            raise ResourceNotFound("Worker not found")
        return worker

    def list_errors(
        self,
        worker_pool_id: str,
        limit: int,
        continuation: str | None,
        launch_config_id: str | None = None,
        error_id: str | None = None,
    ) -> tuple[list[PoolError], str | None]:
        """The pool's errors of the last 7 days (older ones are gone, as in Taskcluster), newest first."""
        since = self.clock.now() - ERROR_RETENTION
        return self.store.errors(worker_pool_id, since, limit, continuation, launch_config_id, error_id)

    def report_worker_error(self, worker_pool_id: str, body: Mapping[str, Any]) -> PoolError:
        """A worker's own error report, listed with the pool's errors (the launch config it was
        launched from, when known; who reported it in `extra`)."""
        self._existing(worker_pool_id)
        worker = self.store.get_worker(worker_pool_id, body["workerGroup"], body["workerId"])
        error = PoolError(
            worker_pool_id=worker_pool_id,
            error_id=new_error_id(),
            reported=self.clock.now(),
            kind=body["kind"],
            title=body["title"],
            description=body["description"],
            launch_config_id=worker.launch_config_id if worker is not None and worker.launch_config_id else None,
            extra={**body["extra"], "workerGroup": body["workerGroup"], "workerId": body["workerId"]},
        )
        self.store.add_error(error)
        return error

    # --- helpers --------------------------------------------------------------------------------
    def _check_definition(self, body: Mapping[str, Any]) -> None:
        provider_id = body["providerId"]
        if self.provider_ids is not None and provider_id not in self.provider_ids:
            known = sorted(self.provider_ids)
            raise InputError(
                f"Invalid Provider {provider_id!r}: this deployment's providers are {', '.join(known)}",
                providerId=provider_id,
                validProviderIds=known,
            )
        pool_config(body["config"])  # InputError says what is wrong, beyond the JSON schema

    def _existing(self, worker_pool_id: str) -> WorkerPool:
        pool = self.store.get_pool(worker_pool_id, consistent=True)
        if pool is None:
            raise ResourceNotFound("Worker pool does not exist", workerPoolId=worker_pool_id)
        return pool

    def _rewrite(self, worker_pool_id: str, **fields: Any) -> WorkerPool:
        """Replace the pool's fields with one write conditional on the pool read; re-read on a race."""
        for _ in range(UPDATE_ATTEMPTS):
            current = self._existing(worker_pool_id)
            # lastModified is the write's guard: it must change even within one millisecond.
            modified = max(self.clock.now(), current.last_modified + ONE_MS)
            previous = _previous_providers(current, fields.get("provider_id", current.provider_id))
            updated = replace(current, **fields, previous_provider_ids=previous, last_modified=modified)
            if self.store.put_pool(updated, create=False, expected=current):
                return updated
        raise RequestConflict("Worker pool changed concurrently; try again", workerPoolId=worker_pool_id)

    def _view(self, pool: WorkerPool) -> WorkerPoolView:
        tallies = self.store.worker_tallies(pool.worker_pool_id)
        return WorkerPoolView(pool, pool_counters((t.state, t.capacity) for t in tallies))
